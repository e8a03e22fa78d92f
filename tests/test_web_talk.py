"""A spoken session over the page's WebSocket (/api/talk), with the real models, without a browser.

The test is the tab: it sends the person's recorded words as 16 kHz PCM and
waits, as a polite person does, for the companion to finish before it says
the next thing. Nothing here waits on the clock: each step waits for a
message from the server. The browser's own capture and playback are tested
in test_web_browser.py.
"""

from __future__ import annotations

import json

import pytest
from starlette.testclient import TestClient
from starlette.websockets import WebSocketDisconnect

from conftest import spoken
from voice_journal import app, config
from voice_journal.session import Engines
from voice_journal.web.server import COOKIE, create_app

TOKEN = "t0ken-for-tests"
pytestmark = pytest.mark.timeout(300)  # a session that never answers fails here, with what it said


@pytest.fixture(scope="module")
def engines(tiny_stt, small_llm, voice):
    from voice_journal.companion import safety
    from voice_journal.store.embedding import Embedder

    embedder = Embedder.load()
    return Engines(tiny_stt, voice, small_llm, embedder, safety.SafetyNet.load(embedder.embed))


def client(tmp_path, engines) -> TestClient:
    settings = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=24, summaries=False)
    c = TestClient(create_app(settings, token=TOKEN, engines=engines), base_url="http://127.0.0.1:8765")
    c.cookies.set(COOKIE, TOKEN)
    return c


def until(ws, wanted: str, seen: list) -> dict:
    """Read messages (keeping them in ``seen``) until one of type ``wanted``; audio frames are counted."""
    while True:
        m = ws.receive()
        if m.get("bytes") is not None:
            seen.append({"type": "audio", "samples": len(m["bytes"]) // 2})
            continue
        if m["type"] == "websocket.close":
            raise AssertionError(f"closed before {wanted}: {seen[-5:]}")
        msg = json.loads(m["text"])
        seen.append(msg)
        print(msg)  # shown if the test fails
        if msg["type"] == wanted or (wanted == "listening" and msg.get("state") == "listening"):
            return msg


def say(ws, clip) -> None:
    for i in range(0, len(clip.samples), 1600):  # 100 ms a message, as the page sends 30 ms
        ws.send_bytes(clip.samples[i:i + 1600].astype("<i2").tobytes())


def test_a_session_spoken_over_the_websocket_is_answered_and_a_crisis_gets_the_fixed_message(tmp_path, engines,
                                                                                              voice):
    """Two turns over the page's WebSocket: one answered aloud and archived, then a crisis (one session,
    as a person would say them; the page itself is tests/test_web_browser.py's)."""
    from voice_journal.companion import safety

    seen: list = []
    with client(tmp_path, engines) as c, c.websocket_connect("/api/talk") as ws:
        until(ws, "listening", seen)  # after the greeting, whose audio came first
        greeting_audio = sum(m["samples"] for m in seen if m["type"] == "audio")
        say(ws, spoken(voice, ["Today I finally finished painting the garden fence."], pause_s=1.5))
        you = until(ws, "UserSpoke", seen)
        reply = until(ws, "CompanionReplied", seen)  # told once spoken, and listening again
        say(ws, spoken(voice, ["Tonight I am going to walk into the sea and not come back."], pause_s=1.5))
        alert = until(ws, "SafetyAlert", seen)
        answer = until(ws, "CompanionReplied", seen)
        ws.send_text(json.dumps({"type": "end"}))
        ended = until(ws, "ended", seen)
    assert greeting_audio > 22050  # the greeting's voice streamed to the tab before it listened
    assert "fence" in you["text"].lower() and reply["text"]
    assert sum(m["samples"] for m in seen if m["type"] == "audio") > greeting_audio  # and the reply's
    assert any(m["type"] == "voice" and m["rate"] == voice.rate for m in seen)
    assert alert["level"] == "crisis" and alert["message"]
    assert answer["text"] == alert["message"] and answer["text"].startswith(safety.messages.CRISIS_OPENING)
    settings = config.load(db=tmp_path / "j.duckdb")
    with app.open_journal(settings, read_only=True) as journal:
        turns = journal.turns(ended["session"], with_audio=True)
        [row] = journal.sessions(5)
        assert journal.flags().get(ended["session"])
    assert row.source == "browser" and row.status == "complete"
    assert [t.role for t in turns] == ["assistant", "user", "assistant", "user", "assistant"]
    assert "fence" in turns[1].text.lower() and turns[1].audio_flac and turns[2].audio_flac
    assert turns[1].safety is None and turns[3].safety == "crisis" and turns[4].safety == "crisis"


def test_a_tab_closed_mid_turn_keeps_the_turn_so_far_as_partial(tmp_path, engines, voice):
    seen: list = []
    clip = spoken(voice, ["My grandmother used to grow tomatoes along the back wall of her garden"], pause_s=0)
    with client(tmp_path, engines) as c:
        with c.websocket_connect("/api/talk") as ws:
            until(ws, "listening", seen)
            say(ws, clip)  # no pause after it: the turn is still going when the tab goes
            while until(ws, "state", seen)["state"] != "hearing":
                pass
        # The tab is gone; the server archives and ends; a second tab may begin at once.
        with c.websocket_connect("/api/talk") as ws2:
            until(ws2, "listening", seen)
            ws2.send_text(json.dumps({"type": "end"}))
            until(ws2, "ended", seen)
    with app.open_journal(config.load(db=tmp_path / "j.duckdb"), read_only=True) as journal:
        first = journal.sessions(5)[-1]
        turns = journal.turns(first.id)
    assert first.status == "interrupted"
    assert turns[-1].role == "user" and turns[-1].partial and "grandmother" in turns[-1].text.lower()


def test_garbage_is_refused_in_one_message_and_the_journal_is_intact(tmp_path, engines):
    seen: list = []
    with client(tmp_path, engines) as c:
        for garbage in (b"\x01\x02\x03", "{not json", json.dumps({"type": "rm -rf"})):
            with c.websocket_connect("/api/talk") as ws:
                ws.send_bytes(garbage) if isinstance(garbage, bytes) else ws.send_text(garbage)
                error = until(ws, "error", seen)
                assert len(error["message"].splitlines()) == 1
                while (m := ws.receive())["type"] != "websocket.close":
                    pass  # the greeting may have begun: its audio, its state
                assert m["code"] == 1003
    db = tmp_path / "j.duckdb"
    if db.exists():
        with app.open_journal(config.load(db=db), read_only=True) as journal:
            assert all(s.user_turns == 0 for s in journal.sessions(10))  # garbage was never taken for words


def test_a_second_tab_is_told_a_session_is_running(tmp_path, engines):
    seen: list = []
    with client(tmp_path, engines) as c, c.websocket_connect("/api/talk") as first:
        until(first, "listening", seen)
        with c.websocket_connect("/api/talk") as second:
            error = until(second, "error", seen)
            assert "already running" in error["message"]
        first.send_text(json.dumps({"type": "end"}))
        until(first, "ended", seen)


def test_no_token_or_another_sites_page_cannot_talk(tmp_path, engines):
    with client(tmp_path, engines) as c:
        c.cookies.clear()
        with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect("/api/talk"):
            pass
        assert refused.value.code == 1008
        c.cookies.set(COOKIE, TOKEN)
        with pytest.raises(WebSocketDisconnect) as refused, c.websocket_connect(
                "/api/talk", headers={"origin": "http://evil.example"}):
            pass
        assert refused.value.code == 1008
