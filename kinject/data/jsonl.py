"""Text, JSONL and JSON reading/writing with errors that name the file and line.

Every file kinject reads goes through :func:`read_text`: UTF-8, and a file that is missing,
unreadable or not UTF-8 is one :class:`~kinject.errors.UserError` naming it (and the line).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any, TypeVar

from kinject.artifacts import atomic_file
from kinject.errors import UserError

T = TypeVar("T")


def read_text(path: str | Path) -> str:
    """The UTF-8 text of ``path``; UserError naming the file (and the line of the first byte that
    is not UTF-8) when it is missing, unreadable or not UTF-8."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: no such file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise UserError(f"{path}: cannot be read ({exc.strerror})") from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise UserError(f"{path}:{line}: not UTF-8 text (byte {data[exc.start]:#04x} at offset {exc.start})") from None


def read_jsonl(path: str | Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield (1-based line number, object) for each non-blank line of a JSONL file."""
    for lineno, line in enumerate(read_text(path).splitlines(), 1):
        if not line.strip():
            continue
        try:
            obj = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{path}:{lineno}: malformed JSON ({exc.msg})") from None
        if not isinstance(obj, dict):
            raise UserError(f"{path}:{lineno}: expected a JSON object, got {type(obj).__name__}")
        yield lineno, obj


def load_numbered(path: str | Path, parse: Callable[[dict[str, Any]], T]) -> list[tuple[int, T]]:
    """(1-based line number, record) for every line of a JSONL file, parsed with ``parse`` (e.g.
    ``Probe.from_dict``); a missing field or a wrong value is a UserError naming the line."""
    out = []
    for lineno, row in read_jsonl(path):
        try:
            out.append((lineno, parse(row)))
        except KeyError as exc:
            raise UserError(f"{path}:{lineno}: missing field {exc.args[0]!r}") from None
        except (TypeError, ValueError) as exc:
            raise UserError(f"{path}:{lineno}: {exc}") from None
    return out


def load_records(path: str | Path, parse: Callable[[dict[str, Any]], T]) -> list[T]:
    """The records of :func:`load_numbered`, without their line numbers."""
    return [record for _, record in load_numbered(path, parse)]


def unique_ids(path: str | Path, numbered: list[tuple[int, Any]], what: str) -> None:
    """UserError naming the line of the first record whose ``id`` an earlier line already has."""
    first: dict[str, int] = {}
    for lineno, record in numbered:
        if record.id in first:
            raise UserError(f"{path}:{lineno}: duplicate {what} id {record.id!r} (first on line {first[record.id]})")
        first[record.id] = lineno


def read_json(path: str | Path) -> Any:
    """The JSON document in ``path``; UserError naming the file and line when it is not one."""
    try:
        return json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}:{exc.lineno}: malformed JSON ({exc.msg})") from None


def atomic_write_text(path: str | Path, text: str) -> None:
    """Write ``text`` to ``path`` via a temporary file and rename, so readers never see half."""
    with atomic_file(Path(path)) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_jsonl(path: str | Path, rows: Iterable[dict[str, Any]]) -> None:
    atomic_write_text(path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows))


def write_json(path: str | Path, obj: Any) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False) + "\n")
