"""Delete means gone everywhere, and no rewrite of the file loses another process's write."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

from conftest import ROOT, run_cli
from voice_journal.store import archive as archive_mod
from voice_journal.store import rewrite
from voice_journal.store.archive import Archive, TurnRecord

SECRET = "zephyrine"  # a word that appears nowhere else, so its bytes can be looked for in the file


def _session(a: Archive, *turns: tuple[str, str], recalled=()) -> int:
    sid = a.begin_session(source="microphone")
    for i, (role, text) in enumerate(turns):
        a.add_turn(TurnRecord(sid, i, role, text, recalled=recalled if role == "assistant" else ()))
    a.end_session(sid)
    return sid


def test_deleting_a_session_another_session_recalled_removes_its_words_there_too(tmp_path):
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        old = _session(a, ("user", f"My grandmother kept a lighthouse called {SECRET} on the cliffs."))
        (at,) = [t.at for t in a.turns(old)]
        later = _session(a, ("user", "I keep thinking about the sea and my family."),
                         ("assistant", "The sea, and your family with it."),
                         recalled=({"session": old, "turn": 0, "at": at.isoformat(), "text": "copied words",
                                    "score": 0.71},))
        shown = a.turns(later)[1].recalled
        # Read back from the turn itself, not from a copy kept with the reply.
        assert [(r["session"], r["turn"], r["text"]) for r in shown] == [(old, 0, a.turns(old)[0].text)]
        stored = a.execute("SELECT recalled FROM turn_memory").fetchone()[0]
        assert SECRET not in stored and "copied words" not in stored
    r = run_cli("delete", str(old), "--yes", "--db", str(db))
    assert r.returncode == 0, r.stderr
    shown = json.loads(run_cli("show", str(later), "--json", "--db", str(db)).stdout)
    assert all(t["recalled"] == [] for t in shown["turns"])
    out = tmp_path / "export"
    assert run_cli("export", str(out), "--format", "json", "--db", str(db)).returncode == 0
    assert SECRET not in "".join(p.read_text() for p in out.rglob("*") if p.is_file())
    assert SECRET.encode() not in db.read_bytes()  # not in the file's free pages either


def test_a_write_racing_a_compaction_from_a_second_process_is_kept(tmp_path, monkeypatch):
    """The writer starts in the very moment the compaction has let go of the old file."""
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        sid = _session(a, ("user", "The first turn, before the rewrite."))
    writer = textwrap.dedent(f"""
        import sys
        from voice_journal.store.archive import Archive, TurnRecord
        print("opening", flush=True)
        with Archive.open({str(db)!r}) as a:
            a.add_turn(TurnRecord({sid}, 5, "user", "Written while the file was being rewritten."))
        print("committed", flush=True)
    """)
    replace = os.replace
    seen: dict = {}

    def replace_after_a_rival(src, dst):
        child = subprocess.Popen([sys.executable, "-c", writer], stdout=subprocess.PIPE, text=True, cwd=ROOT)
        assert child.stdout.readline().strip() == "opening"
        try:  # without the gate it commits into the old file now, and the replace throws that away
            seen["early"] = child.wait(timeout=3) == 0
        except subprocess.TimeoutExpired:
            seen["early"] = False  # it waits for the gate, as it should
        replace(src, dst)
        seen["child"] = child

    monkeypatch.setattr(rewrite.os, "replace", replace_after_a_rival)
    with Archive.open(db) as a:
        a.compact()
    monkeypatch.setattr(rewrite.os, "replace", replace)
    child = seen["child"]
    assert child.wait(timeout=60) == 0 and not seen["early"]
    with Archive.open(db) as a:
        assert [t.idx for t in a.turns(sid)] == [0, 5]


def test_a_symlinked_journal_is_rewritten_behind_the_link(tmp_path):
    real_dir, link_dir = tmp_path / "private", tmp_path / "home"
    real_dir.mkdir(mode=0o700)
    link_dir.mkdir()
    real = real_dir / "journal.duckdb"
    link = link_dir / "journal.duckdb"
    with Archive.open(real) as a:
        keep = _session(a, ("user", "A quiet morning with coffee and the radio."))
        gone = _session(a, ("user", f"Something about {SECRET} I want gone."))
    link.symlink_to(real)
    r = run_cli("delete", str(gone), "--yes", "--db", str(link))
    assert r.returncode == 0, r.stderr
    assert link.is_symlink() and link.resolve() == real
    assert SECRET.encode() not in real.read_bytes()
    assert not list(link_dir.glob("journal.duckdb.*"))  # no WAL or leftover beside the link
    with Archive.open(link) as a:
        assert [s.id for s in a.sessions()] == [keep]


def test_spill_files_live_in_the_journals_private_folder(tmp_path):
    for key in (None, "a passphrase"):
        db = tmp_path / ("enc.duckdb" if key else "plain.duckdb")
        with Archive.open(db, key=key) as a:
            spill = a.execute("SELECT current_setting('temp_directory')").fetchone()[0]
        assert spill == str(archive_mod.spill_dir(db)) and os.path.dirname(spill) == str(tmp_path)
        assert (os.stat(spill).st_mode & 0o777) == 0o700
