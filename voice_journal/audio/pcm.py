"""PCM clips, audio files and FLAC bytes.

Everything inside voice-journal speaks one format: 16 kHz mono int16, the
rate webrtcvad and Whisper want. :func:`stream` turns any file (wav, flac,
ogg, mp3 through libsndfile; m4a, opus and the rest through FFmpeg via PyAV)
into blocks of that format with bounded memory, resampling with soxr, so that
a two-hour recording costs no more memory than a two-second one.
"""

from __future__ import annotations

import io
import os
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np
import soundfile as sf
import soxr

from ..errors import AudioError
from ..private_files import open_private

RATE = 16_000
BLOCK_SECONDS = 10.0


@dataclass(frozen=True)
class Clip:
    """Mono int16 samples at a known rate."""

    samples: np.ndarray
    rate: int = RATE

    @property
    def duration(self) -> float:
        return len(self.samples) / self.rate

    def float32(self) -> np.ndarray:
        return self.samples.astype(np.float32) / 32768.0


@dataclass(frozen=True)
class AudioInfo:
    path: Path
    rate: int
    channels: int
    duration: float  # seconds; 0.0 where the container does not say


def _check_path(path: Path) -> None:
    if not path.exists():
        raise AudioError(f"{path}: no such file")
    if path.is_dir():
        raise AudioError(f"{path}: is a directory, not an audio file")
    try:
        size = path.stat().st_size
        with open(path, "rb"):
            pass
    except OSError as e:
        raise AudioError(f"{path}: cannot read ({e.strerror})") from None
    if size == 0:
        raise AudioError(f"{path}: the file is empty")


def _check_wav_complete(path: Path, frames: int) -> None:
    """libsndfile quietly reads a cut-off WAV; we say so instead of losing the end."""
    try:
        with wave.open(str(path), "rb") as w:
            declared = w.getnframes()
            rate = w.getframerate()
    except (wave.Error, EOFError, OSError):
        return  # float or extensible WAV: wave cannot read the header; trust libsndfile
    if declared > frames:
        raise AudioError(
            f"{path}: truncated WAV: its header promises {declared / rate:.2f} s "
            f"but the file holds {frames / rate:.2f} s"
        )


def info(path: str | os.PathLike) -> AudioInfo:
    """Open the file far enough to know its rate, channels and length."""
    path = Path(path)
    _check_path(path)
    try:
        i = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError):
        return _av_info(path)
    if i.format == "WAV":
        _check_wav_complete(path, i.frames)
    if i.frames == 0 and i.format not in ("MPEG",):
        raise AudioError(f"{path}: not a readable audio file (no audio samples in it)")
    return AudioInfo(path, int(i.samplerate), int(i.channels), i.frames / i.samplerate)


def _av_info(path: Path) -> AudioInfo:
    import av

    try:
        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise AudioError(f"{path}: has no audio stream")
            s = c.streams.audio[0]
            duration = float(c.duration / 1_000_000) if c.duration else 0.0
            # FFmpeg will "find" a stream in random bytes; only a decoded frame proves audio.
            if next(iter(c.decode(s)), None) is None:
                raise AudioError(f"{path}: not a readable audio file (no audio samples in it)")
            return AudioInfo(path, int(s.rate or 0), int(s.channels or 0), duration)
    except AudioError:
        raise
    except Exception as e:  # PyAV raises a zoo of FFmpeg errors
        raise AudioError(f"{path}: not a readable audio file ({_first_line(e)})") from None


def _first_line(e: BaseException) -> str:
    # FFmpeg errors carry a clean reason in strerror; their str() repeats the path.
    reason = getattr(e, "strerror", None)
    if isinstance(reason, str) and reason:
        return reason.lower()
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _sf_blocks(path: Path, block: int) -> Iterator[tuple[np.ndarray, int]]:
    with sf.SoundFile(str(path)) as f:
        for b in f.blocks(blocksize=block, dtype="float32", always_2d=True):
            yield b, f.samplerate


def _av_blocks(path: Path, block: int) -> Iterator[tuple[np.ndarray, int]]:
    import av

    try:
        with av.open(str(path)) as c:
            stream = c.streams.audio[0]
            # Ask FFmpeg for interleaved float; the rate change stays with soxr.
            resampler = av.AudioResampler(format="flt", layout="stereo" if (stream.channels or 1) > 1 else "mono")
            for frame in c.decode(stream):
                for out in resampler.resample(frame):
                    arr = out.to_ndarray().reshape(-1, out.layout.nb_channels)
                    yield arr, out.sample_rate
    except Exception as e:
        raise AudioError(f"{path}: cannot decode ({_first_line(e)})") from None


