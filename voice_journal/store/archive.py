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
import importlib.resources
import json
import logging
import os
import re
import stat
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import numpy as np

from ..errors import InputError, StoreError
from ..file_lock import FileLock
from .embedding import sketch

log = logging.getLogger(__name__)

SCHEMA_VERSION = 8

# Migrations in order; MIGRATIONS[n] takes a journal from version n to n + 1.
MIGRATIONS: list[str] = [
    """
    CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at TIMESTAMP NOT NULL);
    CREATE SEQUENCE IF NOT EXISTS session_ids START 1;
    CREATE TABLE IF NOT EXISTS sessions (
        id BIGINT PRIMARY KEY DEFAULT nextval('session_ids'),
        started_at TIMESTAMP NOT NULL,       -- UTC
        ended_at TIMESTAMP,                  -- NULL while open or after a crash
        status VARCHAR NOT NULL DEFAULT 'open',  -- open, complete, interrupted
        mode VARCHAR NOT NULL DEFAULT 'free',
        source VARCHAR,                      -- 'microphone' or 'file:NAME'
        models JSON,                         -- which stt, llm, tts answered
        language VARCHAR
    );
    CREATE TABLE IF NOT EXISTS turns (
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,                -- 0, 1, 2 ... within the session
        role VARCHAR NOT NULL CHECK (role IN ('user', 'assistant')),
        recorded_at TIMESTAMP NOT NULL,      -- UTC, when the turn was committed
        text VARCHAR NOT NULL,
        audio BLOB,                          -- FLAC bytes
        sample_rate INTEGER,
        start_s DOUBLE,                      -- offset in the session's audio
        end_s DOUBLE,
        duration_s DOUBLE,
        language VARCHAR,
        confidence DOUBLE,
        timings JSON,                        -- per stage, seconds
        model VARCHAR,
        partial BOOLEAN NOT NULL DEFAULT false,  -- cut short (Ctrl-C, barge-in)
        PRIMARY KEY (session_id, idx)
    );
    """,
    # v2: a single-column key for the full-text index, and each turn's embedding.
    # DuckDB cannot ALTER a table and fill the new column in one transaction,
    # so the table is rebuilt (constraints included) inside the migration's one.
    """
    CREATE TABLE turns_v2 (
        uid BIGINT NOT NULL UNIQUE,          -- session_id * 1,000,000 + idx: the search key
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        role VARCHAR NOT NULL CHECK (role IN ('user', 'assistant')),
        recorded_at TIMESTAMP NOT NULL,
        text VARCHAR NOT NULL,
        audio BLOB,
        sample_rate INTEGER,
        start_s DOUBLE,
        end_s DOUBLE,
        duration_s DOUBLE,
        language VARCHAR,
        confidence DOUBLE,
        timings JSON,
        model VARCHAR,
        partial BOOLEAN NOT NULL DEFAULT false,
        embedding FLOAT[384],                -- all-MiniLM-L6-v2, unit length; NULL until embedded
        PRIMARY KEY (session_id, idx)
    );
    INSERT INTO turns_v2 SELECT session_id * 1000000 + idx, session_id, idx, role, recorded_at, text, audio,
        sample_rate, start_s, end_s, duration_s, language, confidence, timings, model, partial, NULL FROM turns;
    DROP TABLE turns;
    ALTER TABLE turns_v2 RENAME TO turns;
    """,
    # v3: imported recordings remember their audio's hash, so a second import skips them.
    # Rebuilt, not ALTERed: DuckDB 1.5.5 cannot replay an ADD COLUMN on a table whose
    # default calls nextval() from the WAL after a crash (the journal would not open).
    """
    CREATE TABLE sessions_v3 (
        id BIGINT PRIMARY KEY DEFAULT nextval('session_ids'),
        started_at TIMESTAMP NOT NULL,
        ended_at TIMESTAMP,
        status VARCHAR NOT NULL DEFAULT 'open',
        mode VARCHAR NOT NULL DEFAULT 'free',
        source VARCHAR,
        models JSON,
        language VARCHAR,
        source_hash VARCHAR                  -- sha256 of an imported file
    );
    INSERT INTO sessions_v3 SELECT id, started_at, ended_at, status, mode, source, models, language, NULL FROM sessions;
    DROP TABLE sessions;
    ALTER TABLE sessions_v3 RENAME TO sessions;
    """,
    # v4: a 96-dimension sketch of each embedding, scanned first by vector search.
    """
    CREATE TABLE turns_v4 (
        uid BIGINT NOT NULL UNIQUE,
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        role VARCHAR NOT NULL CHECK (role IN ('user', 'assistant')),
        recorded_at TIMESTAMP NOT NULL,
        text VARCHAR NOT NULL,
        audio BLOB,
        sample_rate INTEGER,
        start_s DOUBLE,
        end_s DOUBLE,
        duration_s DOUBLE,
        language VARCHAR,
        confidence DOUBLE,
        timings JSON,
        model VARCHAR,
        partial BOOLEAN NOT NULL DEFAULT false,
        embedding FLOAT[384],
        coarse FLOAT[96],                    -- a float sketch (int8 since v7); NULL: scored exactly
        PRIMARY KEY (session_id, idx)
    );
    INSERT INTO turns_v4 SELECT uid, session_id, idx, role, recorded_at, text, audio, sample_rate, start_s, end_s,
        duration_s, language, confidence, timings, model, partial, embedding, NULL FROM turns;
    DROP TABLE turns;
    ALTER TABLE turns_v4 RENAME TO turns;
    """,
    # v5: what the safety check found in a turn (and the companion's fixed answer to it).
    # Its own table: a flag is rare, and a new table needs no rebuild of the turns.
    """
    CREATE TABLE turn_flags (
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        level VARCHAR NOT NULL CHECK (level IN ('concern', 'crisis')),
        reasons JSON,                        -- what the check matched, for the person to see
        PRIMARY KEY (session_id, idx)
    );
    """,
    # v6: what a session yields besides its words: structured answers (a check-in's
    # fields, mood ratings), the past turns the companion recalled, and the summary,
    # themes and estimated mood written after it. New tables: no rebuild.
    """
    CREATE TABLE answers (
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,                -- the person's turn that answered
        mode VARCHAR NOT NULL,               -- 'check-in', 'reframe', ... or 'mood'
        field VARCHAR NOT NULL,              -- 'feeling', 'event', 'need'; 'before' / 'after' for mood
        text VARCHAR NOT NULL,
        value DOUBLE,                        -- a mood rating, 1-10
        PRIMARY KEY (session_id, idx, field)
    );
    CREATE TABLE turn_memory (
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,                -- the reply that was given them
        recalled JSON NOT NULL,              -- [{session, turn, score}] (v6-v7 also copied at, text)
        PRIMARY KEY (session_id, idx)
    );
    CREATE TABLE summaries (
        session_id BIGINT PRIMARY KEY,
        created_at TIMESTAMP NOT NULL,
        summary VARCHAR NOT NULL,
        themes JSON NOT NULL,                -- 1-5 short phrases, lower case
        mood DOUBLE,                         -- estimated 1-10 from their words; NULL if unclear
        model VARCHAR,
        embedding FLOAT[384]                 -- of the summary, for search
    );
    """,
    # v7: each turn's sketch is int8 (embedding.sketch), not float: DuckDB decompresses
    # float arrays slowly, and the sketches are scanned on every search. Converted here
    # with the same scale and clipping, so no turn needs embedding again.
    """
    CREATE TABLE turns_v7 (
        uid BIGINT NOT NULL UNIQUE,
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        role VARCHAR NOT NULL CHECK (role IN ('user', 'assistant')),
        recorded_at TIMESTAMP NOT NULL,
        text VARCHAR NOT NULL,
        audio BLOB,
        sample_rate INTEGER,
        start_s DOUBLE,
        end_s DOUBLE,
        duration_s DOUBLE,
        language VARCHAR,
        confidence DOUBLE,
        timings JSON,
        model VARCHAR,
        partial BOOLEAN NOT NULL DEFAULT false,
        embedding FLOAT[384],
        sketch TINYINT[96],                  -- embedding.sketch(embedding); NULL: scored exactly
        PRIMARY KEY (session_id, idx)
    );
    INSERT INTO turns_v7 SELECT uid, session_id, idx, role, recorded_at, text, audio, sample_rate, start_s, end_s,
        duration_s, language, confidence, timings, model, partial, embedding,
        list_transform(coarse, x -> greatest(-127, least(127, round(x * 256))))::TINYINT[96] FROM turns;
    DROP TABLE turns;
    ALTER TABLE turns_v7 RENAME TO turns;
    """,
    # v8: summaries are due in a queue in the journal (one background worker drains it),
    # and a reply keeps references to the past turns it recalled, not copies of their
    # words: deleting those turns then leaves nothing of them behind. Existing copies
    # are cut down to references; existing sessions without a summary are queued.
    """
    CREATE SEQUENCE summary_tickets START 1;
    CREATE TABLE summary_queue (
        session_id BIGINT PRIMARY KEY,
        ticket BIGINT NOT NULL,              -- new on every change to the session's words
        queued_at TIMESTAMP NOT NULL,        -- UTC; the worker takes the oldest first
        attempts INTEGER NOT NULL DEFAULT 0, -- model answers that were unusable
        last_error VARCHAR
    );
    INSERT INTO summary_queue
        SELECT s.id, nextval('summary_tickets'), s.started_at, 0, NULL FROM sessions s
        WHERE s.id NOT IN (SELECT session_id FROM summaries)
          AND EXISTS (SELECT 1 FROM turns t WHERE t.session_id = s.id AND t.role = 'user');
    UPDATE turn_memory
        SET recalled = to_json(from_json(recalled, '[{"session":"BIGINT","turn":"INTEGER","score":"DOUBLE"}]'));
    """,
]

