"""Where reply audio goes: a WAV file, or the speaker through sounddevice.

sounddevice is imported only when a speaker is opened, so that runs that
only read and write files need no PortAudio.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import DeviceError
from .pcm import WavWriter


class AudioSink(Protocol):
    def write(self, samples: np.ndarray, rate: int) -> None:
        """Take int16 mono samples; may block while they play."""

    def gap(self, seconds: float, rate: int) -> None:
        """Silence between replies."""

    def close(self) -> None: ...


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


def import_sounddevice():
    """sounddevice, or a DeviceError that says how to get PortAudio."""
    try:
        import sounddevice
    except OSError as e:  # the module raises OSError when libportaudio is missing
        raise DeviceError(
            f"PortAudio is not available ({e}); install it with `sudo apt-get install libportaudio2`, "
            "or use --input FILE and --reply-audio FILE instead of a microphone and speaker"
        ) from None
    return sounddevice


class Speaker:
    """Plays replies on an output device as they are synthesised."""

    def __init__(self, device: str | int | None = None, *, hint: str = "use --reply-audio FILE to keep the replies in a WAV file"):
        self._sd = import_sounddevice()
        self.device = device
        self._stream = None
        self._rate = 0
        try:  # fail before any model is loaded, not at the first reply
            self._sd.query_devices(device, "output")
        except Exception as e:  # PortAudioError or ValueError: no such device
            raise DeviceError(
                f"no speaker {device if device is not None else '(default)'} ({e}); {hint}"
            ) from None

    def _open(self, rate: int) -> None:
        if self._stream is not None and self._rate == rate:
            return
        self.close()
        try:
            self._stream = self._sd.OutputStream(samplerate=rate, channels=1, dtype="int16", device=self.device)
            self._stream.start()
        except Exception as e:  # PortAudioError, ValueError for a bad device
            raise DeviceError(f"cannot open the speaker {self.device or '(default)'}: {e}") from None
        self._rate = rate

    def write(self, samples: np.ndarray, rate: int) -> None:
        self._open(rate)
        self._stream.write(np.ascontiguousarray(samples, dtype=np.int16).reshape(-1, 1))

    def gap(self, seconds: float, rate: int) -> None:
        self.write(np.zeros(int(seconds * rate), np.int16), rate)

    def close(self) -> None:
        if self._stream is not None:
            try:
                self._stream.stop()
                self._stream.close()
            finally:
                self._stream = None
