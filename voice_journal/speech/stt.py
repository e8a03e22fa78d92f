"""Speech to text with faster-whisper, guarded against invented words.

Whisper, given silence or noise, writes plausible text ("Thanks for
watching.") or loops ("0.0.0.0..."). The gates: a clip with no energy is
never decoded; decoding is greedy with no sampling fallback (deterministic);
``condition_on_previous_text=False`` stops one invention from seeding the
next; and a segment that Whisper itself thinks is no speech, that it decoded
with very low confidence, or that repeats itself (compression ratio > 2.4)
is dropped.

Whisper's encoder is made for 30 s windows, and faster-whisper pads every
clip to one: for the few seconds of a turn's piece, most of the encoder's
work was padding (whisper base on 2 cores: ~1 s a piece, of which ~0.8 s
encoding). A clip is encoded in a window fitted to it instead, never
shorter than ``SttConfig.min_window_s``: on our LibriVox and Piper clips,
10 s windows gave the same words as 30 s for base and tiny.en in a quarter
of the time (``benchmarks/stt.py``). Where the fitted window's result
gives cause for doubt (a segment dropped by the gates above, or no words),
the clip is decoded again in the 30 s window.
"""

from __future__ import annotations

import functools
import logging
import math
import re
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.pcm import RATE, Clip
from ..errors import ModelError

log = logging.getLogger(__name__)

# What Whisper tends to write over silence, from its subtitle-heavy training.
_HALLUCINATIONS = re.compile(
    r"^\s*(thanks? (you )?(so much )?for watching|thank you\.?|subtitles? by|please subscribe|you)\W*$",
    re.IGNORECASE,
)
_SILENCE_DBFS = -50.0
MIN_WINDOW_S = 10  # shorter windows began to cost words on tiny.en


@dataclass(frozen=True)
class Segment:
    start: float  # seconds within the clip
    end: float
    text: str
    confidence: float  # exp(average log-probability of its tokens), 0..1


@dataclass(frozen=True)
class Transcript:
    text: str
    language: str
    language_probability: float
    segments: tuple[Segment, ...]
    duration: float  # seconds of audio heard
    stt_s: float  # wall time spent

    @property
    def confidence(self) -> float:
        """Duration-weighted confidence of the kept segments (0 when none)."""
        total = sum(s.end - s.start for s in self.segments)
        if total <= 0:
            return 0.0
        return sum(s.confidence * (s.end - s.start) for s in self.segments) / total

    @classmethod
    def joined(cls, parts: list[tuple[float, "Transcript"]]) -> "Transcript":
        """One transcript from consecutive pieces of a clip, each with its offset in seconds."""
        spoken = [t for _, t in parts if t.text]
        best = max(spoken or [t for _, t in parts] or [None], key=lambda t: t.language_probability if t else 0)
        return cls(
            " ".join(t.text for t in spoken),
            best.language if best else "",
            best.language_probability if best else 0.0,
            tuple(Segment(round(s.start + o, 3), round(s.end + o, 3), s.text, s.confidence)
                  for o, t in parts for s in t.segments),
            sum(t.duration for _, t in parts),
            sum(t.stt_s for _, t in parts),
        )


@dataclass(frozen=True)
class SttConfig:
    beam_size: int = 1  # beam 5 cost twice as much here for no better transcripts
    language: str | None = None  # None: detect per clip
    no_speech_threshold: float = 0.6
    log_prob_threshold: float = -1.0
    drop_no_speech_above: float = 0.8  # drop a segment this sure to be non-speech, whatever its logprob
    threads: int = 2
    min_window_s: int = MIN_WINDOW_S  # the encoder's shortest window (Whisper's own: 30)


def window_s(duration: float, shortest: int = MIN_WINDOW_S) -> int:
    """The encoder window for a clip: the clip and a second of padding, within [shortest, 30] s."""
    return min(30, max(shortest, math.ceil(duration + 1.0)))


