"""The microphone's side of a live session: :class:`Hearing`.

Blocks come in from the microphone (or a recording played in real time);
out go the level for the meter, the segmenter's events (speech started, a
pause, speech resumed, a whole turn) and times on the session's clock.

Half-duplex by default: what the microphone captures while the companion
speaks, and for a short tail after, is not heard (:meth:`Hearing.deafen`),
so the companion never takes its own voice for the person's; and a fresh
segmenter after it spoke (:meth:`Hearing.restart`) forgets anything half
heard meanwhile.
"""

from __future__ import annotations

import time
from typing import Callable

from ..audio import pcm
from ..audio.vad import BargeInDetector, Segmenter, SegmenterConfig


class Hearing:
    """Reads the source, keeps the level, and segments what is heard into the person's turns."""

    def __init__(self, source, *, end_silence_ms: int, max_turn_s: float, piece_pause_ms: int,
                 origin: Callable[[], float], on_restart: Callable[[], None] = lambda: None, polite: bool = True):
        self.source = source
        # A recording standing in for a polite person waits while the companion talks (never
        # with barge-in, where talking over it is the point).
        self.polite = polite
        self.level_dbfs = -120.0
        self.deaf_until = 0.0  # time.monotonic() before which blocks are the companion's own voice
        self._origin = origin  # the session's start, on time.monotonic()
        self._on_restart = on_restart  # the turn in progress is forgotten with the segmenter
        # A piece is transcribed at PauseStarted: late enough in a silence that a breath
        # rarely triggers it (each piece costs a Whisper window of CPU), early enough to
        # be done near the end-of-turn decision.
        self._config = SegmenterConfig(end_silence_ms=end_silence_ms, max_turn_s=max_turn_s,
                                       pause_ms=min(piece_pause_ms, max(0, end_silence_ms - 300)))
        self.seg = Segmenter(self._config)
        self._seg_origin: float | None = None  # session time of the segmenter's first sample

    def restart(self) -> None:
        """A fresh segmenter: what it was hearing is forgotten."""
        self.seg = Segmenter(self._config)
        self._seg_origin = None
        self._on_restart()

    def hold(self, holding: bool) -> None:
        """The companion is about to speak (``holding``) or has spoken: a polite recording waits meanwhile."""
        if not self.polite:
            return
        if holding:
            getattr(self.source, "hold", lambda: None)()
        else:
            getattr(self.source, "resume", lambda at: None)(self.deaf_until)

    def read(self, timeout: float):
        """The next block (None if none came within ``timeout``), its level kept for the meter."""
        block = self.source.read(timeout=timeout)
        if block is not None:
            self.level_dbfs = block.level_dbfs
        return block

    def deaf_to(self, block) -> bool:
        """Whether ``block`` was captured while the companion spoke (or in the tail after)."""
        return block.at < self.deaf_until

    def deafen(self, tail_s: float) -> None:
        """The companion has just stopped speaking: stay deaf for ``tail_s`` more (its echo, the room)."""
        self.deaf_until = time.monotonic() + tail_s

    def feed(self, block) -> list:
        """Segment a block; the segmenter counts from its first block, the session from its start."""
        if self._seg_origin is None:
            self._seg_origin = block.at - len(block.samples) / pcm.RATE - self._origin()
        return self.seg.feed(block.samples)

    def session_time(self, t: float) -> float:
        """A segmenter time (seconds from its first block) on the session's clock."""
        return round((self._seg_origin or 0.0) + t, 3)

    def listen_while(self, busy: Callable[[], bool]) -> None:
        """Keep reading (the level meter stays alive) while ``busy()``; nothing is heard."""
        while busy():
            self.read(timeout=0.05)

    def talked_over(self, busy: Callable[[], bool]) -> bool:
        """Listen for the person speaking over the companion while ``busy()``; True the moment they do."""
        detector = BargeInDetector()
        while busy():
            block = self.read(timeout=0.05)
            if block is not None and detector.feed(block.samples):
                return True
        return False
