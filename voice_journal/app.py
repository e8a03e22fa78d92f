"""What voice-journal does, as plain functions: the command line and the web page are two faces of these.

Every function here takes the settings or an open journal and returns a
value; none prints, prompts or exits. A face asks its questions its own
way (a terminal prompt, a form) and hands the answers in::

    from voice_journal import app, config

    settings = config.load()
    with app.open_journal(settings, read_only=True) as journal:
        for row in app.sessions(journal).rows:
            print(row.id, row.started_at, row.user_turns)
        view = app.session_view(journal, 3)
        print(view.to_dict()["turns"][0]["text"])

Errors are :class:`~voice_journal.errors.VoiceJournalError` subclasses
with a one-line message, as everywhere in the package.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Sequence

from .config import Settings
from .errors import InputError, NotFound, VoiceJournalError

if TYPE_CHECKING:
    from .audio.pcm import Clip
    from .background import Backlog
    from .store.archive import Answer, Archive, SessionRow, Summary, TurnRecord
    from .store.insights import Insights
    from .store.search import Hit

log = logging.getLogger(__name__)

# -- the journal and its passphrase ---------------------------------------------

Ask = Callable[[Path, bool], str]  # (journal, confirm) -> passphrase: how a face asks the person

_KNOWN: dict[Path, str] = {}  # journals' passphrases in this process, handed to the summariser on its stdin


def known_passphrase(path: Path) -> str | None:
    """A passphrase found without asking: VOICE_JOURNAL_PASSPHRASE, this process, or the OS keyring."""
    key = path.resolve()
    env = os.environ.get("VOICE_JOURNAL_PASSPHRASE")
    if env:
        _KNOWN[key] = env
        return env
    if key in _KNOWN:
        return _KNOWN[key]
    try:  # the keyring package is optional: use it where the person has one
        import keyring

        stored = keyring.get_password("voice-journal", str(key))
    except Exception:  # no keyring module, or no backend on this machine
        return None
    if stored:
        _KNOWN[key] = stored
    return stored or None


def remember_passphrase(path: Path, phrase: str) -> None:
    """Keep a passphrase for this process (the background summariser gets it on its stdin)."""
    _KNOWN[path.resolve()] = phrase


def _passphrase(path: Path, ask: Ask | None, *, confirm: bool = False) -> str:
    phrase = known_passphrase(path)
    if phrase:
        return phrase
    if ask is None:
        raise InputError(f"the journal {path} is encrypted: set VOICE_JOURNAL_PASSPHRASE or run in a terminal")
    phrase = ask(path, confirm)
    if not phrase:
        raise InputError("the passphrase is empty")
    remember_passphrase(path, phrase)
    return phrase


def open_journal(settings: Settings, *, read_only: bool = False, ask: Ask | None = None) -> "Archive":
    """Open the configured journal, asking for its passphrase only if it is encrypted.

    A new journal is created user-only, and encrypted from the start when the
    settings say ``encrypt = true``. Use it as a context manager.
    """
    from .store.archive import Archive, PassphraseNeeded

    path = settings.db
    if not path.exists() and settings.encrypt and not read_only:
        return Archive.open(path, key=_passphrase(path, ask, confirm=True))
    try:
        return Archive.open(path, read_only=read_only)
    except PassphraseNeeded:
        return Archive.open(path, read_only=read_only, key=_passphrase(path, ask))


def init_journal(settings: Settings, *, encrypt: bool = False, ask: Ask | None = None) -> str:
    """Create the journal, or encrypt an existing one in place; returns what was done, in words."""
    from .store.archive import Archive, PassphraseNeeded

    path = settings.db
    if not encrypt:
        with open_journal(settings):
            pass
        return "ready"
    if not path.exists():
        with Archive.open(path, key=_passphrase(path, ask, confirm=True)):
            pass
        return "created encrypted"
    try:
        journal = Archive.open(path)
    except PassphraseNeeded:
        raise InputError(f"{path} is already encrypted") from None
    with journal:
        journal.encrypt(_passphrase(path, ask, confirm=True))
    return "encrypted"


def summarise_later(settings: Settings) -> bool:
    """Make sure the journal's one background summariser runs; True if this call started it."""
    from . import background

    if not settings.summaries:
        return False
    return background.start(settings, passphrase=_KNOWN.get(Path(settings.db).resolve()))


def gentle_notes(settings: Settings, journal: "Archive") -> list[str]:
    """Gentle, dismissible notes when journaling may be turning into rumination (never an error)."""
    if not settings.gentle_notes:
        return []
    try:
        from .companion import rumination
        from .store.insights import recent_history

        now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
        notes = rumination.notes(recent_history(journal, now), now)
        journal.release()
        return notes
    except VoiceJournalError as e:  # a note is a courtesy: never let it stop a session
        log.warning("no gentle notes: %s", e)
        return []


