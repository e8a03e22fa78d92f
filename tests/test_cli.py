"""voice-journal as a person runs it: subprocesses, real models, a real journal file."""

import hashlib
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import soundfile as sf

from conftest import DEMO, LIBRIVOX, ROOT, SAMPLES, hear_ctrl_c, run_cli, speech_with_pauses
from voice_journal.audio import pcm
from voice_journal.store.archive import Archive

FAST = {"VOICE_JOURNAL_PROFILE": "fast"}


@pytest.fixture(scope="module")
def demo_journal(tmp_path_factory):
    """One whole session on the demo recording with the fast models."""
    d = tmp_path_factory.mktemp("demo")
    db, replies = d / "journal" / "j.duckdb", d / "replies.wav"
    r = run_cli("session", "--input", str(DEMO), "--reply-audio", str(replies), "--db", str(db), env=FAST)
    assert r.returncode == 0, r.stderr
    return db, replies, r


def _digest(path):
    return hashlib.sha256(path.read_bytes()).hexdigest() if path.exists() else None


def test_session_archives_every_turn_with_its_audio(demo_journal):
    db, replies, r = demo_journal
    with Archive.open(db, read_only=True) as a:
        (s,) = a.sessions()
        turns = a.turns(s.id, with_audio=True)
    users = [t for t in turns if t.role == "user"]
    assert len(users) == 4 and s.status == "complete" and s.language == "en"
    assert [t.role for t in turns] == ["user", "assistant"] * 4
    source = pcm.load(DEMO).samples
    for t in users:
        clip = pcm.from_flac(t.audio_flac)
        assert clip.rate == 16000
        assert clip.duration == pytest.approx(t.duration_s, abs=0.05)
        assert clip.duration == pytest.approx(t.end_s - t.start_s, abs=0.05)
        # The archived audio is the person's own, sample for sample.
        start = round(t.start_s * 16000)
        assert np.array_equal(clip.samples, source[start : start + len(clip.samples)])
        assert t.text and t.timings["stt_s"] > 0 and t.model == "whisper-tiny.en"
    text = " ".join(t.text.lower() for t in users)
    for words in ("argument with my brother", "too sharp", "share the load", "thank you for listening"):
        assert words in text
    for t in turns[1::2]:
        assert t.text.strip() and t.model.startswith("embedded:")
        assert t.timings["end_to_first_audio_s"] > 0 and t.timings["llm_first_token_s"] > 0
        assert pcm.from_flac(t.audio_flac).rate == 22050
    assert s.models == {"stt": "whisper-tiny.en", "llm": "embedded:SmolLM2-135M-Instruct.Q4_1", "tts": "en_US-joe-medium"}
    # The replies file is a valid WAV holding every spoken reply.
    info = sf.info(str(replies))
    assert info.format == "WAV" and info.samplerate == 22050 and info.channels == 1
    assert info.duration > sum(pcm.from_flac(t.audio_flac).duration for t in turns[1::2]) - 0.01
    # And the dialogue was printed as it went.
    assert r.stdout.count("You") >= 4 and "Companion" in r.stdout and f"Saved session {s.id}" in r.stdout


def test_journal_files_are_private(demo_journal):
    db, replies, _ = demo_journal
    assert oct(db.stat().st_mode & 0o777) == "0o600"
    assert oct(db.parent.stat().st_mode & 0o777) == "0o700"
    assert oct(replies.stat().st_mode & 0o777) == "0o600"


