"""The summary queue and its one worker, and the delete contract around them.

The races are driven by events, not sleeps: a scripted model holds its
answer until the test has deleted what it was reading. The model is
scripted only where the race, not the words, is under test; the tests that
need real summaries use the real default model.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from conftest import ROOT, run_cli
from voice_journal import background
from voice_journal.errors import StoreError
from voice_journal.store.archive import Archive, TurnRecord

ANSWER = json.dumps({"summary": "You wrote about the garden and the rain this week.",
                     "themes": ["garden", "rain"], "mood": 6})


class HeldModel:
    """A scripted model: it answers ``ANSWER`` once the test lets it (``go``), after saying it started."""

    backend, model = "scripted", "held"

    def __init__(self, answer: str = ANSWER):
        self.answer = answer
        self.started = threading.Event()
        self.go = threading.Event()
        self.calls: list[str] = []

    def stream(self, messages, options=None):
        self.calls.append(messages[-1].content)
        self.started.set()
        assert self.go.wait(30), "the test never let the model answer"
        return iter([self.answer])

    def close(self):
        pass


def _entry(a: Archive, text: str, *, source: str = "typed") -> int:
    sid = a.begin_session(source=source)
    a.add_turn(TurnRecord(sid, 0, "user", text))
    a.end_session(sid)
    return sid


def _drain_in_thread(path, model) -> tuple[threading.Thread, dict]:
    box: dict = {}

    def work():
        with Archive.open(path) as a:
            box["report"] = background.drain(a, model, None)

    t = threading.Thread(target=work)
    t.start()
    return t, box


def test_a_finished_turn_queues_its_session_in_the_same_transaction(tmp_path):
    with Archive.open(tmp_path / "j.duckdb") as a:
        sid = _entry(a, "The garden was soaked after the rain and I sat on the step for a while.")
        due = a.summaries_due()
        assert [(d.session_id, d.settled, d.source) for d in due] == [(sid, True, "typed")]
        open_sid = a.begin_session(source="microphone")
        a.add_turn(TurnRecord(open_sid, 0, "user", "Still talking."))
        # A session still recording is queued but not due: its words are not all there.
        assert [d.session_id for d in background.due(a)] == [sid]


def test_a_session_whose_recorder_was_killed_is_due_at_once(tmp_path):
    db = tmp_path / "j.duckdb"
    recorder = subprocess.Popen([sys.executable, "-c", f"""
