"""A session's turns as they are kept and told: :class:`TurnLog`.

Every turn, in a file session or a live one, goes the same way: the
recorder commits it, the conversation learns what the companion said, the
session's listener hears of it (``UserSpoke``, ``SafetyAlert``,
``CompanionReplied``), and it is counted for the session's result. This is
that way, once.
"""

from __future__ import annotations

import collections
from typing import Callable, Sequence

import numpy as np

from ..audio import pcm
from ..companion import safety
from ..companion.conversation import Conversation
from ..speech.stt import Transcript
from .events import CompanionReplied, SafetyAlert, SessionResult, UserSpoke
from .recorder import Recorder
from .timings import HeardTimings, ReplyTimings


class TurnLog:
    """Commits a session's turns through its recorder, reports them, and counts them."""

    def __init__(self, recorder: Recorder, conv: Conversation, on_event: Callable[[object], None]):
        self.recorder = recorder
        self.conv = conv
        self.on_event = on_event
        self.user_turns = 0
        self.replies = 0
        self._timings: list[HeardTimings | ReplyTimings] = []
        self._languages: collections.Counter[str] = collections.Counter()

    @property
    def session_id(self) -> int:
        return self.recorder.session_id

    def heard(self, clip: pcm.Clip, t: Transcript, start: float, end: float, timings: HeardTimings, *,
              engine: str, check: safety.Assessment, partial: bool = False,
              committed: Callable[[], None] = lambda: None) -> int:
        """What the person said: committed, then told (with the safety alert, if the net raised one).

        ``committed`` is called the moment the turn is in the journal, before anything else.
        """
        idx = self.recorder.user(clip, t, start, end, timings=timings, engine=engine, check=check, partial=partial)
        committed()
        self.user_turns += 1
        self._languages[t.language] += 1
        self._timings.append(timings)
        self.on_event(UserSpoke(self.session_id, idx, t.text, start, end, t.language))
        if check.level != "none":
            self.on_event(SafetyAlert(self.session_id, idx, check.level, check.reasons,
                                      self.conv.guard.message() if check.crisis else None))
        return idx

    def said(self, text: str, audio: np.ndarray | None, rate: int | None, *, model: str,
             timings: ReplyTimings = ReplyTimings(), partial: bool = False, recalled: Sequence[dict] = (),
             crisis: bool = False) -> int:
        """What the companion said (``audio`` None or empty: nothing was heard), committed, learnt, told."""
        spoken = audio if audio is not None and len(audio) else None
        idx = self.recorder.companion(text, spoken, rate, timings=timings, model=model, partial=partial,
                                      recalled=recalled, crisis=crisis)
        self.conv.replied(text)
        self.replies += 1
        self._timings.append(timings)
        self.on_event(CompanionReplied(self.session_id, idx, text, timings, partial))
        return idx

    def kept_already(self) -> None:
        """The person's turn the recorder is at was committed already (Ctrl-C right after): count it."""
        self.recorder.skip()
        self.user_turns += 1

    def language(self) -> str | None:
        """The session's language: the one most of the person's turns were in."""
        return self._languages.most_common(1)[0][0] if self._languages else None

    def result(self) -> SessionResult:
        return SessionResult(self.session_id, self.user_turns, self.replies, tuple(self._timings))