def test_list_show_and_search(demo_journal):
    db = str(demo_journal[0])
    r = run_cli("list", "--db", db)
    assert r.returncode == 0 and "complete" in r.stdout and "journal.flac" in r.stdout
    rows = json.loads(run_cli("list", "--db", db, "--json").stdout)
    assert rows[0]["turns"] == 4 and rows[0]["status"] == "complete"
    r = run_cli("show", str(rows[0]["session"]), "--db", db)
    assert r.returncode == 0 and "argument with my brother" in r.stdout and r.stdout.count("Companion") == 4
    hits = json.loads(run_cli("search", "brother", "--db", db, "--json", "--role", "user").stdout)
    assert hits[0]["turn"] == 0 and "brother" in hits[0]["text"].lower() and hits[0]["role"] == "user"
    # Meaning, not only words: the person never said "sibling" or "disagreement".
    hits = json.loads(run_cli("search", "a disagreement with my sibling", "--db", db, "--json", "--role", "user").stdout)
    assert hits[0]["turn"] == 0
    r = run_cli("search", "brother", "--db", db, "--role", "user", "--since", "2000-01-01")
    assert "voice-journal play 1:0" in r.stdout
    r = run_cli("search", "brother", "--db", db, "--since", "yesterday-ish")
    assert r.returncode == 2 and "not a date" in r.stderr
    r = run_cli("play", "1:0", "--out", str(demo_journal[0].parent / "turn0.wav"), "--db", db)
    assert r.returncode == 0
    played = sf.info(str(demo_journal[0].parent / "turn0.wav"))
    assert played.samplerate == 16000 and played.duration > 5
    assert set(hits[0]) == {"session", "turn", "at", "role", "text", "score"}
    r = run_cli("search", "share the load", "--db", db)
    assert r.returncode == 0 and "share the load" in r.stdout.lower()


@pytest.mark.parametrize("query", ["'; DROP TABLE turns; --", "brother OR mother", '"quoted" AND -not', "😔💔",
                                   "%_%", "NEAR(a b)", "\u202eevil\u200b\ufeff"])
def test_odd_search_queries_are_text(demo_journal, query):
    db = demo_journal[0]
    before = _digest(db)
    r = run_cli("search", query, "--db", str(db))
    assert r.returncode == 0, r.stderr
    assert "Traceback" not in r.stderr
    assert _digest(db) == before


def test_transcribe_any_format_one_line_per_file(tmp_path):
    x, r = sf.read(LIBRIVOX / "0880.flac", dtype="float32")
    import soxr

    sf.write(tmp_path / "8k.wav", soxr.resample(x, r, 8000), 8000)
    sf.write(tmp_path / "48k_stereo.wav", np.stack([soxr.resample(x, r, 48000)] * 2, axis=1), 48000)
    from test_audio import encode

    encode(tmp_path / "memo.m4a", "aac", 44100, 2, src=LIBRIVOX / "0880.flac")
    files = [tmp_path / "8k.wav", tmp_path / "48k_stereo.wav", tmp_path / "memo.m4a", SAMPLES / "alsa" / "front_center.wav"]
    r = run_cli("transcribe", *map(str, files), env=FAST)
    assert r.returncode == 0, r.stderr
    lines = r.stdout.strip().splitlines()
    assert len(lines) == 4
    for line in lines[:3]:
        assert "he was not an" in line.lower() and "young man" in line.lower()
    assert "front" in lines[3].lower() and "center" in lines[3].lower()
    out = json.loads(run_cli("transcribe", "--json", str(files[0]), str(SAMPLES / "alsa" / "front_center.wav"), env=FAST).stdout)
    assert [set(o) for o in out] == [{"file", "text", "language", "segments"}] * 2
    assert out[0]["language"] == "en" and out[0]["segments"][0]["end"] > out[0]["segments"][0]["start"]
    assert set(out[0]["segments"][0]) == {"start", "end", "text", "confidence"}


