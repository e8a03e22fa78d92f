"""Speech on another machine over Wyoming, and the local models taking over when it goes away.

The unit tests talk to small sockets written here (a service of another
protocol, one that never answers); the integration tests to the real
``wyoming-faster-whisper`` and ``wyoming-piper`` on loopback
(tests/wyoming_servers.py), killed midway for the fallback.
"""

from __future__ import annotations

import logging
import socket
import threading

import numpy as np
import pytest

from conftest import quick_talk, spoken
from voice_journal import config
from voice_journal.audio import pcm
from voice_journal.errors import InputError, SpeechServiceError
from voice_journal.session import Engines, FileSession
from voice_journal.session.engines import load_transcriber, load_voice
from voice_journal.session.events import CompanionReplied
from voice_journal.speech.fallback import FallbackTranscriber
from voice_journal.speech.stt import SttConfig, Transcript
from voice_journal.speech.wyoming import ServiceAddress, describe, elsewhere_note
from voice_journal.store.archive import Archive
from wyoming_servers import serving


@pytest.mark.parametrize("url", ["http://homeserver:10300", "wyoming://homeserver", "wyoming://:10300",
                                 "wyoming://homeserver:99999", "wyoming://homeserver:10300/asr", "homeserver:10300",
                                 "wyoming://homeserver:port"])
def test_a_malformed_address_is_one_clear_line(url):
    with pytest.raises(InputError) as e:
        ServiceAddress.parse(url)
    assert "\n" not in str(e.value) and "wyoming://host:port" in str(e.value)


def test_an_address_is_read():
    assert ServiceAddress.parse(" wyoming://homeserver.local:10300 ") == ServiceAddress("homeserver.local", 10300)
    assert str(ServiceAddress.parse("wyoming://[::1]:10200")) == "wyoming://[::1]:10200"


@pytest.mark.parametrize("url, named", [("wyoming://127.0.0.1:10300", False), ("wyoming://localhost:10300", False),
                                        ("wyoming://[::1]:10300", False), ("wyoming://homeserver:10300", True),
                                        ("wyoming://192.168.1.20:10200", True), ("not an address", False)])
def test_a_service_on_another_machine_is_named_once_a_session_starts(url, named):
    note = elsewhere_note(url, "your voice")
    assert (note is not None) == named
    assert note is None or note == f"your voice goes to {url} (not this machine)"


class _Listener:
    """A loopback socket that answers every connection with ``reply`` (or, with None, never answers)."""

    def __init__(self, reply: bytes | None):
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"wyoming://127.0.0.1:{self.sock.getsockname()[1]}"
        self.reply, self.held = reply, []
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            if self.reply is None:
                self.held.append(conn)  # keep it open and say nothing
            else:
                conn.recv(4096)
                conn.sendall(self.reply)
                conn.close()

    def close(self):
        self.sock.close()
        for c in self.held:
            c.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def test_a_service_of_another_protocol_is_named_as_such():
    with _Listener(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n") as web, \
            pytest.raises(SpeechServiceError, match="does not speak Wyoming"):
        describe(web.url, timeout=5)


def test_a_service_that_never_answers_times_out():
    with _Listener(None) as silent, pytest.raises(SpeechServiceError, match="did not answer within 0.2 s"):
        describe(silent.url, timeout=0.2)


def test_a_service_that_is_down_is_one_line():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        url = f"wyoming://127.0.0.1:{s.getsockname()[1]}"  # bound, not listening: refused
        with pytest.raises(SpeechServiceError, match="cannot be reached"):
            describe(url, timeout=5)


class _LocalWhisper:
    """Stands in for the local Whisper in the unit tier: says what it was given."""

    name, english_only, config = "whisper-local", True, SttConfig()

    def __init__(self):
        self.heard = 0

    def transcribe(self, clip, language=None, *, prompt=None):
        self.heard += 1
        return Transcript("local words", "en", 1.0, (), clip.duration, 0.0)


@pytest.mark.parametrize("url", ["wyoming://127.0.0.1:1", "not an address"])
def test_a_service_down_at_the_start_is_reported_once_and_the_local_model_answers(url):
    lines, local = [], _LocalWhisper()
    stt = FallbackTranscriber(url, lambda: local, on_fallback=lines.append, timeout=2)
    clip = pcm.Clip(np.zeros(16000, np.int16), 16000)
    assert [stt.transcribe(clip).text for _ in range(3)] == ["local words"] * 3
    assert len(lines) == 1 and "\n" not in lines[0] and "local model takes over" in lines[0], lines
    assert stt.name == "whisper-local" and not stt.remote


# -- the real servers --------------------------------------------------------------------------


@pytest.fixture
def services(tmp_path):
    with serving("stt", tmp_path / "stt") as (stt, stt_proc), serving("tts", tmp_path / "tts") as (tts, tts_proc):
        yield {"stt": (stt, stt_proc), "tts": (tts, tts_proc)}


def _settings(tmp_path, services):
    return config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=24, memory=False,
                       stt=services["stt"][0], tts=services["tts"][0], speech_timeout_s=20)


