"""Sentence embeddings for semantic search: all-MiniLM-L6-v2, int8 ONNX.

Run with onnxruntime and the tokenizers library (both already here for
faster-whisper): no PyTorch. Mean pooling over the attention mask, then L2
normalisation, as sentence-transformers does (cosine 0.9994 against it), so
a dot product is a cosine similarity. About 4 ms a sentence on 2 cores.

>>> e = Embedder.load()                                     # doctest: +SKIP
>>> float(e.embed(["a fight with my brother"]) @ e.embed(["an argument with my sibling"]).T)  # doctest: +SKIP
0.47
"""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from .. import models
from ..errors import ModelError

log = logging.getLogger(__name__)

DIMENSIONS = 384
SKETCH_DIMENSIONS = 96
SKETCH_SCALE = 256.0  # real MiniLM projections stay within +-0.4: +-102 of int8's +-127
MAX_TOKENS = 256  # what all-MiniLM-L6-v2 was trained on; longer text is truncated


class Embedder:
    """Text to unit vectors."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        folder = Path(folder)
        try:
            self._tokenizer = Tokenizer.from_file(str(folder / "tokenizer.json"))
            options = ort.SessionOptions()
            options.intra_op_num_threads = threads or min(2, os.cpu_count() or 1)
            options.log_severity_level = 3
            self._session = ort.InferenceSession(str(folder / "model.onnx"), options, providers=["CPUExecutionProvider"])
        except Exception as e:
            raise ModelError(f"cannot load the embedding model from {folder}: {e}") from None
        self._tokenizer.enable_truncation(MAX_TOKENS)
        self._tokenizer.enable_padding()
        self._inputs = {i.name for i in self._session.get_inputs()}
        self.name = folder.name

    @classmethod
    def load(cls, name: str = "minilm-l6") -> "Embedder":
        return cls(models.resolve(name, kind="embed"))

    def embed(self, texts: list[str], batch: int = 32) -> np.ndarray:
        """One float32 unit vector per text, shape (len(texts), 384)."""
        out = np.zeros((len(texts), DIMENSIONS), np.float32)
        for start in range(0, len(texts), batch):
            chunk = [t if t.strip() else " " for t in texts[start : start + batch]]
            enc = self._tokenizer.encode_batch(chunk)
            ids = np.array([e.ids for e in enc], np.int64)
            mask = np.array([e.attention_mask for e in enc], np.int64)
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self._session.run(None, feeds)[0]
            pooled = (hidden * mask[..., None]).sum(1) / np.maximum(mask.sum(1, keepdims=True), 1)
            out[start : start + len(chunk)] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out


def _projection() -> np.ndarray:
    """A fixed random +-1 projection, 384 -> 96, from an integer hash (no RNG whose stream could change)."""
    i = np.arange(DIMENSIONS, dtype=np.uint64)[:, None]
    j = np.arange(SKETCH_DIMENSIONS, dtype=np.uint64)[None, :]
    h = (i * np.uint64(0x9E3779B97F4A7C15) + j * np.uint64(0xBF58476D1CE4E5B9)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    h ^= h >> np.uint64(31)
    h = (h * np.uint64(0x94D049BB133111EB)) & np.uint64(0xFFFFFFFFFFFFFFFF)
    signs = np.where((h >> np.uint64(40)) & np.uint64(1), 1.0, -1.0).astype(np.float32)
    return signs / np.sqrt(SKETCH_DIMENSIONS, dtype=np.float32)


_PROJECTION = _projection()


def project(vectors: np.ndarray) -> np.ndarray:
    """96-dimension float projections of unit vectors: their inner products approximate cosines.

    A query is projected as it is; stored turns keep the int8 :func:`sketch`
    of their projection. Never change the projection: stored sketches were
    made with it.
    """
    return np.asarray(vectors, np.float32) @ _PROJECTION


def sketch(vectors: np.ndarray) -> np.ndarray:
    """The int8 sketch of unit vectors that a turn stores: its projection, quantized.

    Vector search scans these for a few hundred candidates, then ranks those
    by their exact cosine. Int8, not float: DuckDB stores float arrays
    compressed (ALP-RD), and decompressing them was most of a scan's time
    (24 ms against 10 ms at 100k turns); a step of 1/256 against values
    spread +-0.1 changes no ranking that matters.
    """
    return np.clip(np.rint(project(vectors) * SKETCH_SCALE), -127, 127).astype(np.int8)