import sys, time
from voice_journal.errors import StoreError
from voice_journal.store.archive import Archive, TurnRecord
a = Archive.open({str(db)!r})
sid = a.begin_session(source="microphone")
a.add_turn(TurnRecord(sid, 0, "user", "Talking about the garden when the power went out."))
a.release()
print("committed", flush=True)
sys.stdin.read()  # recording on until it is killed
"""], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, cwd=ROOT)
    try:
        assert recorder.stdout.readline().strip() == "committed"
        with Archive.open(db) as a:
            (row,) = a.summaries_due()
            assert not row.settled  # still recording
    finally:
        recorder.send_signal(signal.SIGKILL)
        recorder.wait(30)
    with Archive.open(db) as a:
        (row,) = a.summaries_due()
        assert row.settled and [d.session_id for d in background.due(a)] == [row.session_id]
    assert not list(tmp_path.glob(".j.duckdb.recording-*"))  # the stale lock file was cleared


def test_a_session_deleted_while_its_summary_is_written_never_comes_back(tmp_path):
    path = tmp_path / "j.duckdb"
    with Archive.open(path) as a:
        sid = _entry(a, "I walked to the garden in the rain and thought about my grandmother's roses.")
    model = HeldModel()
    t, box = _drain_in_thread(path, model)
    assert model.started.wait(30)
    with Archive.open(path) as a:  # the worker let go of the journal while the model writes
        a.delete(sid)
    model.go.set()
    t.join(30)
    report = box["report"]
    assert report.discarded == [sid] and not report.written
    with Archive.open(path) as a:
        assert a.summaries() == [] and a.summaries_due() == []
        assert a.execute("SELECT count(*) FROM summaries").fetchone()[0] == 0


def test_a_turn_deleted_while_the_summary_is_written_queues_it_again(tmp_path):
    path = tmp_path / "j.duckdb"
    with Archive.open(path) as a:
        sid = a.begin_session(source="microphone")
        a.add_turn(TurnRecord(sid, 0, "user", "The garden is full of weeds again after all that rain."))
        a.add_turn(TurnRecord(sid, 1, "assistant", "Weeds after rain, and you out there in it."))
        a.add_turn(TurnRecord(sid, 2, "user", "And I told my boss the secret plan about the merger."))
        a.end_session(sid)
    model = HeldModel()
    t, box = _drain_in_thread(path, model)
    assert model.started.wait(30)
    assert "merger" in model.calls[0]
    with Archive.open(path) as a:
        a.delete(sid, 2)
    model.go.set()
    t.join(30)
    report = box["report"]
    # Discarded, queued again with a new ticket, and written again in the same run from the words left.
    assert report.discarded == [sid] and [s.session_id for s in report.written] == [sid]
    assert len(model.calls) == 2 and "merger" not in model.calls[1]
    with Archive.open(path) as a:
        assert a.summaries_due() == [] and len(a.summaries()) == 1


def test_short_entries_of_a_day_are_read_together_and_each_keeps_its_words(tmp_path):
    import datetime as dt

    path = tmp_path / "j.duckdb"
    day = dt.datetime(2026, 11, 20, 12, 0)
    texts = ["Weeded the garden before the rain came.", "Rain all afternoon, read a book by the window.",
             "ok", "I spent the whole afternoon in the garden while the rain came and went. " * 6]
    with Archive.open(path) as a:
        for i, text in enumerate(texts):
            sid = a.begin_session(source="typed", started_at=day + dt.timedelta(minutes=i))
            a.add_turn(TurnRecord(sid, 0, "user", text))
            a.end_session(sid)
        model = HeldModel()
        model.go.set()
        report = background.drain(a, model, None)
        by_session = {s.session_id: s for s in a.summaries()}
    assert len(by_session) == 4 and not report.failed
    # One model call for the three short entries of the day (the word "ok" among them), one for the long one.
    assert len(model.calls) == 2
    assert by_session[1].summary == texts[0] and by_session[1].themes == ("garden", "rain")
    assert by_session[2].themes == ("rain",)  # only the themes in its own words
    assert by_session[3].summary == "ok" and by_session[3].themes == ()
    assert by_session[4].summary.startswith("You wrote")  # the model's own summary of a longer entry


def test_an_unusable_answer_keeps_the_session_queued_and_counts_it(tmp_path):
    with Archive.open(tmp_path / "j.duckdb") as a:
        sid = _entry(a, "A long and tiring day with many meetings and a headache at the end of it all.")
        model = HeldModel("I'm sorry, I can't do that.")
        model.go.set()
        report = background.drain(a, model, None)
        assert [f[0] for f in report.failed] == [sid] and not report.written
        (row,) = a.summaries_due()
        assert row.attempts == 1 and "no JSON" in row.last_error
        assert background.drain(a, model, None, tried={(sid, row.ticket)}).failed == []  # not again in one run


def test_a_full_disk_while_summaries_are_stored_keeps_the_queue(tmp_path):
    """A real full disk: a 4 MB tmpfs, filled up once the entry is in (needs root to mount it)."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(disk)],
                                           capture_output=True).returncode:
        pytest.skip("a full disk needs a small tmpfs, and mounting one needs root")
    try:
        db = disk / "j.duckdb"
        with Archive.open(db) as a:
            sid = _entry(a, "The garden after the rain, and the long walk home with the dog in the dark. " * 3)
        filler = disk / "filler"
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
                    f.flush()
            except OSError:
                pass
        model = HeldModel()
        model.go.set()
        try:
            with Archive.open(db) as a:
                report = background.drain(a, model, None)
            assert report.stopped and not report.written  # it says why, and keeps nothing half-stored
        except StoreError:
            pass  # or the journal could not even be opened for writing: the same promise
        filler.unlink()
        with Archive.open(db) as a:
            assert [d.session_id for d in a.summaries_due()] == [sid] and a.summaries() == []
            assert a.turns(sid)[0].text.startswith("The garden")  # what they said is untouched
            assert [s.session_id for s in background.drain(a, model, None).written] == [sid]
    finally:
        subprocess.run(["umount", str(disk)], capture_output=True)


