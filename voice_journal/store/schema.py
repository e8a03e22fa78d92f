"""The journal's tables, and the migrations that bring an older journal up to them.

``MIGRATIONS[n]`` takes a journal from version n to n + 1; :class:`~.archive.Archive`
applies the missing ones when it opens a journal for writing. Timestamps are
naive UTC (:func:`utc_now`).
"""

from __future__ import annotations

import datetime as dt
import logging

from ..errors import StoreError

log = logging.getLogger(__name__)


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


SCHEMA_VERSION = 9

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
    # v9: which voice spoke a reply (a local Piper voice, or a speech service on another
    # machine), now that a session can change voice midway when a service goes away. A
    # table of its own: DuckDB cannot add a column to a table other tables refer to.
    """
    CREATE TABLE turn_voices (
        session_id BIGINT NOT NULL,
        idx INTEGER NOT NULL,
        voice VARCHAR NOT NULL,
        PRIMARY KEY (session_id, idx)
    );
    """,
]


class Migrations:
    """A journal's schema version, and bringing it up to date: methods of :class:`~.archive.Archive`."""

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
                self._con.execute("INSERT INTO schema_version VALUES (?, ?)", [target, utc_now()])
            log.info("journal %s upgraded to schema %d", self.path, target)
        if v < SCHEMA_VERSION:
            # Put the new schema in the main file now, so a crash never has to replay DDL.
            self._con.execute("CHECKPOINT")
