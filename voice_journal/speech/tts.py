"""Text to speech with Piper, a sentence at a time.

:class:`Voice` loads a Piper ONNX voice once (about 4.5 s on this class of
machine: do it before the first reply is needed) and turns a sentence into
int16 audio at the voice's own rate (22,050 Hz for en_US-joe-medium).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from ..audio import pcm
from ..errors import ModelError
from .sentences import SentenceSplitter, speakable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SpokenSentence:
    """One sentence and its audio, as the voice produced it."""

    text: str
    samples: np.ndarray  # int16 mono
    rate: int
    synth_s: float  # wall time spent synthesising it

    def at(self, rate: int) -> "SpokenSentence":
        """The same sentence at ``rate`` (resampled if it is not there already): a session plays one rate."""
        if rate == self.rate:
            return self
        return SpokenSentence(self.text, pcm.resampled(self.samples, self.rate, rate), rate, self.synth_s)


class Voice:
    """A loaded Piper voice.

    Piper samples noise into each sentence's timing and timbre, so the same
    text sounds a little different each time, as a person's would.
    ``varied=False`` turns that off: the same text always gives the same
    samples (flatter), which the tests want from the voice that plays the
    person.
    """

    def __init__(self, model_path: str | Path, *, length_scale: float | None = None, varied: bool = True,
                 threads: int | None = None):
        from piper import SynthesisConfig

        model_path = Path(model_path)
        config = model_path.with_name(model_path.name + ".json")
        if not config.exists():
            raise ModelError(f"Piper voice {model_path} has no config beside it ({config.name})")
        t = time.perf_counter()
        try:
            self._voice = _load_piper(model_path, config, threads)
        except Exception as e:  # onnxruntime raises its own types for a bad file
            raise ModelError(f"cannot load Piper voice {model_path}: {e}") from None
        log.info("loaded voice %s in %.1f s", model_path.name, time.perf_counter() - t)
        self.name = model_path.stem
        self.rate = int(self._voice.config.sample_rate)
        # "en" for en_US-joe-medium: from the voice's config (Piper writes espeak's voice there too)
        self.language = (getattr(self._voice.config, "espeak_voice", "") or "").split("-")[0].split("_")[0]
        self._syn = (SynthesisConfig(length_scale=length_scale) if varied
                     else SynthesisConfig(length_scale=length_scale, noise_scale=0.0, noise_w_scale=0.0))
        self._lock = threading.Lock()  # one ONNX session: one sentence at a time

    def sentence(self, text: str) -> SpokenSentence:
        """Synthesise one sentence (already split and cleaned)."""
        t = time.perf_counter()
        with self._lock:
            chunks = [c.audio_int16_array for c in self._voice.synthesize(text, syn_config=self._syn)]
        samples = np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
        return SpokenSentence(text, samples.astype(np.int16, copy=False), self.rate, time.perf_counter() - t)

    def speak(self, text: str, cancel: threading.Event | None = None) -> Iterator[SpokenSentence]:
        """Split ``text`` into sentences and yield each one's audio as it is ready."""
        return speak_sentences(self.sentence, text, cancel)


def speak_sentences(sentence: Callable[[str], SpokenSentence], text: str,
                    cancel: threading.Event | None = None) -> Iterator[SpokenSentence]:
    """``text`` split into sentences, each voiced by ``sentence`` as it is needed (any voice's ``speak``)."""
    splitter = SentenceSplitter(phrase_chars=10_000)  # no word is waited for: cut at clauses, as written
    for s in splitter.feed(speakable(text) + " ") + splitter.flush():
        if cancel is not None and cancel.is_set():
            return
        yield sentence(s)


def _load_piper(model_path: Path, config: Path, threads: int | None):
    """Piper's own loader, except that the voice's thread count can be set.

    onnxruntime otherwise takes a thread per core for every sentence, and on
    two cores those threads wait for the ones Whisper and the model hold.
    """
    import onnxruntime
    from piper import PiperVoice
    from piper.config import PiperConfig
    from piper.voice import ESPEAK_DATA_DIR

    options = onnxruntime.SessionOptions()
    # onnxruntime's memory arena keeps the most any sentence needed, for good: one 150-character
    # sentence left 300 MB resident for the rest of the session. Without it, a sentence is about
    # a tenth slower to synthesise (133 -> 146 ms for a short one on two cores).
    options.enable_cpu_mem_arena = False
    if threads:
        options.intra_op_num_threads, options.inter_op_num_threads = threads, 1
    session = onnxruntime.InferenceSession(str(model_path), sess_options=options, providers=["CPUExecutionProvider"])
    return PiperVoice(config=PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8"))), session=session,
                      espeak_data_dir=Path(ESPEAK_DATA_DIR), download_dir=Path.cwd())
