"""The app layer: what the CLI and the web page both call, as plain functions on a real journal file."""

from __future__ import annotations

import datetime as dt
import json

import numpy as np
import pytest

from voice_journal import app, config
from voice_journal.audio import pcm
from voice_journal.errors import InputError
from voice_journal.session.recorder import Recorder
from voice_journal.session.timings import HeardTimings, ReplyTimings
from voice_journal.speech.stt import Transcript


def _settings(tmp_path, **overrides):
    return config.load(db=tmp_path / "journal" / "j.duckdb", summaries=False, **overrides)


def _session(journal, said: list[str]) -> int:
    """A small spoken session: each turn with its audio, the person at 16 kHz and the voice at 22.05 kHz."""
    sid = journal.begin_session(mode="free", source="test", models={"llm": "test"})
    rec = Recorder(journal, sid)
    for i, text in enumerate(said):
        clip = pcm.Clip((np.sin(np.arange(8000) / 7) * 3000).astype(np.int16))
        rec.user(clip, Transcript(text, "en", 0.98, (), clip.duration, 0.2), i * 2.0, i * 2.0 + 0.5, timings=HeardTimings(),
                 engine="whisper-test")
        rec.companion(f"You said {text.lower()}", np.full(2205, 100, np.int16), 22050,
                      timings=ReplyTimings(end_to_first_audio_s=0.7), model="test")
    journal.end_session(sid, status="complete")
    return sid


def test_sessions_and_one_session_as_values_and_as_json(tmp_path):
    settings = _settings(tmp_path)
    with app.open_journal(settings) as journal:
        first = _session(journal, ["The garden was quiet."])
        second = _session(journal, ["I walked to the river.", "The water was high."])
    with app.open_journal(settings, read_only=True) as journal:
        listing = app.sessions(journal)
        view = app.session_view(journal, second)
    assert [r.id for r in listing.rows] == [second, first]  # newest first
    rows = json.loads(json.dumps(listing.to_dicts()))
    assert rows[0]["session"] == second and rows[0]["turns"] == 2 and rows[0]["started"].endswith("Z")
    shown = json.loads(json.dumps(view.to_dict()))
    assert [t["role"] for t in shown["turns"]] == ["user", "assistant", "user", "assistant"]
    assert shown["turns"][2]["text"] == "The water was high."
    assert shown["turns"][1]["timings"] == {"end_to_first_audio_s": 0.7}
    assert shown["summary"] is None and shown["models"] == {"llm": "test"}


def test_recordings_of_a_turn_and_of_a_session_joined_at_one_rate(tmp_path):
    settings = _settings(tmp_path)
    with app.open_journal(settings) as journal:
        sid = _session(journal, ["The garden was quiet."])
        [mine] = app.recordings(journal, sid, 0)
        both = app.recordings(journal, sid)
        with pytest.raises(InputError, match="no turn 7"):
            app.recordings(journal, sid, 7)
    assert (mine.rate, len(mine.samples)) == (16000, 8000)
    joined = app.one_recording(both, gap_s=0.4)
    # 0.5 s of the person resampled to 22.05 kHz, 0.1 s of the voice, a 0.4 s gap after each.
    assert joined.rate == 22050
    assert len(joined.samples) == pytest.approx(0.5 * 22050 + 0.1 * 22050 + 2 * 0.4 * 22050, abs=4)


def test_delete_a_turn_then_a_session(tmp_path):
    settings = _settings(tmp_path)
    with app.open_journal(settings) as journal:
        sid = _session(journal, ["The garden was quiet.", "My knee hurts."])
        assert app.describe(journal, sid, 2) == f"turn 2 of session {sid}"
        assert app.describe(journal, sid).startswith(f"session {sid} (")
        assert app.delete(journal, sid, 2) == 1
        assert [t.text for t in journal.turns(sid)][2:] == ["You said my knee hurts."]
        assert app.delete(journal, sid) == 3
        assert app.sessions(journal).rows == []
        with pytest.raises(InputError, match=f"no session {sid}"):
            app.session_view(journal, sid)


def test_what_people_type_is_checked_with_one_line_errors():
    assert app.parse_ref("12") == (12, None)
    assert app.parse_ref("12:3") == (12, 3)
    for bad, word in [("twelve", "session number"), ("12:x", "turn number"), ("", "session number")]:
        with pytest.raises(InputError, match=word):
            app.parse_ref(bad)
    when = app.parse_when("2026-11-22T08:30+01:00", "--since")
    assert when == dt.datetime(2026, 11, 22, 7, 30)  # naive UTC, as the journal stores time
    with pytest.raises(InputError, match="--since 'last tuesday' is not a date"):
        app.parse_when("last tuesday", "--since")


def test_search_arguments_are_checked_before_any_model_loads(tmp_path):
    settings = _settings(tmp_path)
    with app.open_journal(settings) as journal:
        _session(journal, ["The garden was quiet."])
        with pytest.raises(InputError, match="--role"):
            app.search(journal, "garden", role="everyone")
        with pytest.raises(InputError, match="unknown search method"):
            app.search(journal, "garden", method="guess")
        with pytest.raises(InputError):
            app.search(journal, "", method="bm25")
        [hit] = app.search(journal, "garden", method="bm25", role="user")
        both = app.search(journal, "garden", method="bm25")
    assert (hit.session_id, hit.idx, hit.role) == (1, 0, "user")
    assert {h.role for h in both} == {"user", "assistant"}
    assert app.hit_dict(hit)["text"] == "The garden was quiet."


def test_an_encrypted_journal_asks_once_and_never_without_a_way_to_ask(tmp_path, monkeypatch):
    monkeypatch.delenv("VOICE_JOURNAL_PASSPHRASE", raising=False)
    monkeypatch.setattr(app, "_KNOWN", {})
    settings = _settings(tmp_path, encrypt=True)
    asked = []

    def ask(path, confirm):
        asked.append(confirm)
        return "correct horse battery staple"

    assert app.init_journal(settings, encrypt=True, ask=ask) == "created encrypted"
    assert asked == [True]  # a new passphrase is asked for with its confirmation
    with app.open_journal(settings, ask=ask) as journal:  # known in this process now: not asked again
        _session(journal, ["The garden was quiet."])
    assert asked == [True]
    monkeypatch.setattr(app, "_KNOWN", {})
    with pytest.raises(InputError, match="encrypted"):
        app.open_journal(settings, read_only=True)  # no way to ask: one line, nothing opened
    with app.open_journal(settings, read_only=True, ask=ask) as journal:
        assert len(app.sessions(journal).rows) == 1
    assert asked == [True, False]