# -- what the person types ------------------------------------------------------


def parse_when(text: str | None, option: str = "date") -> dt.datetime | None:
    """An ISO date or date-time in the person's local time, as naive UTC (how the journal stores time)."""
    if text is None:
        return None
    try:
        t = dt.datetime.fromisoformat(text)
    except ValueError:
        raise InputError(f"{option} {text!r} is not a date like 2026-11-22 or 2026-11-22T08:30") from None
    if t.tzinfo is None:
        t = t.astimezone()  # the person means their own clock
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None)


def parse_ref(ref: str) -> tuple[int, int | None]:
    """``SESSION`` or ``SESSION:TURN``."""
    session_part, _, turn_part = str(ref).partition(":")
    try:
        sid = int(session_part)
    except ValueError:
        raise InputError(f"{session_part!r} is not a session number; `voice-journal list` shows them") from None
    try:
        return sid, int(turn_part) if turn_part else None
    except ValueError:
        raise InputError(f"{turn_part!r} is not a turn number") from None


def _iso(t: dt.datetime | None) -> str | None:
    return t.isoformat() + "Z" if t is not None else None


# -- reading -------------------------------------------------------------------


@dataclass(frozen=True)
class Listing:
    """The journal's sessions, newest first, and the summaries still to write."""

    rows: list["SessionRow"]
    backlog: "Backlog"

    def to_dicts(self) -> list[dict[str, Any]]:
        return [{"session": s.id, "started": _iso(s.started_at), "ended": _iso(s.ended_at), "status": s.status,
                 "mode": s.mode, "turns": s.user_turns, "source": s.source, "language": s.language}
                for s in self.rows]


def sessions(journal: "Archive", limit: int | None = None) -> Listing:
    from . import background

    return Listing(journal.sessions(limit), background.backlog(journal))


@dataclass(frozen=True)
class SessionView:
    """One session as a dialogue: its turns, the answers it collected and its summary."""

    session: "SessionRow"
    turns: list["TurnRecord"]
    answers: list["Answer"]
    summary: "Summary | None"

    def to_dict(self) -> dict[str, Any]:
        s, summary = self.session, self.summary
        return {
            "session": s.id, "started": _iso(s.started_at), "mode": s.mode, "models": s.models,
            "summary": {"text": summary.summary, "themes": list(summary.themes), "mood": summary.mood}
            if summary else None,
            "answers": [{"turn": x.idx, "mode": x.mode, "field": x.field, "text": x.text, "value": x.value}
                        for x in self.answers],
            "turns": [{"turn": t.idx, "role": t.role, "at": _iso(t.at), "text": t.text, "start": t.start_s,
                       "end": t.end_s, "timings": t.timings, "partial": t.partial, "safety": t.safety,
                       "safety_reasons": list(t.safety_reasons), "recalled": list(t.recalled)}
                      for t in self.turns],
        }


def session_view(journal: "Archive", session_id: int, *, with_audio: bool = False) -> SessionView:
    """One session; ``with_audio`` also reads each turn's FLAC (``turns[i].audio_flac``)."""
    s = journal.session(session_id)  # an unknown session fails here, with the command that lists them
    return SessionView(s, journal.turns(session_id, with_audio=with_audio), journal.answers(session_id),
                       next(iter(journal.summaries(session_id=session_id)), None))


SEARCH_METHODS = ("hybrid", "bm25", "vector")
SEARCH_ROLES = ("user", "assistant", "summary")


def search(journal: "Archive", text: str, *, limit: int = 10, since: dt.datetime | None = None,
           until: dt.datetime | None = None, mode: str | None = None, role: str | None = None,
           method: str = "hybrid", embedder=None) -> list["Hit"]:
    """Turns, and sessions by their summaries, by words and by meaning, best first.

    ``role`` is ``user``, ``assistant`` or ``summary`` (only sessions'
    summaries); ``embedder`` is loaded here when the method needs one and
    none is given.
    """
    from .store import search as search_mod

    if role not in (None, *SEARCH_ROLES):
        raise InputError("--role is user, assistant or summary")
    if method not in SEARCH_METHODS:
        raise InputError(f"unknown search method {method!r}")
    if not 1 <= limit <= 200:
        raise InputError("--limit is between 1 and 200")
    query = search_mod.validate_query(text)
    if embedder is None and method != "bm25":
        from .store.embedding import Embedder

        embedder = Embedder.load()
    filters = search_mod.Filters(since, until, mode, role if role != "summary" else None)
    hits = [] if role == "summary" else search_mod.search(journal, query, embedder=embedder, limit=limit,
                                                          filters=filters, method=method)
    if role == "summary":
        return search_mod.summary_hits(journal, query, embedder=embedder, limit=limit, filters=filters,
                                       method=method)
    if role is None:
        about = search_mod.summary_hits(journal, query, embedder=embedder, limit=3, filters=filters, method=method)
        hits = sorted([*hits, *about], key=lambda h: -h.score)[:limit]
    return hits


