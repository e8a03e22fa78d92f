"""Who is still recording a session.

A session's words are all there once it ended, or once the process that
recorded it is gone (a crash, kill -9): it holds a lock beside the journal
while it records, and the kernel lets go of it however the process ends.
"""

from __future__ import annotations

import logging
from pathlib import Path

from ..file_lock import FileLock

log = logging.getLogger(__name__)


class RecordingMarks:
    """The recording locks, as methods of :class:`~.archive.Archive` (``self._recording``: its own, held)."""

    def _recording_file(self, session_id: int) -> Path:
        return self.path.with_name(f".{self.path.name}.recording-{session_id}")

    def _start_recording(self, session_id: int) -> None:
        lock = FileLock(self._recording_file(session_id))
        try:
            if not lock.take():
                raise OSError("held by another process")
        except OSError as e:  # no lock: the session counts as settled a little early, nothing worse
            log.info("no recording lock for session %d: %s", session_id, e)
            return
        self._recording[session_id] = lock

    def _stop_recording(self, session_id: int) -> None:
        lock = self._recording.pop(session_id, None)
        if lock is not None:
            lock.path.unlink(missing_ok=True)
            lock.release()

    def recording(self, session_id: int) -> bool:
        """Whether a live process is still recording this session (this one or another)."""
        if session_id in self._recording:
            return True
        lock = FileLock(self._recording_file(session_id))
        if lock.held_elsewhere():
            return True
        if not self.read_only:
            lock.path.unlink(missing_ok=True)  # left by a process that was killed
        return False
