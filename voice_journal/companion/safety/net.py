"""The one entry point every path that answers a person goes through: :class:`SafetyNet`.

Layers, cheapest first, recall first::

    rules     (a) the deterministic list: unambiguous wording, no cost
    semantic  (b) MiniLM embeddings + a classifier trained on the corpus
    judge     (c) the local model, only for the uncertain band
    context   (d) the session so far: "I've sorted everything out now"
                  after hopelessness is not the same turn as after a move

A turn whose crisis probability is at or above the ``crisis`` threshold is
a crisis; at or above ``band`` it is uncertain. Without a judge an
uncertain turn that leans to worry over none is a concern: the companion
gently checks in on how they are and whether they feel safe (the band
holds many hard negatives, and a
crisis script for "this commute is killing me" teaches people to stop
talking). With a judge, its "crisis" stands, its "not a crisis" still
leaves a concern, and its silence (a timeout, a failure) counts as a
crisis: once asked and unanswered, the fixed message is the safe answer.
Thresholds were chosen by cross-validation on the training corpus alone
(see :mod:`.train`); the frozen split in ``tests/safety`` only reports.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

from . import rules
from .judge import CRISIS_CATEGORIES, Judge
from .levels import Assessment
from .semantic import Embed, Score, SemanticModel

log = logging.getLogger(__name__)

MODEL_FILE = Path(__file__).with_name("data") / "model.npz"
CONTEXT_TURNS = 4  # how far back a worrying turn colours the next ones
RISK_CONCERNS = {"hopelessness", "burden", "worthless", "trapped"}


@dataclass(frozen=True)
class Earlier:
    """A turn said before in this session, with what the net made of it."""

    text: str
    check: Assessment


class SafetyNet:
    """Rules, then meaning, then (for the uncertain band) the local model; one :meth:`assess` for all.

    >>> net = SafetyNet.load(embedder.embed, judge=Judge(llm))       # doctest: +SKIP
    >>> net.assess("i've been giving my stuff away, won't need it where i'm going")  # doctest: +SKIP
    Assessment(level='crisis', reasons=('giving my stuff away...',), category='preparatory', layer='semantic')

    Thread-safe. Without ``embed`` only the rules run (a floor, logged once).
    """

    def __init__(self, embed: Embed | None = None, model: SemanticModel | None = None, judge: Judge | None = None):
        self.embed = embed
        self.model = model
        self.judge = judge
        self._judging: dict[str, tuple[float, concurrent.futures.Future]] = {}
        self._last: tuple[str, Score] | None = None  # the pause's preview and the turn's check read the same words
        self._lock = threading.Lock()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="safety-judge") if judge else None
        if embed is None or model is None:
            log.info("the crisis net runs its word list only (no embeddings)")

    @classmethod
    def load(cls, embed: Embed | None, judge: Judge | None = None, model: str | Path = MODEL_FILE) -> "SafetyNet":
        return cls(embed, SemanticModel.load(model) if embed is not None else None, judge)

    # -- the entry point ---------------------------------------------------

    def assess(self, text: str, earlier: Sequence[Earlier] = (), *, wait: bool = True) -> Assessment | None:
        """How worried to be about ``text``, said after ``earlier`` in the same session.

        ``wait=False`` (a preview while the person pauses) never waits for
        the judge: it starts it, so that the turn's own check finds its
        verdict ready, and returns None while the turn is uncertain.
        """
        text = text if isinstance(text, str) else ""
        floor = rules.assess(text)
        if floor.crisis or self.model is None or not text.strip():
            return floor
        score = self.scores(text)
        found = self._by_score(text, score, floor, wait=wait)
        if found is None or found.crisis:
            return found
        after = self._in_context(text, score, earlier)
        return after if after is not None else found

    def scores(self, text: str) -> Score | None:
        """The semantic layer's reading alone; the last one is kept, for the same words read again."""
        if self.model is None:
            return None
        last = self._last
        if last is not None and last[0] == text:
            return last[1]
        score = self.model.score(text, self.embed)
        self._last = (text, score)
        return score

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=False, cancel_futures=True)

    # -- the layers ----------------------------------------------------------

    def _by_score(self, text: str, score: Score, floor: Assessment, *, wait: bool) -> Assessment | None:
        t = self.model.thresholds
        category = score.crisis_category
        if score.crisis >= t["crisis"]:
            return Assessment("crisis", (f"sounds like {category.replace('_', ' ')} ({score.crisis:.2f})",),
                              category, "semantic")
        # Without a judge, the band is a concern only where the model leans to worry over none: in
        # cross-validation that kept 37 of the band's 42% of crises noticed, and let go of a third of
        # the hard negatives and plain sentences there ("thank you for listening").
        if score.crisis >= t["band"] and (self.judge is not None or score.worry >= score.levels["none"]):
            return self._judged(text, score, category, wait=wait)
        if floor.concern:
            return floor
        if score.worry >= t["concern"]:
            return Assessment("concern", (f"sounds like {score.category.replace('_', ' ')}",), score.category,
                              "semantic")
        return Assessment("none", layer="semantic")

    def _judged(self, text: str, score: Score, category: str, *, wait: bool) -> Assessment | None:
        if self.judge is None:
            return Assessment("concern", (f"might be {category.replace('_', ' ')} ({score.crisis:.2f})",),
                              category, "semantic")
        unsure = (f"uncertain ({score.crisis:.2f}), treated as a crisis",)
        start, future = self._judge_started(text)
        if not wait and not future.done():
            return None
        try:
            verdict = future.result(timeout=max(0.0, start + self.judge.timeout_s - time.monotonic()))
        except concurrent.futures.TimeoutError:
            verdict = None
        if verdict is None:
            return Assessment("crisis", (*unsure, "the judge gave no verdict in time"), category, "judge")
        if verdict.level == "crisis":
            cat = verdict.category if verdict.category in _CRISIS else category
            return Assessment("crisis", (verdict.reason or f"judged {cat.replace('_', ' ')}",), cat, "judge")
        # Never cleared outright on a small model's word: the companion checks in gently.
        return Assessment("concern", (f"uncertain ({score.crisis:.2f}); judged not a crisis: {verdict.reason}",),
                          score.category if score.category not in _CRISIS else "distress", "judge")

    def _judge_started(self, text: str) -> tuple[float, concurrent.futures.Future]:
        with self._lock:
            if text not in self._judging:
                if len(self._judging) > 32:
                    self._judging.pop(next(iter(self._judging)))
                self._judging[text] = (time.monotonic(), self._pool.submit(self.judge.verdict, text))
            return self._judging[text]

    def _in_context(self, text: str, score: Score, earlier: Sequence[Earlier]) -> Assessment | None:
        """A turn that is only worrying after an earlier one: "i've sorted everything out now" after hopelessness.

        In the uncertain band alone, it is a crisis when one of the last
        few turns was a concern: what is ambiguous from a stranger is not
        ambiguous from someone who just said they see no way forward.
        """
        # Only after the concerns that predict suicide (hopelessness, feeling a burden, worthless, trapped,
        # or a turn the band left uncertain, "might be ideation"), not after a turn that was tired, sad
        # or merely uncertain: otherwise "thank you for listening" at the end of a hard day's entry
        # became a crisis (the demo).
        worrying = [e for e in list(earlier)[-CONTEXT_TURNS:]
                    if e.check.concern and (e.check.category in RISK_CONCERNS or e.check.category in _CRISIS)]
        if not worrying or score.crisis < self.model.thresholds["context"]:
            return None
        before = worrying[-1].check
        return Assessment("crisis", (f"after earlier {(before.category or before.level).replace('_', ' ')}: "
                                     f"sounds like {score.crisis_category.replace('_', ' ')} ({score.crisis:.2f})",),
                          score.crisis_category, "context")


_CRISIS = set(CRISIS_CATEGORIES)
