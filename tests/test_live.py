"""The live path, end to end, through a real audio stack.

`voice-journal session` runs as a person runs it, against a private
PulseAudio daemon (the stand-in for a physical microphone and speaker:
none exist here): real recorded speech is played into the virtual
microphone in real time, and the companion's voice is recorded from the
virtual speaker's monitor.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import soundfile as sf

import virtual_audio
from conftest import LIBRIVOX, ROOT, hear_ctrl_c, librivox_clips
from test_speech import normalise, wer
from voice_journal.store.archive import Archive

pytestmark = pytest.mark.skipif(virtual_audio.available() is not None, reason=str(virtual_audio.available()))

TRANSCRIPTS = {p.stem: text for p, text in librivox_clips()}


@pytest.fixture(scope="module")
def va(tmp_path_factory):
    audio = virtual_audio.VirtualAudio.start(tmp_path_factory.mktemp("pulse"))
    yield audio
    audio.stop()


class Live:
    """`voice-journal session` on the virtual devices, its output read line by line."""

    def __init__(self, va, db: Path, *args: str, reply_tokens: int = 30):
        env = va.env({**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200",
                      "VOICE_JOURNAL_REPLY_TOKENS": str(reply_tokens)})
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "voice_journal", "session", "--fast", "--db", str(db), *args],
            env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=hear_ctrl_c,
        )
        self.lines: queue.Queue[tuple[float, str]] = queue.Queue()
        self.stdout: list[str] = []
        self.stderr: list[str] = []
        threading.Thread(target=self._read, args=(self.proc.stdout, self.stdout, True), daemon=True).start()
        threading.Thread(target=self._read, args=(self.proc.stderr, self.stderr, False), daemon=True).start()

    def _read(self, stream, into: list[str], queued: bool) -> None:
        for line in stream:
            into.append(line)
            if queued:
                self.lines.put((time.monotonic(), line))

    def wait_for(self, prefix: str, timeout: float = 90) -> tuple[float, str]:
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            try:
                at, line = self.lines.get(timeout=max(0.01, left))
            except queue.Empty:
                self.proc.kill()
                raise AssertionError(f"no {prefix!r} line in {timeout} s; stdout {self.stdout!r}; "
                                     f"stderr {''.join(self.stderr)[-2000:]}") from None
            if line.startswith(prefix):
                return at, line

    def finish(self, timeout: float = 120) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()


def clip(name: str) -> Path:
    return LIBRIVOX / f"{name}.flac"


def assert_heard(text: str, name: str, max_wer: float = 0.3) -> None:
    ref = normalise(TRANSCRIPTS[name])
    assert wer(ref, normalise(text)) <= max_wer, (text, TRANSCRIPTS[name])


def test_a_spoken_session_on_the_virtual_microphone_that_never_hears_itself(va, tmp_path):
    """Two turns said into the microphone and answered aloud, with an echo path (speaker into microphone):
    the companion's own voice reaches the microphone and is never a turn (half-duplex)."""
    db = tmp_path / "j.duckdb"
    spoken = ["0870", "0920"]
    va.echo(True)
    try:
        with va.record_speaker() as speaker, va.record_microphone() as mic:
            live = Live(va, db, "--max-turns", "2")
            for name in spoken:
                live.wait_for("Companion")  # the greeting, then each reply: speak once it has finished
                time.sleep(0.5)
                va.say(clip(name))
                live.wait_for("You")
            live.wait_for("Companion")
            assert live.finish() == 0, "".join(live.stderr)
            time.sleep(0.3)
    finally:
        va.echo(False)
    a = Archive.open(db, read_only=True)
    [row] = a.sessions(5)
    turns = a.turns(row.id, with_audio=True)
    a.close()
    assert row.source == "microphone" and row.status == "complete"
    # Only the person's two turns were taken as theirs...
    assert [t.role for t in turns] == ["assistant", "user", "assistant", "user", "assistant"], [t.text for t in turns]
    users = [t for t in turns if t.role == "user"]
    for t, name in zip(users, spoken):
        assert_heard(t.text, name)
        assert t.audio_flac and 2.0 < t.duration_s < 12 and not t.partial
    replies = [t for t in turns if t.role == "assistant"]
    assert all(t.text and t.audio_flac for t in replies)
    # Each reply's wait was measured, and in order: its first sentence, then that sentence's audio.
    # (How long the wait is belongs to benchmarks/live.py, not to a test on a shared machine.)
    for t in replies[1:]:
        assert 0 <= t.timings["llm_first_sentence_s"] < t.timings["end_to_first_audio_s"], t.timings
    # ...though the microphone really heard the companion (greeting and replies) as well as the person,
    speech_s = sum(t.duration_s for t in users)
    assert mic.voiced_seconds() > speech_s + 3.0, (mic.voiced_seconds(), speech_s)
    # and the virtual speaker carried (nearly) all of its archived voice.
    voice_s = sum(t.duration_s for t in replies)
    assert speaker.voiced_seconds() >= 0.6 * voice_s, (speaker.voiced_seconds(), voice_s)


