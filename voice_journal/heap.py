"""Keep a session's large, short-lived buffers out of malloc's arenas.

Each turn, Piper, Whisper and the embedder allocate buffers of a few
hundred kilobytes to tens of megabytes, sized by what was said, from
threads of their own. glibc's malloc serves a block that large with a
mapping of its own and unmaps it when freed, until the first one is freed:
then it raises its threshold to that size for good, and later blocks come
from the thread's arena, where what is freed stays resident for the next
allocation. Over a session the arenas of a dozen threads fill with free
space of the largest sizes seen.

:func:`keep_large_blocks_out_of_arenas` fixes the threshold (``mallopt``,
``M_MMAP_THRESHOLD``), which also stops that raising: blocks of
:data:`LARGE` and more are mapped and given back when freed. Elsewhere
(macOS, musl) it does nothing: those allocators have no such setting.
"""

from __future__ import annotations

import ctypes
import functools
import logging
import sys

log = logging.getLogger(__name__)

LARGE = 256 * 1024  # glibc starts at 128 KB, then raises it (up to 32 MB) as large blocks are freed
_M_MMAP_THRESHOLD = -3  # from glibc's malloc.h


@functools.lru_cache(maxsize=1)
def keep_large_blocks_out_of_arenas() -> bool:
    """Fix malloc's threshold for mapping a block at :data:`LARGE` (once a process); True if set."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):  # not glibc
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    done = bool(mallopt(_M_MMAP_THRESHOLD, LARGE))
    log.debug("malloc's mmap threshold fixed at %d bytes: %s", LARGE, done)
    return done
