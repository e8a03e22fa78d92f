"""Encryption at rest: no plaintext in the file or its WAL; clear errors for a missing or wrong passphrase."""

import json
import subprocess
import sys

from conftest import run_cli
from voice_journal.store.archive import Archive, TurnRecord

KEY = {"VOICE_JOURNAL_PASSPHRASE": "correct horse battery staple"}
SECRET = "Quixotic-Lampshade-Secret about my brother"


def _no_plaintext(*paths):
    for p in paths:
        if p.exists():
            data = p.read_bytes()
            assert b"Quixotic" not in data and b"Lampshade" not in data, p


def test_a_new_encrypted_journal(tmp_path):
    db = tmp_path / "j.duckdb"
    r = run_cli("init", "--encrypt", "--db", str(db), env=KEY)
    assert r.returncode == 0, r.stderr
    assert run_cli("write", SECRET, "--db", str(db), env=KEY).returncode == 0
    _no_plaintext(db, db.with_name("j.duckdb.wal"))
    hits = json.loads(run_cli("search", "brother", "--db", str(db), "--json", env=KEY).stdout)
    assert hits and hits[0]["text"] == SECRET
    assert oct(db.stat().st_mode & 0o777) == "0o600"


def test_missing_and_wrong_passphrases_are_one_line_errors(tmp_path):
    db = tmp_path / "j.duckdb"
    assert run_cli("init", "--encrypt", "--db", str(db), env=KEY).returncode == 0
    assert run_cli("write", SECRET, "--db", str(db), env=KEY).returncode == 0
    before = db.read_bytes()
    r = run_cli("list", "--db", str(db), env={"VOICE_JOURNAL_PASSPHRASE": ""})
    assert r.returncode == 2 and "is encrypted" in r.stderr and "VOICE_JOURNAL_PASSPHRASE" in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    for command in (["list"], ["search", "brother"], ["write", "more"]):
        r = run_cli(*command, "--db", str(db), env={"VOICE_JOURNAL_PASSPHRASE": "wrong"})
        assert r.returncode == 6 and "wrong passphrase" in r.stderr and "Traceback" not in r.stderr
    assert db.read_bytes() == before
    r = run_cli("init", "--encrypt", "--db", str(db), env=KEY)
    assert r.returncode == 2 and "already encrypted" in r.stderr


def test_a_plain_journal_is_encrypted_in_place(tmp_path):
    db = tmp_path / "j.duckdb"
    assert run_cli("write", SECRET, "--db", str(db)).returncode == 0
    with Archive.open(db) as a:
        a.execute("CHECKPOINT")
    assert b"Quixotic" in db.read_bytes()  # the scan can see it while it is plain
    r = run_cli("init", "--encrypt", "--db", str(db), env=KEY)
    assert r.returncode == 0, r.stderr
    _no_plaintext(db, db.with_name("j.duckdb.wal"))
    r = run_cli("show", "1", "--db", str(db), env=KEY)
    assert r.returncode == 0 and "Quixotic" in r.stdout
    assert json.loads(run_cli("search", "lampshade", "--db", str(db), "--json", env=KEY).stdout)


def test_the_wal_is_encrypted_and_replays_after_a_crash(tmp_path):
    db = tmp_path / "j.duckdb"
    key = KEY["VOICE_JOURNAL_PASSPHRASE"]
    Archive.open(db, key=key).close()
    code = (
        "import os, sys\n"
        "from voice_journal.store.archive import Archive, TurnRecord\n"
        "a = Archive.open(sys.argv[1], key=sys.argv[2])\n"
        "sid = a.begin_session()\n"
        f"a.add_turn(TurnRecord(sid, 0, 'user', {SECRET!r}))\n"
        "os.kill(os.getpid(), 9)\n"
    )
    assert subprocess.run([sys.executable, "-c", code, str(db), key]).returncode == -9
    wal = db.with_name("j.duckdb.wal")
    assert wal.exists() and wal.stat().st_size > 0
    _no_plaintext(db, wal)
    with Archive.open(db, key=key) as a:
        assert a.turns(1)[0].text == SECRET
    a = Archive.open(db, key=key)
    a.add_turn(TurnRecord(1, 1, "user", "after the crash"))
    a.close()