def test_a_second_worker_sees_the_first_and_exits_at_once(tmp_path):
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        _entry(a, "Something worth summarising about the garden and the long rain this week.")
    lock = background.WorkerLock(db)
    assert lock.acquire()
    try:
        assert background.worker_pid(db) == os.getpid()
        r = run_cli("summarize", "--worker", "--db", str(db), timeout=60, input="\n")
        assert r.returncode == 0
        with Archive.open(db) as a:
            assert len(a.summaries_due()) == 1 and a.summaries() == []  # untouched: the first one has it
        r = run_cli("summarize", "--db", str(db), timeout=60)
        assert r.returncode == 0 and "background summariser" in r.stdout and str(os.getpid()) in r.stdout
    finally:
        lock.release()
    assert background.worker_pid(db) is None


def test_the_worker_frees_its_model_before_it_lets_go_of_the_lock(tmp_path):
    """So a worker started the moment the lock is free never loads a second copy beside the first."""
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        _entry(a, "Something worth summarising about the garden and the long rain this week.")
    model = HeldModel()
    model.go.set()
    freed_with_lock: list[bool] = []
    model.close = lambda: freed_with_lock.append(background.worker_pid(db) is not None)
    assert background.run_worker(db, lambda: Archive.open(db), lambda: (model, None)) == 0
    assert freed_with_lock == [True]  # freed once, while this worker still held the lock
    assert background.worker_pid(db) is None and background.last_state(db).state == "done"
    with Archive.open(db) as a:
        assert a.summaries_due() == [] and len(a.summaries()) == 1


def test_a_journal_folder_nobody_may_write_is_one_line_not_a_traceback(tmp_path):
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        _entry(a, "The garden and the rain, and a quiet evening with tea.")
    lock = background.WorkerLock(db)
    lock.file.mkdir()  # where the lock file would go stands something it cannot be (as in a read-only folder)
    try:
        r = run_cli("summarize", "--db", str(db), timeout=60)
        assert r.returncode == 6 and "cannot write beside the journal" in r.stderr and "Traceback" not in r.stderr
        assert background.run_worker(db, lambda: Archive.open(db), lambda: (None, None)) == 1
        assert "cannot write beside the journal" in background.last_state(db).error
        with Archive.open(db) as a:
            assert len(a.summaries_due()) == 1  # still queued
    finally:
        lock.file.rmdir()


def test_list_and_doctor_say_what_is_pending(tmp_path):
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        _entry(a, "The garden and the rain, and a quiet evening with tea.")
    listed = run_cli("list", "--db", str(db))
    assert listed.returncode == 0 and "summaries: 1 pending" in listed.stdout
    doctor = run_cli("doctor", "--db", str(db))
    assert "1 pending" in doctor.stdout and "voice-journal summarize" in doctor.stdout


def test_writes_in_a_row_load_the_model_in_one_summariser_and_every_entry_is_summarised(tmp_path):
    """The real default model in the real background worker; a passphrase with spaces reaches it intact.

    A write may start a worker that finds the lock taken and exits at once: what must never happen
    is two processes holding the model in memory for one journal, which is what we watch for."""
    db = tmp_path / "j.duckdb"
    env = {"VOICE_JOURNAL_SUMMARIES": "true", "VOICE_JOURNAL_BACKEND": "embedded",
           "VOICE_JOURNAL_LLM_MODEL": "qwen2.5-coder-1.5b", "VOICE_JOURNAL_PASSPHRASE": " two words "}
    assert run_cli("init", "--encrypt", "--db", str(db), env=env).returncode == 0
    entries = ["Weeded the garden before the rain came in.", "Rain all afternoon; I read by the window.",
               "Called my brother about his new job, he sounded happy.", "Tired but calm tonight after a walk."]
    loaded: list[int] = []
    stop = threading.Event()

    def count_workers():
        while not stop.is_set():
            loaded.append(sum(map(_maps_a_model, _workers(db))))
            stop.wait(0.05)

    watcher = threading.Thread(target=count_workers)
    watcher.start()
    try:
        told = []
        for n, text in enumerate(entries):
            r = run_cli("write", text, "--db", str(db), env=env)
            assert r.returncode == 0, r.stderr
            if n == 0:
                # It did not wait for the model: the first write was back before its summary was
                # (loading the model alone takes longer than a write). By what happened, not a clock.
                state = background.last_state(db)
                assert state is None or state.state != "done", state
            told.append("in the background" in " ".join(r.stderr.split()))
        assert told[0], told  # the person is told where their summary went
        deadline = time.monotonic() + 300
        while _workers(db) and time.monotonic() < deadline:
            stop.wait(0.5)
    finally:
        stop.set()
        watcher.join()
    assert max(loaded) == 1  # the model was loaded, and never by two workers at once
    state = background.last_state(db)
    assert state is not None and state.state == "done", state
    if state.error:
        # The model samples (temperature 0.2): now and then both tries at one batch give no usable
        # JSON. That batch stays queued for the next run, which a person starts with `summarize`.
        assert "unusable" in state.error, state
        r = run_cli("summarize", "--now", "--db", str(db), env=env)
        assert r.returncode == 0, r.stderr
    with Archive.open(db, key=" two words ") as a:
        assert a.summaries_due() == []
        assert sorted(s.session_id for s in a.summaries()) == [1, 2, 3, 4]