def test_barge_in_stops_the_voice_and_archives_what_was_heard(va, tmp_path):
    """Talk over a reply: it stops at once, and only what was heard is archived.

    The reply's words come from a real model and are not fixed; some are too
    short to talk over (a two-second sentence is over before a voice over it
    is even detected). In a check-in each reply ends with the check-in's next
    question, fixed words, so it lasts long enough; and should one end first
    all the same, the person tries on the next: three turns either way, one
    of them cut.
    """
    db = tmp_path / "j.duckdb"
    over = ["0930", "0920"]
    with va.record_speaker() as speaker, va.record_microphone() as mic:
        live = Live(va, db, "--barge-in", "--max-turns", "3", "--mode", "check-in", reply_tokens=80)
        live.wait_for("Companion")
        time.sleep(0.5)
        va.say(clip("0870"))
        heard_at, _ = live.wait_for("You")
        for attempt, name in enumerate(over):
            deadline = time.monotonic() + 60
            while (started := speaker.first_loud(heard_at)) is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert started is not None, "the reply was never heard"
            time.sleep(1.5)  # let it speak a little, then talk over it
            said_at = time.monotonic()
            va.say(clip(name), wait=False)
            _, line = live.wait_for("Companion")
            if "(interrupted)" in line:
                break
            heard_at, _ = live.wait_for("You")  # it had finished: the voice was simply the next turn
        else:
            raise AssertionError(f"no reply was long enough to talk over: {live.stdout!r}")
        live.wait_for("You")
        if attempt == 0:  # the third turn, said after the reply has finished
            live.wait_for("Companion")
            time.sleep(0.5)
            va.say(clip("0880"))
            live.wait_for("You")
        live.wait_for("Companion")
        assert live.finish() == 0, "".join(live.stderr)
        onset = mic.first_loud(said_at)
        # The silence that follows their voice: a pause between two sentences of the reply,
        # before they spoke, is not the stop.
        quiet = speaker.silent_after(onset) if onset is not None else None
    a = Archive.open(db, read_only=True)
    [row] = a.sessions(5)
    turns = a.turns(row.id, with_audio=True)
    a.close()
    assert [t.role for t in turns] == ["assistant"] + ["user", "assistant"] * 3, [t.role for t in turns]
    [cut] = [t for t in turns if t.partial]
    assert cut.role == "assistant" and cut.audio_flac and turns.index(cut) == 2 + 2 * attempt
    # What was archived is what was played, and it was played while the reply was still going.
    assert cut.timings["heard_s"] == pytest.approx(cut.duration_s, abs=0.01)
    assert cut.duration_s > 0 and cut.timings["barge_in_stop_s"] > 0
    # Measured outside the program: the speaker fell silent after the person's voice reached
    # the microphone and before they had finished talking over it. No bound in seconds here:
    # how fast it stops is a figure for benchmarks/barge_in.py, not a test on a shared machine.
    said_s = sf.info(clip(name)).duration
    assert onset is not None and quiet is not None and quiet < said_at + said_s, (said_at, onset, quiet)
    print(f"barge-in (attempt {attempt + 1}): heard {cut.duration_s:.2f} s; stop "
          f"{cut.timings['barge_in_stop_s'] * 1000:.0f} ms after the speech onset (in-program); speaker silent "
          f"{(quiet - onset) * 1000:.0f} ms after the voice reached the microphone "
          f"({(onset - said_at) * 1000:.0f} ms after paplay started)")
    assert_heard(turns[turns.index(cut) + 1].text, name, max_wer=0.4)


def test_ctrl_c_mid_turn_keeps_the_partial_turn_and_says_goodbye(va, tmp_path):
    db = tmp_path / "j.duckdb"
    live = Live(va, db)
    live.wait_for("Companion")
    time.sleep(0.5)
    p = va.say(clip("0870"), wait=False)
    time.sleep(3.5)  # half-way through the sentence
    live.proc.send_signal(signal.SIGINT)
    p.wait(timeout=30)
    assert live.finish() == 0, "".join(live.stderr)
    a = Archive.open(db, read_only=True)
    [row] = a.sessions(5)
    turns = a.turns(row.id, with_audio=True)
    a.close()
    assert row.status == "interrupted"
    partial = turns[1]
    assert partial.role == "user" and partial.partial and partial.audio_flac
    words = normalise(partial.text)
    ref = normalise(TRANSCRIPTS["0870"])
    assert 2 <= len(words) < len(ref) and wer(ref[: len(words)], words) <= 0.4, partial.text
    assert turns[-1].role == "assistant" and "take good care" in turns[-1].text.lower()


