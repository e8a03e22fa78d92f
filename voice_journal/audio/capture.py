"""Where a live session's audio comes from: a microphone, or a file paced in real time.

Both sources hand out the same thing, 16 kHz mono int16 :class:`Block` s,
through :meth:`read`, so that a session (and its tests and benchmarks) runs
the same code on a microphone and on a recording::

    with Microphone(device=None) as mic:       # or PacedFile("talk.wav")
        while (block := mic.read(timeout=0.5)) is not None:
            ...                                 # block.samples, block.at, block.level_dbfs

The microphone is read in a PortAudio callback that only copies the samples
into a bounded queue: it never blocks, and if the session falls behind the
oldest audio is not silently overwritten; the newest block is dropped and
counted in :attr:`Microphone.dropped` (PortAudio's own overruns are counted
in :attr:`Microphone.overflows`). A device that cannot record at 16 kHz (many
USB microphones do only 44.1 or 48 kHz) is opened at its own rate and
resampled with soxr.

sounddevice is imported only here, when a microphone is opened, so runs
that read files need no PortAudio.
"""

from __future__ import annotations

import collections
import logging
import queue
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import soxr

from ..errors import DeviceError
from . import pcm
from .devices import describe_devices, import_sounddevice

log = logging.getLogger(__name__)

BLOCK_MS = 30  # one webrtcvad frame: the segmenter decides as soon as a frame arrives
QUEUE_SECONDS = 10.0  # how far a busy session may fall behind before audio is dropped
_END = object()


@dataclass(frozen=True)
class Block:
    """A short run of captured audio."""

    samples: np.ndarray  # int16, 16 kHz mono
    at: float  # time.monotonic() when its last sample was captured
    level_dbfs: float  # its loudness, for a level meter


class Capture(Protocol):
    """What a live session reads: a :class:`Microphone` or a :class:`PacedFile`."""

    name: str
    overflows: int
    dropped: int

    def start(self) -> "Capture": ...

    def read(self, timeout: float | None = None) -> Block | None: ...

    @property
    def finished(self) -> bool: ...

    def close(self) -> None: ...


def level_dbfs(samples: np.ndarray) -> float:
    if not len(samples):
        return -120.0
    rms = float(np.sqrt(np.mean(samples.astype(np.float32) ** 2)))
    return 20 * np.log10(max(rms, 1e-3) / 32768.0)


class Microphone:
    """Captures 16 kHz mono blocks from an input device, in real time."""

    def __init__(self, device: str | int | None = None, *, block_ms: int = BLOCK_MS):
        self._sd = import_sounddevice()
        self.device = device
        self.overflows = 0  # PortAudio could not deliver in time
        self.dropped = 0  # blocks thrown away because the session fell behind
        self._queue: queue.Queue = queue.Queue(maxsize=max(4, int(QUEUE_SECONDS * 1000 / block_ms)))
        self._block_ms = block_ms
        self._resampler: soxr.ResampleStream | None = None
        self._stream = None
        self._closed = False
        try:
            info = self._sd.query_devices(device, "input")
        except Exception as e:  # PortAudioError or ValueError
            raise DeviceError(
                f"no microphone {device if device is not None else '(default)'} ({_first_line(e)}); "
                f"{describe_devices('input')}; use --input FILE to journal from a recording"
            ) from None
        self.name = info["name"]
        self.rate = self._open(info)

    def _open(self, info) -> int:
        errors = []
        for rate in (pcm.RATE, int(info["default_samplerate"]), 48_000, 44_100):
            try:
                self._stream = self._sd.InputStream(
                    device=self.device, samplerate=rate, channels=1, dtype="int16",
                    blocksize=rate * self._block_ms // 1000, callback=self._callback, latency="low",
                )
            except Exception as e:  # PortAudioError: invalid sample rate, device busy...
                errors.append(f"{rate} Hz: {_first_line(e)}")
                continue
            if rate != pcm.RATE:
                self._resampler = soxr.ResampleStream(rate, pcm.RATE, 1, dtype="int16", quality="HQ")
                log.info("microphone %s records at %d Hz; resampling to %d", info["name"], rate, pcm.RATE)
            return rate
        raise DeviceError(f"cannot open the microphone {info['name']}: {'; '.join(errors)}")

    def _callback(self, indata, frames, time_info, status) -> None:
        # PortAudio's thread: copy and hand over, nothing that can block.
        if status.input_overflow:
            self.overflows += 1
        try:
            self._queue.put_nowait((indata[:, 0].copy(), time.monotonic()))
        except queue.Full:
            self.dropped += 1

    def start(self) -> "Microphone":
        try:
            self._stream.start()
        except Exception as e:
            raise DeviceError(f"cannot start the microphone {self.name}: {_first_line(e)}") from None
        return self

    def read(self, timeout: float | None = None) -> Block | None:
        """The next block; None on timeout or once closed."""
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            return None
        samples, at = item
        if self._resampler is not None:
            samples = self._resampler.resample_chunk(samples)
        return Block(samples, at, level_dbfs(samples))

    @property
    def finished(self) -> bool:
        return self._closed

    def discard_pending(self) -> int:
        """Throw away what was captured but not read yet; return how many blocks."""
        n = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return n
            if item is _END:
                self._queue.put_nowait(_END)
                return n
            n += 1

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._stream.stop()
            self._stream.close()
        except Exception as e:  # closing a stream whose device vanished
            log.warning("closing the microphone: %s", e)
        try:
            self._queue.put_nowait(_END)
        except queue.Full:
            pass
        if self.overflows or self.dropped:
            log.warning("microphone: %d overflows, %d blocks dropped", self.overflows, self.dropped)

    def __enter__(self) -> "Microphone":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


