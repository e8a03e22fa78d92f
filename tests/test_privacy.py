"""Journal text goes only where the person said, and every file voice-journal writes is user-only.

* the Ollama client ignores the proxy variables of the environment and uses a
  proxy only when the ``ollama_proxy`` setting names one;
* a redirect from the server is refused with one line, and its target never hears of it;
* a host that is not this machine is named at the start of a session;
* ``pip`` (``voice-journal models install``) and voice-journal's own children never get the passphrase;
* reply WAVs, exports and the chart are 0600 even over a wider file that was there, new folders 0700.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import socket
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import numpy as np
import pytest
import soundfile as sf

from voice_journal import childenv, cli, config
from voice_journal.audio import pcm
from voice_journal.audio.playback import WavSink
from voice_journal.errors import LLMError, LLMUnavailable, VoiceJournalError
from voice_journal.llm.base import GenerationOptions, Message
from voice_journal.llm.ollama import OllamaLLM, remote_host_note
from voice_journal.llm.select import open_llm
from voice_journal.store import insights
from voice_journal.store.archive import Answer, Archive, Summary, TurnRecord
from voice_journal.store.chart import save_png
from voice_journal.store.export import export

CHAT = [Message("system", "You are a kind listener. Answer in one short sentence."),
        Message("user", "I had a rough day at work today.")]
PROXY_VARIABLES = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


class Listener:
    """A TCP port on loopback that records every connection, reads what it is sent, and hangs up."""

    def __init__(self):
        self._sock = socket.create_server(("127.0.0.1", 0))
        self._sock.settimeout(0.2)
        self.port = self._sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.connected = threading.Event()
        self.received: list[bytes] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._sock.accept()
            except (socket.timeout, OSError):
                continue
            with conn:
                conn.settimeout(2.0)
                try:
                    self.received.append(conn.recv(65536))
                except OSError:
                    self.received.append(b"")
                self.connected.set()  # after the read, so a test that sees it also sees what came

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sock.close()


@pytest.fixture
def listener():
    one = Listener()
    yield one
    one.close()


@pytest.fixture
def proxies_everywhere(monkeypatch, listener):
    """Every proxy variable, upper and lower case, points at the listener; nothing is exempt."""
    for name in PROXY_VARIABLES:
        monkeypatch.setenv(name, listener.url)
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    return listener


@pytest.fixture
def redirecting_server(listener):
    """An HTTP server on loopback that answers every request with 307 to the listener."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args):
            pass

        def _redirect(self):
            n = int(self.headers.get("Content-Length") or 0)
            self.rfile.read(n)
            self.send_response(307)
            self.send_header("Location", f"{listener.url}{self.path}")
            self.send_header("Content-Length", "0")
            self.end_headers()

        do_GET = do_POST = _redirect

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def _one_line(e: BaseException) -> str:
    text = str(e)
    assert text and "\n" not in text and "Traceback" not in text, text
    return text


# -- (a) (b) proxies ------------------------------------------------------------------------


def test_proxy_variables_of_the_environment_are_ignored(ollama_server, proxies_everywhere):
    listener = proxies_everywhere
    llm = OllamaLLM("smollm2-test", ollama_server.host)  # check() runs here
    try:
        llm.check()
        reply = llm.stream(CHAT, GenerationOptions(max_tokens=8))
        assert reply.text().strip()
        assert llm.models() == ["smollm2-test:latest"]
    finally:
        llm.close()
    assert ("POST", "/api/chat") in ollama_server.requests
    assert not listener.connected.is_set(), listener.received


