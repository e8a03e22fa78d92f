"""Typed entries, imported memos, exports and deletion, through the CLI."""

import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import DEMO, LIBRIVOX, ROOT, run_cli
from voice_journal.audio import pcm
from voice_journal.store.archive import Archive

FAST = {"VOICE_JOURNAL_PROFILE": "fast"}


@pytest.fixture(scope="module")
def journal(tmp_path_factory):
    d = tmp_path_factory.mktemp("journal")
    db = d / "j.duckdb"
    assert run_cli("write", "Walked the dog at dawn; the fog over the fields felt like a fresh start.",
                   "--at", "2026-03-01T07:15", "--db", str(db)).returncode == 0
    r = run_cli("write", "--db", str(db), input="Zażółć gęślą jaźń — café naïve 日本 🌱 \u200b odd unicode is kept\n")
    assert r.returncode == 0, r.stderr
    r = run_cli("import", str(DEMO), str(LIBRIVOX / "0880.flac"), "--at", "2026-02-10T20:00", "--db", str(db), env=FAST)
    assert r.returncode == 0, r.stderr
    return db


def test_typed_entries_are_archived_and_searchable(journal):
    with Archive.open(journal, read_only=True) as a:
        typed = [s for s in a.sessions() if s.source == "typed"]
        assert len(typed) == 2
        first = a.turns(min(s.id for s in typed))[0]
        assert first.role == "user" and first.audio_flac is None and "fog" in first.text
        assert first.at.isoformat().startswith("2026-03-01")  # local 07:15 in UTC; this machine is UTC
    hits = json.loads(run_cli("search", "morning walk with my pet", "--db", str(journal), "--json").stdout)
    assert "fog" in hits[0]["text"]
    hits = json.loads(run_cli("search", "café", "--db", str(journal), "--json").stdout)
    assert "Zażółć" in hits[0]["text"] and "\u200b" not in hits[0]["text"]


@pytest.mark.parametrize("args,stdin,message", [
    ([""], None, "the entry is empty"),
    (["   \n\t "], None, "the entry is empty"),
    ([], "", "the entry is empty"),
    (["hello", "--at", "next tuesday"], None, "not a date"),
])
def test_bad_typed_entries(tmp_path, args, stdin, message):
    r = run_cli("write", *args, "--db", str(tmp_path / "j.duckdb"), input=stdin)
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr


def test_imported_memos_become_dated_sessions(journal):
    with Archive.open(journal, read_only=True) as a:
        imported = sorted((s for s in a.sessions() if (s.source or "").startswith("import:")), key=lambda s: s.id)
        assert [s.source for s in imported] == ["import:journal.flac", "import:0880.flac"]
        demo = imported[0]
        assert demo.status == "complete" and demo.user_turns == 4 and demo.started_at.isoformat().startswith("2026-02-10")
        turns = a.turns(demo.id, with_audio=True)
        assert all(t.role == "user" and t.audio_flac for t in turns)
        assert pcm.from_flac(turns[1].audio_flac).duration == pytest.approx(turns[1].duration_s, abs=0.05)
        assert (turns[1].at - demo.started_at).total_seconds() == pytest.approx(turns[1].start_s, abs=0.01)


def test_importing_the_same_memo_again_is_skipped(journal):
    r = run_cli("import", str(DEMO), "--db", str(journal), env=FAST)
    assert r.returncode == 0 and "skipped, already imported as session" in r.stdout


def test_import_bad_files_keeps_going(journal, tmp_path):
    bad = tmp_path / "bad.m4a"
    bad.write_bytes(b"not a memo")
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.zeros(16000 * 3, np.int16), 16000)
    before = len(json.loads(run_cli("list", "--db", str(journal), "--json").stdout))
    r = run_cli("import", str(bad), str(quiet), "--db", str(journal), env=FAST)
    assert r.returncode == 2 and "not a readable audio file" in r.stderr and "no speech found" in r.stdout
    assert len(json.loads(run_cli("list", "--db", str(journal), "--json").stdout)) == before


