"""The DuckDB archive: private files, one commit per turn, safe search, clear errors."""

import stat
import subprocess
import sys

import numpy as np
import pytest

from voice_journal.audio import pcm
from voice_journal.errors import StoreError
from voice_journal.store.archive import MIGRATIONS, SCHEMA_VERSION, Archive, TurnRecord


def _fill(a: Archive) -> int:
    sid = a.begin_session(source="file:test.wav", models={"stt": "whisper-tiny.en"})
    texts = ["I had a fight with my brother about Mum's care.",
             "That sounds painful. What stayed with you?",
             "100% of the planning falls on me_again; he says \"later\" 😔",
             "Je suis fatiguée, naïve café — 日本語も少し"]
    for i, text in enumerate(texts):
        a.add_turn(TurnRecord(sid, i, "user" if i % 2 == 0 else "assistant", text,
                              audio_flac=pcm.to_flac(pcm.Clip(np.zeros(8000, np.int16))) if i % 2 == 0 else None,
                              sample_rate=16000, timings={"stt_s": 0.5}))
    a.end_session(sid, language="en")
    return sid


def test_journal_is_created_user_only(tmp_path):
    path = tmp_path / "private" / "deeper" / "journal.duckdb"
    with Archive.open(path) as a:
        _fill(a)
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    for extra in path.parent.iterdir():
        assert stat.S_IMODE(extra.stat().st_mode) & 0o077 == 0, extra


def test_schema_is_versioned_and_migrations_run_once(tmp_path):
    path = tmp_path / "j.duckdb"
    with Archive.open(path) as a:
        assert a.version() == SCHEMA_VERSION
    with Archive.open(path) as a:
        assert a.execute("SELECT count(*) FROM schema_version").fetchone()[0] == SCHEMA_VERSION


def test_a_newer_journal_is_refused_not_damaged(tmp_path):
    path = tmp_path / "j.duckdb"
    with Archive.open(path) as a:
        _fill(a)
        a.execute("INSERT INTO schema_version VALUES (99, now())")
    before = path.read_bytes()
    with pytest.raises(StoreError, match="newer voice-journal"):
        Archive.open(path)
    assert path.read_bytes() == before


def test_turns_round_trip_with_audio_and_timings(tmp_path):
    with Archive.open(tmp_path / "j.duckdb") as a:
        sid = _fill(a)
        turns = a.turns(sid, with_audio=True)
        sessions = a.sessions()
    assert [t.idx for t in turns] == [0, 1, 2, 3]
    assert pcm.from_flac(turns[0].audio_flac).duration == pytest.approx(0.5)
    assert turns[0].timings == {"stt_s": 0.5}
    assert sessions[0].user_turns == 2 and sessions[0].status == "complete" and sessions[0].language == "en"


def test_reading_a_journal_that_does_not_exist_says_so(tmp_path):
    with pytest.raises(StoreError, match="no journal"):
        Archive.open(tmp_path / "nope.duckdb", read_only=True)
    assert not (tmp_path / "nope.duckdb").exists()


@pytest.mark.parametrize("where", ["under a file", "in /proc", "a directory"])
def test_unusable_paths_give_store_errors(tmp_path, where):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    path = {"under a file": blocker / "j.duckdb", "in /proc": "/proc/voice-journal/j.duckdb",
            "a directory": tmp_path}[where]
    with pytest.raises(StoreError) as e:
        Archive.open(path)
    assert "\n" not in str(e.value)


