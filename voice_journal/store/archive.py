"""The journal archive: sessions and turns in one DuckDB file.

Every turn is its own transaction, committed the moment the turn is over,
so that Ctrl-C, a crash or ``kill -9`` never loses what was already said
(DuckDB replays its WAL on the next open). Audio is kept as FLAC bytes
inside the database: one file to back up, encrypt or delete.

The file is created user-only (0600 in a 0700 folder): journals are private.

>>> with Archive.open("/tmp/j.duckdb") as a:         # doctest: +SKIP
...     sid = a.begin_session(mode="free", source="file:talk.wav", models={})
...     a.add_turn(TurnRecord(sid, 0, "user", "Today was long."))
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ..errors import NotFound, StoreError
from ..file_lock import FileLock
from .connection import (LOCK_TIMEOUT_S, PassphraseNeeded, connect, extension_path, first_line, interrupted,
                         secure_dir, secure_file, spill_dir)
from .embedding import sketch
from .recording import RecordingMarks
from .rewrite import Rewriting
from .schema import MIGRATIONS, SCHEMA_VERSION, Migrations, utc_now
from .summaries import DueSummary, Summary, SummaryQueue

__all__ = ["Answer", "Archive", "DueSummary", "LOCK_TIMEOUT_S", "MIGRATIONS", "PassphraseNeeded", "SCHEMA_VERSION",
           "SessionRow", "Summary", "TurnRecord", "UID_STRIDE", "extension_path", "interrupted"]

log = logging.getLogger(__name__)

UID_STRIDE = 1_000_000  # turns per session, at most


@dataclass(frozen=True)
class TurnRecord:
    """One turn as archived."""

    session_id: int
    idx: int
    role: str
    text: str
    audio_flac: bytes | None = None
    sample_rate: int | None = None
    start_s: float | None = None
    end_s: float | None = None
    duration_s: float | None = None
    language: str | None = None
    confidence: float | None = None
    timings: dict[str, float] = field(default_factory=dict)
    model: str | None = None
    partial: bool = False
    at: dt.datetime | None = None
    embedding: np.ndarray | None = field(default=None, compare=False, repr=False)  # 384 floats
    safety: str | None = None  # "concern" or "crisis" when the safety check flagged the turn
    safety_reasons: tuple[str, ...] = ()
    recalled: tuple[dict, ...] = ()  # past turns the companion was reminded of for this reply
    voice: str | None = None  # the voice that spoke a reply: a local one, or a service's (wyoming://...)

    @property
    def uid(self) -> int:
        return self.session_id * UID_STRIDE + self.idx


@dataclass(frozen=True)
class Answer:
    """A structured answer given in a session: a check-in's field, a reframe step, a mood rating."""

    session_id: int
    idx: int
    mode: str
    field: str
    text: str
    value: float | None = None  # a mood rating, 1-10
    at: dt.datetime | None = None  # the session's start (filled when read)


@dataclass(frozen=True)
class SessionRow:
    id: int
    started_at: dt.datetime
    ended_at: dt.datetime | None
    status: str
    mode: str
    source: str | None
    models: dict[str, Any]
    language: str | None
    user_turns: int = 0


