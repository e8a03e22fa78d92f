"""Is the person at risk of harming themselves? Checked on every turn, before the model sees it.

:class:`SafetyNet` is the one entry point (live, file and typed sessions,
and ``voice-journal safety``); :class:`SessionGuard` is a session's use of
it, which remembers the turns so far. It says ``crisis`` for suicidal
thoughts said directly or indirectly, a method, plan, intent or means,
preparatory or goodbye behaviour, a recent attempt, or self-harm now; the
session then stops its normal flow and speaks :func:`crisis_message`, fixed,
reviewed words with who can help right now. ``concern`` (hopelessness,
feeling a burden, self-harm or suicidal thoughts in the past) tells the
model to check in gently.

It reads words, not tone, and English only: a turn said in another
language is also read in Whisper's English translation of it (see
:meth:`SessionGuard.check`). It is a net, not a clinician, and the prompts
still ask the model to notice what it misses.
"""

from __future__ import annotations

import dataclasses

from .judge import Judge
from .levels import LEVELS, Assessment
from .messages import CONCERN_NOTE, HELPLINES, crisis_message, helpline, system_locale
from .net import CONTEXT_TURNS, Earlier, SafetyNet
from .rules import assess, normalise

__all__ = ["Assessment", "CONCERN_NOTE", "Earlier", "HELPLINES", "Judge", "LEVELS", "SafetyNet",
           "SessionGuard", "assess", "crisis_message", "helpline", "normalise", "system_locale"]


class SessionGuard:
    """A session's use of the net: context from the turns so far, and a crisis remembered.

    After a crisis message, every later turn is treated at least as a
    concern, so that the model keeps checking in rather than moving on.
    """

    def __init__(self, net: SafetyNet | None = None, locale: str | None = None):
        self.net = net if net is not None else SafetyNet()
        self.locale = locale or system_locale()
        self.crisis_seen = False
        self.history: list[Earlier] = []

    def check(self, text: str, english: str | None = None) -> Assessment:
        """The turn's assessment (waiting for the judge if it is asked); the turn joins the context.

        ``english``: the turn in English, when it was said in another
        language (the net reads English): the more worrying of the two
        readings counts.
        """
        a = self.net.assess(text, tuple(self.history))
        if english and english.strip() != text.strip():
            b = self.net.assess(english, tuple(self.history))
            if LEVELS.index(b.level) > LEVELS.index(a.level):
                a = dataclasses.replace(b, reasons=(*b.reasons, "read in English"))
        self.history = [*self.history[-(CONTEXT_TURNS - 1):], Earlier(text, a)]
        self.crisis_seen = self.crisis_seen or a.crisis
        return a

    def peek(self, text: str) -> Assessment | None:
        """The assessment if it is clear without waiting for the judge, else None; changes nothing.

        For the reply begun while the person pauses: an uncertain turn
        starts the judge then, so that :meth:`check` at the end of the turn
        finds its verdict ready.
        """
        return self.net.assess(text, tuple(self.history), wait=False)

    def message(self, language: str = "en") -> str:
        """The crisis message, in ``language`` where the project has its words."""
        return crisis_message(self.locale, language)

    def model_note(self, a: Assessment) -> str | None:
        """What to tell the model along with this turn, if anything."""
        if a.concern or (self.crisis_seen and not a.crisis):
            return CONCERN_NOTE
        return None