class Transcriber:
    """A loaded Whisper model (CTranslate2 int8 on the CPU)."""

    def __init__(self, model_path: str | Path, config: SttConfig | None = None):
        self.config = config or SttConfig()
        model_path = Path(model_path)
        t = time.perf_counter()
        try:
            self._model = _fitted_whisper()(
                str(model_path), device="cpu", compute_type="int8", cpu_threads=self.config.threads,
                local_files_only=True,
            )
        except Exception as e:  # ctranslate2 raises RuntimeError for anything
            raise ModelError(f"cannot load Whisper model from {model_path}: {e}") from None
        self.name = model_path.name
        self.english_only = not self._model.model.is_multilingual
        log.info("loaded Whisper %s in %.1f s", self.name, time.perf_counter() - t)

    def transcribe(self, clip: Clip, language: str | None = None, *, prompt: str | None = None) -> Transcript:
        """The words in ``clip`` (16 kHz mono), or an empty transcript for no speech.

        ``language`` overrides the configured one for this clip. Detecting it
        costs a second pass of the encoder (about 1 s for base on 2 cores),
        so a session detects it once and passes it on (:class:`LanguagePin`).
        ``prompt``: the words just before this clip, when it continues a turn
        transcribed in pieces (Whisper's ``initial_prompt``).
        """
        if clip.rate != RATE:
            raise ValueError("Transcriber takes 16 kHz clips; resample with audio.pcm first")
        t = time.perf_counter()
        audio = clip.float32()
        if len(audio) == 0 or _dbfs(audio) < _SILENCE_DBFS:
            return Transcript("", self.config.language or "", 0.0, (), clip.duration, 0.0)
        window = window_s(clip.duration, self.config.min_window_s)
        kept, info, doubtful = self._decode(audio, language, prompt, window)
        if doubtful and window < 30:
            # Whisper's own window when the fitted one gave something to doubt (a loop, a
            # segment it thinks is no speech, nothing at all): rare, and on short unclear
            # clips the fitted window is the less steady of the two.
            log.debug("decoding again in a 30 s window")
            kept, info, _ = self._decode(audio, language, prompt, 30)
        return Transcript(
            " ".join(s.text for s in kept).strip(),
            info.language,
            float(info.language_probability),
            tuple(kept),
            clip.duration,
            time.perf_counter() - t,
        )

    def translate(self, clip: Clip, language: str | None = None) -> str:
        """What ``clip`` says, in English (Whisper's translate task); "" from an English-only model.

        For the crisis net, which reads English: a turn in another language
        is also checked in Whisper's English for it. A second pass over the
        clip: about as long as transcribing it.
        """
        if self.english_only or clip.rate != RATE or not len(clip.samples):
            return ""
        segments, _ = self._model.transcribe(
            clip.float32(), task="translate", language=language or None, beam_size=self.config.beam_size,
            condition_on_previous_text=False, temperature=0.0, vad_filter=False,
            chunk_length=window_s(clip.duration, self.config.min_window_s))
        return " ".join(s.text.strip() for s in segments if s.text.strip()).strip()

    def _decode(self, audio: np.ndarray, language: str | None, prompt: str | None,
                window: int) -> tuple[list[Segment], object, bool]:
        """(the segments kept, faster-whisper's info, whether any was dropped or none decoded)."""
        c = self.config
        segments, info = self._model.transcribe(
            audio,
            language="en" if self.english_only else (language or c.language),
            beam_size=c.beam_size,
            condition_on_previous_text=False,
            # No sampling fallback: on noise it is where the invented sentences come from,
            # and a journal's transcript should not change from one run to the next.
            temperature=0.0,
            no_speech_threshold=c.no_speech_threshold,
            log_prob_threshold=c.log_prob_threshold,
            vad_filter=False,  # the segmenter already cut this clip at speech
            initial_prompt=prompt,
            # The window for this call (faster-whisper keeps it on the model's feature
            # extractor, so every call sets its own).
            chunk_length=window,
        )
        kept = []
        decoded = 0
        for s in segments:  # a generator: decoding happens here
            text = s.text.strip()
            if not text:
                continue
            decoded += 1
            if s.no_speech_prob > c.drop_no_speech_above:
                continue
            if s.compression_ratio > 2.4:  # a decoding loop ("0.0.0.0..."), Whisper's own failure test
                log.debug("dropped a repetition loop: %r", text[:60])
                continue
            if s.avg_logprob < c.log_prob_threshold and s.no_speech_prob > 0.3:
                log.debug("dropped a low-confidence segment: %r", text)
                continue
            if _HALLUCINATIONS.match(text) and (s.no_speech_prob > 0.3 or s.avg_logprob < -0.7):
                log.debug("dropped a likely hallucination: %r", text)
                continue
            kept.append(Segment(round(s.start, 3), round(s.end, 3), text, math.exp(s.avg_logprob)))
        return kept, info, len(kept) < decoded or not kept


@functools.cache
def _fitted_whisper():
    """faster-whisper's WhisperModel, encoding the window ``chunk_length`` asks for rather than 30 s."""
    from faster_whisper import WhisperModel

    class FittedWhisper(WhisperModel):
        def encode(self, features):
            # faster-whisper pads each window's features to 3,000 frames whatever the
            # chunk_length: keep the window's own.
            return super().encode(np.ascontiguousarray(features[..., : self.feature_extractor.nb_max_frames]))

    return FittedWhisper


class LanguagePin:
    """A session's language: detected on its first clear turn, then fixed.

    People journal in one language per session; detecting it on every turn
    doubled Whisper's time here. A configured language is used as is.
    """

    def __init__(self, configured: str | None, *, sure: float = 0.8, min_words: int = 3):
        self.language = configured or None
        self._sure = sure
        self._min_words = min_words

    def learn(self, t: Transcript) -> None:
        if self.language is None and t.language and t.language_probability >= self._sure \
                and len(t.text.split()) >= self._min_words:
            self.language = t.language


def _dbfs(audio: np.ndarray) -> float:
    rms = float(np.sqrt(np.mean(audio.astype(np.float64) ** 2)))
    return 20 * math.log10(rms) if rms > 0 else -math.inf
