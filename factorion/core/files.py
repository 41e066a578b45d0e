"""Atomic file output: the one helper every writer uses (pipeline tables, the download cache, the CLI).

A file is written to a temporary name beside its target (same folder, so the same file system) and
``os.replace``-d over it only once complete: a reader sees the old file or the new one, never half of
one, and a failed or killed writer leaves the old file as it was (and, on an exception, no temp file).
Temp names start with ``.<name>.`` and end with ``.tmp``; files get the mode ``open()`` would give.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

__all__ = ["atomic_target", "write_bytes_atomic", "write_text_atomic"]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_umask()  # what open() would give: mkstemp's files are private (0600)


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """A new empty file beside ``path`` to write into, then ``os.replace`` over it."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=suffix)
    os.fchmod(fd, _FILE_MODE)
    os.close(fd)
    return Path(tmp)


@contextlib.contextmanager
def atomic_target(path: str | os.PathLike, suffix: str = ".tmp"):
    """Yield a temp path beside ``path``; on success it replaces ``path``, on error it is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def write_bytes_atomic(data: bytes, path: str | os.PathLike) -> Path:
    """Write ``data`` to ``path`` atomically (see the module docstring)."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def write_text_atomic(text: str, path: str | os.PathLike) -> Path:
    return write_bytes_atomic(text.encode("utf-8"), path)
