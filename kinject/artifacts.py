"""Artefact directories on disk: written whole or not at all, and checked by content hash."""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any


def _hash_file(h: Any, path: Path) -> None:
    """Feed ``path``'s bytes to the hash object ``h``, 1 MiB at a time."""
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def file_sha256(path: Path) -> str:
    """The full sha256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    _hash_file(h, path)
    return h.hexdigest()


@functools.lru_cache(maxsize=8)
def directory_fingerprint(path: str) -> str:
    """sha256 (16 hex digits) over every file's relative name and bytes under a local model
    directory (same weights, same id); for a hub id, the hash of the id."""
    local = Path(path)
    if not local.is_dir():
        return hashlib.sha256(path.encode()).hexdigest()[:16]
    h = hashlib.sha256()
    for f in sorted(p for p in local.rglob("*") if p.is_file() and ".cache" not in p.relative_to(local).parts):
        h.update(str(f.relative_to(local)).encode() + b"\0")
        _hash_file(h, f)
    return h.hexdigest()[:16]


@contextlib.contextmanager
def staged_directory(out: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; when the block ends without error, it becomes
    ``out`` in one rename (an existing ``out`` is swapped out only if ``replace``), with the usual
    permissions; on error it is removed and ``out`` is untouched."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp"))
    try:
        yield tmp
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o777 & ~umask)
        for f in tmp.rglob("*"):
            os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~umask)
        if out.exists() and replace:
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