def stream(
    path: str | os.PathLike,
    *,
    rate: int = RATE,
    block_seconds: float = BLOCK_SECONDS,
    on_progress: Callable[[float], None] | None = None,
) -> Iterator[np.ndarray]:
    """Yield the file as int16 mono blocks at ``rate``, in bounded memory.

    ``on_progress`` is called with the seconds of source audio just read.
    Raises :class:`AudioError` for anything that is not readable audio.
    """
    meta = info(path)
    source = _sf_blocks if _soundfile_reads(meta.path) else _av_blocks
    resampler: soxr.ResampleStream | None = None
    total = 0
    try:
        for block, src_rate in source(meta.path, int(block_seconds * max(meta.rate, 8000))):
            if block.size == 0:
                continue
            mono = block.mean(axis=1, dtype=np.float32) if block.shape[1] > 1 else block[:, 0]
            if src_rate != rate:
                if resampler is None:
                    resampler = soxr.ResampleStream(src_rate, rate, 1, dtype="float32", quality="HQ")
                mono = resampler.resample_chunk(mono)
            total += len(block)
            if on_progress:
                on_progress(len(block) / src_rate)
            if len(mono):
                yield _to_int16(mono)
        if resampler is not None:
            tail = resampler.resample_chunk(np.zeros(0, np.float32), last=True)
            if len(tail):
                yield _to_int16(tail)
    except sf.LibsndfileError as e:
        raise AudioError(f"{meta.path}: cannot decode ({_first_line(e)})") from None
    if total == 0:
        raise AudioError(f"{meta.path}: not a readable audio file (no audio samples in it)")


def _soundfile_reads(path: Path) -> bool:
    try:
        sf.info(str(path))
        return True
    except (sf.LibsndfileError, RuntimeError):
        return False


def _to_int16(x: np.ndarray) -> np.ndarray:
    return (np.clip(x, -1.0, 1.0) * 32767.0).astype(np.int16)


def resampled(samples: np.ndarray, rate: int, to: int) -> np.ndarray:
    """int16 mono ``samples`` at ``rate`` as int16 at ``to`` (soxr, high quality)."""
    if rate == to or len(samples) == 0:
        return samples
    return soxr.resample(samples, rate, to, quality="HQ").astype(np.int16, copy=False)


def load(path: str | os.PathLike, *, rate: int = RATE) -> Clip:
    """The whole file as one clip: for short files; use :func:`stream` for long ones."""
    blocks = list(stream(path, rate=rate))
    return Clip(np.concatenate(blocks) if blocks else np.zeros(0, np.int16), rate)


def to_flac(clip: Clip) -> bytes:
    buf = io.BytesIO()
    sf.write(buf, clip.samples, clip.rate, format="FLAC", subtype="PCM_16")
    return buf.getvalue()


def from_flac(data: bytes) -> Clip:
    samples, rate = sf.read(io.BytesIO(data), dtype="int16")
    if samples.ndim > 1:
        samples = samples[:, 0]
    return Clip(samples, int(rate))


def write_wav(path: str | os.PathLike, clip: Clip) -> None:
    """The clip as a 16-bit WAV file readable by its owner only (0600, even over a wider file)."""
    try:
        with open_private(path) as f:
            sf.write(f, clip.samples, clip.rate, format="WAV", subtype="PCM_16")
    except (sf.LibsndfileError, OSError) as e:
        raise AudioError(f"{path}: cannot write ({_first_line(e)})") from None


class WavWriter:
    """A WAV file written block by block (reply audio as it is synthesised), user-only (0600)."""

    def __init__(self, path: str | os.PathLike, rate: int):
        self.path = Path(path)
        self.rate = rate
        try:
            self._raw = open_private(self.path)
        except OSError as e:
            raise AudioError(f"{self.path}: cannot write ({_first_line(e)})") from None
        try:
            self._file = sf.SoundFile(self._raw, "w", rate, 1, "PCM_16", format="WAV")
        except (sf.LibsndfileError, OSError) as e:
            self._raw.close()
            raise AudioError(f"{self.path}: cannot write ({_first_line(e)})") from None

    def write(self, samples: np.ndarray) -> None:
        self._file.write(samples)
        self._file.flush()  # a crash leaves a WAV that plays up to here
        self._raw.flush()

    def close(self) -> None:
        try:
            self._file.close()
        finally:
            self._raw.close()
