"""Claims: several workers share one run directory, each unit of work done exactly once.

A worker claims a unit before it starts by creating ``claims/<unit>.claim`` with ``O_EXCL`` (one
creator wins, on a local disk and on NFS alike). While it works, a thread touches the file every
``heartbeat`` seconds. A claim whose file has not been touched for ``stale_after`` seconds, or
whose owner is a process on this host that no longer exists, belongs to a dead worker: another
worker takes it over by creating ``<unit>.takeover-<hash of that claim>`` with ``O_EXCL`` (one
worker wins each dead claim), removing the dead claim and claiming afresh. A unit's outputs (the
cells) are the record that it is done; its claim is removed when it ends.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

HEARTBEAT_SECONDS = 30.0
STALE_AFTER_SECONDS = 300.0


def _owner() -> dict[str, object]:
    return {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}


def _is_dead(text: str, age: float, stale_after: float) -> bool:
    """A claim (its file's text, seconds since it was touched) was made by a worker that is gone."""
    try:
        owner = json.loads(text)
    except json.JSONDecodeError:
        owner = {}
    if owner.get("host") == socket.gethostname():
        try:
            os.kill(int(owner["pid"]), 0)
        except ProcessLookupError:
            return True
        except (PermissionError, KeyError, ValueError):
            pass
    return age > stale_after


def try_claim(claims: Path, unit: str, stale_after: float = STALE_AFTER_SECONDS) -> Path | None:
    """Claim ``unit``: the claim file, or None when a live worker holds it."""
    claims.mkdir(parents=True, exist_ok=True)
    path = claims / f"{unit}.claim"
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            try:
                age, text = time.time() - path.stat().st_mtime, path.read_text(encoding="utf-8")
            except FileNotFoundError:  # its worker just finished
                continue
            if not text or not _is_dead(text, age, stale_after):  # empty: being written right now
                return None
            marker = claims / f"{unit}.takeover-{hashlib.sha256(text.encode()).hexdigest()[:12]}"
            try:
                os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
            except FileExistsError:  # another worker is taking this dead claim over
                return None
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(_owner(), fh)
        return path
    return None


@contextlib.contextmanager
def held(path: Path, heartbeat: float = HEARTBEAT_SECONDS) -> Iterator[None]:
    """Keep the claim at ``path`` alive (touched every ``heartbeat`` s) for the block; remove it after."""
    done = threading.Event()

    def beat() -> None:
        while not done.wait(heartbeat):
            with contextlib.suppress(FileNotFoundError):
                os.utime(path)

    thread = threading.Thread(target=beat, name=f"claim-{path.name}", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join()
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
