"""An advisory lock on a small user-only file: :class:`FileLock`.

The journal's processes coordinate through locks beside the journal file:
the gate a whole-file rewrite holds, a session's "still recording" mark, and
the one background summariser. All are ``flock`` locks, which the kernel
drops when the process ends however it ends (a crash, ``kill -9``), so no
stale lock is ever left behind to clear by hand.

>>> lock = FileLock(Path("/tmp/.journal.duckdb.summariser.lock"))   # doctest: +SKIP
>>> lock.take()                      # at once: True, or False if another process holds it  # doctest: +SKIP
True
>>> FileLock(lock.path).held_elsewhere()                                                # doctest: +SKIP
True
"""

from __future__ import annotations

import fcntl
import os
import time
from pathlib import Path


class FileLock:
    """A ``flock`` on ``path`` (created user-only), taken shared or exclusive, at once or waiting."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self._fd: int | None = None

    @property
    def held(self) -> bool:
        """Whether this object holds the lock now."""
        return self._fd is not None

    def take(self, *, exclusive: bool = True, wait: bool = False, deadline: float | None = None) -> bool:
        """Take the lock: at once, or (``wait``) until it is free, or until ``deadline`` (``time.monotonic``).

        False when another process holds it (and the wait, if any, ran out).
        Raises OSError where the lock file cannot be made (a folder nobody
        may write): what that means is the caller's to say.
        """
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        mode = fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH
        delay = 0.01
        while True:
            try:
                fcntl.flock(fd, mode if wait and deadline is None else mode | fcntl.LOCK_NB)
                self._fd = fd
                return True
            except BlockingIOError:
                if deadline is None or time.monotonic() >= deadline:
                    os.close(fd)
                    return False
                time.sleep(delay)
                delay = min(delay * 1.5, 0.1)

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the flock
            self._fd = None

    def write(self, text: str) -> None:
        """Say something in the held lock's file (who holds it), for :meth:`read`."""
        assert self._fd is not None, "take the lock first"
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, text.encode(), 0)

    def held_elsewhere(self) -> bool:
        """Whether another process holds the lock now (False where there is no lock file)."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return False
        except BlockingIOError:
            return True
        finally:
            os.close(fd)

    def read(self) -> str:
        """What the holder wrote in the lock's file ("" where there is none)."""
        try:
            return self.path.read_text(errors="replace").strip()
        except OSError:
            return ""
