"""Summaries written after the fact, by one worker per journal that never holds the journal for long.

Finishing a turn only records, in the same transaction, that its session's
summary is due (a row of the journal's summary queue). The work is done by
**one** summariser process per journal:

* :func:`start` spawns it, detached and at the lowest CPU priority, unless
  one already runs. A second that starts anyway sees the first's lock and
  exits at once, so forty entries written in a row load the model once.
* :func:`run_worker` drains the queue oldest first and exits when it is
  empty. It holds the journal only to read a batch's words and to store each
  summary, never while the model writes, so a session, a search or a
  ``write`` elsewhere waits at most that long.
* A summary is stored, and taken off the queue, in one transaction, and only
  if the session's words are still the ones it was written from (the queue
  row's ticket): a ``kill -9`` at any moment leaves the queue as it was, and
  a deleted session never comes back through its summary.

Who holds the journal when: a live session between its turns' commits holds
nothing; a command holds it for one query; the worker for one read or one
store. DuckDB lets one process write at a time, so a command that finds the
file busy waits (see :mod:`voice_journal.store.archive`), and after a second
says which process it waits for.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from . import childenv, private_files
from .companion.summary import SessionSummary, summarise, summarise_entries, too_short
from .errors import LLMError, StoreError, VoiceJournalError
from .file_lock import FileLock
from .store.archive import Archive, DueSummary, Summary

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3  # unusable answers before a session waits for `summarize SESSION` instead
SHORT_ENTRY_CHARS = 300  # a typed entry this short is read with the others of its day
DAY_BATCH = 12  # short entries read together, at most


def _beside(journal: Path, suffix: str) -> Path:
    real = Path(os.path.realpath(journal))
    return real.with_name(f".{real.name}.{suffix}")


# -- the one worker: a lock beside the journal ------------------------------------


class WorkerLock:
    """An advisory lock (flock) beside the journal, held by the one summariser.

    The kernel lets go of it when the process ends however it ends, so a
    ``kill -9`` never leaves a stale lock behind.
    """

    def __init__(self, journal: Path):
        self._lock = FileLock(_beside(journal, "summariser.lock"))
        self.file = self._lock.path

    def acquire(self, *, wait: bool = False) -> bool:
        """Take the lock if it is free; False at once if another process has it (``wait``: until it lets go).

        StoreError where no lock can be made beside the journal (a folder
        nobody may write): no summary could be stored there either.
        """
        try:
            if not self._lock.take(wait=wait):
                return False
        except OSError as e:
            raise StoreError(f"cannot write beside the journal ({self.file.parent}): {e.strerror}; "
                             "summaries stay queued") from None
        self._lock.write(str(os.getpid()))
        return True

    def release(self) -> None:
        self._lock.release()

    def holder(self) -> int | None:
        """The pid of the worker that holds the lock now, or None."""
        if self._lock.held:
            return os.getpid()
        if not self._lock.held_elsewhere():
            return None
        text = self._lock.read()
        return int(text) if text.isdigit() else -1


def worker_pid(journal: Path) -> int | None:
    """The pid of the summariser working on this journal now, or None."""
    return WorkerLock(journal).holder()


# -- what the worker last said: one line for `doctor` ---------------------------------


@dataclass(frozen=True)
class WorkerState:
    state: str  # "running", "done", "stopped"
    at: str  # ISO time, UTC
    error: str | None = None  # why it stopped with work left


def _state_file(journal: Path) -> Path:
    return _beside(journal, "summariser.json")


def _say(journal: Path, state: str, error: str | None = None) -> None:
    path = _state_file(journal)
    body = json.dumps({"state": state, "at": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
                       "error": error, "pid": os.getpid()})
    tmp = path.with_name(path.name + f".{os.getpid()}")
    try:
        with private_files.open_private(tmp, "w") as f:
            f.write(body)
        os.replace(tmp, path)
    except OSError as e:  # a full disk or a read-only folder: the log has it
        log.warning("cannot record the summariser's state: %s", e)


def last_state(journal: Path) -> WorkerState | None:
    try:
        data = json.loads(_state_file(journal).read_text())
        return WorkerState(data["state"], data["at"], data.get("error"))
    except (OSError, ValueError, KeyError):
        return None


# -- starting it ---------------------------------------------------------------------


def start(settings, *, passphrase: str | None = None) -> bool:
    """Start the journal's summariser in the background, unless one is running; True if it runs.

    The child gets only the environment it needs; a passphrase goes to it on
    its stdin, never in its environment or arguments.
    """
    if worker_pid(settings.db) is not None:
        return True  # it will find the new work: it looks again before it exits
    args = [sys.executable, "-m", "voice_journal", "summarize", "--worker", "--db", str(settings.db),
            "--backend", settings.backend, "--llm-model", settings.llm_model,
            "--ollama-model", settings.ollama_model, "--ollama-host", settings.ollama_host]
    keep = {k: v for k, v in os.environ.items() if k.startswith("VOICE_JOURNAL_") and k != "VOICE_JOURNAL_PASSPHRASE"}
    try:
        child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                                 start_new_session=True, env=childenv.minimal(**keep))
        child.stdin.write((passphrase or "").encode() + b"\n")
        child.stdin.close()
    except OSError as e:
        log.warning("no background summary: %s", e)
        return False
    return True


def become_background() -> str | None:
    """In the worker: lowest CPU priority, and the passphrase from stdin (None if none was given)."""
    try:
        os.nice(19)  # the person may already be in their next session
    except OSError:
        pass
    if sys.stdin is None or sys.stdin.isatty():
        return None
    line = sys.stdin.readline()
    phrase = line[:-1] if line.endswith("\n") else line  # spaces are part of a passphrase
    return phrase or None


# -- draining the queue --------------------------------------------------------------


@dataclass
class Drained:
    """What a run of the worker did."""

    written: list[Summary] = field(default_factory=list)
    failed: list[tuple[int, str]] = field(default_factory=list)  # the model's answer was unusable
    discarded: list[int] = field(default_factory=list)  # the words changed while the model wrote
    stopped: str | None = None  # why it stopped with work left (the model or the journal failed)


def due(archive: Archive, *, only: set[int] | None = None, retry: bool = False) -> list[DueSummary]:
    """The summaries the worker may write now, oldest first."""
    return [d for d in archive.summaries_due()
            if d.settled and (retry or d.attempts < MAX_ATTEMPTS) and (only is None or d.session_id in only)]


@dataclass(frozen=True)
class Backlog:
    """What `doctor` and `list` say about summaries."""

    due: int  # the worker would write these now
    recording: int  # sessions still being recorded (due when they end)
    given_up: tuple[int, ...]  # sessions whose answers were unusable MAX_ATTEMPTS times
    worker: int | None  # the pid of the summariser at work, if one is
    last: WorkerState | None

    def line(self) -> str:
        if not (self.due or self.given_up):
            return "none pending" + (f" (process {self.worker} is finishing)" if self.worker else "")
        parts = []
        if self.due:
            parts.append(f"{self.due} pending")
            if self.worker:
                parts.append(f"the background summariser is writing them (process {self.worker})")
            elif self.last is not None and self.last.state == "stopped" and self.last.error:
                parts.append(f"the summariser stopped: {self.last.error}; `voice-journal summarize` tries again")
            else:
                parts.append("`voice-journal summarize` writes them now")
        if self.given_up:
            ids = " ".join(map(str, self.given_up[:5]))
            parts.append(f"{len(self.given_up)} left after {MAX_ATTEMPTS} unusable answers "
                         f"(`voice-journal summarize {ids}` tries again)")
        return "; ".join(parts)


def backlog(archive: Archive) -> Backlog:
    rows = archive.summaries_due()
    return Backlog(sum(1 for d in rows if d.settled and d.attempts < MAX_ATTEMPTS),
                   sum(1 for d in rows if not d.settled),
                   tuple(d.session_id for d in rows if d.settled and d.attempts >= MAX_ATTEMPTS),
                   worker_pid(archive.path), last_state(archive.path))


def _local_day(d: DueSummary) -> dt.date:
    return d.started_at.replace(tzinfo=dt.timezone.utc).astimezone().date()


def next_batch(queue: list[DueSummary]) -> list[DueSummary]:
    """The oldest due summary, with the short typed entries of its day when it is one."""
    first = queue[0]
    if not _short_entry(first):
        return [first]
    day = _local_day(first)
    return [d for d in queue if _short_entry(d) and _local_day(d) == day][:DAY_BATCH]


def _short_entry(d: DueSummary) -> bool:
    return d.source == "typed" and d.chars <= SHORT_ENTRY_CHARS


def drain(archive: Archive, llm, embedder, *, only: set[int] | None = None, retry: bool = False,
          on_summary: Callable[[Summary], None] = lambda s: None,
          on_failed: Callable[[int, str], None] = lambda sid, why: None,
          on_pending: Callable[[int], None] = lambda n: None,
          tried: set[tuple[int, int]] | None = None) -> Drained:
    """Write every due summary (or those of ``only``), holding the journal only to read and to store.

    ``tried`` (session, ticket) pairs are not tried again in this run: an
    answer that was unusable once waits for the next run.
    """
    report = Drained()
    tried = set() if tried is None else tried
    model = f"{llm.backend}:{llm.model}"
    while True:
        try:
            queue = [d for d in due(archive, only=only, retry=retry) if (d.session_id, d.ticket) not in tried]
            on_pending(len(queue))
            if not queue:
                return report
            batch = next_batch(queue)
            words = archive.user_words([d.session_id for d in batch])
        finally:
            archive.release()
        tried.update((d.session_id, d.ticket) for d in batch)
        try:
            found = _write(llm, [words[d.session_id] for d in batch])
        except LLMError as e:  # the model itself failed: no session's fault, all stay queued
            report.stopped = f"the model failed: {e}"
            return report
        except ValueError as e:
            for d in batch:
                archive.summary_failed(d.session_id, d.ticket, str(e))
                report.failed.append((d.session_id, str(e)))
                on_failed(d.session_id, str(e))
            archive.release()
            continue
        vectors = embedder.embed([s.summary for s in found]) if embedder is not None else [None] * len(found)
        try:
            for d, s, vec in zip(batch, found, vectors):
                summary = Summary(d.session_id, s.summary, s.themes, s.mood, model if s.themes or s.mood else "none")
                if archive.store_summary(summary, d.ticket, vec):
                    report.written.append(summary)
                    on_summary(summary)
                else:
                    log.info("summary of session %d discarded: its words changed while it was written", d.session_id)
                    report.discarded.append(d.session_id)
        except VoiceJournalError as e:  # a full disk, a journal made read-only: the queue keeps them
            report.stopped = str(e)
            return report
        finally:
            archive.release()


def _write(llm, said: list[list[str]]) -> list[SessionSummary]:
    if len(said) == 1:
        return [too_short(said[0]) or summarise(llm, said[0])]
    return summarise_entries(llm, [" ".join(s) for s in said])


# -- the worker process ---------------------------------------------------------------


def run_worker(journal: Path, open_archive: Callable[[], Archive],
               load_models: Callable[[], tuple]) -> int:
    """The background summariser's whole life; its exit status.

    Exits at once if another holds the lock. Loads the model only if there
    is work, drains the queue, frees the model and lets go of the lock, then
    looks once more: a summary queued just as it was leaving would otherwise
    wait for the next session (whose starter saw the lock still held, and
    started none). The model is loaded only while the lock is held, so
    however writes and workers interleave, one journal never has two copies
    of the model in memory.
    """
    lock = WorkerLock(journal)
    try:
        if not lock.acquire():
            return 0
    except VoiceJournalError as e:
        _say(journal, "stopped", str(e))
        return 1
    llm = embedder = None
    tried: set[tuple[int, int]] = set()
    try:
        while True:
            _say(journal, "running")
            try:
                archive = open_archive()
            except VoiceJournalError as e:
                _say(journal, "stopped", str(e))
                return 1
            try:
                work = [d for d in due(archive) if (d.session_id, d.ticket) not in tried]
                archive.release()
                if work and llm is None:
                    try:
                        llm, embedder = load_models()
                    except (VoiceJournalError, OSError) as e:
                        _say(journal, "stopped", f"the model could not load: {e}")
                        return 1
                report = drain(archive, llm, embedder, tried=tried) if work else Drained()
            finally:
                archive.close()
            if report.stopped:
                _say(journal, "stopped", report.stopped)
                return 1
            # The model is held only with the lock: once it is let go, the next worker may load its own.
            _unload(llm)
            llm = embedder = None
            lock.release()
            try:
                with open_archive() as archive:  # one look after letting go (see above)
                    more = any((d.session_id, d.ticket) not in tried for d in due(archive))
            except VoiceJournalError:
                more = False
            failed = f"{len(report.failed)} unusable answer(s) from the model" if report.failed else None
            if not more or not lock.acquire():
                _say(journal, "done", failed)
                return 0
    finally:
        _unload(llm)
        lock.release()


def _unload(llm) -> None:
    if llm is not None:
        llm.close()
