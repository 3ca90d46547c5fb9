"""RunLock: one writer per run folder, from its creation through every resume.

Two processes working on one folder (two ``aod resume``, a resume while ``aod run`` is still
fitting, the app and the CLI) would both append iterations and duplicate records. The writer holds
an exclusive ``flock`` on ``.lock`` in the folder for as long as it works. The kernel drops the lock
when its process dies however it dies (kill -9 included), so a dead writer's lock is simply free:
there is no stale lock to break and no PID to trust. The holder's PID is written into the file only
to name it in the refusal.

Readers (the app's run list, export, report) never take the writer's lock: ``holder`` asks with a
shared lock that is let go at once. A writer that finds its lock briefly held by such a reader, or
by a writer that has not written its PID yet, asks again for up to ``WAIT_S`` seconds; a lock held
by a live process that named itself is refused at once.
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path

from aod_core.errors import InputError

LOCK_NAME = ".lock"
WAIT_S = 10.0  # how long a writer waits out a reader's probe or a writer not yet named (not a timeout on work)


class RunBusy(InputError):
    """Another process (or another job of this one) is working on the run folder."""


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return pid > 0  # it exists, as another user's process
    return pid > 0


def _named_pid(f) -> int | None:
    try:
        f.seek(0)
        return int(f.read().strip() or "0") or None
    except (OSError, ValueError):
        return None


def _busy_message(pid: int | None) -> str:
    if pid == os.getpid():
        return "run folder is in use by this process (a job of this app is working on it)"
    if pid:
        return f"run folder is in use by process {pid}; wait for it to end, or stop it, then try again"
    return "run folder is in use by another process"


class RunLock:
    """The writer's claim on ``folder``; ``acquire`` raises ``RunBusy`` naming the holder."""

    def __init__(self, folder: str | os.PathLike):
        self.path = Path(folder) / LOCK_NAME
        self._file = None

    @property
    def held(self) -> bool:
        return self._file is not None

    def acquire(self) -> None:
        if self._file is not None:
            return
        f = open(self.path, "a+", encoding="ascii")  # noqa: SIM115 - kept open while the lock is held
        deadline = time.monotonic() + WAIT_S
        while True:
            try:
                fcntl.flock(f.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                pid = _named_pid(f)
                # A live process that named itself holds it: refuse now. Otherwise the holder is a
                # reader's momentary probe, or a writer about to write its PID: ask again shortly.
                if (pid is not None and _pid_alive(pid)) or time.monotonic() > deadline:
                    f.close()
                    raise RunBusy(_busy_message(pid), where=str(self.path.parent)) from None
                time.sleep(0.05)
            except OSError as e:
                f.close()
                raise InputError(
                    f"cannot lock the run folder ({e.strerror or e})", where=str(self.path.parent)
                ) from None
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        self._file = f

    def release(self) -> None:
        f, self._file = self._file, None
        if f is not None:
            try:  # unnamed first: a later reader's probe must not pass for this process's claim
                f.seek(0)
                f.truncate()
            except OSError:
                pass
            f.close()  # closing the only descriptor lets the lock go

    def __del__(self) -> None:
        self.release()


def refuse_if_busy(folder: str | os.PathLike) -> None:
    """``RunBusy`` naming the holder when a writer works on ``folder``; reads only (checks made
    before a claim leave the folder as it was)."""
    pid = holder(folder)
    if pid is not None:
        raise RunBusy(_busy_message(pid or None), where=str(folder))


def holder(folder: str | os.PathLike) -> int | None:
    """The PID working on ``folder`` (0 when the holder has not named itself), or None when no
    writer holds it. A folder written before locks existed has no lock file: None."""
    path = Path(folder) / LOCK_NAME
    try:
        f = open(path, encoding="ascii")  # noqa: SIM115
    except OSError:
        return None
    with f:
        try:
            fcntl.flock(f.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _named_pid(f) or 0
        except OSError:
            return None
        fcntl.flock(f.fileno(), fcntl.LOCK_UN)
        return None