def test_sigkill_mid_session_loses_nothing_committed(va, tmp_path):
    db = tmp_path / "j.duckdb"
    live = Live(va, db)
    live.wait_for("Companion")
    time.sleep(0.5)
    va.say(clip("0920"))
    live.wait_for("You")
    live.wait_for("Companion")
    time.sleep(0.5)
    va.say(clip("0930"))
    live.wait_for("You")
    live.proc.kill()  # while the companion is thinking
    live.finish()
    a = Archive.open(db, read_only=True)
    [row] = a.sessions(5)
    turns = a.turns(row.id)
    a.close()
    assert row.status == "open"  # never ended, and still listed
    assert [t.role for t in turns][:4] == ["assistant", "user", "assistant", "user"]
    assert_heard(turns[1].text, "0920")
    assert_heard(turns[3].text, "0930")


def test_devices_lists_the_virtual_devices(va):
    import json

    r = subprocess.run([sys.executable, "-m", "voice_journal", "devices", "--json"], env=va.env(), cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    found = json.loads(r.stdout)
    assert any(d["inputs"] > 0 for d in found) and any(d["outputs"] > 0 for d in found)
    assert any(d["is_default_input"] for d in found)


def test_no_microphone_is_one_line_naming_portaudio(tmp_path):
    env = {**os.environ, "PULSE_SERVER": f"unix:{tmp_path}/nothing-listens-here"}
    r = subprocess.run([sys.executable, "-m", "voice_journal", "session", "--fast", "--db", str(tmp_path / "j.duckdb")],
                       env=env, cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 7
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert "PortAudio" in r.stderr and "--input FILE" in r.stderr
    assert not (tmp_path / "j.duckdb").exists()  # it failed before touching the journal


def test_play_replays_a_turn_on_the_speaker(va, tmp_path):
    from voice_journal.audio import pcm
    from voice_journal.store.archive import TurnRecord

    db = tmp_path / "j.duckdb"
    a = Archive.open(db)
    sid = a.begin_session(source="test", models={})
    c = pcm.load(clip("0920"))
    a.add_turn(TurnRecord(sid, 0, "user", TRANSCRIPTS["0920"], pcm.to_flac(c), c.rate, duration_s=c.duration))
    a.end_session(sid)
    a.close()
    with va.record_speaker() as speaker:
        t = time.monotonic()
        r = subprocess.run([sys.executable, "-m", "voice_journal", "--debug", "play", f"{sid}:0", "--db", str(db)],
                           env=va.env(), cwd=ROOT, capture_output=True, text=True, timeout=60)
        took = time.monotonic() - t
        time.sleep(0.3)
    assert r.returncode == 0, r.stderr
    # The whole turn reached the speaker (its quiet gaps between words aside).
    heard = speaker.voiced_seconds()
    assert 0.7 * c.duration <= heard <= c.duration + 0.5, (
        f"{heard:.2f} s voiced of {c.duration:.2f} s; {speaker.seconds():.2f} s recorded; play took {took:.1f} s; "
        f"stderr: {r.stderr[-1500:]}")


def test_a_crisis_said_into_the_virtual_microphone_gets_the_fixed_message(va, voice, tmp_path):
    """The live session answers through the same crisis net: a phrase in no corpus file, in Piper's voice."""
    import json

    from conftest import run_cli, spoken
    from voice_journal.audio import pcm

    said = tmp_path / "said.wav"
    # Not in any corpus file (the one tests/test_crisis_net.py holds as its unseen phrase).
    pcm.write_wav(said, spoken(voice, ["I keep thinking everyone would move on fine if I just stopped existing."],
                               pause_s=0.3))
    db = tmp_path / "j.duckdb"
    live = Live(va, db, "--max-turns", "1")
    live.wait_for("Companion")  # the greeting
    time.sleep(0.5)
    va.say(said)
    live.wait_for("You")
    assert live.finish() == 0, "".join(live.stderr)
    shown = json.loads(run_cli("show", "1", "--db", str(db), "--json").stdout)
    [user] = [t for t in shown["turns"] if t["role"] == "user"]
    assert user["safety"] == "crisis", user
    answer = next(t for t in shown["turns"] if t["turn"] == user["turn"] + 1)
    assert answer["role"] == "assistant" and answer["safety"] == "crisis", answer