def test_a_file_session_through_the_speech_services(services, small_llm, embedder, voice, tmp_path):
    s = _settings(tmp_path, services)
    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, ["I went for a long walk by the river this morning."]))
    stt, tts = load_transcriber(s), load_voice(s)
    assert stt.remote and tts.base.remote
    info = describe(services["stt"][0])
    assert info.programs == ("faster-whisper",) and info.round_trip_s > 0
    with Archive.open(s.db) as a:
        sid = FileSession(Engines(stt, tts, small_llm, embedder), a, s).run(rec).session_id
        turns = a.turns(sid, with_audio=True)
    user, reply = turns[0], turns[1]
    assert "river" in user.text.lower() and user.model == f"{services['stt'][0]}/whisper-tiny.en"
    assert reply.role == "assistant" and reply.audio_flac and reply.voice == f"{services['tts'][0]}/piper"
    assert reply.sample_rate == tts.rate == 22050


def test_services_that_die_mid_session_hand_over_to_the_local_models(services, small_llm, embedder, voice,
                                                                     tmp_path, caplog):
    s = _settings(tmp_path, services)
    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, ["I went for a long walk by the river this morning.",
                                      "Then my sister called and we talked about the winter."], pause_s=3))
    stt_proc, tts_proc = services["stt"][1], services["tts"][1]

    class DiesAfterOneTurn(FallbackTranscriber):
        """The service goes away once it has transcribed the first turn (a file session transcribes
        ahead of the replies, so the reply events come too late to time this)."""

        def transcribe(self, clip, language=None, *, prompt=None):
            t = super().transcribe(clip, language, prompt=prompt)
            if stt_proc.poll() is None:
                stt_proc.kill()
                stt_proc.wait()
            return t

    stt = DiesAfterOneTurn(s.stt, lambda: load_transcriber(s.with_(stt="")), timeout=s.speech_timeout_s)
    engines = Engines(stt, load_voice(s), small_llm, embedder)

    def kill_after_the_first_reply(e):
        if isinstance(e, CompanionReplied) and e.idx == 1:
            tts_proc.kill()
            tts_proc.wait()

    with caplog.at_level(logging.WARNING), Archive.open(s.db) as a:
        sid = FileSession(engines, a, s, on_event=kill_after_the_first_reply).run(rec).session_id
        turns = a.turns(sid, with_audio=True)
    assert [t.role for t in turns] == ["user", "assistant"] * 2  # no turn lost
    assert "river" in turns[0].text.lower() and "sister" in turns[2].text.lower()
    assert turns[0].model.startswith("wyoming://") and turns[2].model == "whisper-tiny.en"
    assert turns[1].voice.startswith("wyoming://") and turns[3].voice == "en_US-joe-medium"
    assert turns[3].audio_flac and turns[3].sample_rate == turns[1].sample_rate
    told = [r.getMessage() for r in caplog.records if "takes over" in r.getMessage()]
    assert len(told) == 2 and all("\n" not in m for m in told), told  # once each: speech to text, and the voice


def test_a_live_session_through_the_speech_services(services, small_llm, embedder, voice, tmp_path):
    from voice_journal.session import LiveOptions, LiveSession

    s = _settings(tmp_path, services)
    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, ["My sister called me this evening."]))
    engines = Engines(load_transcriber(s), load_voice(s), small_llm, embedder)
    with Archive.open(s.db) as a:
        sid = LiveSession(engines, a, s, *quick_talk(rec), LiveOptions(max_turns=1)).run().session_id
        turns = a.turns(sid, with_audio=True)
    assert [t.role for t in turns] == ["assistant", "user", "assistant"]  # greeting, the turn, the reply
    assert "sister" in turns[1].text.lower() and turns[1].model.startswith(services["stt"][0])
    assert all(t.voice == f"{services['tts'][0]}/piper" and t.audio_flac for t in (turns[0], turns[2]))