UID_STRIDE = 1_000_000  # turns per session, at most


def interrupted(exc: BaseException) -> bool:
    """Whether DuckDB stopped a statement for Ctrl-C (it takes SIGINT itself while one runs)."""
    return isinstance(exc, duckdb.InterruptException) or (
        isinstance(exc, RuntimeError) and "Query interrupted" in str(exc))


def _now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


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
class Summary:
    """What a session was about, written after it (in the background)."""

    session_id: int
    summary: str
    themes: tuple[str, ...]
    mood: float | None  # estimated from their words, 1-10
    model: str | None = None
    created_at: dt.datetime | None = None
    at: dt.datetime | None = None  # the session's start (filled when read)


@dataclass(frozen=True)
class DueSummary:
    """A session whose summary is due (a row of the summary queue)."""

    session_id: int
    ticket: int  # changes whenever the session's words do
    queued_at: dt.datetime
    attempts: int  # unusable answers so far
    last_error: str | None
    source: str | None  # 'typed', 'microphone', 'file:NAME', 'import:NAME'
    started_at: dt.datetime
    turns: int  # the person's
    chars: int
    settled: bool  # its words are all there (the session ended, or was abandoned)


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


def _secure_dir(folder: Path) -> None:
    if not folder.exists():
        folder.mkdir(parents=True, mode=0o700)
        os.chmod(folder, 0o700)  # mkdir's mode is filtered by the umask


