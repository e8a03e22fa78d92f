"""The one place a session's turns become records in the journal: :class:`Recorder`.

A session hands the recorder what was said and what was heard; the recorder
builds the :class:`~voice_journal.store.archive.TurnRecord` (audio as FLAC,
the transcript's language and confidence, timings, the safety flag, the
vector that search and memory use) and commits it at once, so that a crash
or Ctrl-C after the call never loses it. It numbers the turns; nothing else
does.

>>> rec = Recorder(journal, session_id, Embedder.load())           # doctest: +SKIP
>>> rec.user(clip, transcript, 0.0, 4.2, timings=HeardTimings(stt_s=0.4),
...          engine="whisper-base", check=assessment)               # doctest: +SKIP
0
>>> rec.companion("The deadline moved again.", audio, 22050,
...               timings=ReplyTimings(end_to_first_audio_s=0.9), model="embedded:qwen")  # doctest: +SKIP
1

When to let go of the journal between turns (so that search and list can
run elsewhere) stays with the session, which knows when a turn is over.
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol, Sequence

import numpy as np

from ..audio import pcm
from ..companion import safety
from ..companion.conversation import Plan
from ..speech.stt import Transcript
from ..store.archive import Answer, Archive, TurnRecord
from .timings import NONE, HeardTimings, ReplyTimings

class Embeds(Protocol):  # store.embedding.Embedder, or a stand-in
    def embed(self, texts: list[str]) -> np.ndarray: ...

CRISIS_FLAG = {"safety": "crisis", "safety_reasons": ("crisis message",)}  # on the fixed crisis message itself

def safety_flag(check: safety.Assessment | None) -> dict:
    """A turn's safety fields for the archive: none for a turn the net found nothing in."""
    if check is None or check.level == "none":
        return {}
    return {"safety": check.level, "safety_reasons": check.reasons}

class Recorder:
    """Builds and commits one session's turns, numbered from ``next_idx``."""

    def __init__(self, archive: Archive, session_id: int, embedder: Embeds | None = None, next_idx: int = 0):
        self.archive = archive
        self.session_id = session_id
        self.embedder = embedder  # without one, turns are archived with no vector (reindex adds it later)
        self.next_idx = next_idx

    def embed(self, text: str) -> np.ndarray | None:
        return self.embedder.embed([text])[0] if self.embedder is not None and text else None

    def user(self, clip: pcm.Clip, transcript: Transcript, start: float, end: float, *,
             timings: HeardTimings, engine: str, check: safety.Assessment | None = None,
             partial: bool = False, at: dt.datetime | None = None) -> int:
        """Commit what the person said (with its audio); returns the turn's index.

        ``at``: when it was said, for a recording imported from the past (else now).
        """
        return self._add(TurnRecord(
            self.session_id, self.next_idx, "user", transcript.text, pcm.to_flac(clip), clip.rate, start, end,
            clip.duration, transcript.language, round(transcript.confidence, 4), timings.as_dict(), engine,
            partial=partial, at=at, embedding=self.embed(transcript.text), **safety_flag(check),
        ))

    def typed(self, text: str, at: dt.datetime | None = None) -> int:
        """Commit an entry the person typed (no audio); returns the turn's index."""
        return self._add(TurnRecord(self.session_id, self.next_idx, "user", text, at=at, embedding=self.embed(text)))

    def companion(self, text: str, audio: np.ndarray | None, rate: int | None, *, timings: ReplyTimings = NONE,
                  model: str, partial: bool = False, recalled: Sequence[dict] = (), crisis: bool = False,
                  voice: str | None = None) -> int:
        """Commit what the companion said; ``audio`` None when nothing was spoken. Returns the turn's index.

        ``crisis`` marks the fixed crisis message, so that ``show`` and
        ``export`` say why these words and not the model's.
        """
        spoken = audio is not None and rate
        return self._add(TurnRecord(
            self.session_id, self.next_idx, "assistant", text,
            pcm.to_flac(pcm.Clip(audio, rate)) if spoken else None, rate if spoken else None,
            duration_s=len(audio) / rate if spoken else None, timings=timings.as_dict(), model=model, partial=partial,
            embedding=self.embed(text), recalled=tuple(recalled), voice=voice if spoken else None,
            **(CRISIS_FLAG if crisis else {}),
        ))

    def skip(self) -> int:
        """The turn at ``next_idx`` is in the journal already (Ctrl-C came right after its commit)."""
        idx, self.next_idx = self.next_idx, self.next_idx + 1
        return idx

    def answers(self, idx: int, plan: Plan) -> None:
        """What turn ``idx`` answered (a check-in's field, a mood rating), and a mode the person asked for."""
        for field_, text, value in plan.answers:
            self.archive.add_answer(Answer(self.session_id, idx, plan.mode, field_, text, value))
        if plan.switched:
            self.archive.set_mode(self.session_id, plan.mode)

    def _add(self, record: TurnRecord) -> int:
        self.archive.add_turn(record)
        # At once: from here a Ctrl-C must not archive this turn again.
        idx, self.next_idx = record.idx, record.idx + 1
        return idx
