"""What the journal keeps about a session besides its words: the summary queue and the summaries.

A session's summary is written in the background from the person's words
(:mod:`voice_journal.background`). Every change to those words gives the
session a new ticket in the queue, so a summary written from words that
have changed since is discarded, never kept (:meth:`SummaryQueue.store_summary`).
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

import numpy as np

from .schema import utc_now


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


class SummaryQueue:
    """The summary queue and the summaries, as methods of :class:`~.archive.Archive` (its connection, its transactions)."""

    def _queue_summary(self, session_id: int) -> None:
        """Mark a session's summary due, with a new ticket (inside the caller's transaction)."""
        if not self._con.execute("SELECT count(*) FROM turns WHERE session_id = ? AND role = 'user'",
                                 [session_id]).fetchone()[0]:
            return
        self._con.execute(
            """INSERT INTO summary_queue VALUES (?, nextval('summary_tickets'), ?, 0, NULL)
               ON CONFLICT (session_id) DO UPDATE SET ticket = excluded.ticket, queued_at = excluded.queued_at,
               attempts = 0, last_error = NULL""", [session_id, utc_now()])

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
            [summary.session_id, summary.created_at or utc_now(), summary.summary, json.dumps(list(summary.themes)),
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
