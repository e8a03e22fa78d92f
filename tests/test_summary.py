"""Session summaries: the model's answer is checked, stored, shown, searched by insights, and written in the background."""

from __future__ import annotations

import json

import pytest

from conftest import run_cli
from voice_journal.companion.summary import SCHEMA, parse

SAID = ("Work was a lot today. My manager moved the deadline again and I stayed late to finish the report. "
        "I keep thinking about the argument with my brother last weekend, and I want to call him tomorrow.")


def test_a_good_answer_is_kept():
    s = parse('Sure! {"summary": "You talked about a long day at work and your brother.", '
              '"themes": ["Work", "brother", "the deadline"], "mood": 4}', SAID)
    assert s.themes == ("work", "brother", "deadline") and s.mood == 4.0 and s.summary.startswith("You talked")


@pytest.mark.parametrize("answer, why", [
    ("I'm sorry, as an AI I cannot do that.", "no JSON object"),
    ('{"summary": "You talked.", "themes": ["work"], "mood": 5}', "no summary"),
    ('{"summary": "You talked about your day at length.", "themes": ["sister", "the thing that makes"], '
     '"mood": 5}', "no themes"),  # invented, or a clipped sentence
    ('{"summary": "You talked about your day at length.", "themes": [], "mood": 5}', "no themes"),
    ('{"summary": "You talked about', "no JSON object"),
])
def test_a_bad_answer_says_what_is_wrong(answer, why):
    with pytest.raises(ValueError, match=why):
        parse(answer, SAID)


def test_an_odd_mood_is_dropped_not_trusted():
    for mood in ("11", "0", "true", '"very low"', "null"):
        s = parse('{"summary": "You talked about work and your brother today.", "themes": ["work"], '
                  f'"mood": {mood}}}', SAID)
        assert s.mood is None, mood
    assert parse('{"summary": "You talked about work and your brother.", "themes": "work, brother", '
                 '"mood": "6/10"}', SAID).mood == 6.0


def test_the_schema_is_what_parse_expects():
    assert set(SCHEMA["required"]) == {"summary", "themes", "mood"}


def test_the_default_model_summarises_a_real_journal_and_insights_use_it(tmp_path):
    """The real default model (Qwen2.5-Coder-1.5B, as `make demo` uses): a summary that parse() accepts."""
    db = tmp_path / "j.duckdb"
    r = run_cli("write", SAID, "--db", str(db), "--at", "2026-11-20T20:00")
    assert r.returncode == 0, r.stderr
    r = run_cli("summarize", "--db", str(db), "--backend", "embedded")
    assert r.returncode == 0, r.stderr
    shown = json.loads(run_cli("show", "1", "--json", "--db", str(db)).stdout)
    summary = shown["summary"]
    assert summary and 1 <= len(summary["themes"]) <= 5 and len(summary["text"].split()) >= 4
    assert summary["mood"] is None or 1 <= summary["mood"] <= 10
    assert any(w in " ".join(summary["themes"]) for w in ("work", "brother", "deadline", "argument", "report"))
    insights = json.loads(run_cli("insights", "--json", "--db", str(db)).stdout)
    assert {t["theme"] for t in insights["themes"]} == set(summary["themes"])
    # Summaries are searchable: by meaning, beside the turns, and alone with --role summary.
    theme = summary["themes"][0]
    found = json.loads(run_cli("search", theme, "--json", "--db", str(db)).stdout)
    assert "summary" in {h["role"] for h in found}
    about = json.loads(run_cli("search", theme, "--role", "summary", "--json", "--db", str(db)).stdout)
    assert [(h["session"], h["turn"], h["role"]) for h in about] == [(1, None, "summary")]
    for odd in ("'; DROP TABLE summaries; --", "\"unbalanced", "ÄÖÜ 😀", "work OR 1=1"):
        assert run_cli("search", odd, "--role", "summary", "--db", str(db)).returncode == 0
    again = run_cli("summarize", "--db", str(db), "--backend", "embedded")
    assert again.returncode == 0 and "Nothing to summarise" in again.stdout  # done once, not again
    assert run_cli("summarize", "99", "--db", str(db)).returncode == 2


# That an entry is summarised in the background by the default model, without the entry waiting
# for it, is tests/test_background.py::test_writes_in_a_row_load_the_model_in_one_summariser_and_every_entry_is_summarised.


def test_a_gentle_note_at_the_start_when_sessions_pile_up(tmp_path):
    """A session from a recording, after two entries earlier today: the note is shown, and the session goes on.

    With the setting off there is no note (tests/test_insights.py); the entries are
    written here directly, as `write` does (its own tests are tests/test_journal.py's).
    """
    import datetime as dt

    from conftest import LIBRIVOX
    from voice_journal.companion.rumination import MANY_TODAY
    from voice_journal.store.archive import Archive, TurnRecord

    db = tmp_path / "j.duckdb"
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)  # the journal keeps naive UTC
    with Archive.open(db) as a:
        for minutes in (50, 20):  # two entries already today
            at = max(now - dt.timedelta(minutes=minutes), now.replace(hour=0, minute=0, second=1))
            sid = a.begin_session(source="typed", started_at=at)
            a.add_turn(TurnRecord(sid, 0, "user", "Still going round in circles about it.", at=at))
            a.end_session(sid, ended_at=at)
    r = run_cli("session", "--input", str(LIBRIVOX / "0870.flac"), "--fast", "--db", str(db),
                env={"VOICE_JOURNAL_GENTLE_NOTES": "true", "COLUMNS": "400"})
    assert r.returncode == 0, r.stderr
    assert MANY_TODAY[:40] in " ".join(r.stderr.split())  # a note, and the session went on