def test_a_journal_held_by_another_process_gives_a_clear_error(tmp_path):
    path = tmp_path / "j.duckdb"
    with Archive.open(path) as a:
        _fill(a)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('held', flush=True);"
         " time.sleep(30)", str(path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        with pytest.raises(StoreError, match="in use by another"):
            Archive.open(path, read_only=True, lock_timeout=0.5)
    finally:
        holder.kill()
        holder.wait()
    with Archive.open(path, read_only=True) as a:
        assert len(a.turns(1)) == 4


def test_kill_9_keeps_every_committed_turn(tmp_path):
    path = tmp_path / "j.duckdb"
    code = (
        "import os, sys\n"
        "from voice_journal.store.archive import Archive, TurnRecord\n"
        "a = Archive.open(sys.argv[1])\n"
        "sid = a.begin_session()\n"
        "for i in range(3):\n"
        "    a.add_turn(TurnRecord(sid, i, 'user', f'turn {i}'))\n"
        "a._con.begin()\n"
        "a._con.execute(\"INSERT INTO turns (uid, session_id, idx, role, recorded_at, text) VALUES (1000003, 1, 3, 'user', now(), 'never committed')\")\n"
        "os.kill(os.getpid(), 9)\n"
    )
    p = subprocess.run([sys.executable, "-c", code, str(path)])
    assert p.returncode == -9
    with Archive.open(path) as a:
        assert [t.text for t in a.turns(1)] == ["turn 0", "turn 1", "turn 2"]
        assert a.sessions()[0].status == "open"  # shown as unfinished


def test_a_version_1_journal_is_upgraded_in_place(tmp_path):
    import duckdb

    path = tmp_path / "old.duckdb"
    con = duckdb.connect(str(path))
    con.execute(MIGRATIONS[0])
    con.execute("INSERT INTO schema_version VALUES (1, now())")
    con.execute("INSERT INTO sessions (started_at, mode) VALUES ('2025-01-02 08:00:00', 'free')")
    con.execute("INSERT INTO turns (session_id, idx, role, recorded_at, text, audio) VALUES "
                "(1, 0, 'user', '2025-01-02 08:00:05', 'an old entry', 'flac'::BLOB),"
                "(1, 1, 'assistant', '2025-01-02 08:00:09', 'an old reply', NULL)")
    con.close()
    with Archive.open(path) as a:
        assert a.version() == SCHEMA_VERSION
        turns = a.turns(1, with_audio=True)
        assert [(t.idx, t.text) for t in turns] == [(0, "an old entry"), (1, "an old reply")]
        assert turns[0].audio_flac == b"flac"
        assert a.execute("SELECT uid FROM turns ORDER BY idx").fetchall() == [(1_000_000,), (1_000_001,)]
        # The rebuilt table keeps its constraints.
        with pytest.raises(StoreError):
            a.add_turn(TurnRecord(1, 0, "user", "a duplicate index"))


def test_a_version_6_journal_keeps_its_sketches_as_int8(tmp_path):
    """v7 turns each float sketch into the int8 one a new turn would get: no re-embedding needed."""
    import duckdb
    import numpy as np

    from voice_journal.store import search
    from voice_journal.store.embedding import project, sketch

    rng = np.random.default_rng(3)
    vecs = rng.normal(size=(3, 384)).astype(np.float32)
    vecs /= np.linalg.norm(vecs, axis=1, keepdims=True)
    path = tmp_path / "v6.duckdb"
    con = duckdb.connect(str(path))
    for v, m in enumerate(MIGRATIONS[:6], start=1):
        con.execute(m)
        con.execute("INSERT INTO schema_version VALUES (?, now())", [v])
    con.execute("INSERT INTO sessions (started_at) VALUES ('2025-01-02 08:00:00')")
    for i, v in enumerate(vecs):
        con.execute("INSERT INTO turns (uid, session_id, idx, role, recorded_at, text, embedding, coarse) "
                    "VALUES (?, 1, ?, 'user', now(), ?, ?::FLOAT[384], ?::FLOAT[96])",
                    [1_000_000 + i, i, f"entry {i}", v.tolist(), project(v).tolist()])
    con.close()
    with Archive.open(path) as a:
        assert a.version() == SCHEMA_VERSION
        stored = np.array([r[0] for r in a.execute("SELECT sketch FROM turns ORDER BY idx").fetchall()])
        assert np.abs(stored - sketch(vecs).astype(int)).max() <= 1  # SQL rounds halves away from zero
        assert [u for u, _ in search.vector(a, vecs[2], limit=1)] == [1_000_002]


def test_searching_while_another_process_records(tmp_path):
    """One process archives turns as a session does; this one searches after each turn is committed."""
    from voice_journal.store import search

    path = tmp_path / "j.duckdb"
    Archive.open(path).close()
    # The writer starts writing when this process is ready to read, and this process reads
    # until the writer is done: they overlap by construction, however busy the machine.
    writer = subprocess.Popen([sys.executable, "-c", (
        "import sys, time\n"
        "from voice_journal.store.archive import Archive, TurnRecord\n"
        "a = Archive.open(sys.argv[1])\n"
        "sid = a.begin_session()\n"
        "a.release()\n"
        "print('ready', flush=True)\n"
        "sys.stdin.readline()\n"
        "for i in range(12):\n"
        "    tag = 'zork' + ''.join(chr(97 + int(d)) for d in str(i)) + 'x'  # the tokenizer drops digits\n"
        "    a.add_turn(TurnRecord(sid, i, 'user', f'entry {tag} about marmalade'))\n"
        "    a.release()\n"
        "    print(i, flush=True)\n"
        "    time.sleep(0.03)\n"
        "a.end_session(sid)\n"
        "a.close()\n"), str(path)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert writer.stdout.readline().strip() == "ready", writer.stderr.read()
    writer.stdin.write("go\n")
    writer.stdin.flush()
    seen, said = [], []
    for line in writer.stdout:  # after each turn the writer committed, a search here
        said.append(line.strip())
        with Archive.open(path, read_only=True) as a:
            seen.append(len(search.bm25(a, "marmalade", limit=100)))
    out, err = writer.communicate(timeout=120)
    assert writer.returncode == 0, err
    assert said == [str(i) for i in range(12)]
    # The reader saw the journal grow, never shrink, and every turn committed before it looked.
    assert seen == sorted(seen) and all(n >= i + 1 for i, n in enumerate(seen)) and seen[-1] == 12
    with Archive.open(path, read_only=True) as a:
        for i in range(12):  # every committed turn is found
            hits = search.bm25(a, "zork" + "".join(chr(97 + int(d)) for d in str(i)) + "x")
            assert hits and hits[0][0] == 1_000_000 + i


def test_a_crash_right_after_the_migrations_replays_cleanly(tmp_path):
    """Every migration must survive WAL replay (DuckDB cannot replay some DDL, e.g.
    ADD COLUMN on a table with a nextval() default: the journal would not open)."""
    path = tmp_path / "j.duckdb"
    code = (
        "import duckdb, os, sys\n"
        "from voice_journal.store.archive import MIGRATIONS\n"
        "c = duckdb.connect(sys.argv[1])\n"
        "for i, m in enumerate(MIGRATIONS):\n"
        "    c.begin(); c.execute(m); c.execute('INSERT INTO schema_version VALUES (?, now())', [i + 1]); c.commit()\n"
        "c.execute(\"INSERT INTO sessions (started_at) VALUES (now())\")\n"
        "os.kill(os.getpid(), 9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code, str(path)]).returncode == -9
    assert (tmp_path / "j.duckdb.wal").exists()  # nothing was checkpointed: all of it is replayed
    with Archive.open(path) as a:
        assert a.version() == SCHEMA_VERSION and len(a.sessions()) == 1


@pytest.mark.parametrize("error", ["InterruptException", "RuntimeError"])
def test_ctrl_c_inside_a_statement_is_a_keyboard_interrupt_and_keeps_nothing_of_it(tmp_path, error):
    """DuckDB takes SIGINT itself while a statement runs and raises its own error; the session's
    Ctrl-C handling (keep what was said, say goodbye) must see a KeyboardInterrupt."""
    import duckdb

    exc = duckdb.InterruptException("INTERRUPT Error: Interrupted!") if error == "InterruptException" \
        else RuntimeError("Query interrupted")
    with Archive.open(tmp_path / "j.duckdb") as a:
        sid = a.begin_session()
        with pytest.raises(KeyboardInterrupt):
            with a.transaction():
                a.execute("INSERT INTO turns (uid, session_id, idx, role, recorded_at, text) "
                          "VALUES (?, ?, 0, 'user', now(), 'half written')", [sid * 1_000_000, sid])
                raise exc
        assert a.turns(sid) == []
        a.add_turn(TurnRecord(sid, 0, "user", "written whole"))  # the journal goes on
        assert [t.text for t in a.turns(sid)] == ["written whole"]


def test_a_reader_in_the_same_process_waits_for_the_writer_to_let_go(tmp_path):
    # The web server reads for the page while a session it serves writes turns: DuckDB refuses a
    # second connection of another kind in one process; the reader waits as for another process.
    import threading

    from voice_journal import app, config

    settings = config.load(db=tmp_path / "j.duckdb")
    writer = app.open_journal(settings)
    writer.begin_session(mode="free", source="test", models={})  # holds its connection
    t = threading.Timer(0.2, writer.release)  # a turn's commit, then release(), as a session does
    t.start()
    with app.open_journal(settings, read_only=True) as reader:  # however late the release comes
        assert len(reader.sessions(5)) == 1
    t.join()
    writer.close()