class PacedFile:
    """A recording played as if it were a microphone: one block every 30 ms, in real time.

    It stands in for a person, so it starts talking once greeted
    (:attr:`waits_for_greeting`) and, when :meth:`hold` is called, waits
    while the companion answers, then goes on where it stopped: the turns
    of a recording are heard whatever the replies' length. ``speed`` > 1
    plays faster. After the recording, ``trailing_silence`` seconds of
    silence let the last turn end the way a live one does.
    """

    waits_for_greeting = True

    def __init__(self, path: str | Path, *, speed: float = 1.0, trailing_silence: float = 2.0,
                 block_ms: int = BLOCK_MS):
        self.path = Path(path)
        pcm.info(self.path)  # a bad file fails now, not in the reader thread
        self.name = f"file:{self.path.name}"
        self.rate = pcm.RATE
        self.overflows = 0
        self.dropped = 0
        self._speed = speed
        self._trailing = trailing_silence
        self._block = pcm.RATE * block_ms // 1000
        self._queue: queue.Queue = queue.Queue()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._resume_at = 0.0
        self._thread = threading.Thread(target=self._pace, name="paced-file", daemon=True)
        self._error: BaseException | None = None
        self._lock = threading.Lock()
        self._taken_back: collections.deque = collections.deque()  # unread when held, played first after
        self._unsent = 0  # their samples, no longer counted as played
        self._in_flight: np.ndarray | None = None  # taken from the file, waiting for its time
        self._done = False

    def _blocks(self):
        pending = np.zeros(0, np.int16)
        for chunk in pcm.stream(self.path):
            pending = np.concatenate([pending, chunk])
            while len(pending) >= self._block:
                yield pending[: self._block]
                pending = pending[self._block :]
        if len(pending):
            yield np.concatenate([pending, np.zeros(self._block - len(pending), np.int16)])
        for _ in range(int(self._trailing * pcm.RATE / self._block)):
            yield np.zeros(self._block, np.int16)

    def _pace(self) -> None:
        if (wait := self._resume_at - time.monotonic()) > 0 and self._stop.wait(wait):
            return
        t0 = time.monotonic()
        sent = 0
        blocks = self._blocks()
        try:
            while True:
                with self._lock:
                    block = self._taken_back.popleft() if self._taken_back else next(blocks, None)
                    self._in_flight = block
                    self._done = block is None  # from here hold() takes nothing back: none would replay it
                if block is None:
                    break
                if not self._go.is_set():
                    held = time.monotonic()
                    while not self._go.wait(0.05):
                        if self._stop.is_set():
                            return
                    if (wait := self._resume_at - time.monotonic()) > 0 and self._stop.wait(wait):
                        return
                    t0 += time.monotonic() - held  # the clock pauses with the speaker
                    with self._lock:
                        sent, self._unsent = sent - self._unsent, 0
                due = t0 + (sent + len(block)) / pcm.RATE / self._speed
                if self._stop.wait(max(0.0, due - time.monotonic())):
                    break
                with self._lock:
                    if self._in_flight is None:  # held while it was on its way: taken back
                        continue
                    self._in_flight = None
                    sent += len(block)
                    self._queue.put((block, time.monotonic()))
        except BaseException as e:  # a decoding error surfaces on read()
            self._error = e
        finally:
            with self._lock:
                self._done = True
                self._queue.put(_END)

    def start(self, at: float = 0.0) -> "PacedFile":
        """Start talking, at ``at`` (a time.monotonic() value: after the greeting's tail) or now."""
        self._resume_at = at
        self._thread.start()
        return self

    def read(self, timeout: float | None = None) -> Block | None:
        try:
            item = self._queue.get(timeout=timeout)
        except queue.Empty:
            return None
        if item is _END:
            self._queue.put(_END)  # stay at the end
            if self._error is not None:
                raise self._error
            return None
        samples, at = item
        return Block(samples, at, level_dbfs(samples))

    @property
    def finished(self) -> bool:
        return self._thread.ident is not None and not self._thread.is_alive() and self._queue.qsize() <= 1

    def hold(self) -> None:
        """Stop talking until :meth:`resume` (the companion is answering).

        Blocks not yet read are taken back and played again after
        :meth:`resume`: the person waited from where the session had
        heard them to, even when the session was behind.
        """
        with self._lock:
            self._go.clear()
            if self._done:
                return
            back = []
            while True:
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
                back.append(item[0])  # (no _END before self._done)
            self._unsent += sum(len(b) for b in back)
            if self._in_flight is not None:  # due next: after those, before any taken back earlier
                back.append(self._in_flight)
                self._in_flight = None
            self._taken_back.extendleft(reversed(back))
        if back:
            log.debug("held with %d blocks unread: they play after the reply", len(back))

    def resume(self, at: float = 0.0) -> None:
        """Talk again, from ``at`` (a time.monotonic() value) on."""
        self._resume_at = at
        self._go.set()

    def discard_pending(self) -> int:
        n = 0
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                return n
            if item is _END:
                self._queue.put(_END)
                return n
            n += 1

    def close(self) -> None:
        self._stop.set()

    def __enter__(self) -> "PacedFile":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()


def _first_line(e: BaseException) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0]
