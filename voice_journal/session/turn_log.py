"""A session's turns as they are kept and told: :class:`TurnLog`.

Every turn, in a file session or a live one, goes the same way: the
recorder commits it, the conversation learns what the companion said, the
session's listener hears of it (``UserSpoke``, ``SafetyAlert``,
``CompanionReplied``), and it is counted for the session's result. This is
that way, once.
"""

from __future__ import annotations

import collections
import logging
from typing import Callable, Sequence

import numpy as np

from ..audio import pcm
from ..companion import safety
from ..companion.conversation import Conversation
from ..errors import VoiceJournalError
from ..speech.stt import Transcript
from ..store import search
from ..store.archive import Archive
from .events import CompanionReplied, SafetyAlert, SessionResult, UserSpoke
from .recorder import Embeds, Recorder
from .speaker import FALLBACK_REPLY, SpokenReply
from .timings import HeardTimings, ReplyTimings

log = logging.getLogger(__name__)


class TurnLog:
    """Commits a session's turns through its recorder, reports them, and counts them."""

    def __init__(self, recorder: Recorder, conv: Conversation, on_event: Callable[[object], None],
                 voice: Callable[[], str | None] = lambda: None):
        self.recorder = recorder
        self.conv = conv
        self.on_event = on_event
        self.voice = voice  # the name of the voice speaking now (it changes if a speech service goes away)
        self.user_turns = 0
        self.replies = 0
        self._timings: list[HeardTimings | ReplyTimings] = []
        self._languages: collections.Counter[str] = collections.Counter()

    @classmethod
    def begin(cls, archive: Archive, conv: Conversation, on_event: Callable[[object], None], *, source: str,
              models: dict, embedder: Embeds | None, voice: Callable[[], str | None] = lambda: None) -> "TurnLog":
        """Begin the session in the journal, in the conversation's mode."""
        session_id = archive.begin_session(mode=conv.mode.name, source=source, models=models)
        return cls(Recorder(archive, session_id, embedder), conv, on_event, voice)

    def end(self, status: str) -> None:
        """End the session in the journal (its status, its language) and bring search up to date."""
        archive = self.recorder.archive
        archive.end_session(self.session_id, status=status, language=self.language())
        refresh_search(archive)

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
                                      self.conv.crisis_message() if check.crisis else None))
        return idx

    def said(self, text: str, audio: np.ndarray | None, rate: int | None, *, model: str,
             timings: ReplyTimings = ReplyTimings(), partial: bool = False, recalled: Sequence[dict] = (),
             crisis: bool = False) -> int:
        """What the companion said (``audio`` None or empty: nothing was heard), committed, learnt, told."""
        spoken = audio if audio is not None and len(audio) else None
        idx = self.recorder.companion(text, spoken, rate, timings=timings, model=model, partial=partial,
                                      recalled=recalled, crisis=crisis,
                                      voice=self.voice() if spoken is not None else None)
        self.conv.replied(text)
        self.replies += 1
        self._timings.append(timings)
        self.on_event(CompanionReplied(self.session_id, idx, text, timings, partial))
        return idx

    def reply(self, reply: SpokenReply, *, model: str, heard: float | None = None, stop_s: float | None = None,
              timings: ReplyTimings | None = None, recalled: Sequence[dict] = ()) -> bool | None:
        """A model's reply, as it was heard: all of it, or only what was played before a cut.

        ``heard``: the samples played before a barge-in or Ctrl-C; ``stop_s``:
        from their voice to silence. Returns whether it was cut short, or
        None where nothing at all was said (no turn is kept, but the
        conversation still learns of an empty reply, to keep its pairs).
        """
        text, audio = reply.text or FALLBACK_REPLY, reply.audio
        timings = timings or reply.timings
        partial = reply.error is not None
        if heard is not None:
            text, audio = reply.heard(int(heard))
            timings, partial = timings.but(heard_s=len(audio) / reply.rate), True
        if stop_s is not None:
            timings = timings.but(barge_in_stop_s=stop_s)
        if not text and not len(audio):
            self.conv.replied("")
            return None
        self.said(text, audio, reply.rate, timings=timings, model=model, partial=partial, recalled=recalled)
        return partial

    def kept_already(self) -> bool:
        """Whether the journal holds the turn the recorder is at already (a Ctrl-C right after its commit).

        If so it is counted, and the recorder moves past it. The journal, not
        the counters here, knows.
        """
        archive = self.recorder.archive
        held = any(t.idx == self.recorder.next_idx for t in archive.turns(self.session_id))
        archive.release()
        if held:
            self.recorder.skip()
            self.user_turns += 1
        return held

    def language(self) -> str | None:
        """The session's language: the one most of the person's turns were in."""
        return self._languages.most_common(1)[0][0] if self._languages else None

    def result(self) -> SessionResult:
        return SessionResult(self.session_id, self.user_turns, self.replies, tuple(self._timings))


def refresh_search(archive: Archive) -> None:
    """Bring the search index up to date (cheap unless it lags by hundreds of turns), and let go of the journal."""
    try:
        search.refresh_index(archive)
    except VoiceJournalError as e:  # never let indexing hide why a session began or ended
        log.warning("search index not refreshed: %s", e)
    archive.release()
