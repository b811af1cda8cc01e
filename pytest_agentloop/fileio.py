"""Writing files so that a killed run never leaves half of one."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO


def _mode_for(path: Path) -> int:
    """The file's own mode when it exists (a rewrite keeps it), else what a plain ``open`` would give."""
    try:
        return path.stat().st_mode & 0o777
    except FileNotFoundError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


@contextmanager
def open_atomic(path: Path) -> Iterator[BinaryIO]:
    """A binary handle on a temporary file beside ``path``; renamed over it (fsynced, mode kept) on success.

    Large files are written through it piece by piece; an exception, or a kill
    at any moment, leaves ``path`` as it was (a killed run may leave the
    ``.<name>.*.tmp`` file behind, never a half-written ``path``).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    mode = _mode_for(path)
    fd, temp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(temp, mode)
        os.replace(temp, path)
    except BaseException:
        Path(temp).unlink(missing_ok=True)
        raise


def write_atomic(path: Path, text: str) -> Path:
    """Write ``text`` to ``path`` through a temporary file and an atomic rename, keeping the file's mode."""
    with open_atomic(path) as handle:
        handle.write(text.encode("utf-8"))
    return path


def copy_atomic(source: Path, path: Path) -> Path:
    """Copy ``source`` to ``path`` with the same guarantees, streaming (never the whole file in memory)."""
    with open_atomic(path) as handle, source.open("rb") as original:
        shutil.copyfileobj(original, handle, 1 << 20)
    return path