def test_ollama_proxy_setting_is_the_only_way_through_a_proxy(ollama_server, listener, monkeypatch, tmp_path):
    monkeypatch.setenv("VOICE_JOURNAL_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.setenv("VOICE_JOURNAL_OLLAMA_PROXY", listener.url)
    settings = config.load()
    assert settings.ollama_proxy == listener.url
    assert config.Settings().ollama_proxy == ""  # none by default
    # The proxy hangs up: one line naming the host and the proxy, not a traceback.
    with pytest.raises(LLMUnavailable) as e:
        open_llm("ollama", ollama_model="smollm2-test", ollama_host=ollama_server.host,
                 embedded_model="smollm2-135m", ollama_proxy=settings.ollama_proxy)
    text = _one_line(e.value)
    assert ollama_server.host.split("//")[1] in text and f"through the proxy {listener.url}" in text
    assert listener.connected.wait(5)
    assert listener.received[0].startswith(f"POST {ollama_server.host}/api/show ".encode())  # a proxy's request line
    # Streaming calls go through it too, and fail as plainly.
    llm = OllamaLLM("smollm2-test", ollama_server.host, check=False, proxy=listener.url)
    with pytest.raises(LLMUnavailable) as e:
        llm.stream(CHAT, GenerationOptions(max_tokens=8)).text()
    _one_line(e.value)
    assert len(listener.received) == 2


def test_a_proxy_with_a_password_is_named_without_it(listener):
    url = f"http://someone:hunter2@127.0.0.1:{listener.port}"
    with pytest.raises(LLMUnavailable) as e:
        OllamaLLM("smollm2-test", "http://127.0.0.1:1", proxy=url)
    assert "hunter2" not in _one_line(e.value) and listener.connected.is_set()
    with pytest.raises(LLMError, match="not a proxy voice-journal can use") as e:
        OllamaLLM("x", "127.0.0.1", proxy="ftp://someone:hunter2@127.0.0.1:1", check=False)
    assert "hunter2" not in _one_line(e.value)


# -- (c) redirects ------------------------------------------------------------------------


def test_a_redirect_is_one_line_and_never_followed(redirecting_server, listener):
    with pytest.raises(LLMError) as e:
        OllamaLLM("smollm2-test", redirecting_server)  # check(): a plain call
    text = _one_line(e.value)
    assert text == (f"Ollama at {redirecting_server} answered with a redirect to {listener.url}/api/show; "
                    "voice-journal does not follow redirects")
    llm = OllamaLLM("smollm2-test", redirecting_server, check=False)
    with pytest.raises(LLMError, match="answered with a redirect to .*/api/chat") as e:
        llm.stream(CHAT, GenerationOptions(max_tokens=8)).text()  # a streaming call
    _one_line(e.value)
    with pytest.raises(LLMError, match="answered with a redirect to .*/api/tags"):
        llm.models()
    llm.warm(CHAT)  # warming is best effort: logged, not raised
    assert not listener.connected.is_set(), listener.received


# -- (d) where the words go --------------------------------------------------------------


@pytest.mark.parametrize("host", [
    None, "", "127.0.0.1", "http://127.0.0.1:11434", ":11434", "127.8.9.10:8080", "localhost", "localhost:11434",
    "http://LOCALHOST", "ollama.localhost", "[::1]", "http://[::1]:11434", "https://[::1]",
    "http://[::ffff:127.0.0.1]:11434", "0.0.0.0", "0.0.0.0:11434", "[::]:11434", "::1",
])
def test_this_machine_is_not_named(host):
    assert remote_host_note(host) is None


@pytest.mark.parametrize("host, named", [
    ("192.168.1.20", "192.168.1.20:11434"),
    ("http://192.168.1.20:11434", "192.168.1.20:11434"),
    ("10.0.0.5:8080", "10.0.0.5:8080"),
    ("https://ollama.example.com", "ollama.example.com:443"),
    ("ollama.example.com/", "ollama.example.com:11434"),
    ("http://[2001:db8::1]:11434", "[2001:db8::1]:11434"),
    ("[2001:db8::1]", "[2001:db8::1]:11434"),
    ("localhost.example.com", "localhost.example.com:11434"),
    ("2001:db8::1", "[2001:db8::1]"),  # unbracketed: the client cannot use it, but the note never fails
])
def test_another_machine_is_named(host, named):
    assert remote_host_note(host) == f"your words go to {named} (not this machine)"


def test_a_proxy_on_another_machine_is_named_too():
    assert remote_host_note("127.0.0.1", proxy="http://127.0.0.1:3128") is None
    assert remote_host_note("127.0.0.1", proxy="http://u:p@proxy.lan:3128") == \
        "your words go to the proxy proxy.lan:3128 (not this machine)"
    assert remote_host_note("10.0.0.5", proxy="proxy.lan:3128") == \
        "your words go to 10.0.0.5:11434 through the proxy proxy.lan:3128 (not this machine)"


def test_a_session_names_a_remote_host_once(capsys):
    # Built without a check: nothing is sent to that address.
    remote = OllamaLLM("qwen2.5:1.5b", "http://192.168.1.20:11434", check=False)
    local = OllamaLLM("qwen2.5:1.5b", "http://127.0.0.1:11434", check=False)
    try:
        cli._say_where_words_go(remote)
        cli._say_where_words_go(local)
        cli._say_where_words_go(None)  # the embedded model, or no model
    finally:
        remote.close()
        local.close()
    said = capsys.readouterr().err
    assert said.count("your words go to 192.168.1.20:11434 (not this machine)") == 1
    assert said.count("your words go") == 1


# -- (e) children's environments ----------------------------------------------------------


@pytest.fixture
def secret_env(monkeypatch):
    for name, value in {"VOICE_JOURNAL_PASSPHRASE": "correct horse", "VOICE_JOURNAL_DB": "/tmp/j.duckdb",
                        "OLLAMA_API_KEY": "sk-1", "GITHUB_TOKEN": "ghp_1", "XDG_SECRET_TOKEN": "x",
                        "HTTPS_PROXY": "http://proxy.lan:3128", "PIP_INDEX_URL": "https://pypi.example/simple",
                        "SSL_CERT_FILE": "/etc/ssl/ca.pem", "LC_ALL": "en_GB.UTF-8", "XDG_CACHE_HOME": "/c",
                        "HOME": "/home/me", "PATH": os.environ["PATH"]}.items():
        monkeypatch.setenv(name, value)


def test_pip_gets_no_voice_journal_variables(secret_env):
    env = childenv.for_pip()
    assert not [k for k in env if k.startswith(("VOICE_JOURNAL_", "OLLAMA_"))]
    for kept in ("PATH", "HOME", "HTTPS_PROXY", "PIP_INDEX_URL", "SSL_CERT_FILE", "LC_ALL"):
        assert env[kept] == os.environ[kept]


def test_minimal_env_is_an_allowlist_without_secrets(secret_env):
    env = childenv.minimal(VOICE_JOURNAL_DB="/elsewhere.duckdb")
    assert env["VOICE_JOURNAL_DB"] == "/elsewhere.duckdb"  # given on purpose
    for kept in ("PATH", "HOME", "LC_ALL", "XDG_CACHE_HOME", "SSL_CERT_FILE"):
        assert env[kept] == os.environ[kept]
    for dropped in ("VOICE_JOURNAL_PASSPHRASE", "OLLAMA_API_KEY", "GITHUB_TOKEN", "XDG_SECRET_TOKEN", "HTTPS_PROXY",
                    "PIP_INDEX_URL"):
        assert dropped not in env
    assert "correct horse" not in json.dumps(env)


def test_models_install_runs_pip_without_the_passphrase(secret_env, monkeypatch):
    calls = []

    def pip(args, **kw):
        calls.append((args, kw))
        return 1  # stop there: nothing is installed

    monkeypatch.setattr(cli.subprocess, "call", pip)
    with pytest.raises(VoiceJournalError, match="pip could not install"):
        cli.models_install(["whisper-tiny.en"])
    (args, kw), = calls
    assert args[1:4] == ["-m", "pip", "install"]
    assert "VOICE_JOURNAL_PASSPHRASE" not in kw["env"] and kw["env"]["HTTPS_PROXY"] == "http://proxy.lan:3128"


# -- (f) user-only files --------------------------------------------------------------------


@pytest.fixture
def open_umask():
    """A umask that lets files be read by all, as a library caller may have: the modes must not rely on it."""
    old = os.umask(0o022)
    yield
    os.umask(old)


def _mode(path) -> str:
    return oct(os.stat(path).st_mode & 0o777)


def _wide(path) -> None:
    """A file already there, readable by everyone."""
    path.write_bytes(b"old")
    os.chmod(path, 0o644)


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "j.duckdb"
    at = dt.datetime(2026, 11, 2, 9, 0)
    with Archive.open(path) as a:
        sid = a.begin_session(mode="free", started_at=at, source="file:t.wav")
        a.add_turn(TurnRecord(sid, 0, "user", "Today was a lot.", at=at,
                              audio_flac=pcm.to_flac(pcm.Clip(np.zeros(8000, np.int16))), sample_rate=16000))
        a.add_turn(TurnRecord(sid, 1, "assistant", "That sounds like a lot.", at=at + dt.timedelta(minutes=1)))
        a.add_answer(Answer(sid, 0, "mood", "before", "4", 4))
        a.set_summary(Summary(sid, "A long day.", ("work",), 5, "test"))
        a.end_session(sid, ended_at=at + dt.timedelta(minutes=5))
    return path


def test_reply_wavs_are_user_only_over_a_wider_file(tmp_path, open_umask):
    clip = pcm.Clip(np.full(1600, 1000, np.int16))
    played = tmp_path / "played.wav"
    _wide(played)
    pcm.write_wav(played, clip)  # `voice-journal play --out`
    assert _mode(played) == "0o600" and sf.info(str(played)).frames == 1600
    replies = tmp_path / "replies.wav"
    _wide(replies)
    sink = WavSink(replies)  # `voice-journal session --reply-audio`
    sink.write(clip.samples, 22050)
    sink.gap(0.1, 22050)
    sink.close()
    assert _mode(replies) == "0o600" and sf.info(str(replies)).frames == 1600 + 2205
    pcm.write_wav(tmp_path / "new.wav", clip)  # and a new one, whatever the umask
    assert _mode(tmp_path / "new.wav") == "0o600"


def test_markdown_export_with_audio_is_user_only(journal, tmp_path, open_umask):
    folder = tmp_path / "new" / "export"
    with Archive.open(journal, read_only=True) as a:
        first = export(a, folder, audio=True)
    assert {p.suffix for p in first} == {".md", ".flac"}
    assert _mode(folder) == "0o700" and _mode(folder.parent) == "0o700"  # created by the export
    for p in first:
        _wide(p)
    with Archive.open(journal, read_only=True) as a:
        again = export(a, folder, audio=True)  # over the files of the first export, now 0644
    assert again == first
    assert {p.name: _mode(p) for p in again} == {p.name: "0o600" for p in again}
    md = next(p for p in again if p.suffix == ".md")
    assert "Today was a lot." in md.read_text()
    flac = next(p for p in again if p.suffix == ".flac")
    assert sf.info(str(flac)).frames == 8000


def test_json_export_is_user_only_and_a_folder_of_yours_keeps_its_mode(journal, tmp_path, open_umask):
    folder = tmp_path / "vault"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    _wide(folder / "journal.json")
    with Archive.open(journal, read_only=True) as a:
        written = export(a, folder, fmt="json")
    assert written == [folder / "journal.json"]
    assert _mode(folder / "journal.json") == "0o600"
    assert json.loads((folder / "journal.json").read_text())[0]["turns"][0]["text"] == "Today was a lot."
    assert _mode(folder) == "0o755"  # not ours to change


def test_chart_is_user_only_over_a_wider_file(journal, tmp_path, open_umask):
    png = tmp_path / "insights.png"
    _wide(png)
    with Archive.open(journal, read_only=True) as a:
        found = insights.compute(a, now=dt.datetime(2026, 11, 20, 18, 0), tz=dt.timezone.utc)
    save_png(found, png)
    assert _mode(png) == "0o600" and png.read_bytes()[:4] == b"\x89PNG"