def test_sigkill_during_import_loses_no_committed_turn(tmp_path):
    db = tmp_path / "j.duckdb"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **FAST}
    p = subprocess.Popen([sys.executable, "-m", "voice_journal", "import", str(DEMO), "--db", str(db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    lines = 0
    for line in p.stdout:
        lines += 1
        if lines == 2:
            p.send_signal(signal.SIGKILL)
            break
    p.wait(timeout=60)
    with Archive.open(db) as a:
        (s,) = a.sessions()
        assert s.status == "open" and len(a.turns(s.id)) >= 2
    # Importing again finishes the job instead of skipping a half-imported memo.
    r = run_cli("import", str(DEMO), "--db", str(db), env=FAST)
    assert r.returncode == 0, r.stderr
    with Archive.open(db, read_only=True) as a:
        (s,) = a.sessions()
        assert s.status == "complete" and len(a.turns(s.id)) == 4


def test_export_markdown_with_audio(journal, tmp_path):
    out = tmp_path / "vault"
    r = run_cli("export", str(out), "--audio", "--db", str(journal))
    assert r.returncode == 0, r.stderr
    notes = sorted(out.glob("*.md"))
    assert len(notes) == 4
    demo = next(n for n in notes if "journal.flac" in n.read_text())
    text = demo.read_text()
    front, body = text.split("---\n")[1], text.split("---\n", 2)[2]
    assert "date: 2026-02-10T20:00" in front and 'mode: "free"' in front and "themes: []" in front
    assert body.count("**Me**") == 4 and "argument with my brother" in body
    embeds = [line[3:-2] for line in body.splitlines() if line.startswith("![[")]
    assert len(embeds) == 4 and all((out / e).exists() for e in embeds)
    assert sf.info(str(out / embeds[0])).format == "FLAC"


def test_export_json_has_everything(journal, tmp_path):
    r = run_cli("export", str(tmp_path), "--format", "json", "--db", str(journal))
    assert r.returncode == 0
    data = json.loads((tmp_path / "journal.json").read_text())
    assert len(data) == 4 and sum(len(s["turns"]) for s in data) == 7
    turn = next(s for s in data if s["source"] == "import:journal.flac")["turns"][0]
    assert {"turn", "role", "at", "text", "start", "end", "timings", "confidence", "language"} <= set(turn)
    r = run_cli("export", str(tmp_path / "x"), "--format", "pdf", "--db", str(journal))
    assert r.returncode == 2 and "unknown export format" in r.stderr


def test_delete_really_deletes(tmp_path):
    db = tmp_path / "j.duckdb"
    secret = "Quetzalcoatl-marmalade-47 is the thing I never told anyone"
    assert run_cli("write", "An entry that stays: gardening with Ana.", "--db", str(db)).returncode == 0
    assert run_cli("write", secret, "--db", str(db)).returncode == 0
    assert run_cli("import", str(LIBRIVOX / "0930.flac"), "--db", str(db), env=FAST).returncode == 0
    assert run_cli("reindex", "--db", str(db)).returncode == 0  # the secret's words are in the full-text index too
    with Archive.open(db) as a:
        audio = a.turns(3, with_audio=True)[0].audio_flac
        a.execute("CHECKPOINT")
    data = db.read_bytes()
    assert secret.encode() in data and audio[-2000:] in data  # the scan can see both while they exist
    assert data.lower().count(b"quetzalcoatl") > 1
    r = run_cli("delete", "2", "--db", str(db))  # no terminal to confirm at: refuse
    assert r.returncode == 2 and "--yes" in r.stderr
    assert run_cli("delete", "2", "--yes", "--db", str(db)).returncode == 0
    assert run_cli("delete", "3:0", "--yes", "--db", str(db)).returncode == 0
    data = db.read_bytes()
    assert secret.encode() not in data and audio[-2000:] not in data
    assert b"quetzalcoatl" not in data.lower()  # nor its word in the full-text index (stored lower case)
    assert not json.loads(run_cli("search", "Quetzalcoatl marmalade", "--db", str(db), "--json", "--method", "bm25").stdout)
    assert "gardening" in run_cli("search", "gardening", "--db", str(db)).stdout
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    r = run_cli("delete", "99", "--yes", "--db", str(db))
    assert r.returncode == 2 and "no session 99" in r.stderr
