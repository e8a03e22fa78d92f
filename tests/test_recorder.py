"""The recorder: the one place a session's turns become records, committed as each completes."""

from __future__ import annotations

import datetime as dt

import numpy as np

from voice_journal.audio import pcm
from voice_journal.companion.safety import Assessment
from voice_journal.session.recorder import Recorder
from voice_journal.session.timings import HeardTimings, ReplyTimings
from voice_journal.speech.stt import Transcript
from voice_journal.store.archive import Archive


def _heard(text: str) -> tuple[pcm.Clip, Transcript]:
    clip = pcm.Clip((np.sin(np.arange(8000) / 7) * 3000).astype(np.int16))  # half a second
    return clip, Transcript(text, "en", 0.98, (), clip.duration, 0.21)


class _Vectors:
    """An embedder stand-in: one unit vector a text, by its length (the recorder only stores it)."""

    def embed(self, texts: list[str]) -> np.ndarray:
        v = np.zeros((len(texts), 384), np.float32)
        v[np.arange(len(texts)), [len(t) % 384 for t in texts]] = 1.0
        return v


def test_turns_are_numbered_and_committed_as_they_are_recorded(tmp_path):
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as journal:
        sid = journal.begin_session(mode="free", source="test", models={})
        rec = Recorder(journal, sid, _Vectors())
        clip, said = _heard("My sister called and we laughed.")
        assert rec.user(clip, said, 1.0, 1.5, timings=HeardTimings(stt_s=0.21), engine="whisper-test",
                        check=Assessment("concern", ("hopelessness",), "hopelessness", "rules")) == 0
        voice = (np.ones(2205) * 100).astype(np.int16)
        assert rec.companion("You laughed together.", voice, 22050, timings=ReplyTimings(end_to_first_audio_s=0.9),
                             model="embedded:test", recalled=[{"session": 1, "turn": 0, "score": 0.7}]) == 1
        assert rec.companion("Say that again?", None, None, model="embedded:test", partial=True) == 2
    # Another connection sees all three: each was committed by its own call.
    with Archive.open(db) as journal:
        user, reply, cut = journal.turns(sid, with_audio=True)
    assert (user.idx, user.role, user.text, user.language, user.model) == (0, "user", said.text, "en", "whisper-test")
    assert pcm.from_flac(user.audio_flac).samples.tolist() == clip.samples.tolist()
    assert (user.start_s, user.end_s, user.duration_s) == (1.0, 1.5, clip.duration)
    assert user.safety == "concern" and user.safety_reasons == ("hopelessness",)
    assert (reply.role, reply.sample_rate, reply.duration_s, reply.safety) == ("assistant", 22050, 0.1, None)
    assert [r["turn"] for r in reply.recalled] == [0]
    assert cut.audio_flac is None and cut.sample_rate is None and cut.partial


def test_the_crisis_message_is_flagged_and_a_turn_kept_already_is_skipped(tmp_path):
    with Archive.open(tmp_path / "j.duckdb") as journal:
        sid = journal.begin_session(mode="free", source="test", models={})
        rec = Recorder(journal, sid)
        clip, said = _heard("i don't want to be here anymore")
        rec.user(clip, said, 0.0, 0.5, timings=HeardTimings(), engine="whisper-test",
                 check=Assessment("crisis", ("suicidal thoughts",), "ideation", "rules"))
        assert rec.skip() == 1  # Ctrl-C found turn 1 in the journal already
        assert rec.companion("fixed words", np.zeros(0, np.int16), 22050, model="safety",
                             crisis=True) == 2
        turns = journal.turns(sid)
    assert turns[0].safety == "crisis" and turns[-1].safety == "crisis"
    assert turns[-1].safety_reasons == ("crisis message",) and turns[-1].duration_s == 0.0


def test_typed_and_imported_turns_keep_their_own_time(tmp_path):
    then = dt.datetime(2026, 3, 4, 20, 15)
    with Archive.open(tmp_path / "j.duckdb") as journal:
        sid = journal.begin_session(mode="free", source="typed", models={}, started_at=then)
        rec = Recorder(journal, sid, _Vectors())
        assert rec.typed("Wrote this on the train.", then) == 0
        clip, said = _heard("and this i said later")
        rec.user(clip, said, 10.0, 10.5, timings=HeardTimings(), engine="whisper-test", at=then + dt.timedelta(seconds=10))
        typed, spoken = journal.turns(sid)
    assert typed.at == then and typed.audio_flac is None
    assert spoken.at == then + dt.timedelta(seconds=10)