def _secure_file(path: Path) -> None:
    try:
        if stat.S_IMODE(path.stat().st_mode) != 0o600:
            os.chmod(path, 0o600)
    except FileNotFoundError:
        pass


LOCK_TIMEOUT_S = 15.0  # how long to wait for another voice-journal process to let go


_CONFIG = {"autoinstall_known_extensions": "false", "autoload_known_extensions": "false"}


class PassphraseNeeded(StoreError):
    """The journal is encrypted and no passphrase was given."""


def extension_path(name: str) -> str:
    """The packaged DuckDB extension built for exactly this duckdb version (loaded by path: offline)."""
    path = (importlib.resources.files(f"duckdb_extension_{name}") / "extensions" / f"v{duckdb.__version__}"
            / f"{name}.duckdb_extension")
    if not path.is_file():
        raise StoreError(f"the DuckDB {name} extension for duckdb {duckdb.__version__} is not installed: "
                         f"pip install duckdb-extension-{name}=={duckdb.__version__}")
    return str(path)


def spill_dir(path: Path) -> Path:
    """Where DuckDB may spill a large query's data: the journal's own private folder, never ``./.tmp``."""
    return path.with_name(f".{path.name}.tmp")


def _config(path: Path) -> dict[str, str]:
    return {**_CONFIG, "temp_directory": str(spill_dir(path))}


