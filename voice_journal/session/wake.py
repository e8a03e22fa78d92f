"""Waiting for the wake phrase before a hands-free session begins."""

from __future__ import annotations

from ..audio import pcm
from ..audio.wake import WakeWord


def wait_for_wake(source, wake: WakeWord, *, max_s: float | None = None) -> bool:
    """Listen on ``source`` (started) until ``wake``'s phrase is said; False if the source ended (or ``max_s`` passed).

    Nothing heard here is kept: the words before the phrase are not the
    person's journal, and the phrase itself is not a turn.
    """
    heard_s = 0.0
    while max_s is None or heard_s < max_s:
        block = source.read(timeout=0.1)
        if block is None:
            if source.finished:
                return False
            continue
        heard_s += len(block.samples) / pcm.RATE
        if wake.heard(block.samples):
            return True
    return False