def _maps_a_model(pid: int) -> bool:
    """Whether the process has a GGUF model mapped into its memory now."""
    try:
        with open(f"/proc/{pid}/maps") as f:
            return any(line.rstrip().endswith(".gguf") for line in f)
    except OSError:
        return False


def _workers(db) -> list[int]:
    """Pids of live summariser processes for this journal (from /proc: what `ps` would show)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as f:
                argv = f.read().split(b"\0")
            with open(f"/proc/{pid}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if b"--worker" in argv and str(db).encode() in argv and not zombie:
            found.append(int(pid))
    return found


def test_kill_9_of_the_worker_leaves_the_queue_and_the_next_run_finishes_it_once(tmp_path):
    db = tmp_path / "j.duckdb"
    holder = Archive.open(db)
    try:
        for text in ("The garden was soaked after the rain and the tomatoes split open.",
                     "I had a long talk with my sister about our father's health and the hospital."):
            sid = holder.begin_session(source="microphone")
            holder.add_turn(TurnRecord(sid, 0, "user", text))
            holder.end_session(sid)
        env = {**os.environ, "VOICE_JOURNAL_BACKEND": "embedded", "VOICE_JOURNAL_LLM_MODEL": "qwen2.5-coder-1.5b",
               "COLUMNS": "300"}
        child = subprocess.Popen([sys.executable, "-m", "voice_journal", "summarize", "--worker", "--db", str(db)],
                                 stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 text=True, env=env, cwd=ROOT)
        # The worker holds its lock and waits for the journal we hold: it says so, and is killed there.
        said = next((line for line in child.stderr if "busy" in line), "")  # blocks until it says so
        assert "busy" in said, said
        assert background.worker_pid(db) == child.pid
        child.send_signal(signal.SIGKILL)
        child.wait(30)
    finally:
        holder.close()
    assert background.worker_pid(db) is None  # the kernel let go of the lock
    with Archive.open(db) as a:
        assert {d.session_id for d in a.summaries_due()} == {1, 2} and a.summaries() == []
    r = run_cli("summarize", "--now", "--db", str(db), "--backend", "embedded", "--llm-model", "qwen2.5-coder-1.5b")
    assert r.returncode == 0, r.stderr
    with Archive.open(db) as a:
        assert a.summaries_due() == []
        rows = a.execute("SELECT session_id, count(*) FROM summaries GROUP BY ALL ORDER BY 1").fetchall()
    assert rows == [(1, 1), (2, 1)]


def test_a_model_that_cannot_load_leaves_the_queue_and_doctor_says_why(tmp_path):
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        _entry(a, "The garden and the rain again, and a letter from an old friend.")
    r = run_cli("summarize", "--worker", "--db", str(db), "--backend", "embedded",
                "--llm-model", str(tmp_path / "missing.gguf"), input="\n", timeout=120)
    assert r.returncode == 1
    state = background.last_state(db)
    assert state.state == "stopped" and "could not load" in state.error
    with Archive.open(db) as a:
        assert len(a.summaries_due()) == 1 and a.summaries() == []
    doctor = run_cli("doctor", "--db", str(db))
    assert "1 pending" in doctor.stdout and "could not load" in " ".join(doctor.stdout.split())


def test_a_command_that_waits_for_the_journal_says_for_whom(tmp_path):
    db = tmp_path / "j.duckdb"
    holder = Archive.open(db)  # holds the file, as a long write would
    try:
        _entry(holder, "A note to hold the journal with.")
        child = subprocess.Popen([sys.executable, "-m", "voice_journal", "list", "--db", str(db)], cwd=ROOT,
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                 env={**os.environ, "COLUMNS": "300"})
        said = child.stderr.readline()  # blocks until it says something: it waits for us
        assert "busy" in said and f"process {os.getpid()}" in said, said
    finally:
        holder.close()
    out, _ = child.communicate(timeout=60)
    assert child.returncode == 0 and "typed" in out