def _bad_inputs(tmp_path):
    (tmp_path / "empty.wav").write_bytes(b"")
    (tmp_path / "notes.wav").write_text("Dear diary, this is not audio.\n")
    (tmp_path / "random.flac").write_bytes(np.random.default_rng(2).bytes(8192))
    wav = (SAMPLES / "alsa" / "front_center.wav").read_bytes()
    (tmp_path / "cut.wav").write_bytes(wav[: len(wav) // 2])
    return {
        "missing": (tmp_path / "missing.wav", 2, "no such file"),
        "directory": (tmp_path, 2, "is a directory"),
        "empty": (tmp_path / "empty.wav", 2, "is empty"),
        "text": (tmp_path / "notes.wav", 2, "not a readable audio file"),
        "random": (tmp_path / "random.flac", 2, "not a readable audio file"),
        "truncated": (tmp_path / "cut.wav", 2, "truncated WAV"),
    }


@pytest.mark.parametrize("case", ["missing", "directory", "empty", "text", "random", "truncated"])
@pytest.mark.parametrize("command", ["session", "transcribe"])
def test_bad_audio_gets_one_line_and_harms_nothing(demo_journal, tmp_path, case, command):
    path, code, message = _bad_inputs(tmp_path)[case]
    db = demo_journal[0]
    before = _digest(db)
    args = ["session", "--input", str(path), "--db", str(db)] if command == "session" else ["transcribe", str(path)]
    r = run_cli(*args, env=FAST)
    assert r.returncode == code
    assert message in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert _digest(db) == before


def test_silence_stores_nothing(tmp_path):
    quiet = tmp_path / "quiet.wav"
    sf.write(quiet, np.random.default_rng(0).normal(0, 10, 16000 * 8).astype(np.int16), 16000)
    db = tmp_path / "j.duckdb"
    r = run_cli("session", "--input", str(quiet), "--db", str(db), env=FAST)
    assert r.returncode == 3 and "no speech found" in r.stderr and "Traceback" not in r.stderr
    with Archive.open(db, read_only=True) as a:
        assert a.sessions() == []
    r = run_cli("transcribe", str(quiet), env=FAST)
    assert "(no speech found)" in r.stdout


@pytest.mark.parametrize("args,code,message", [
    (["--stt-model", "whisper-huge"], 4, "unknown stt model 'whisper-huge'"),
    (["--llm-model", "/nope/model.gguf"], 4, "unknown llm model"),
    (["--voice", "qwen2.5-coder-1.5b"], 4, "is a llm model, not a tts model"),
    (["--backend", "gpt"], 5, "unknown LLM backend"),
    (["--db", "/proc/vj/journal.duckdb"], 6, "cannot create the journal folder"),
])
def test_bad_settings_get_clear_messages(tmp_path, args, code, message):
    if "--db" not in args:
        args = [*args, "--db", str(tmp_path / "j.duckdb")]
    r = run_cli("session", "--input", str(LIBRIVOX / "0880.flac"), *args, env=FAST)
    assert r.returncode == code, r.stderr
    assert message in r.stderr and "Traceback" not in r.stderr


def test_ollama_down_with_ollama_backend(tmp_path, free_port):
    r = run_cli("session", "--input", str(LIBRIVOX / "0880.flac"), "--db", str(tmp_path / "j.duckdb"),
                "--backend", "ollama", "--ollama-host", f"http://127.0.0.1:{free_port}", env=FAST)
    assert r.returncode == 5 and "cannot reach Ollama" in r.stderr and "Traceback" not in r.stderr


def test_session_through_ollama_over_http(ollama_server, tmp_path):
    audio, _ = speech_with_pauses([LIBRIVOX / "0880.flac", LIBRIVOX / "0930.flac"])
    rec = tmp_path / "two.wav"
    sf.write(rec, audio, 16000)
    db = tmp_path / "j.duckdb"
    r = run_cli("session", "--input", str(rec), "--db", str(db), "--backend", "auto",
                "--ollama-host", ollama_server.host, "--ollama-model", "smollm2-test", env=FAST)
    assert r.returncode == 0, r.stderr
    with Archive.open(db, read_only=True) as a:
        (s,) = a.sessions()
        turns = a.turns(s.id)
    assert s.models["llm"] == "ollama:smollm2-test"
    assert [t.role for t in turns] == ["user", "assistant"] * 2 and all(t.text for t in turns)


def test_sigkill_after_the_second_turn_keeps_both(tmp_path):
    db = tmp_path / "j.duckdb"
    # A crash in native code (a model freed while its thread still runs) shows where it was.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", "COLUMNS": "200", **FAST}
    p = subprocess.Popen([sys.executable, "-m", "voice_journal", "session", "--input", str(DEMO), "--db", str(db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    replies = 0
    try:
        for line in p.stdout:
            if line.startswith("Companion"):
                replies += 1
                if replies == 2:
                    p.send_signal(signal.SIGKILL)
                    break
    finally:
        p.wait(timeout=60)
    assert replies == 2 and p.returncode == -9
    with Archive.open(db) as a:
        (s,) = a.sessions()
        turns = a.turns(s.id, with_audio=True)
    assert [t.role for t in turns[:4]] == ["user", "assistant", "user", "assistant"]
    assert "brother" in turns[0].text and "too sharp" in turns[2].text
    assert pcm.from_flac(turns[2].audio_flac).duration > 3
    assert s.status == "open"  # the process never got to close it


def test_show_unknown_session_and_missing_journal(tmp_path, demo_journal):
    r = run_cli("show", "999", "--db", str(demo_journal[0]))
    assert r.returncode == 2 and "no session 999" in r.stderr
    r = run_cli("show", "abc", "--db", str(demo_journal[0]))
    assert r.returncode == 2 and "not a session number" in r.stderr
    r = run_cli("list", "--db", str(tmp_path / "none.duckdb"))
    assert r.returncode == 6 and "no journal" in r.stderr


def test_the_old_name_of_the_default_model_still_works():
    from voice_journal import models

    assert models.spec("qwen2.5-1.5b").name == "qwen2.5-coder-1.5b"  # settings written before the rename
    assert "Coder" in models.spec("qwen2.5-1.5b").description


def test_models_and_doctor(tmp_path):
    r = run_cli("models", "--json")
    rows = {m["name"]: m for m in json.loads(r.stdout)}
    assert {"whisper-base", "whisper-tiny.en", "joe-medium", "qwen2.5-coder-1.5b", "smollm2-135m"} <= set(rows)
    assert rows["smollm2-135m"]["installed"] and rows["qwen2.5-coder-1.5b"]["size"] == 1117320768
    r = run_cli("doctor", "--db", str(tmp_path / "j.duckdb"), env={**FAST, "OLLAMA_HOST": "http://127.0.0.1:9"})
    assert "python" in r.stdout and "portaudio" in r.stdout and "ollama" in r.stdout and "journal" in r.stdout
    assert "Traceback" not in r.stderr


def test_no_input_and_usage_errors():
    r = run_cli("session", "--realtime")
    assert r.returncode == 2 and "--input" in r.stderr and "Traceback" not in r.stderr
    r = run_cli("frobnicate")
    assert r.returncode == 2 and "Traceback" not in r.stderr


def test_ollama_dying_mid_reply_keeps_what_was_said(ollama_server, tmp_path):
    db = tmp_path / "j.duckdb"
    ollama_server.fail_after = 4
    try:
        r = run_cli("session", "--input", str(DEMO), "--db", str(db), "--backend", "ollama",
                    "--ollama-host", ollama_server.host, "--ollama-model", "smollm2-test", env=FAST)
    finally:
        ollama_server.fail_after = None
    assert r.returncode == 5 and "failed mid-reply" in r.stderr and "Traceback" not in r.stderr
    with Archive.open(db, read_only=True) as a:
        (s,) = a.sessions()
        turns = a.turns(s.id, with_audio=True)
    assert s.status == "interrupted"
    assert turns[0].role == "user" and "brother" in turns[0].text and turns[0].audio_flac
    # The part of the reply that arrived and was spoken is kept, marked as cut short. (The gate may
    # have left all of it out, SmolLM saying the person's "I" back unturned: then nothing was spoken.)
    assert len(turns) <= 2 and all(t.role == "assistant" and t.partial and t.text for t in turns[1:]), turns


def test_play_without_a_speaker_says_so_before_loading_models(tmp_path):
    r = run_cli("session", "--input", str(LIBRIVOX / "0880.flac"), "--play", "--db", str(tmp_path / "j.duckdb"),
                env={**FAST, "AUDIODEV": "none"})
    if r.returncode == 0:
        pytest.skip("this machine has a speaker")
    assert r.returncode == 7 and ("speaker" in r.stderr or "PortAudio" in r.stderr)
    assert "Traceback" not in r.stderr and not (tmp_path / "j.duckdb").exists()


def test_ctrl_c_mid_session_keeps_completed_turns(tmp_path):
    db = tmp_path / "j.duckdb"
    # A crash in native code (a model freed while its thread still runs) shows where it was.
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONFAULTHANDLER": "1", "COLUMNS": "200", **FAST}
    p = subprocess.Popen([sys.executable, "-m", "voice_journal", "session", "--input", str(DEMO), "--db", str(db)],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                         preexec_fn=hear_ctrl_c)
    for line in p.stdout:
        if line.startswith("You"):
            p.send_signal(signal.SIGINT)  # while the companion is answering the first turn
            break
    _, stderr = p.communicate(timeout=120)
    assert p.returncode == 130 and "saved" in stderr and "Traceback" not in stderr, (p.returncode, stderr[-3000:])
    with Archive.open(db, read_only=True) as a:
        (s,) = a.sessions()
        turns = a.turns(s.id)
    assert s.status == "interrupted"
    assert turns[0].role == "user" and "brother" in turns[0].text


def test_list_and_search_work_while_a_session_records(tmp_path):
    db = tmp_path / "j.duckdb"
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **FAST}
    # In real time, so that the session is still recording: from a file at full speed it
    # could end before the other commands ran (it did, once Whisper got faster).
    p = subprocess.Popen([sys.executable, "-m", "voice_journal", "session", "--input", str(DEMO), "--realtime",
                          "--db", str(db)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT,
                         preexec_fn=hear_ctrl_c)
    try:
        replies = 0
        for line in p.stdout:
            replies += line.startswith("Companion")
            if replies == 2:  # the greeting, then the reply to the first turn
                break
        r = run_cli("search", "brother", "--db", str(db), "--json")
        assert r.returncode == 0, r.stderr
        assert any(h["turn"] == 1 and h["role"] == "user" for h in json.loads(r.stdout)), r.stdout
        r = run_cli("list", "--db", str(db), "--json")
        assert r.returncode == 0 and json.loads(r.stdout)[0]["status"] == "open"
    finally:
        # Then Ctrl-C: the rest of the recording, played in real time, proves nothing more.
        p.send_signal(signal.SIGINT)
        _, stderr = p.communicate(timeout=120)
    assert p.returncode in (0, 130) and "Traceback" not in stderr, (p.returncode, stderr[-3000:])


def test_a_model_that_dies_mid_reply_leaves_what_was_spoken_archived(tiny_stt, voice, tmp_path):
    """The same failure as above with the model's words fixed: the spoken sentence is kept, cut short."""
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.audio.playback import WavSink
    from voice_journal.errors import LLMError
    from voice_journal.llm.base import ReplyStream, Usage
    from voice_journal.session import Engines, FileSession

    from conftest import spoken

    class DiesMidReply:  # an LLM whose connection drops after one sentence and a word
        backend, model = "test", "dies-mid-reply"

        def stream(self, messages, options=None):
            def deltas():
                yield "You had a long argument with your brother. "
                yield "What "
                raise LLMError("the model went away")
            return ReplyStream(deltas(), lambda cancelled, first, total: Usage(first_token_s=first, total_s=total))

        def warm(self, messages):
            pass

        def close(self):
            pass

    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, ["I had a long argument with my brother today."]))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb")
    with Archive.open(s.db) as a:
        with pytest.raises(LLMError):
            FileSession(Engines(tiny_stt, voice, DiesMidReply()), a, s, sink=WavSink(tmp_path / "r.wav")).run(rec)
        (row,) = a.sessions()
        turns = a.turns(row.id, with_audio=True)
    assert [t.role for t in turns] == ["user", "assistant"]
    assert turns[1].text.startswith("You had a long argument with your brother.") and turns[1].partial
    assert turns[1].audio_flac