def hit_dict(h: "Hit") -> dict[str, Any]:
    return {"session": h.session_id, "turn": h.idx, "at": _iso(h.at), "role": h.role, "text": h.text,
            "score": round(h.score, 6)}


def recordings(journal: "Archive", session_id: int, turn: int | None = None) -> list["Clip"]:
    """The archived audio of a session's turns (or one turn), in order: the person's and the voice's."""
    from .audio import pcm

    journal.session(session_id)
    turns = [t for t in journal.turns(session_id, with_audio=True) if turn is None or t.idx == turn]
    if turn is not None and not turns:
        raise NotFound(f"session {session_id} has no turn {turn}; `voice-journal show {session_id}` lists them")
    clips = [pcm.from_flac(t.audio_flac) for t in turns if t.audio_flac]
    if not clips:
        where = f"{session_id}:{turn}" if turn is not None else str(session_id)
        raise NotFound(f"{where} has no recorded audio")
    return clips


def one_recording(clips: Sequence["Clip"], gap_s: float = 0.4) -> "Clip":
    """Clips joined with a short silence, at the highest rate among them (the person 16 kHz, the voice 22.05)."""
    import numpy as np
    import soxr

    from .audio import pcm

    rate = max(c.rate for c in clips)
    parts = []
    for c in clips:
        s = c.samples if c.rate == rate else (soxr.resample(c.float32(), c.rate, rate) * 32767).astype(np.int16)
        parts += [s, np.zeros(int(gap_s * rate), np.int16)]
    return pcm.Clip(np.concatenate(parts), rate)


def look_back(journal: "Archive", since: dt.datetime | None = None) -> "Insights":
    """Mood over time, recurring themes and rhythm (see :mod:`voice_journal.store.insights`)."""
    from .store import insights

    return insights.compute(journal, since=since)


def export(journal: "Archive", folder: Path, *, fmt: str = "md", audio: bool = False) -> list[Path]:
    """The journal as Markdown (one file a session) or JSON, with each turn's FLAC if asked."""
    from .store.export import export as export_journal

    return export_journal(journal, folder, fmt=fmt, audio=audio)


# -- writing -------------------------------------------------------------------


@dataclass(frozen=True)
class Reindexed:
    embedded: int  # turns given a vector
    sketched: int  # turns given the short sketch search ranks by first


def reindex(journal: "Archive", on_progress: Callable[[int], None] | None = None) -> Reindexed:
    """Embed the turns that have no vector yet and rebuild the full-text index."""
    from .store import search as search_mod

    missing, unsketched = journal.unindexed()
    if missing:
        from .store.embedding import Embedder

        embedder = Embedder.load()
        for start in range(0, len(missing), 64):
            chunk = missing[start : start + 64]
            vecs = embedder.embed([t for _, t in chunk])
            journal.set_embeddings([(uid, v) for (uid, _), v in zip(chunk, vecs)])
            if on_progress:
                on_progress(len(chunk))
    for start in range(0, len(unsketched), 1000):
        journal.set_embeddings(unsketched[start : start + 1000])
    search_mod.rebuild_index(journal)
    return Reindexed(len(missing), len(unsketched))


def write(journal: "Archive", text: str, at: dt.datetime | None = None, embedder=None) -> int:
    """A typed entry, for when speaking aloud is not possible; returns its session number."""
    from .session import write_entry

    if embedder is None:
        from .store.embedding import Embedder

        embedder = Embedder.load()
    return write_entry(journal, embedder, text, at)


def describe(journal: "Archive", session_id: int, turn: int | None = None) -> str:
    """What a delete of ``SESSION[:TURN]`` would remove, in words (for the confirmation)."""
    s = journal.session(session_id)
    if turn is not None:
        return f"turn {turn} of session {session_id}"
    started = s.started_at.replace(tzinfo=dt.timezone.utc).astimezone().strftime("%Y-%m-%d %H:%M")
    return f"session {session_id} ({started}, {s.user_turns} turns)"


def delete(journal: "Archive", session_id: int, turn: int | None = None) -> int:
    """Delete a session or a turn for good: text, audio, vectors, index entries and free blocks.

    Returns the number of turns removed. A turn's session loses its summary
    (it is queued to be written again without the turn).
    """
    from .store import search as search_mod

    n = journal.delete(session_id, turn)
    search_mod.rebuild_index(journal)  # first, so that the rewritten file holds no index entry of theirs
    journal.compact()  # deleted rows linger in free blocks until the file is rewritten
    return n
