"""A microphone and a speaker in another program (a browser tab), relayed over a connection.

A live session reads a :class:`~voice_journal.audio.capture.Capture` and plays
into a :class:`~voice_journal.audio.playback.LiveSink`; these two are those
for audio that arrives from, and goes back to, somewhere else::

    mic = RelayedMicrophone("browser")        # the session reads it as it reads a microphone
    mic.push(pcm_int16_bytes)                  # whenever the tab sends audio (any thread)
    mic.hang_up()                              # the tab went away: the next read raises HungUp

    speaker = RelayedSpeaker(send_audio, send_stop)   # written to as a speaker is
    # send_audio(samples, rate) is called at once for every write; send_stop() on a barge-in

The speaker cannot hear what the far end played, so, like
:class:`~voice_journal.audio.playback.ClockedWavSink`, it counts audio as
played at the wall clock's pace from the moment it was sent: on a loopback
connection the tab starts playing within a few milliseconds of that, and a
reply cut by barge-in is archived as what was heard.
"""

from __future__ import annotations

import queue
import time
from typing import Callable

import numpy as np

from ..errors import HungUp, InputError
from . import pcm
from .capture import BLOCK_MS, QUEUE_SECONDS, Block, level_dbfs
from .playback import ClockedWavSink

BLOCK = pcm.RATE * BLOCK_MS // 1000  # samples in one block: one webrtcvad frame, as a microphone gives them
MAX_PUSH_BYTES = 2 * pcm.RATE  # one second of 16-bit audio in one message; a tab sends 30-100 ms at a time
_END = object()


class RelayedMicrophone:
    """16 kHz mono int16 audio pushed in from elsewhere, read as a microphone is read.

    Pushes may come in any size; they are cut into 30 ms blocks, each
    stamped with the time it arrived. A session that falls more than
    ``queue_seconds`` behind loses the newest audio, counted in
    :attr:`dropped`, as a microphone does.
    """

    def __init__(self, name: str = "relayed microphone", *, queue_seconds: float = QUEUE_SECONDS):
        self.name = name
        self.overflows = 0  # never: nothing here can overrun
        self.dropped = 0
        self._queue: queue.Queue = queue.Queue(maxsize=max(4, int(queue_seconds * 1000 / BLOCK_MS)))
        self._rest = np.zeros(0, np.int16)  # under a block, waiting for the next push
        self._at = 0.0  # when the last block was captured, on time.monotonic()
        self._finished = False
        self._ending = False  # end(): finished once what was pushed is read
        self._gone = False  # hang_up(): finished at once, and the session told

    def push(self, data: bytes) -> None:
        """Take raw little-endian int16 samples; odd, empty or oversized pushes are refused (InputError)."""
        if not data or len(data) % 2 or len(data) > MAX_PUSH_BYTES:
            raise InputError(f"audio must come as 16-bit PCM at {pcm.RATE} Hz, mono, "
                             f"in pieces of 2 to {MAX_PUSH_BYTES} bytes (got {len(data)})")
        samples = np.concatenate([self._rest, np.frombuffer(data, "<i2").astype(np.int16)])
        whole = len(samples) // BLOCK * BLOCK
        self._rest = samples[whole:].copy()
        for i in range(whole // BLOCK):
            block = samples[i * BLOCK:(i + 1) * BLOCK].copy()
            # Stamped on the stream's own clock: a block is captured one block after the one before,
            # or now, if the stream paused. Audio that arrives in a burst (a network stall, a tab
            # sending ahead) is then as long on the session's clock as it is long, as a microphone's is.
            self._at = max(time.monotonic(), self._at + BLOCK / pcm.RATE)
            try:
                self._queue.put_nowait(Block(block, self._at, level_dbfs(block)))
            except queue.Full:
                self.dropped += 1

    def end(self) -> None:
        """No more audio: what was pushed is still read, then the source is finished."""
        self._ending = True
        self._wake()

    def hang_up(self) -> None:
        """The far end went away mid-session: the next read raises :class:`HungUp`."""
        self._gone = True
        self._wake()

    def _wake(self) -> None:
        try:  # a reader waiting on an empty queue looks again at once
            self._queue.put_nowait(_END)
        except queue.Full:  # it is not waiting, then
            pass

    def start(self) -> "RelayedMicrophone":
        return self

    def read(self, timeout: float | None = None) -> Block | None:
        if self._gone:
            raise HungUp(f"{self.name} went away")
        if self._finished:
            return None
        try:
            item = self._queue.get(timeout=0 if self._ending else timeout)
        except queue.Empty:
            item = _END if self._ending else None
        if item is _END:
            if self._gone:
                raise HungUp(f"{self.name} went away")
            if self._ending and self._queue.empty():
                self._finished = True
            return None
        return item

    @property
    def finished(self) -> bool:
        return self._finished

    @property
    def gone(self) -> bool:
        """Whether the far end hung up."""
        return self._gone

    def close(self) -> None:
        self._finished = True


class RelayedSpeaker(ClockedWavSink):
    """A speaker elsewhere: every write is sent on at once and counted as played at the clock's pace."""

    def __init__(self, send_audio: Callable[[np.ndarray, int], None], send_stop: Callable[[], None] = lambda: None,
                 name: str = "relayed speaker"):
        super().__init__(None)
        self.name = name
        self._send_audio = send_audio
        self._send_stop = send_stop

    def write(self, samples: np.ndarray, rate: int) -> None:
        samples = np.ascontiguousarray(samples, dtype=np.int16)
        super().write(samples, rate)
        self._send_audio(samples, rate)

    def stop(self) -> None:
        """Barge-in: the far end drops what it has not played yet."""
        super().stop()
        self._send_stop()
