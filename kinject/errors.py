"""User-facing errors: one line, exit code 2, no traceback."""

from __future__ import annotations


class UserError(Exception):
    """Bad input from the user (a file, a line, a key, a path).

    The CLI prints ``kinject: error: <message>`` and exits with code 2. The message names
    the file, line or key at fault.
    """

    exit_code = 2