class Archive(Migrations, SummaryQueue, Rewriting, RecordingMarks):
    """An open journal. Use :meth:`open`; close it, or use it as a context manager.

    The DuckDB connection opens on first use and :meth:`release` lets go of
    it, so a long session can leave the file free for ``search``, ``list``
    or ``play`` in another terminal between its turns. Sessions and turns
    are here; its schema (:mod:`.schema`), the summary queue
    (:mod:`.summaries`), rewriting the file (:mod:`.rewrite`) and the
    recording marks (:mod:`.recording`) are its other parts.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection | None, path: Path, read_only: bool,
                 lock_timeout: float = LOCK_TIMEOUT_S, key: str | None = None):
        self._conn = con
        self._key = key
        self.path = path
        self.read_only = read_only
        self.lock_timeout = lock_timeout
        self._closed = False
        self._recording: dict[int, FileLock] = {}  # session id -> its recording lock, held while it records

    @property
    def _con(self) -> duckdb.DuckDBPyConnection:
        if self._conn is None:
            if self._closed:
                raise StoreError(f"the journal {self.path} is closed")
            self._conn = connect(self.path, self.read_only, self.lock_timeout, self._key)
        return self._conn

    def release(self) -> None:
        """Let go of the file until the next operation (which reopens it, waiting if need be)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                if not self.read_only:
                    secure_file(self.path)

    @classmethod
    def open(cls, path: str | os.PathLike, *, read_only: bool = False,
             lock_timeout: float = LOCK_TIMEOUT_S, key: str | None = None) -> "Archive":
        """Open (or create) a journal; ``key`` is the passphrase of an encrypted one."""
        # The real file behind a symlink: its WAL, locks and rewrites belong beside it, and
        # a rewrite must replace its bytes, not the link.
        path = Path(os.path.realpath(Path(path).expanduser()))
        if path.is_dir():
            raise StoreError(f"{path} is a directory; give a journal file such as {path / 'journal.duckdb'}")
        if read_only and not path.exists():
            raise StoreError(f"no journal at {path} yet: record a session first")
        if read_only:
            cls._upgrade_if_old(path, lock_timeout, key)
        if not read_only:
            try:
                secure_dir(path.parent)
                secure_dir(spill_dir(path))
            except OSError as e:
                raise StoreError(f"cannot create the journal folder {path.parent}: {e.strerror}") from None
        con = connect(path, read_only, lock_timeout, key)
        archive = cls(con, path, read_only, lock_timeout, key)
        try:
            if not read_only:
                secure_file(path)
                archive._migrate()
            else:
                archive._check_version()
        except BaseException:
            con.close()
            raise
        return archive

    @classmethod
    def _upgrade_if_old(cls, path: Path, lock_timeout: float, key: str | None) -> None:
        """A reader of an older journal upgrades it first (briefly as a writer)."""
        try:
            con = connect(path, True, lock_timeout, key)
        except StoreError:
            return  # the open below reports it
        try:
            has = con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'").fetchone()[0]
            v = con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0] if has else 0
        finally:
            con.close()
        if v < SCHEMA_VERSION:
            cls.open(path, lock_timeout=lock_timeout, key=key).close()

    def __enter__(self) -> "Archive":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        self.release()
        for sid in list(self._recording):
            self._stop_recording(sid)
        self._closed = True

    def _transaction(self) -> "_Transaction":
        return _Transaction(self)

    # -- writing --------------------------------------------------------

    def begin_session(self, *, mode: str = "free", source: str | None = None, models: dict | None = None,
                      started_at: dt.datetime | None = None, source_hash: str | None = None) -> int:
        with self._transaction():
            row = self._con.execute(
                "INSERT INTO sessions (started_at, mode, source, models, source_hash) VALUES (?, ?, ?, ?, ?) RETURNING id",
                [started_at or utc_now(), mode, source, json.dumps(models or {}), source_hash],
            ).fetchone()
        self._start_recording(int(row[0]))
        return int(row[0])

    def session_by_hash(self, source_hash: str) -> SessionRow | None:
        """The session imported from audio with this hash, if any."""
        row = self._con.execute("SELECT id FROM sessions WHERE source_hash = ? ORDER BY id LIMIT 1",
                                [source_hash]).fetchone()
        return self.session(row[0]) if row else None

    def delete(self, session_id: int, idx: int | None = None) -> int:
        """Delete a session (or one of its turns) with its audio and vector; return turns deleted.

        Deleted rows leave old bytes in the file's free blocks until DuckDB
        reuses them: the caller rebuilds the search index, then rewrites the
        file (:meth:`compact`), in that order, so that neither the rows nor
        the index's entries for their words survive in it.
        """
        self.session(session_id)  # a clear error for a session that is not there
        with self._transaction():
            if idx is None:
                n = self._con.execute("DELETE FROM turns WHERE session_id = ?", [session_id]).fetchone()[0]
                for table in ("turn_flags", "turn_memory", "turn_voices", "answers", "summaries", "summary_queue"):
                    self._con.execute(f"DELETE FROM {table} WHERE session_id = ?", [session_id])
                self._con.execute("DELETE FROM sessions WHERE id = ?", [session_id])
            else:
                n = self._con.execute("DELETE FROM turns WHERE session_id = ? AND idx = ?", [session_id, idx]).fetchone()[0]
                if not n:
                    raise NotFound(f"session {session_id} has no turn {idx}")
                for table in ("turn_flags", "turn_memory", "turn_voices", "answers"):
                    self._con.execute(f"DELETE FROM {table} WHERE session_id = ? AND idx = ?", [session_id, idx])
                # The summary was written from the turn's words: it goes too, and is due again
                # (a new ticket, so that one being written from the old words is discarded).
                self._con.execute("DELETE FROM summaries WHERE session_id = ?", [session_id])
                self._con.execute("DELETE FROM summary_queue WHERE session_id = ?", [session_id])
                self._queue_summary(session_id)
        return int(n)

    def add_turn(self, turn: TurnRecord) -> None:
        """Archive one turn in its own transaction: once this returns, it is on disk."""
        if turn.role not in ("user", "assistant"):
            raise ValueError(f"role must be user or assistant, not {turn.role!r}")
        with self._transaction():
            self._con.execute(
                """INSERT INTO turns (uid, session_id, idx, role, recorded_at, text, audio, sample_rate, start_s,
                   end_s, duration_s, language, confidence, timings, model, partial, embedding, sketch)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [turn.uid, turn.session_id, turn.idx, turn.role, turn.at or utc_now(), turn.text, turn.audio_flac,
                 turn.sample_rate, turn.start_s, turn.end_s, turn.duration_s, turn.language, turn.confidence,
                 json.dumps({k: round(v, 4) for k, v in turn.timings.items()}), turn.model, turn.partial,
                 None if turn.embedding is None else turn.embedding.astype(np.float32).tolist(),
                 None if turn.embedding is None else sketch(turn.embedding).tolist()],
            )
            if turn.safety:
                self._con.execute("INSERT INTO turn_flags VALUES (?, ?, ?, ?)",
                                  [turn.session_id, turn.idx, turn.safety, json.dumps(list(turn.safety_reasons))])
            if turn.voice:
                self._con.execute("INSERT INTO turn_voices VALUES (?, ?, ?)", [turn.session_id, turn.idx, turn.voice])
            if turn.recalled:  # references, never copies: deleting the recalled turn leaves nothing behind
                refs = [{"session": int(r["session"]), "turn": int(r["turn"]), "score": r.get("score")}
                        for r in turn.recalled]
                self._con.execute("INSERT INTO turn_memory VALUES (?, ?, ?)",
                                  [turn.session_id, turn.idx, json.dumps(refs)])
            if turn.role == "user":
                self._queue_summary(turn.session_id)

    def add_answer(self, answer: Answer) -> None:
        """Keep a structured answer (a check-in field, a mood rating) in its own transaction."""
        with self._transaction():
            self._con.execute("INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?, ?, ?)",
                              [answer.session_id, answer.idx, answer.mode, answer.field, answer.text, answer.value])

    def answers(self, session_id: int | None = None, *, since: dt.datetime | None = None) -> list[Answer]:
        """Structured answers of one session, or of every session (since a time), oldest first."""
        rows = self._con.execute(
            """SELECT a.session_id, a.idx, a.mode, a.field, a.text, a.value, s.started_at
               FROM answers a JOIN sessions s ON s.id = a.session_id
               WHERE (? IS NULL OR a.session_id = ?) AND (? IS NULL OR s.started_at >= ?)
               ORDER BY s.started_at, a.session_id, a.idx, a.field""",
            [session_id, session_id, since, since]).fetchall()
        return [Answer(*r) for r in rows]

    def set_embeddings(self, rows: list[tuple[int, np.ndarray]]) -> None:
        """Store (uid, embedding) pairs, with their sketches, in one transaction."""
        with self._transaction():
            for uid, vec in rows:
                self._con.execute("UPDATE turns SET embedding = ?::FLOAT[384], sketch = ?::TINYINT[96] WHERE uid = ?",
                                  [np.asarray(vec, np.float32).tolist(), sketch(vec).tolist(), uid])

    def unindexed(self) -> tuple[list[tuple[int, str]], list[tuple[int, np.ndarray]]]:
        """What ``reindex`` has to do: turns with no vector yet (uid, text), and vectors with no sketch (uid, vector)."""
        missing = self._con.execute("SELECT uid, text FROM turns WHERE embedding IS NULL ORDER BY uid").fetchall()
        unsketched = self._con.execute(
            "SELECT uid, embedding FROM turns WHERE embedding IS NOT NULL AND sketch IS NULL ORDER BY uid").fetchall()
        return ([(uid, text) for uid, text in missing],
                [(uid, np.asarray(vec, np.float32)) for uid, vec in unsketched])

    def set_mode(self, session_id: int, mode: str) -> None:
        """The mode a session moved to (the person asked for it); its answers keep their own."""
        with self._transaction():
            self._con.execute("UPDATE sessions SET mode = ? WHERE id = ?", [mode, session_id])

    def end_session(self, session_id: int, *, status: str = "complete", language: str | None = None,
                    ended_at: dt.datetime | None = None) -> None:
        with self._transaction():
            self._con.execute(
                "UPDATE sessions SET ended_at = ?, status = ?, language = coalesce(?, language) WHERE id = ?",
                [ended_at or utc_now(), status, language, session_id],
            )
        self._stop_recording(session_id)

    # -- reading --------------------------------------------------------

    def sessions(self, limit: int | None = None, *, session_id: int | None = None) -> list[SessionRow]:
        """Sessions, newest first (or just the one with ``session_id``)."""
        where = "WHERE s.id = ?" if session_id is not None else ""
        params = [session_id] if session_id is not None else []
        rows = self._con.execute(
            f"""SELECT s.id, s.started_at, s.ended_at, s.status, s.mode, s.source, s.models, s.language,
                       count(t.idx) FILTER (WHERE t.role = 'user')
                FROM sessions s LEFT JOIN turns t ON t.session_id = s.id {where}
                GROUP BY ALL ORDER BY s.started_at DESC, s.id DESC """ + ("LIMIT ?" if limit else ""),
            params + ([limit] if limit else []),
        ).fetchall()
        return [SessionRow(r[0], r[1], r[2], r[3], r[4], r[5], json.loads(r[6] or "{}"), r[7], r[8]) for r in rows]

    def flags(self) -> dict[int, tuple[str, ...]]:
        """The safety levels flagged in each session that has any (for a list of sessions)."""
        rows = self._con.execute("SELECT session_id, list(DISTINCT level ORDER BY level) FROM turn_flags "
                                 "GROUP BY session_id").fetchall()
        return {sid: tuple(levels) for sid, levels in rows}

    def session(self, session_id: int) -> SessionRow:
        found = self.sessions(session_id=session_id)
        if not found:
            raise NotFound(f"no session {session_id} in {self.path}; `voice-journal list` shows them")
        return found[0]

    def turns(self, session_id: int, *, with_audio: bool = False, idx: int | None = None) -> list[TurnRecord]:
        cols = "audio" if with_audio else "NULL"
        rows = self._con.execute(
            f"""SELECT t.session_id, t.idx, role, text, {cols}, sample_rate, start_s, end_s, duration_s, language,
                       confidence, timings, model, partial, recorded_at, f.level, f.reasons, m.recalled, v.voice
                FROM turns t LEFT JOIN turn_flags f ON f.session_id = t.session_id AND f.idx = t.idx
                LEFT JOIN turn_memory m ON m.session_id = t.session_id AND m.idx = t.idx
                LEFT JOIN turn_voices v ON v.session_id = t.session_id AND v.idx = t.idx
                WHERE t.session_id = ? AND (? IS NULL OR t.idx = ?) ORDER BY t.idx""",
            [session_id, idx, idx],
        ).fetchall()
        recalled = _recalled_words(self._con, [json.loads(r[17]) if r[17] else [] for r in rows])
        return [
            TurnRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                       json.loads(r[11] or "{}"), r[12], r[13], r[14], safety=r[15],
                       safety_reasons=tuple(json.loads(r[16])) if r[16] else (), recalled=found, voice=r[18])
            for r, found in zip(rows, recalled)
        ]

    @property
    def connection(self) -> duckdb.DuckDBPyConnection:
        """The open DuckDB connection, for the store's own modules (search)."""
        return self._con

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """A second connection to the same open journal, for work on another thread."""
        cur = self._con.cursor()
        if self._key is not None:
            cur.execute("USE journal")  # an encrypted journal is ATTACHed; a cursor starts in memory
        return cur

    def transaction(self):
        """A context manager: commit on success, roll back on error, errors as StoreError."""
        return self._transaction()

    def execute(self, sql: str, params: list | None = None) -> duckdb.DuckDBPyConnection:
        """Run raw SQL (for tests and later migrations); prefer the methods above."""
        return self._con.execute(sql, params or [])


def _recalled_words(con: duckdb.DuckDBPyConnection, refs: list[list[dict]]) -> list[tuple[dict, ...]]:
    """The recalled turns' words, looked up now: a deleted turn is simply not there."""
    uids = sorted({int(x["session"]) * UID_STRIDE + int(x["turn"]) for per in refs for x in per})
    if not uids:
        return [() for _ in refs]
    words = {uid: (at, text) for uid, at, text in con.execute(
        "SELECT uid, recorded_at, text FROM turns WHERE list_contains(?, uid)", [uids]).fetchall()}
    out = []
    for per in refs:
        found = []
        for x in per:
            hit = words.get(int(x["session"]) * UID_STRIDE + int(x["turn"]))
            if hit is not None:
                found.append({"session": int(x["session"]), "turn": int(x["turn"]), "at": hit[0].isoformat(),
                              "text": hit[1], "score": x.get("score")})
        out.append(tuple(found))
    return out


class _Transaction:
    """``with archive._transaction():`` commit on success, roll back on error; errors as StoreError."""

    def __init__(self, archive: Archive):
        self.archive = archive

    def __enter__(self) -> None:
        self.archive._con.begin()

    def __exit__(self, exc_type, exc, tb) -> bool:
        archive = self.archive
        if exc_type is None:
            try:
                archive._con.commit()
            except (duckdb.Error, RuntimeError) as e:
                _rollback(archive)  # a failed commit (a full disk) may have ended it already
                if interrupted(e):
                    raise KeyboardInterrupt from None
                if not isinstance(e, duckdb.Error):
                    raise
                raise StoreError(f"could not save to {archive.path}: {first_line(e)}") from None
            secure_file(archive.path.with_name(archive.path.name + ".wal"))
        else:
            _rollback(archive)
            if interrupted(exc):  # Ctrl-C inside a statement: nothing of it was kept
                raise KeyboardInterrupt from None
            if isinstance(exc, duckdb.Error):
                raise StoreError(f"could not save to {archive.path}: {first_line(exc)}") from None
        return False


def _rollback(archive: Archive) -> None:
    """Undo the open transaction, if DuckDB has not already; after a fatal error, let go of the file.

    DuckDB invalidates a database after an I/O error it cannot recover from
    (a full disk at commit): the next open replays the WAL, so the next
    operation reopens it rather than failing on a dead connection.
    """
    try:
        archive._con.rollback()
    except duckdb.Error:
        archive.release()