def _open_once(path: Path, read_only: bool, key: str | None) -> duckdb.DuckDBPyConnection:
    if key is None:
        return duckdb.connect(str(path), read_only=read_only, config=_config(path))
    # An encrypted journal is ATTACHed with its key; DuckDB's AES comes with httpfs (OpenSSL).
    con = duckdb.connect(":memory:", config=_config(path))
    try:
        con.execute(f"LOAD '{extension_path('httpfs')}'")
        options = f"ENCRYPTION_KEY '{_sql_str(key)}'" + (", READ_ONLY" if read_only else "")
        con.execute(f"ATTACH '{_sql_str(path)}' AS journal ({options})")
        con.execute("USE journal")
    except BaseException:
        con.close()
        raise
    return con


class _Gate:
    """The lock a whole-file rewrite holds against every voice-journal process that opens the journal.

    Opening takes it shared for the moment of the open; :meth:`Archive.compact`
    takes it exclusively from before it lets go of the old file until the new
    one is in place, so that no process can open (and write into) the old
    file in between. A journal in a folder nobody can write has no gate, and
    needs none: nothing can rewrite it.
    """

    def __init__(self, path: Path):
        self._lock = FileLock(path.with_name(f".{path.name}.gate"))

    def take(self, exclusive: bool, deadline: float) -> bool:
        """Take the gate, waiting until ``deadline``; False if it stayed taken (True where there is none)."""
        try:
            return self._lock.take(exclusive=exclusive, deadline=deadline)
        except OSError:
            return True  # no gate where none can be written (a read-only folder)

    def leave(self) -> None:
        self._lock.release()


class _Waiting:
    """Says once, after a moment, which process a command waits for."""

    AFTER_S = 1.0

    def __init__(self, path: Path):
        self.path = path
        self.since = time.monotonic()
        self.said = False

    def still(self, error: str) -> None:
        if self.said or time.monotonic() - self.since < self.AFTER_S:
            return
        self.said = True
        log.warning("the journal %s is busy (%s); waiting for it", self.path, holder(error))


def holder(error: str) -> str:
    """Who holds the journal, from DuckDB's lock error ("... held in /usr/bin/python3 (PID 123)")."""
    m = re.search(r"\(PID (\d+)\)", error)
    if not m:
        return "another voice-journal process holds it"
    pid = int(m.group(1))
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
    except OSError:
        return f"process {pid} holds it"
    what = " ".join(a for a in argv[argv.index("voice_journal") + 1:][:2] if not a.startswith("-")) \
        if "voice_journal" in argv else ""
    if not what and argv and argv[0].endswith("voice-journal") and len(argv) > 1:
        what = argv[1]
    return f"process {pid}" + (f", voice-journal {what}," if what else "") + " holds it"


def _connect(path: Path, read_only: bool, lock_timeout: float, key: str | None = None) -> duckdb.DuckDBPyConnection:
    """Open the file, waiting while another process holds it.

    DuckDB lets one process hold a file for writing and no process read it
    meanwhile. voice-journal processes hold it only for moments (a turn's
    commit, one search, a summary's store), so a short wait is all a clash
    costs; after a second of it a warning names the process waited for.
    """
    deadline = time.monotonic() + lock_timeout
    waiting = _Waiting(path)
    delay = 0.02
    while True:
        gate = _Gate(path)
        if not gate.take(exclusive=False, deadline=deadline):
            raise StoreError(f"the journal {path} is being rewritten by another voice-journal process; "
                             "try again when it ends")
        old_umask = os.umask(0o077)  # DuckDB creates the file (and its WAL) itself
        try:
            return _open_once(path, read_only, key)
        except duckdb.IOException as e:
            if "lock" not in str(e).lower() or time.monotonic() >= deadline:
                raise StoreError(_io_message(path, e)) from None
            waiting.still(str(e))
        except duckdb.Error as e:
            text = str(e)
            if "without a key" in text or ("encrypted" in text and key is None):
                raise PassphraseNeeded(f"the journal {path} is encrypted: give its passphrase "
                                       "(VOICE_JOURNAL_PASSPHRASE, or run in a terminal to be asked)") from None
            if "Wrong encryption key" in text:
                raise StoreError(f"wrong passphrase for the journal {path}") from None
            if "lock" in text.lower() and time.monotonic() < deadline:  # an encrypted ATTACH's lock clash
                waiting.still(text)
            else:
                raise StoreError(f"cannot open the journal {path}: {_first_line(e)}") from None
        finally:
            os.umask(old_umask)
            gate.leave()
        time.sleep(delay)
        delay = min(delay * 1.5, 0.25)


