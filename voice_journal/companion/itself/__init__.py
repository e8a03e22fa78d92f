"""Questions about the companion itself, answered with the truth in fixed words.

"are you a real person", "is anyone else listening to this", "will you
remember this": whoever asks deserves a plain, true answer, not whatever a
small model makes up. (Asked "are you just like a program that repeats stuff
back?", the default model once answered "Yes, you really understand.") So:

* such a question is recognised by what it means, not by its words: the
  turn is embedded with the MiniLM model the journal uses for search, and a
  small regression, trained on ``data/train.tsv`` (hard negatives included:
  "my boss is basically a robot", "my grandma doesn't remember me"), says
  which kind of question it is, if any (:class:`Detector`);
* the answer is fixed words, true of this journal as it is set up
  (:func:`answer`, from :class:`Facts`): where the model runs, whether
  anything leaves the device, what is kept; the session speaks it first,
  and the model then says back what the person said.

Figures on ``tests/itself/frozen.tsv``, a split written before the training
data and never tuned on, are in the README ("Asked what it is").

>>> facts = Facts(elsewhere=(), memory=True)
>>> answer("private", facts)  # doctest: +ELLIPSIS
'Everything you say stays in your journal on this device...'
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import numpy as np

from ...errors import ModelError
from ...hosts import is_this_machine
from ..safety.semantic import closeness, logit, prepare, softmax

Embed = Callable[[list[str]], np.ndarray]  # texts -> unit vectors, one row each

KINDS = ("none", "nature", "private", "remembers")  # the regression's classes, in its column order
DATA_DIR = Path(__file__).with_name("data")
TRAINING_FILE = DATA_DIR / "train.tsv"
MODEL_FILE = DATA_DIR / "model.npz"
LAST_WORDS = 20  # a long turn is also read for its last words: where such a question usually is
WHOLE_WORDS = 30


@dataclass(frozen=True)
class Facts:
    """What is true of this journal as set up, for the answers to say."""

    elsewhere: tuple[str, ...] = ()  # hosts off this device that the person's words or voice go to
    memory: bool = False  # past turns may be brought back in a session


def facts(*, backend: str, ollama_host: str = "", ollama_proxy: str = "", stt: str = "", tts: str = "",
          memory: bool = False) -> Facts:
    """The :class:`Facts` of a journal whose model runs on ``backend`` ("embedded" or "ollama")."""
    used = [stt, tts]
    if backend == "ollama":
        used += [ollama_host, ollama_proxy]
    hosts = tuple(dict.fromkeys(_host(u) for u in used if u and not is_this_machine(u)))
    return Facts(elsewhere=hosts, memory=memory)


def answer(kind: str, facts: Facts) -> str:
    """The fixed, true answer to a question of ``kind`` (see :data:`KINDS`)."""
    # No "I": the companion's replies never claim a first person (see checker.FIRST_PERSON_TOKENS),
    # and what is said of it is said plainly in the third. Short: the model's reply after it must
    # fit in what is left of the mode's length (35 words in hold-space).
    if kind == "nature":
        return "This is a computer program, not a person: it can't feel what you feel, but it hears every word."
    if kind == "private":
        if not facts.elsewhere:
            return "Everything you say stays in your journal on this device, which only you can open. Nothing is sent anywhere."
        return (f"Your journal stays on this device. To answer you, your words also go to {_listed(facts.elsewhere)},"
                " and nowhere else.")
    if kind == "remembers":
        kept = "What you say and its recording are saved in your journal on this device, to replay or delete."
        return kept + (" Later sessions may bring it back." if facts.memory else "")
    raise ValueError(f"no answer for {kind!r}")


@dataclass(frozen=True)
class Asked:
    """A question about the companion: its kind, the detector's score for it, and the words it was read in."""

    kind: str
    score: float
    window: str


