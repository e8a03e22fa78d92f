"""Layer (b) of the crisis net: what a turn means, not which words it uses.

Each turn is embedded with the MiniLM sentence model the journal already
uses for search and read two ways, trained on the labelled corpus in
``data/`` (:mod:`.corpus`):

* a multinomial logistic regression gives a probability for every
  category of the corpus: ``ideation``, ``preparatory``... on the crisis
  side, ``hopelessness``, ``past_self_harm``... for concern, and the hard
  negatives (``idiom``, ``grief_other``, ``news_media``...) for none. A
  level's probability is the sum of its categories'. Learning the hard
  negatives as categories of their own is what lets "this commute is
  killing me" sit far from "I keep thinking about killing myself".
* the nearest exemplars: how close the turn comes to its ten nearest
  crisis phrases, less how close it comes to its ten nearest calm ones. A
  regression draws one boundary through the space; a wording unlike any
  the boundary was drawn from can still sit right beside a few phrases
  that say the same thing.

The turn's crisis score mixes the two (each standardised on phrases the
model had not seen, see :mod:`.train`); the regression alone says how far
it leans to concern.

A long turn is read in overlapping windows as well as whole, and the most
worrying window counts: a disclosure in the middle of ten minutes about
the day must not be averaged away.

The fitted weights and exemplars ship in ``data/model.npz`` with the digest
of the training files they were fitted on; ``python -m
voice_journal.companion.safety.train`` fits them again.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from .levels import LEVELS
from .rules import normalise

Embed = Callable[[list[str]], np.ndarray]  # texts -> unit vectors, one row each

WINDOW_WORDS = 20  # about a spoken sentence
WINDOW_STRIDE = 10
WHOLE_WORDS = 40  # a turn longer than this is also read in windows
MAX_WINDOWS = 64  # 20,000 characters of one turn: read its start and end and evenly between

_FILLER = re.compile(r"\b(?:u+m+|u+h+|e+r+m*|h+m+|m+h*m+|ah+)\b[,.]?\s*")
_REPEAT = re.compile(r"\b(\w+)(?:\s+\1\b)+")


def prepare(text: str) -> str:
    """What the model reads: the rules' normal form, without fillers and stutters ("i i um just")."""
    text = _FILLER.sub("", normalise(text))
    return re.sub(r"\s+", " ", _REPEAT.sub(r"\1", text)).strip()


def windows(text: str) -> list[str]:
    """The whole turn, and for a long one its sentences, and overlapping windows of long or unpunctuated stretches."""
    words = text.split()
    if len(words) <= WHOLE_WORDS:
        return [text]
    parts: list[str] = []
    for sentence in re.split(r"(?<=[.!?;])\s+", text):
        w = sentence.split()
        starts = range(0, max(1, len(w) - WINDOW_WORDS + WINDOW_STRIDE), WINDOW_STRIDE)
        parts += [" ".join(w[s:s + WINDOW_WORDS]) for s in starts if w[s:s + WINDOW_WORDS]]
    parts = list(dict.fromkeys(parts))
    if len(parts) > MAX_WINDOWS:
        parts = [parts[round(i * (len(parts) - 1) / (MAX_WINDOWS - 1))] for i in range(MAX_WINDOWS)]
    return [" ".join(words[:WHOLE_WORDS * 4])] + parts


@dataclass(frozen=True)
class Score:
    """The semantic layer's reading of one turn (of its most worrying window)."""

    levels: dict[str, float]  # level -> probability, by the regression
    category: str  # the most likely category of the most worrying window
    crisis_category: str  # its most likely crisis category
    window: str  # the words it came from
    risk: float | None = None  # the crisis score, regression and exemplars together (0..1)

    @property
    def crisis(self) -> float:
        """The crisis score the thresholds are set on."""
        return self.levels["crisis"] if self.risk is None else self.risk

    @property
    def worry(self) -> float:
        """Concern or crisis: how far the model leans away from none."""
        return self.levels["concern"] + self.levels["crisis"]


def softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def fit(x: np.ndarray, y: np.ndarray, n_classes: int, *, l2: float = 1e-3, steps: int = 600,
        sample_weight: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Multinomial logistic regression by full-batch Adam: weights (dims x classes) and biases.

    Deterministic (zeros to start, no sampling), a second on a thousand
    phrases: small enough not to need a library.
    """
    n, d = x.shape
    w = np.zeros((d, n_classes))
    b = np.zeros(n_classes)
    sw = np.ones(n) if sample_weight is None else sample_weight
    sw = sw / sw.sum()
    onehot = np.eye(n_classes)[y]
    m = [np.zeros_like(w), np.zeros_like(b)]
    v = [np.zeros_like(w), np.zeros_like(b)]
    lr, beta1, beta2 = 0.05, 0.9, 0.999
    for t in range(1, steps + 1):
        p = softmax(x @ w + b)
        g = (p - onehot) * sw[:, None]
        grads = [x.T @ g + l2 * w, g.sum(0)]
        for i, (param, grad) in enumerate(zip((w, b), grads)):
            m[i] = beta1 * m[i] + (1 - beta1) * grad
            v[i] = beta2 * v[i] + (1 - beta2) * grad * grad
            param -= lr * (m[i] / (1 - beta1 ** t)) / (np.sqrt(v[i] / (1 - beta2 ** t)) + 1e-8)
    return w.astype(np.float32), b.astype(np.float32)


def logit(p: np.ndarray) -> np.ndarray:
    p = np.clip(np.asarray(p, np.float64), 1e-6, 1 - 1e-6)
    return np.log(p) - np.log1p(-p)


def nearest(similarity: np.ndarray, k: int) -> np.ndarray:
    """The mean of each row's ``k`` highest similarities (all of them where a row has fewer)."""
    k = min(k, similarity.shape[1])
    if k == 0:
        return np.zeros(similarity.shape[0])
    return np.partition(similarity, similarity.shape[1] - k, axis=1)[:, -k:].mean(axis=1)


def closeness(to_crisis: np.ndarray, to_calm: np.ndarray, k: int) -> np.ndarray:
    """How much nearer the ``k`` nearest crisis exemplars are than the ``k`` nearest calm ones.

    ``to_crisis``, ``to_calm``: each row's similarities to the crisis and to the calm exemplars.
    """
    return nearest(to_crisis, k) - nearest(to_calm, k)


@dataclass(frozen=True)
class Mix:
    """How the regression and the exemplars make one crisis score: each standardised, then weighed."""

    k: int  # nearest exemplars on each side
    weight: float  # the regression's share; the exemplars have the rest
    logit_mean: float
    logit_sd: float
    near_mean: float
    near_sd: float

    def risk(self, crisis_prob: np.ndarray, near: np.ndarray) -> np.ndarray:
        z = (self.weight * (logit(crisis_prob) - self.logit_mean) / self.logit_sd
             + (1 - self.weight) * (np.asarray(near, np.float64) - self.near_mean) / self.near_sd)
        return 1.0 / (1.0 + np.exp(-z))


class SemanticModel:
    """Fitted weights and exemplars: category probabilities and a crisis score for embedded text."""

    def __init__(self, weights: np.ndarray, bias: np.ndarray, categories: list[str], levels: list[str],
                 thresholds: dict[str, float], digest: str = "", exemplars: np.ndarray | None = None,
                 exemplar_crisis: np.ndarray | None = None, mix: Mix | None = None):
        self.weights, self.bias = weights, bias
        self.categories, self.levels = list(categories), list(levels)  # levels[i]: the level of categories[i]
        self.thresholds = dict(thresholds)
        self.digest = digest
        # Unit vectors of the training phrases that are a crisis or none (float16 halves the file;
        # cosines move by under 1e-3), and which of them are a crisis.
        self.exemplars = None if exemplars is None else np.asarray(exemplars, np.float32)
        self.exemplar_crisis = None if exemplar_crisis is None else np.asarray(exemplar_crisis, bool)
        if self.exemplars is not None:  # split once here, not on every turn
            self._crisis_ex = self.exemplars[self.exemplar_crisis]
            self._calm_ex = self.exemplars[~self.exemplar_crisis]
        self.mix = mix
        self._level_of = np.array([[lv == level for lv in self.levels] for level in LEVELS], np.float32).T

    @classmethod
    def load(cls, path: str | Path) -> "SemanticModel":
        with np.load(path, allow_pickle=False) as z:
            meta = json.loads(str(z["meta"]))
            mix = Mix(**meta["mix"]) if meta.get("mix") else None
            return cls(z["weights"], z["bias"], meta["categories"], meta["levels"], meta["thresholds"],
                       meta.get("digest", ""), z["exemplars"] if "exemplars" in z else None,
                       z["exemplar_crisis"] if "exemplar_crisis" in z else None, mix)

    def save(self, path: str | Path) -> None:
        meta = {"categories": self.categories, "levels": self.levels, "thresholds": self.thresholds,
                "digest": self.digest, "mix": None if self.mix is None else self.mix.__dict__}
        arrays = {"weights": self.weights, "bias": self.bias, "meta": np.array(json.dumps(meta))}
        if self.exemplars is not None:
            arrays |= {"exemplars": self.exemplars.astype(np.float16), "exemplar_crisis": self.exemplar_crisis}
        np.savez_compressed(path, **arrays)

    def category_probs(self, vectors: np.ndarray) -> np.ndarray:
        return softmax(np.asarray(vectors, np.float32) @ self.weights + self.bias)

    def level_probs(self, vectors: np.ndarray) -> np.ndarray:
        """(n, 3): the probability of none, concern and crisis for each vector."""
        return self.category_probs(vectors) @ self._level_of

    def risk(self, vectors: np.ndarray, crisis_prob: np.ndarray) -> np.ndarray:
        """The crisis score of each vector: the regression's and the exemplars' readings mixed."""
        if self.mix is None or self.exemplars is None:
            return np.asarray(crisis_prob, np.float64)
        v = np.asarray(vectors, np.float32)
        return self.mix.risk(crisis_prob, closeness(v @ self._crisis_ex.T, v @ self._calm_ex.T, self.mix.k))

    def score(self, text: str, embed: Embed) -> Score:
        """Read a turn (whole, and in windows when long); the most worrying window decides."""
        parts = windows(prepare(text)) or [""]
        vectors = embed(parts)
        cats = self.category_probs(vectors)
        levels = cats @ self._level_of
        risk = self.risk(vectors, levels[:, 2])
        worry = risk + 0.5 * levels[:, 1]  # crisis first, then concern
        i = int(np.argmax(worry))
        crisis_only = np.where(self._level_of[:, 2] > 0, cats[i], -1.0)
        return Score(dict(zip(LEVELS, map(float, levels[i]))), self.categories[int(np.argmax(cats[i]))],
                     self.categories[int(np.argmax(crisis_only))], parts[i], float(risk[i]))
