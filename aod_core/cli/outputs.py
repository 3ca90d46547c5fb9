"""Output paths of the ``aod`` commands: checked before any work, written in one go.

A command's output file or folder is checked before the inputs are read and long before a model is
fitted, so a path that cannot be written costs nothing; the write itself is atomic
(``aod_core.files``), and a write that still fails (disk full, folder gone) is one line, not a
traceback.
"""

from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from aod_core.errors import InputError
from aod_core.files import atomic_write_text


def check_out_file(out: Path) -> None:
    """InputError unless ``out`` can become the command's output file: not a folder nor a device,
    fifo or socket (the output is renamed into place, which would replace it), in an existing folder
    that takes new files. Checked before any work, so a bad path never costs minutes of fitting."""
    _check_name(out)
    st = _stat(out)
    if st is not None and stat.S_ISDIR(st.st_mode):
        raise InputError("is a folder; give a file path", where=str(out))
    if st is not None and not stat.S_ISREG(st.st_mode):
        raise InputError("is not a regular file (a device, fifo or socket); give a file path", where=str(out))
    _check_parent(out)


def check_out_folder(out: Path) -> None:
    """InputError unless ``out`` can be (or already is) the command's output folder; whether an
    existing one may be used (empty, a run, an unfinished job) is the command's own check."""
    _check_name(out)
    st = _stat(out)
    if st is not None and not stat.S_ISDIR(st.st_mode):
        raise InputError("is a file; give a folder", where=str(out))
    if st is None:
        _check_parent(out)


def _stat(out: Path) -> os.stat_result | None:
    """The path's own status, None when nothing is there; InputError when the path cannot be looked
    at (pathlib raises for some errors and ignores others)."""
    try:
        return out.stat()
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as e:
        raise InputError(f"cannot use this path: {e.strerror or e}", where=str(out)) from None


def _check_name(out: Path) -> None:
    try:
        longest = os.pathconf(out.parent if os.path.isdir(out.parent) else "/", "PC_NAME_MAX")
    except (OSError, ValueError):
        longest = 255
    # the atomic write's temporary file is named ".<name>.<8 characters>.tmp"
    if len(os.fsencode(out.name)) + 14 > longest:
        raise InputError(f"the name is too long for this file system (at most {longest - 14} bytes)", where=str(out))


def _check_parent(out: Path) -> None:
    parent = out.parent
    st = _stat(parent)
    if st is None:
        raise InputError(f"output folder {parent} does not exist", where=str(out))
    if not stat.S_ISDIR(st.st_mode):
        raise InputError(f"{parent} is a file, not a folder", where=str(out))
    # Whether the folder takes a new file is asked of the file system itself: permissions do not say
    # it for root, a read-only mount or /proc.
    try:
        fd, probe = tempfile.mkstemp(prefix=".aod-probe-", dir=parent)
    except OSError as e:
        raise InputError(f"cannot write in {parent}: {e.strerror or e}", where=str(out)) from None
    os.close(fd)
    os.unlink(probe)


def write_out(out: str | Path, text: str) -> None:
    """``text`` into the output file, atomically; a failed write (disk full, folder gone) is one line."""
    try:
        atomic_write_text(out, text)
    except OSError as e:
        raise InputError(f"cannot write the file: {e.strerror or e}", where=str(out)) from None