class Detector:
    """Which question about the companion a turn asks, if any (:meth:`asks`).

    Two readings of the turn's embedding, as in the crisis net: a
    regression over the four kinds, and how much closer the turn comes to
    its nearest training questions than to its nearest other phrases (a
    wording unlike any the regression's boundary was drawn from can still
    sit right beside one that says the same). Each is standardised on
    phrases the model had not seen, then added; the threshold is on that sum.
    """

    def __init__(self, embed: Embed, weights: np.ndarray, bias: np.ndarray, asking: np.ndarray,
                 other: np.ndarray, mix: np.ndarray, threshold: float):
        self.embed, self.weights, self.bias = embed, weights, bias
        self.asking, self.other = asking, other  # the training phrases' vectors: questions, and the rest
        self.mix, self.threshold = mix, threshold  # (mean, sd) of each reading, then the sum's threshold

    @classmethod
    def load(cls, embed: Embed, model: str | Path = MODEL_FILE) -> "Detector":
        with np.load(model) as m:
            if str(m["digest"]) != digest():
                raise ModelError(f"{model} was fitted on other training data: "
                                 "python -m voice_journal.companion.itself.train")
            return cls(embed, m["weights"], m["bias"], m["asking"], m["other"], m["mix"], float(m["threshold"]))

    def scores(self, vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each vector's class probabilities (:data:`KINDS` order) and its score against the threshold."""
        p = softmax(vectors @ self.weights + self.bias)
        near = closeness(vectors @ self.asking.T, vectors @ self.other.T, K_NEAREST)
        return p, combined(p, near, self.mix)

    def asks(self, text: str) -> Asked | None:
        """The question about the companion ``text`` asks, or None.

        Its kind is read where the question is clearest (the best window);
        its ``window`` is the shortest end of the turn that still asks it,
        so that what comes before is the rest of what they said.
        """
        parts = windows(text)
        if not parts:
            return None
        p, score = self.scores(self.embed([prepare(t) for t in parts]))
        best = int(np.argmax(score))
        if score[best] < self.threshold:
            return None
        shortest = min((i for i in range(len(parts)) if score[i] >= self.threshold), key=lambda i: len(parts[i]))
        return Asked(KINDS[1 + int(np.argmax(p[best, 1:]))], float(score[best]), parts[shortest])


K_NEAREST = 5  # training phrases on each side for the crisis net's closeness (safety.semantic)


def asking(p: np.ndarray) -> np.ndarray:
    """The regression's belief that each row asks some question about the companion, as a logit."""
    return logit(p[:, 1:].sum(axis=1))


def combined(p: np.ndarray, near: np.ndarray, mix: np.ndarray) -> np.ndarray:
    """The regression's belief and the closeness, each standardised by ``mix`` (means, spreads), added."""
    return (asking(p) - mix[0]) / mix[1] + (near - mix[2]) / mix[3]


@dataclass(frozen=True)
class Answer:
    """The fixed, true answer to a turn's question about the companion, and what else the turn said."""

    words: str
    rest: str  # the turn without the question ("" where the question was all of it)


class Answers:
    """The companion's true answers to questions about itself: which one a turn asks for, if any."""

    def __init__(self, detector: Detector, facts: Facts):
        self.detector, self.facts = detector, facts
        self.to = functools.lru_cache(maxsize=1)(self._to)  # a turn is read in each pause, then once more

    def _to(self, text: str) -> Answer | None:
        """The answer to the question about the companion ``text`` asks; None if it asks none."""
        asked = self.detector.asks(text)
        if asked is None:
            return None
        said = " ".join(text.split())
        rest = said[: -len(asked.window)] if asked.window != said and said.endswith(asked.window) else ""
        return Answer(answer(asked.kind, self.facts), rest.rstrip(" ,;:-–—"))


def windows(text: str) -> list[str]:
    """Where in a turn such a question is read: all of it, its last sentence, and for a long one its last words.

    Each window is an end of the turn, its words joined by single spaces:
    the turn's last 120 words; its last sentence, where it has more than one;
    and past 30 words, its last 20 and its last 10 words too, for a turn that
    Whisper wrote without a full stop.
    """
    words = text.split()
    if not words:
        return []
    parts = [" ".join(words[-WHOLE_WORDS * 4:])]
    sentences = re.split(r"(?<=[.!?])\s+", " ".join(words))
    if len(sentences) > 1 and len(sentences[-1].split()) >= 3:
        parts.append(sentences[-1])
    if len(words) > WHOLE_WORDS:
        parts += [" ".join(words[-LAST_WORDS:]), " ".join(words[-LAST_WORDS // 2:])]
    return list(dict.fromkeys(parts))


def digest() -> str:
    return hashlib.sha256(TRAINING_FILE.read_bytes()).hexdigest()[:16]


def read(path: str | Path) -> list[tuple[str, str, str]]:
    """(id, kind, text) rows of a labelled file (``data/train.tsv``, ``tests/itself/frozen.tsv``)."""
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines()[1:]:
        if line.strip():
            ident, kind, text = line.split("\t")
            if kind not in KINDS:
                raise ModelError(f"{path}: {ident} has no kind {kind!r}")
            rows.append((ident, kind, text))
    return rows


def _host(url: str) -> str:
    """The host a URL names, as a person would read it (the URL itself where it cannot be read)."""
    try:
        return urlsplit(url if "://" in url else f"//{url}").hostname or url
    except ValueError:
        return url


def _listed(hosts: tuple[str, ...]) -> str:
    named = [f"the server at {h}" for h in hosts]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]
