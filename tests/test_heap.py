"""A session's large turn buffers, once freed, are given back (voice_journal.heap)."""

from __future__ import annotations

import subprocess
import sys

import pytest

# Four threads each allocate a 6 MB buffer, as Whisper, Piper and the embedder do each turn,
# then a small block that stays (a transcript, the turn's text), then free the buffer. By
# default glibc has already raised its threshold to the first large block freed (8 MB here), so
# each buffer came from its thread's arena, and the block that stays above it keeps the freed
# space resident. With the threshold fixed, each buffer was mapped on its own and is unmapped.
TURNS = r"""
import ctypes, sys, threading
from voice_journal import heap

if sys.argv[1] == "fixed":
    assert heap.keep_large_blocks_out_of_arenas()
libc = ctypes.CDLL(None)
libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
libc.free.argtypes = [ctypes.c_void_p]
kept = []
together = threading.Barrier(4)  # all at once, so that each thread has an arena of its own

def turn():
    together.wait()
    size = 6 * 1024 * 1024
    buf = libc.malloc(size)
    ctypes.memset(buf, 1, size)
    kept.append(libc.malloc(4096))
    together.wait()
    libc.free(buf)

def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) // 1024

libc.free(libc.malloc(8 * 1024 * 1024))
before = rss()
threads = [threading.Thread(target=turn) for _ in range(4)]
for t in threads:
    t.start()
for t in threads:
    t.join()
print(rss() - before)
"""


def grew_mb(setting: str) -> int:
    out = subprocess.run([sys.executable, "-c", TURNS, setting], capture_output=True, text=True, timeout=120,
                         check=True)
    return int(out.stdout)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's mallopt")
def test_freed_turn_buffers_do_not_stay_resident():
    assert grew_mb("glibc's default") >= 18, "the test no longer shows what the setting prevents"
    assert grew_mb("fixed") <= 6