class Archive:
    """An open journal. Use :meth:`open`; close it, or use it as a context manager.

    The DuckDB connection opens on first use and :meth:`release` lets go of
    it, so a long session can leave the file free for ``search``, ``list``
    or ``play`` in another terminal between its turns.
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
            self._conn = _connect(self.path, self.read_only, self.lock_timeout, self._key)
        return self._conn

    def release(self) -> None:
        """Let go of the file until the next operation (which reopens it, waiting if need be)."""
        if self._conn is not None:
            try:
                self._conn.close()
            finally:
                self._conn = None
                if not self.read_only:
                    _secure_file(self.path)

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
                _secure_dir(path.parent)
                _secure_dir(spill_dir(path))
            except OSError as e:
                raise StoreError(f"cannot create the journal folder {path.parent}: {e.strerror}") from None
        con = _connect(path, read_only, lock_timeout, key)
        archive = cls(con, path, read_only, lock_timeout, key)
        try:
            if not read_only:
                _secure_file(path)
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
            con = _connect(path, True, lock_timeout, key)
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

    # -- who is still recording ---------------------------------------------
    # A session's words are all there once it ended, or once the process that
    # recorded it is gone (a crash, kill -9): it holds a lock beside the journal
    # while it records, and the kernel lets go of it however the process ends.

    def _recording_file(self, session_id: int) -> Path:
        return self.path.with_name(f".{self.path.name}.recording-{session_id}")

    def _start_recording(self, session_id: int) -> None:
        lock = FileLock(self._recording_file(session_id))
        try:
            if not lock.take():
                raise OSError("held by another process")
        except OSError as e:  # no lock: the session counts as settled a little early, nothing worse
            log.info("no recording lock for session %d: %s", session_id, e)
            return
        self._recording[session_id] = lock

    def _stop_recording(self, session_id: int) -> None:
        lock = self._recording.pop(session_id, None)
        if lock is not None:
            lock.path.unlink(missing_ok=True)
            lock.release()

    def recording(self, session_id: int) -> bool:
        """Whether a live process is still recording this session (this one or another)."""
        if session_id in self._recording:
            return True
        lock = FileLock(self._recording_file(session_id))
        if lock.held_elsewhere():
            return True
        if not self.read_only:
            lock.path.unlink(missing_ok=True)  # left by a process that was killed
        return False

    # -- schema ---------------------------------------------------------

    def version(self) -> int:
        has = self._con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_version'"
        ).fetchone()[0]
        if not has:
            return 0
        return self._con.execute("SELECT coalesce(max(version), 0) FROM schema_version").fetchone()[0]

    def _check_version(self) -> None:
        v = self.version()
        if v > SCHEMA_VERSION:
            raise StoreError(f"{self.path} was written by a newer voice-journal (schema {v}); upgrade voice-journal")

    def _migrate(self) -> None:
        self._check_version()
        v = self.version()
        for target in range(v + 1, SCHEMA_VERSION + 1):
            with self._transaction():
                self._con.execute(MIGRATIONS[target - 1])
                self._con.execute("INSERT INTO schema_version VALUES (?, ?)", [target, _now()])
            log.info("journal %s upgraded to schema %d", self.path, target)
        if v < SCHEMA_VERSION:
            # Put the new schema in the main file now, so a crash never has to replay DDL.
            self._con.execute("CHECKPOINT")

    def _transaction(self):
        archive = self

        class _Tx:
            def __enter__(self):
                archive._con.begin()

            def __exit__(self, exc_type, exc, tb):
                if exc_type is None:
                    try:
                        archive._con.commit()
                    except (duckdb.Error, RuntimeError) as e:
                        _rollback(archive)  # a failed commit (a full disk) may have ended it already
                        if interrupted(e):
                            raise KeyboardInterrupt from None
                        if not isinstance(e, duckdb.Error):
                            raise
                        raise StoreError(f"could not save to {archive.path}: {_first_line(e)}") from None
                    _secure_file(archive.path.with_name(archive.path.name + ".wal"))
                else:
                    _rollback(archive)
                    if interrupted(exc):  # Ctrl-C inside a statement: nothing of it was kept
                        raise KeyboardInterrupt from None
                    if isinstance(exc, duckdb.Error):
                        raise StoreError(f"could not save to {archive.path}: {_first_line(exc)}") from None
                return False

        return _Tx()

    # -- writing --------------------------------------------------------

    def begin_session(self, *, mode: str = "free", source: str | None = None, models: dict | None = None,
                      started_at: dt.datetime | None = None, source_hash: str | None = None) -> int:
        with self._transaction():
            row = self._con.execute(
                "INSERT INTO sessions (started_at, mode, source, models, source_hash) VALUES (?, ?, ?, ?, ?) RETURNING id",
                [started_at or _now(), mode, source, json.dumps(models or {}), source_hash],
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
                for table in ("turn_flags", "turn_memory", "answers", "summaries", "summary_queue"):
                    self._con.execute(f"DELETE FROM {table} WHERE session_id = ?", [session_id])
                self._con.execute("DELETE FROM sessions WHERE id = ?", [session_id])
            else:
                n = self._con.execute("DELETE FROM turns WHERE session_id = ? AND idx = ?", [session_id, idx]).fetchone()[0]
                if not n:
                    raise InputError(f"session {session_id} has no turn {idx}")
                for table in ("turn_flags", "turn_memory", "answers"):
                    self._con.execute(f"DELETE FROM {table} WHERE session_id = ? AND idx = ?", [session_id, idx])
                # The summary was written from the turn's words: it goes too, and is due again
                # (a new ticket, so that one being written from the old words is discarded).
                self._con.execute("DELETE FROM summaries WHERE session_id = ?", [session_id])
                self._con.execute("DELETE FROM summary_queue WHERE session_id = ?", [session_id])
                self._queue_summary(session_id)
        return int(n)

    @property
    def encrypted(self) -> bool:
        return self._key is not None

    def encrypt(self, key: str) -> None:
        """Encrypt the journal in place with ``key`` (or change the passphrase of an encrypted one)."""
        if not key:
            raise InputError("the passphrase is empty")
        self.compact(key=key)
        self._key = key

    def compact(self, *, key: str | None = None) -> None:
        """Rewrite the journal into a fresh file, so that deleted bytes are really gone.

        ``key`` encrypts the fresh file with a new passphrase; by default it
        keeps the journal's own (or none).
        """
        if self.read_only:
            raise StoreError("cannot rewrite a journal opened read-only")
        new_key = key if key is not None else self._key
        fresh = self.path.with_name(self.path.name + ".compact")
        for leftover in (fresh, fresh.with_name(fresh.name + ".wal")):
            leftover.unlink(missing_ok=True)
        con = self._con
        try:
            if new_key is not None:
                con.execute(f"LOAD '{extension_path('httpfs')}'")
                con.execute(f"ATTACH '{_sql_str(fresh)}' AS fresh (ENCRYPTION_KEY '{_sql_str(new_key)}')")
            else:
                con.execute(f"ATTACH '{_sql_str(fresh)}' AS fresh")
            con.execute("COPY FROM DATABASE " + _current_db(con) + " TO fresh")
            con.execute("DETACH fresh")
        except duckdb.Error as e:
            fresh.unlink(missing_ok=True)
            raise StoreError(f"could not rewrite {self.path}: {_first_line(e)}") from None
        os.chmod(fresh, 0o600)
        with open(fresh, "rb") as f:
            os.fsync(f.fileno())
        # From here until the new file is in place no other process may open the old one:
        # a write it made there would be lost with it.
        gate = _Gate(self.path)
        if not gate.take(exclusive=True, deadline=time.monotonic() + self.lock_timeout):
            fresh.unlink(missing_ok=True)
            raise StoreError(f"could not rewrite {self.path}: another voice-journal process kept opening it")
        try:
            self.release()
            os.replace(fresh, self.path)  # atomic: the old file, or the new one, never half of each
            self.path.with_name(self.path.name + ".wal").unlink(missing_ok=True)
            self._key = new_key
        finally:
            gate.leave()

    def add_turn(self, turn: TurnRecord) -> None:
        """Archive one turn in its own transaction: once this returns, it is on disk."""
        if turn.role not in ("user", "assistant"):
            raise ValueError(f"role must be user or assistant, not {turn.role!r}")
        with self._transaction():
            self._con.execute(
                """INSERT INTO turns (uid, session_id, idx, role, recorded_at, text, audio, sample_rate, start_s,
                   end_s, duration_s, language, confidence, timings, model, partial, embedding, sketch)
                   VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)""",
                [turn.uid, turn.session_id, turn.idx, turn.role, turn.at or _now(), turn.text, turn.audio_flac,
                 turn.sample_rate, turn.start_s, turn.end_s, turn.duration_s, turn.language, turn.confidence,
                 json.dumps({k: round(v, 4) for k, v in turn.timings.items()}), turn.model, turn.partial,
                 None if turn.embedding is None else turn.embedding.astype(np.float32).tolist(),
                 None if turn.embedding is None else sketch(turn.embedding).tolist()],
            )
            if turn.safety:
                self._con.execute("INSERT INTO turn_flags VALUES (?, ?, ?, ?)",
                                  [turn.session_id, turn.idx, turn.safety, json.dumps(list(turn.safety_reasons))])
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

    # -- the summary queue ------------------------------------------------

    def _queue_summary(self, session_id: int) -> None:
        """Mark a session's summary due, with a new ticket (inside the caller's transaction)."""
        if not self._con.execute("SELECT count(*) FROM turns WHERE session_id = ? AND role = 'user'",
                                 [session_id]).fetchone()[0]:
            return
        self._con.execute(
            """INSERT INTO summary_queue VALUES (?, nextval('summary_tickets'), ?, 0, NULL)
               ON CONFLICT (session_id) DO UPDATE SET ticket = excluded.ticket, queued_at = excluded.queued_at,
               attempts = 0, last_error = NULL""", [session_id, _now()])

    def queue_summary(self, session_id: int) -> None:
        """Ask for a session's summary (again): ``summarize SESSION`` on one that has one."""
        self.session(session_id)
        with self._transaction():
            self._queue_summary(session_id)

    def summaries_due(self) -> list[DueSummary]:
        """The summary queue, oldest first.

        A session still recording is not due (its words are not all there):
        it is due once it ended, or once the process recording it is gone.
        """
        rows = self._con.execute(
            """SELECT q.session_id, q.ticket, q.queued_at, q.attempts, q.last_error, s.status, s.source,
                      s.started_at, max(t.recorded_at), count(t.idx), sum(length(t.text))
               FROM summary_queue q JOIN sessions s ON s.id = q.session_id
               LEFT JOIN turns t ON t.session_id = q.session_id AND t.role = 'user'
               GROUP BY ALL ORDER BY q.queued_at, q.session_id""").fetchall()
        due = []
        for r in rows:
            settled = r[5] != "open" or not self.recording(r[0])
            due.append(DueSummary(r[0], r[1], r[2], r[3], r[4], r[6], r[7], int(r[9]), int(r[10] or 0), settled))
        return due

    def user_words(self, session_ids: list[int]) -> dict[int, list[str]]:
        """The person's turns of each session, in order (what a summary is written from)."""
        rows = self._con.execute(
            "SELECT session_id, text FROM turns WHERE role = 'user' AND list_contains(?, session_id) "
            "ORDER BY session_id, idx", [list(session_ids)]).fetchall()
        out: dict[int, list[str]] = {sid: [] for sid in session_ids}
        for sid, text in rows:
            out[sid].append(text)
        return out

    def store_summary(self, summary: Summary, ticket: int, embedding: np.ndarray | None = None) -> bool:
        """Keep a summary written from the words of queue ``ticket``, and take it off the queue.

        Returns False, keeping nothing, when the words changed meanwhile: the
        session was deleted (nothing of it may come back), or a turn of it
        was (the summary is due again, with a new ticket).
        """
        with self._transaction():
            row = self._con.execute("SELECT ticket FROM summary_queue WHERE session_id = ?",
                                    [summary.session_id]).fetchone()
            if row is None or row[0] != ticket:
                return False
            self._insert_summary(summary, embedding)
            self._con.execute("DELETE FROM summary_queue WHERE session_id = ?", [summary.session_id])
        return True

    def set_summary(self, summary: Summary, embedding: np.ndarray | None = None) -> None:
        """Keep a summary of a session as it is now, outside the queue (tests, a summary typed by hand)."""
        self.session(summary.session_id)
        with self._transaction():
            self._con.execute("DELETE FROM summary_queue WHERE session_id = ?", [summary.session_id])
            self._insert_summary(summary, embedding)

    def _insert_summary(self, summary: Summary, embedding: np.ndarray | None) -> None:
        self._con.execute(
            "INSERT OR REPLACE INTO summaries VALUES (?, ?, ?, ?, ?, ?, ?)",
            [summary.session_id, summary.created_at or _now(), summary.summary, json.dumps(list(summary.themes)),
             summary.mood, summary.model, None if embedding is None else np.asarray(embedding, np.float32).tolist()])

    def summary_failed(self, session_id: int, ticket: int, why: str) -> None:
        """Count an unusable answer against a queued summary (it stays queued)."""
        with self._transaction():
            self._con.execute("UPDATE summary_queue SET attempts = attempts + 1, last_error = ? "
                              "WHERE session_id = ? AND ticket = ?", [why[:300], session_id, ticket])

    def summaries(self, *, since: dt.datetime | None = None, session_id: int | None = None) -> list[Summary]:
        """Session summaries, oldest session first."""
        rows = self._con.execute(
            """SELECT m.session_id, m.summary, m.themes, m.mood, m.model, m.created_at, s.started_at
               FROM summaries m JOIN sessions s ON s.id = m.session_id
               WHERE (? IS NULL OR s.started_at >= ?) AND (? IS NULL OR m.session_id = ?)
               ORDER BY s.started_at, m.session_id""",
            [since, since, session_id, session_id]).fetchall()
        return [Summary(r[0], r[1], tuple(json.loads(r[2])), r[3], r[4], r[5], r[6]) for r in rows]

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
                [ended_at or _now(), status, language, session_id],
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

    def session(self, session_id: int) -> SessionRow:
        found = self.sessions(session_id=session_id)
        if not found:
            raise InputError(f"no session {session_id} in {self.path}; `voice-journal list` shows them")
        return found[0]

    def turns(self, session_id: int, *, with_audio: bool = False) -> list[TurnRecord]:
        cols = "audio" if with_audio else "NULL"
        rows = self._con.execute(
            f"""SELECT t.session_id, t.idx, role, text, {cols}, sample_rate, start_s, end_s, duration_s, language,
                       confidence, timings, model, partial, recorded_at, f.level, f.reasons, m.recalled
                FROM turns t LEFT JOIN turn_flags f ON f.session_id = t.session_id AND f.idx = t.idx
                LEFT JOIN turn_memory m ON m.session_id = t.session_id AND m.idx = t.idx
                WHERE t.session_id = ? ORDER BY t.idx""",
            [session_id],
        ).fetchall()
        recalled = self._recalled([json.loads(r[17]) if r[17] else [] for r in rows])
        return [
            TurnRecord(r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10],
                       json.loads(r[11] or "{}"), r[12], r[13], r[14], safety=r[15],
                       safety_reasons=tuple(json.loads(r[16])) if r[16] else (), recalled=found)
            for r, found in zip(rows, recalled)
        ]

    def _recalled(self, refs: list[list[dict]]) -> list[tuple[dict, ...]]:
        """The recalled turns' words, looked up now: a deleted turn is simply not there."""
        uids = sorted({int(x["session"]) * UID_STRIDE + int(x["turn"]) for per in refs for x in per})
        if not uids:
            return [() for _ in refs]
        words = {uid: (at, text) for uid, at, text in self._con.execute(
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


def _sql_str(path: Path) -> str:
    return str(path).replace("'", "''")


def _current_db(con: duckdb.DuckDBPyConnection) -> str:
    return '"' + con.execute("SELECT current_database()").fetchone()[0].replace('"', '""') + '"'


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return text[0] if text else type(e).__name__


def _io_message(path: Path, e: duckdb.Error) -> str:
    text = str(e)
    if "lock" in text.lower():
        return f"the journal {path} is in use by another voice-journal process; try again when it ends"
    if "permission" in text.lower() or "read-only" in text.lower():
        return f"cannot write the journal {path}: permission denied"
    return f"cannot open the journal {path}: {_first_line(e)}"
