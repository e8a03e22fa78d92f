"""Where reply audio goes: a WAV file, or the speaker through sounddevice.

sounddevice is imported only when a speaker is opened, so that runs that
only read and write files need no PortAudio.
"""

from __future__ import annotations

import collections
import logging
import threading
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import DeviceError
from .devices import describe_devices, import_sounddevice
from .pcm import WavWriter

log = logging.getLogger(__name__)


class AudioSink(Protocol):
    def write(self, samples: np.ndarray, rate: int) -> None:
        """Take int16 mono samples; may block while they play."""

    def gap(self, seconds: float, rate: int) -> None:
        """Silence between replies."""

    def close(self) -> None: ...


class LiveSink(AudioSink, Protocol):
    """A sink that plays in real time: a :class:`Speaker` or a :class:`ClockedWavSink`."""

    played: int  # samples heard since mark()

    @property
    def pending_s(self) -> float: ...

    def drain(self, timeout: float | None = None) -> bool: ...

    def stop(self) -> None: ...

    def mark(self) -> None: ...


class WavSink:
    """All replies, one after the other, in one WAV file at the voice's rate."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self._writer: WavWriter | None = None

    def write(self, samples: np.ndarray, rate: int) -> None:
        if self._writer is None:
            self._writer = WavWriter(self.path, rate)
        elif self._writer.rate != rate:
            raise ValueError("one WAV file holds one rate")
        self._writer.write(samples)

    def gap(self, seconds: float, rate: int) -> None:
        self.write(np.zeros(int(seconds * rate), np.int16), rate)

    def close(self) -> None:
        if self._writer is not None:
            self._writer.close()


class ClockedWavSink:
    """A WAV file that "plays" in real time, standing in for a speaker.

    A live session run from a recording in real time (``--input FILE
    --realtime``) needs a speaker that takes as long to play a reply as a
    real one does, can be stopped mid-sentence and knows how much was heard.
    This one keeps the replies in memory, moves a playhead at the wall
    clock's pace, and writes to the file only what was "played".
    ``speed`` > 1 plays faster, for a session whose person (a
    :class:`~voice_journal.audio.capture.PacedFile` of the same speed) also
    talks faster: the conversation keeps its shape on a quicker clock.
    ``clock`` is the wall clock it keeps pace with (a test's own, to move
    the playhead without waiting).
    """

    def __init__(self, path: str | Path | None, *, speed: float = 1.0, clock=time.monotonic):
        self._speed = speed
        self._clock = clock
        self._wav = WavSink(path) if path is not None else None  # None: heard by nobody
        self._lock = threading.Lock()
        self._buffer = np.zeros(0, np.int16)
        self._rate = 0
        self._since = 0.0  # when the buffer's first sample starts playing
        self.played = 0
        self.name = f"file:{Path(path).name}" if path is not None else "nowhere"

    def _advance(self) -> None:
        # Move what the clock says has been played from the buffer to the file.
        if not len(self._buffer):
            return
        now = self._clock()
        n = min(len(self._buffer), int((now - self._since) * self._rate * self._speed))
        if n > 0:
            if self._wav is not None:
                self._wav.write(self._buffer[:n], self._rate)
            self._buffer = self._buffer[n:]
            self._since += n / (self._rate * self._speed)
            self.played += n

    def write(self, samples: np.ndarray, rate: int) -> None:
        with self._lock:
            self._advance()
            if not len(self._buffer):
                self._since = self._clock()
            self._rate = rate
            self._buffer = np.concatenate([self._buffer, np.asarray(samples, np.int16)])

    def gap(self, seconds: float, rate: int) -> None:
        self.write(np.zeros(int(seconds * rate), np.int16), rate)

    @property
    def pending_s(self) -> float:
        """Wall seconds until what was written has played."""
        with self._lock:
            self._advance()
            return len(self._buffer) / (self._rate * self._speed) if self._rate else 0.0

    def drain(self, timeout: float | None = None) -> bool:
        deadline = None if timeout is None else self._clock() + timeout
        while (left := self.pending_s) > 0:
            if deadline is not None and self._clock() + left > deadline:
                return False
            time.sleep(min(left, 0.05))
        return True

    def stop(self) -> None:
        with self._lock:
            self._advance()
            self._buffer = np.zeros(0, np.int16)

    def mark(self) -> None:
        with self._lock:
            self._advance()
            self.played = 0

    def close(self) -> None:
        with self._lock:
            self._advance()
            if len(self._buffer) and self._wav is not None:  # closing early still keeps what was written
                self._wav.write(self._buffer, self._rate)
            self._buffer = np.zeros(0, np.int16)
        if self._wav is not None:
            self._wav.close()


class Speaker:
    """Plays replies on an output device while the next sentence is synthesised.

    :meth:`write` only queues the samples; PortAudio's callback plays them.
    That lets a session keep synthesising while a sentence plays, and lets
    :meth:`stop` silence the voice within one callback block (about 20 ms)
    when the person speaks over it (barge-in). :attr:`played` counts the
    samples the device has actually been given, so that a cut reply can be
    archived as what was heard.
    """

    BLOCK_MS = 20
    # The device's buffer. PortAudio's "low" (40 ms on PulseAudio's ALSA plugin, the usual
    # Linux desktop path) fell into underrun storms here: the callback was drained as fast
    # as it could run and most of the reply was thrown away (a 6 s clip played in 0.4 s).
    # 80 ms (6 trials) and 100 ms (18 trials) never did. A barge-in still silences the
    # voice at once: stop() aborts the stream, dropping what is buffered.
    LATENCY_S = 0.1

    def __init__(self, device: str | int | None = None, *,
                 hint: str = "use --reply-audio FILE to keep the replies in a WAV file"):
        self._sd = import_sounddevice()
        self.device = device
        self._stream = None
        self._rate = 0  # the rate written to us
        self._device_rate = 0  # the rate the device was opened at
        self._resampler = None
        self._lock = threading.Lock()
        self._chunks: collections.deque[np.ndarray] = collections.deque()
        self._offset = 0  # samples of _chunks[0] already played
        self._queued = 0  # samples written and not yet played (device rate)
        self._idle = threading.Event()
        self._idle.set()
        self.played = 0  # samples played since the last mark(), at the rate written
        self.underflows = 0
        try:  # fail before any model is loaded, not at the first reply
            info = self._sd.query_devices(device, "output")
        except Exception as e:  # PortAudioError or ValueError: no such device
            raise DeviceError(
                f"no speaker {device if device is not None else '(default)'} ({_first_line(e)}); "
                f"{describe_devices('output')}; {hint}"
            ) from None
        self.name = info["name"]
        self._default_rate = int(info["default_samplerate"])

    def _open(self, rate: int) -> None:
        if self._stream is not None and self._rate == rate:
            return
        self.close()
        errors = []
        for device_rate in dict.fromkeys((rate, self._default_rate, 48_000, 44_100)):
            try:
                self._stream = self._sd.OutputStream(
                    samplerate=device_rate, channels=1, dtype="int16", device=self.device,
                    blocksize=device_rate * self.BLOCK_MS // 1000, callback=self._callback, latency=self.LATENCY_S,
                )
                self._stream.start()
            except Exception as e:  # PortAudioError (rate not supported, busy), ValueError
                errors.append(f"{device_rate} Hz: {_first_line(e)}")
                self._stream = None
                continue
            self._rate, self._device_rate = rate, device_rate
            self._resampler = None
            if device_rate != rate:  # a 48 kHz-only device: resample the voice to it
                import soxr

                self._resampler = soxr.ResampleStream(rate, device_rate, 1, dtype="int16", quality="HQ")
            return
        raise DeviceError(f"cannot open the speaker {self.name}: {'; '.join(errors)}")

    def _callback(self, outdata, frames, time_info, status) -> None:
        # PortAudio's thread: copy out what is queued, pad with silence, never block for long.
        if status.output_underflow:
            self.underflows += 1
        out = outdata[:, 0]
        filled = 0
        with self._lock:
            while filled < frames and self._chunks:
                chunk = self._chunks[0]
                take = min(frames - filled, len(chunk) - self._offset)
                out[filled : filled + take] = chunk[self._offset : self._offset + take]
                filled += take
                self._offset += take
                if self._offset == len(chunk):
                    self._chunks.popleft()
                    self._offset = 0
            self._queued -= filled
            self.played += filled * self._rate / self._device_rate if self._device_rate else filled
            if not self._chunks:
                self._idle.set()
        out[filled:] = 0

    def write(self, samples: np.ndarray, rate: int) -> None:
        """Queue int16 mono samples to be played; returns at once."""
        self._open(rate)
        data = np.ascontiguousarray(samples, dtype=np.int16)
        if self._resampler is not None:
            data = self._resampler.resample_chunk(data)
        if not len(data):
            return
        with self._lock:
            self._chunks.append(data)
            self._queued += len(data)
            self._idle.clear()

    def gap(self, seconds: float, rate: int) -> None:
        self.write(np.zeros(int(seconds * rate), np.int16), rate)

    @property
    def pending_s(self) -> float:
        """Seconds of audio queued and not yet played."""
        return self._queued / self._device_rate if self._device_rate else 0.0

    def drain(self, timeout: float | None = None) -> bool:
        """Wait until everything written has been played; False on timeout."""
        if not self._idle.wait(timeout):
            return False
        if self._stream is not None:  # the device's own buffer
            time.sleep(min(0.5, float(self._stream.latency)))
        return True

    def stop(self) -> None:
        """Silence at once: drop everything queued (barge-in)."""
        with self._lock:
            self._chunks.clear()
            self._offset = 0
            self._queued = 0
            self._idle.set()
        if self._stream is not None:
            # Abort, not stop: the audio already in the device's buffers is dropped, not played out.
            try:
                self._stream.abort()
                self._stream.start()
            except Exception as e:  # PortAudioError: the device went away
                log.warning("restarting the speaker after a stop: %s", _first_line(e))

    def mark(self) -> None:
        """Start counting :attr:`played` from zero (at the start of a reply)."""
        with self._lock:
            self.played = 0

    def close(self) -> None:
        if self._stream is not None:
            try:
                if not self.drain(timeout=30):
                    log.warning("the speaker stopped playing; %.1f s were not played", self.pending_s)
                if self.underflows:
                    log.info("the speaker ran dry %d times (the machine was busy)", self.underflows)
                self._stream.stop()
                self._stream.close()
            except Exception as e:  # a device that vanished mid-session
                log.warning("closing the speaker: %s", _first_line(e))
            finally:
                self._stream = None


def _first_line(e: BaseException) -> str:
    return (str(e).strip() or type(e).__name__).splitlines()[0]
