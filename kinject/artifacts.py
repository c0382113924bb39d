"""Files and directories on disk: written whole or not at all (a temporary entry renamed into
place, with the user's umask), checked by content hash; what a killed process left, removed."""

from __future__ import annotations

import contextlib
import functools
import glob
import hashlib
import importlib.util
import json
import os
import shutil
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from kinject.errors import UserError


def _hash_file(h: Any, path: Path) -> None:
    """Feed ``path``'s bytes to the hash object ``h``, 1 MiB at a time."""
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)


def model_fingerprint(path: str) -> str:
    """sha256 (16 hex digits) of a model directory's config and weight files' names and sizes,
    and of config.json's text: cheap at any model size (a hub id: the id itself)."""
    root = Path(path)
    if not root.is_dir():
        return path
    files = sorted(p for p in root.iterdir() if p.suffix in (".json", ".safetensors", ".bin"))
    blob = json.dumps([(p.name, p.stat().st_size, p.read_text(encoding="utf-8") if p.name == "config.json" else "")
                       for p in files])
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


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


def temp_prefix(name: str) -> str:
    """The name prefix of a temporary entry that will become ``name``: it carries this host and
    process id, so that :func:`remove_stale_temporaries` can tell an entry a dead process left
    from one another process is still writing."""
    return f".{name}~{socket.gethostname()}~{os.getpid()}~"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's live process
        return True
    return True


def remove_stale_temporaries(root: Path, name: str | None = None) -> int:
    """Remove, under ``root`` (or, given ``name``, beside ``root / name`` only), the temporary
    files and directories (:func:`temp_prefix`) that a process of this host left when it was
    killed; returns how many. Another host's, or a live process's, are left alone."""
    host, removed = socket.gethostname(), 0
    pattern = f".{glob.escape(name)}~*~*~*.tmp" if name else ".*~*~*~*.tmp"
    found = (root.glob(pattern) if name else root.rglob(pattern)) if root.is_dir() else []
    for entry in sorted(found):
        parts = entry.name.rsplit("~", 3)
        if len(parts) != 4 or parts[1] != host or not parts[2].isdigit() or _alive(int(parts[2])):
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry, ignore_errors=True)
        else:
            entry.unlink(missing_ok=True)
        removed += 1
    return removed


@functools.cache
def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def give_usual_mode(path: Path) -> None:
    """The permissions a plain ``open``/``mkdir`` would give ``path`` (and, for a directory, what
    it holds) under the user's umask: temporary files are created 0600, and renamed into place."""
    for f in [path, *path.rglob("*")] if path.is_dir() else [path]:
        os.chmod(f, (0o777 if f.is_dir() else 0o666) & ~_umask())


@contextlib.contextmanager
def atomic_file(path: Path) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; when the block ends without error, it becomes
    ``path`` in one rename, with the usual permissions; on error it is removed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=temp_prefix(path.name), suffix=".tmp")
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        give_usual_mode(tmp)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def package_data_files(parts: tuple[tuple[str, str], ...], owner: str, pip: str) -> list[Path]:
    """The files of data packages (``(module name, file under it)`` pairs, in order), located
    with ``importlib.util.find_spec``, never imported; a missing package is a UserError naming
    ``owner`` and the ``pip`` command that installs it."""
    files = []
    for package, fname in parts:
        spec = importlib.util.find_spec(package)
        if spec is None or spec.origin is None:
            raise UserError(f"{owner}: the package {package!r} is not installed ({pip})")
        files.append(Path(spec.origin).parent / fname)
    return files


def join_files(parts: list[Path], out: Path) -> Path:
    """Write the bytes of ``parts``, in order, to ``out`` (a file split over packages)."""
    with out.open("wb") as fh:
        for part in parts:
            with part.open("rb") as src:
                shutil.copyfileobj(src, fh, 1 << 24)
    return out


@contextlib.contextmanager
def staged_directory(out: Path, replace: bool = False) -> Iterator[Path]:
    """Yield a temporary directory beside ``out``; when the block ends without error, it becomes
    ``out`` in one rename (an existing ``out`` is swapped out only if ``replace``), with the usual
    permissions; on error it is removed and ``out`` is untouched."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(dir=out.parent, prefix=temp_prefix(out.name), suffix=".tmp"))
    try:
        yield tmp
        give_usual_mode(tmp)
        if out.exists() and replace:
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def check_writable(out: Path, flag: str = "--out") -> None:
    """UserError (naming ``flag`` and ``out``) unless ``out`` can be written: its missing parents
    are created, a probe file is made in the one it will sit in, and both are removed again. Run
    before any training, generation or embedding, so that none is lost to a path that fails."""
    missing: list[Path] = []
    parent = out.parent
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    if not parent.is_dir():
        raise UserError(f"{flag} {out}: {parent} is not a directory")
    made: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
        where = out if out.is_dir() else out.parent
        fd, probe = tempfile.mkstemp(dir=where, prefix=temp_prefix("probe"), suffix=".tmp")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{flag} {out}: cannot be written ({exc.strerror})") from None
    finally:
        for d in reversed(made):
            with contextlib.suppress(OSError):
                d.rmdir()


def fresh_output(path: str, what: str = "directory", flag: str = "--out") -> Path:
    """An output path that must not exist yet (nothing the user has is overwritten) and can be
    written (:func:`check_writable`); temporaries a killed run left beside it are removed."""
    out = Path(path).expanduser()
    if out.exists():
        raise UserError(f"{flag} {out}: already exists; choose a new {what}")
    check_writable(out, flag)
    remove_stale_temporaries(out.parent, out.name)
    return out
