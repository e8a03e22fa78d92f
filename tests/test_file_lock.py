"""The one flock helper behind the gate, the recording marks and the summariser's lock."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import pytest

from voice_journal.file_lock import FileLock


def test_one_holder_at_a_time_and_who_it_is(tmp_path):
    path = tmp_path / ".j.duckdb.summariser.lock"
    first, second = FileLock(path), FileLock(path)
    assert first.take() and first.held
    first.write(str(os.getpid()))
    assert not second.take() and not second.held  # at once: someone else has it
    assert not second.take(deadline=time.monotonic())  # a deadline already past: one try, no wait
    assert second.held_elsewhere() and second.read() == str(os.getpid())
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    first.release()
    assert not second.held_elsewhere() and second.take()
    second.release()


def test_shared_holders_keep_out_an_exclusive_one(tmp_path):
    path = tmp_path / ".j.duckdb.gate"
    a, b, c = FileLock(path), FileLock(path), FileLock(path)
    assert a.take(exclusive=False) and b.take(exclusive=False)
    assert not c.take(exclusive=True)
    a.release()
    b.release()
    assert c.take(exclusive=True)
    c.release()


def test_no_lock_where_no_file_can_be_made_and_none_held_there(tmp_path):
    lock = FileLock(tmp_path / "no such folder" / ".lock")
    with pytest.raises(OSError):
        lock.take()
    assert not lock.held_elsewhere() and lock.read() == ""


def test_the_kernel_lets_go_when_the_holder_dies(tmp_path):
    path = tmp_path / ".j.duckdb.recording-3"
    holder = subprocess.Popen([sys.executable, "-c", (
        "import sys, time; from voice_journal.file_lock import FileLock; "
        f"l = FileLock({str(path)!r}); assert l.take(); print('held', flush=True); time.sleep(60)")],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert FileLock(path).held_elsewhere()
        holder.kill()  # kill -9: no chance to let go by itself
        holder.wait(timeout=10)
        assert not FileLock(path).held_elsewhere()
    finally:
        if holder.poll() is None:
            holder.kill()
