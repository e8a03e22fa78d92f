"""A wake phrase ("hey jarvis"), so that a hands-free check-in starts without touching anything.

openWakeWord's pretrained models, run here with onnxruntime: a mel
spectrogram model and a speech embedding model shared by every phrase,
then a small model per phrase that reads the last 1.28 s of embeddings.
The audio goes through in 80 ms chunks, as openWakeWord's own streaming
front end does; its package is not used because importing it needs scipy
and scikit-learn (its training code) and, on Linux, tflite-runtime.

>>> wake = WakeWord.load("hey-jarvis")               # doctest: +SKIP
>>> wake.heard(block_of_16k_int16)                   # doctest: +SKIP
False

The models come from the ``openwakeword==0.5.1`` wheel (the last release
that ships them; see the registry). They are CC BY-NC-SA 4.0: free for
personal use, not for sale.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from ..errors import ModelError

log = logging.getLogger(__name__)

CHUNK = 1280  # 80 ms at 16 kHz: one embedding a chunk
_MEL_CONTEXT = 480  # samples before a chunk the mel model needs to continue the last one
_MEL_WINDOW = 76  # mel frames an embedding reads (~0.775 s)
_EMBEDDINGS = 16  # embeddings the phrase model reads (1.28 s)
_WARMUP = 5  # the phrase model's first scores are not trusted (as openWakeWord does)


class WakeWord:
    """Listens for one wake phrase in a stream of 16 kHz int16 audio."""

    def __init__(self, folder: str | Path, phrase_model: str, *, threshold: float = 0.5, name: str = ""):
        import onnxruntime as ort

        folder = Path(folder)
        options = ort.SessionOptions()
        options.intra_op_num_threads, options.inter_op_num_threads = 1, 1  # 80 ms of audio is little work
        try:
            self._mel, self._emb, self._phrase = (
                ort.InferenceSession(str(folder / f), sess_options=options, providers=["CPUExecutionProvider"])
                for f in ("melspectrogram.onnx", "embedding_model.onnx", phrase_model))
        except Exception as e:  # onnxruntime raises its own types for a missing or bad file
            raise ModelError(f"cannot load the wake phrase model from {folder}: {e}") from None
        self.name = name or Path(phrase_model).stem
        self.threshold = threshold
        self._primed = self._prime()
        self.reset()

    @classmethod
    def load(cls, name: str, *, threshold: float = 0.5) -> "WakeWord":
        """A wake phrase of the registry by name ("hey-jarvis"), assembled and checked on first use."""
        from .. import models

        spec = models.spec(name)
        if spec.kind != "wake":
            raise ModelError(f"model {name!r} is a {spec.kind} model, not a wake phrase")
        entry = models.resolve(name, kind="wake")  # the phrase's model, beside the shared ones
        return cls(entry.parent, entry.name, threshold=threshold, name=name)

    def _prime(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """The state after two seconds of a quiet room: where every reset starts (computed once)."""
        self._context = np.zeros(_MEL_CONTEXT, np.int16)
        self._mels = np.ones((_MEL_WINDOW, 32), np.float32)
        self._embeddings = np.zeros((0, 96), np.float32)
        self.scores: list[float] = []
        noise = np.random.default_rng(0).integers(-300, 300, 16000 * 2).astype(np.int16)
        for i in range(0, len(noise), CHUNK):
            self._chunk(noise[i : i + CHUNK])
        return self._context, self._mels, self._embeddings

    def reset(self) -> None:
        """Forget what was heard (after the phrase, so that its tail does not fire again)."""
        self._pending = np.zeros(0, np.int16)
        self._context, self._mels, self._embeddings = self._primed  # replaced, never changed in place
        self.scores = []

    def heard(self, samples: np.ndarray) -> bool:
        """Feed audio; True once the phrase has been said (then the stream starts afresh)."""
        self._pending = np.concatenate([self._pending, np.asarray(samples, np.int16)])
        fired = False
        while len(self._pending) >= CHUNK:
            chunk, self._pending = self._pending[:CHUNK], self._pending[CHUNK:]
            score = self._chunk(chunk)
            if score >= self.threshold and len(self.scores) > _WARMUP:
                fired = True
        if fired:
            log.info("wake phrase %s heard (score %.2f)", self.name, max(self.scores[-8:]))
            self.reset()
        return fired

    def _chunk(self, chunk: np.ndarray) -> float:
        audio = np.concatenate([self._context, chunk]).astype(np.float32)[None, :]
        self._context = chunk[-_MEL_CONTEXT:]
        mel = np.squeeze(self._mel.run(None, {self._mel.get_inputs()[0].name: audio})[0]) / 10.0 + 2.0
        self._mels = np.vstack([self._mels, mel.reshape(-1, 32)])[-_MEL_WINDOW:]
        window = self._mels[None, :, :, None].astype(np.float32)
        emb = self._emb.run(None, {self._emb.get_inputs()[0].name: window})[0].reshape(1, 96)
        self._embeddings = np.vstack([self._embeddings, emb])[-_EMBEDDINGS:]
        if len(self._embeddings) < _EMBEDDINGS:
            return 0.0
        x = self._embeddings[None, :, :].astype(np.float32)
        score = float(np.ravel(self._phrase.run(None, {self._phrase.get_inputs()[0].name: x})[0])[0])
        self.scores.append(score)
        return score
