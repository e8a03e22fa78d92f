"""`voice-journal serve`: the journal in the browser, through its HTTP face, on a real journal file.

The page's requests are made with Starlette's test client (httpx), against
the same app the server runs; `serve` itself is started once, as a person
would, to see that it listens on loopback with a token and refuses without.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import sys
import urllib.error
import urllib.request

import numpy as np
import pytest
from starlette.testclient import TestClient

from conftest import ROOT
from voice_journal import app, config
from voice_journal.audio import pcm
from voice_journal.session.recorder import Recorder
from voice_journal.session.timings import HeardTimings, ReplyTimings
from voice_journal.speech.stt import Transcript
from voice_journal.store.archive import Answer, Summary
from voice_journal.web.server import COOKIE, create_app

TOKEN = "test-token-" + "x" * 20


def _session(journal, said: list[str], embedder=None) -> int:
    sid = journal.begin_session(mode="free", source="test", models={"llm": "test"})
    rec = Recorder(journal, sid, embedder)
    for i, text in enumerate(said):
        clip = pcm.Clip((np.sin(np.arange(16000) / 7) * 3000).astype(np.int16))
        rec.user(clip, Transcript(text, "en", 0.98, (), clip.duration, 0.2), i * 2.0, i * 2.0 + 1.0,
                 timings=HeardTimings(), engine="whisper-test")
        rec.companion(f"You said {text.lower()}", np.full(22050, 100, np.int16), 22050,
                      timings=ReplyTimings(end_to_first_audio_s=0.7), model="test")
    journal.end_session(sid, status="complete")
    return sid


@pytest.fixture()
def journal(tmp_path, embedder):
    settings = config.load(db=tmp_path / "journal" / "j.duckdb", summaries=False)
    with app.open_journal(settings) as j:
        garden = _session(j, ["The garden was quiet after the rain."], embedder)
        river = _session(j, ["I argued with my brother about selling our parents' house.",
                             "Then I walked to the river to calm down."], embedder)
        j.set_summary(Summary(river, "A hard talk with a brother, then a walk.", ("family", "house"), 4, "test"))
        j.add_answer(Answer(river, 0, "mood", "before", "four", 4))
        j.add_answer(Answer(river, 2, "mood", "after", "six I think", 6))
    return settings, garden, river


def _client(settings) -> TestClient:
    client = TestClient(create_app(settings, token=TOKEN), base_url="http://127.0.0.1")
    assert client.get(f"/?token={TOKEN}", follow_redirects=False).status_code == 303
    return client


def test_without_the_token_nothing_is_revealed(journal):
    settings, garden, _ = journal
    client = TestClient(create_app(settings, token=TOKEN), base_url="http://127.0.0.1")
    for path in ("/", "/api/sessions", f"/api/sessions/{garden}", f"/api/sessions/{garden}/turns/0/audio",
                 "/api/search?q=garden", "/api/insights", "/api/export", "/static/app.js"):
        r = client.get(path)
        assert r.status_code == 401 and "garden" not in r.text.lower(), path
    assert client.get("/?token=wrong", follow_redirects=False).status_code == 401
    assert client.get("/api/sessions", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.delete(f"/api/sessions/{garden}?confirm={garden}").status_code == 401


def test_the_token_becomes_a_strict_http_only_cookie_and_leaves_the_address(journal):
    settings, _, _ = journal
    client = TestClient(create_app(settings, token=TOKEN), base_url="http://127.0.0.1")
    r = client.get(f"/?token={TOKEN}", follow_redirects=False)
    assert r.status_code == 303 and r.headers["location"] == "/"
    cookie = r.headers["set-cookie"]
    assert f"{COOKIE}={TOKEN}" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie.replace("Strict", "strict")
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    csp = page.headers["content-security-policy"]
    assert "default-src 'none'" in csp and "script-src 'self'" in csp and "unsafe-inline" not in csp
    assert page.headers["referrer-policy"] == "no-referrer"
    # Nothing in the page comes from elsewhere.
    for asset in ("/", "/static/app.js", "/static/app.css"):
        assert not re.search(r"https?://", client.get(asset).text), asset
    bare = TestClient(create_app(settings, token=TOKEN), base_url="http://127.0.0.1")  # no cookie: an API client
    assert bare.get("/api/sessions", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 200


def test_sessions_newest_first_with_summary_and_one_session_as_a_dialogue(journal):
    settings, garden, river = journal
    client = _client(settings)
    rows = client.get("/api/sessions").json()["sessions"]
    assert [r["session"] for r in rows] == [river, garden]
    assert rows[0]["summary"] == "A hard talk with a brother, then a walk." and rows[0]["themes"] == ["family", "house"]
    assert rows[0]["mood"] == 4 and rows[0]["turns"] == 2 and rows[0]["flags"] == []
    assert (rows[0]["mood_before"], rows[0]["mood_after"]) == (4, 6) and rows[1]["mood_before"] is None
    shown = client.get(f"/api/sessions/{river}").json()
    assert [t["role"] for t in shown["turns"]] == ["user", "assistant", "user", "assistant"]
    assert shown["turns"][0]["audio"] == f"/api/sessions/{river}/turns/0/audio"
    assert shown["turns"][1]["timings"] == {"end_to_first_audio_s": 0.7}
    assert client.get("/api/sessions/999").status_code == 404


def test_a_turns_audio_streams_whole_and_in_ranges(journal):
    settings, garden, _ = journal
    client = _client(settings)
    whole = client.get(f"/api/sessions/{garden}/turns/0/audio")
    assert whole.status_code == 200 and whole.headers["content-type"] == "audio/flac"
    assert whole.headers["accept-ranges"] == "bytes"
    assert pcm.from_flac(whole.content).duration == pytest.approx(1.0, abs=0.01)
    part = client.get(f"/api/sessions/{garden}/turns/0/audio", headers={"Range": "bytes=10-109"})
    assert part.status_code == 206 and part.content == whole.content[10:110]
    assert part.headers["content-range"] == f"bytes 10-109/{len(whole.content)}"
    tail = client.get(f"/api/sessions/{garden}/turns/1/audio", headers={"Range": "bytes=-16"})
    assert tail.status_code == 206 and len(tail.content) == 16
    assert client.get(f"/api/sessions/{garden}/turns/0/audio",
                      headers={"Range": f"bytes={len(whole.content)}-"}).status_code == 416
    assert client.get(f"/api/sessions/{garden}/turns/7/audio").status_code == 404


@pytest.mark.parametrize("path", ["/static/../server.py", "/static/%2e%2e%2fserver.py", "/static/..%2f..%2fconfig.py",
                                  "/static/index.html%00.js", "/api/sessions/1/turns/..%2f..%2f/audio",
                                  "/static/app.js/../../../etc/passwd"])
def test_no_path_from_a_request_reaches_the_file_system(journal, path):
    settings, _, _ = journal
    r = _client(settings).get(path)
    assert r.status_code == 404 and "import" not in r.text and "root:" not in r.text


def test_search_finds_a_paraphrase_and_refuses_bad_queries(journal):
    settings, _, river = journal
    client = _client(settings)
    hits = client.get("/api/search", params={"q": "a fight with my sibling over the family home"}).json()["hits"]
    assert hits and hits[0]["session"] == river and "brother" in hits[0]["text"]
    only_mine = client.get("/api/search", params={"q": "river", "role": "user"}).json()["hits"]
    assert only_mine and all(h["role"] == "user" for h in only_mine)
    assert client.get("/api/search", params={"q": "x" * 5000}).status_code == 400
    assert client.get("/api/search", params={"q": "house", "role": "nobody"}).status_code == 400
    assert client.get("/api/search", params={"q": "house", "limit": "lots"}).status_code == 400
    injected = client.get("/api/search", params={"q": "'; DROP TABLE turns; --"})
    assert injected.status_code in (200, 400)
    assert len(client.get("/api/sessions").json()["sessions"]) == 2  # nothing stored was harmed


def test_insights_as_numbers_and_as_a_self_contained_svg(journal):
    settings, _, _ = journal
    client = _client(settings)
    found = client.get("/api/insights").json()
    assert found["sessions"] == 2 and {"name": "family"} .items() <= found["themes"][0].items()
    svg = client.get("/api/insights/mood.svg")
    assert svg.status_code == 200 and svg.headers["content-type"].startswith("image/svg+xml")
    assert svg.text.lstrip().startswith("<?xml") and "<svg" in svg.text
    assert not re.search(r"(?:href|src)=\"https?://", svg.text)  # no font or image fetched from elsewhere


def test_export_is_a_zip_of_the_journal(journal):
    import io
    import zipfile

    settings, garden, river = journal
    client = _client(settings)
    r = client.get("/api/export", params={"format": "json"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/zip"
    with zipfile.ZipFile(io.BytesIO(r.content)) as z:
        text = " ".join(z.read(n).decode() for n in z.namelist())
    assert "The garden was quiet" in text and "river" in text
    assert client.get("/api/export", params={"format": "exe"}).status_code == 400


def test_delete_needs_its_number_confirmed_and_then_removes_the_session(journal):
    settings, garden, river = journal
    client = _client(settings)
    refused = client.delete(f"/api/sessions/{garden}")
    assert refused.status_code == 400 and "confirm" in refused.json()["error"]
    assert client.delete(f"/api/sessions/{garden}?confirm={river}").status_code == 400
    done = client.delete(f"/api/sessions/{garden}?confirm={garden}")
    assert done.status_code == 200 and done.json() == {"deleted": garden, "turns": 2}
    assert [r["session"] for r in client.get("/api/sessions").json()["sessions"]] == [river]
    assert all(h["session"] != garden for h in client.get("/api/search", params={"q": "garden rain"}).json()["hits"])


def test_a_flagged_session_says_so_in_the_list(journal):
    from voice_journal.store.archive import TurnRecord

    settings, garden, river = journal
    with app.open_journal(settings) as j:
        sid = j.begin_session(mode="free", source="test")
        j.add_turn(TurnRecord(sid, 0, "user", "(words the crisis net flagged)", safety="crisis",
                              safety_reasons=("a test",)))
        j.end_session(sid)
    rows = {r["session"]: r["flags"] for r in _client(settings).get("/api/sessions").json()["sessions"]}
    assert rows == {sid: ["crisis"], river: [], garden: []}


def test_an_empty_journal_is_an_empty_page(tmp_path):
    settings = config.load(db=tmp_path / "none" / "j.duckdb")
    client = _client(settings)
    assert client.get("/api/sessions").json() == {"sessions": [], "summaries_due": 0}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_listens_on_loopback_with_a_token_and_refuses_without(journal):
    settings, _, river = journal
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "voice_journal", "serve", "--db", str(settings.db),
                             "--port", str(port)], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env={**__import__("os").environ, "COLUMNS": "300"})
    try:
        line = proc.stdout.readline()  # the link is printed once the server listens
        url = re.search(r"http://127\.0\.0\.1:\d+/\?token=\S+", line)
        assert url, line + proc.stderr.read() if proc.poll() is not None else line
        token = url.group(0).split("token=")[1]
        base = f"http://127.0.0.1:{port}"
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(f"{base}/api/sessions", timeout=10)
        assert refused.value.code == 401
        ask = urllib.request.Request(f"{base}/api/sessions", headers={"Authorization": f"Bearer {token}"})
        rows = json.load(urllib.request.urlopen(ask, timeout=10))["sessions"]
        assert rows[0]["session"] == river
        taken = subprocess.run([sys.executable, "-m", "voice_journal", "serve", "--db", str(settings.db),
                                "--port", str(port)], cwd=ROOT, capture_output=True, text=True, timeout=60)
        assert taken.returncode != 0 and "cannot listen" in taken.stderr and "Traceback" not in taken.stderr
    finally:
        proc.terminate()
        proc.wait(timeout=30)
