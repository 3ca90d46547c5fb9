"""Crash-safe file writes: write beside the target, fsync, then rename over it.

The result is what ``open(path, "w")`` would have left, only never half written: a symlink at
``path`` stays a link (the file it points to is replaced), an existing file keeps its mode, and a
new file gets the mode the umask gives (0o666 less the umask), not the 0o600 of ``mkstemp``.
"""

from __future__ import annotations

import os
import stat
import uuid
from pathlib import Path


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Replace ``path`` with ``text`` so a reader sees the old file or the new one, never half."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    path = Path(path)
    # Renaming over a link would replace the link itself; the file it points to is the one to
    # replace, from a temp file in that file's folder (a rename is atomic within one file system).
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        mode = stat.S_IMODE(os.stat(target).st_mode)
    except FileNotFoundError:
        mode = None  # a new file: the temp file's own mode, which the umask gave it
    fd, tmp = _new_temp_file(target)
    try:
        with os.fdopen(fd, "wb") as f:
            if mode is not None:
                os.chmod(tmp, mode)
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def _new_temp_file(target: Path) -> tuple[int, Path]:
    """An empty file beside ``target``, opened for writing. Created with 0o666 like ``open()``
    creates files, so the umask (applied by the kernel, no process-wide ``os.umask`` call that
    other threads would see) decides its mode; O_EXCL never opens a file or link already there."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    for _ in range(100):
        tmp = target.parent / f".{target.name}.{uuid.uuid4().hex[:12]}.tmp"
        try:
            return os.open(tmp, flags, 0o666), tmp
        except FileExistsError:
            continue
    raise FileExistsError(f"no free temporary name beside {target}")
