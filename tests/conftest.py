"""Shared fixtures: real models, loaded once per test run, and helpers."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from voice_journal import models
from voice_journal.audio import pcm

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT / "samples"
LIBRIVOX = SAMPLES / "librivox"
DEMO = SAMPLES / "demo" / "journal.flac"

os.environ.setdefault("HF_HUB_OFFLINE", "1")
# A session's summary is written by a background process that loads the LLM: across a suite of
# sessions those would fight the tests for two cores and the journal's lock. The tests that are
# about summaries and the gentle notes (which depend on the clock) turn them back on.
os.environ.setdefault("VOICE_JOURNAL_SUMMARIES", "false")
os.environ.setdefault("VOICE_JOURNAL_GENTLE_NOTES", "false")

# `make test` runs the suite in three workers (pytest-xdist). Each engine then gets one thread:
# workers each running two-thread pools on two cores spin-wait on each other, and two such workers
# took nearly as long as one. CLI subprocesses read the same setting from the environment.
THREADS = 1 if int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1")) > 1 else 2
if THREADS == 1:
    os.environ.setdefault("VOICE_JOURNAL_THREADS", "1")
    os.environ.setdefault("OMP_NUM_THREADS", "1")


# The two tiers. A test is "integration" when it loads a real model (through a fixture below, or
# one of its own), runs the CLI in a subprocess, or plays audio through the virtual microphone in
# real time; everything else drives logic with scripted events and runs in `make test-fast`.
_MODEL_FIXTURES = {"tiny_stt", "base_stt", "voice", "small_llm", "ollama_server", "net", "embedder"}
_LOADS_A_MODEL = ("run_cli(", "Embedder.load(", "load_engines(", "SpeechToText(", "Voice.load(", "EmbeddedLLM(",
                  "subprocess.", "virtual_audio")


def pytest_collection_modifyitems(config, items):
    import functools
    import inspect

    @functools.cache  # a fixture is shared by many tests: read its source once
    def loads_a_model(func) -> bool:
        try:
            source = inspect.getsource(func)
        except (OSError, TypeError):
            return False
        return any(s in source for s in _LOADS_A_MODEL)

    for item in items:
        fixtures = set(getattr(item, "fixturenames", ()))  # every fixture it needs, however indirectly
        defs = [d for ds in getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).values() for d in ds]
        if (item.get_closest_marker("slow") or _MODEL_FIXTURES & fixtures
                or loads_a_model(getattr(item, "function", None)) or any(loads_a_model(d.func) for d in defs)):
            item.add_marker(pytest.mark.integration)
    # The long tests first: in `make test`'s workers the run then ends on many short unit tests,
    # which share out evenly, instead of on one worker still playing a live session.
    items.sort(key=lambda item: item.get_closest_marker("integration") is None)


def librivox_clips() -> list[tuple[Path, str]]:
    rows = [line.split("\t") for line in (LIBRIVOX / "transcripts.tsv").read_text().splitlines() if line]
    return [(LIBRIVOX / f"{clip_id}.flac", text) for clip_id, text in rows]


@pytest.fixture(scope="session")
def tiny_stt():
    from voice_journal.speech.stt import SttConfig, Transcriber

    return Transcriber(models.resolve("whisper-tiny.en", kind="stt"), SttConfig(threads=THREADS))


@pytest.fixture(scope="session")
def base_stt():
    from voice_journal.speech.stt import SttConfig, Transcriber

    return Transcriber(models.resolve("whisper-base", kind="stt"), SttConfig(threads=THREADS))


@pytest.fixture(scope="session")
def voice():
    from voice_journal.speech.tts import Voice

    # Not varied: Piper samples noise into every sentence, so the person's words would be new audio
    # (and now and then a new transcript) in every run; a test's input should be the same each time.
    return Voice(models.resolve("joe-medium", kind="tts"), varied=False, threads=THREADS)


@pytest.fixture(scope="session")
def embedder():
    from voice_journal.store.embedding import Embedder

    return Embedder.load()


@pytest.fixture(scope="session")
def small_llm():
    from voice_journal.llm.embedded import EmbeddedLLM

    return EmbeddedLLM(models.resolve("smollm2-135m", kind="llm"), n_ctx=2048, threads=THREADS)


@pytest.fixture(scope="session")
def ollama_server(small_llm):
    """The Ollama-API stand-in on loopback, answering with the real SmolLM2."""
    from ollama_api_server import OllamaAPIServer

    server = OllamaAPIServer(small_llm).start()
    yield server
    server.stop()


@pytest.fixture
def free_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def hear_ctrl_c() -> None:
    """A ``preexec_fn`` for a child that a test sends Ctrl-C (SIGINT).

    A shell runs a background job with SIGINT ignored, and a child inherits
    that, so a suite started with ``make test &`` would see Ctrl-C do nothing.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_cli(*args: str, env: dict | None = None, timeout: float = 600, **kw) -> subprocess.CompletedProcess:
    """Run ``voice-journal`` in a subprocess, as a person would."""
    full_env = {**os.environ, "PYTHONUNBUFFERED": "1", "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "voice_journal", *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=ROOT, **kw)


def speech_with_pauses(clips: list[Path], pause_s: float = 1.5, lead_s: float = 1.0) -> tuple[np.ndarray, list[tuple[float, float]]]:
    """Real speech clips joined by quiet pauses; returns audio and where each clip lies."""
    rng = np.random.default_rng(0)
    parts, spans, t = [], [], 0.0

    def quiet(seconds: float) -> np.ndarray:
        return rng.normal(0, 20, int(seconds * pcm.RATE)).astype(np.int16)  # about -64 dBFS

    parts.append(quiet(lead_s))
    t = lead_s
    for path in clips:
        c = pcm.load(path)
        parts.append(c.samples)
        spans.append((t, t + c.duration))
        t += c.duration
        parts.append(quiet(pause_s))
        t += pause_s
    return np.concatenate(parts), spans


def spoken(voice, lines: list[str], pause_s: float = 1.6) -> pcm.Clip:
    """A person's turns, spoken by the Piper voice at 16 kHz with pauses between them."""
    import soxr

    parts = [np.zeros(int(0.5 * 16000), np.int16)]
    for line in lines:
        audio = np.concatenate([s.samples for s in voice.speak(line)])
        parts.append((soxr.resample(audio.astype(np.float32) / 32768, voice.rate, 16000) * 32767).astype(np.int16))
        parts.append(np.zeros(int(pause_s * 16000), np.int16))
    return pcm.Clip(np.concatenate(parts))


class RecordedStream:
    """A real ReplyStream that keeps what it yielded."""

    def __init__(self, stream):
        self._stream = stream
        self.text = ""

    def __iter__(self):
        for delta in self._stream:
            self.text += delta
            yield delta

    def cancel(self):
        self._stream.cancel()

    @property
    def cancelled(self):
        return self._stream.cancelled

    @property
    def usage(self):
        return self._stream.usage


def their_words(content: str) -> str:
    """The person's words in a message to the model (the app's notes around them are in parentheses)."""
    return next((part for part in content.split("\n\n") if not part.startswith("(")), "")


class RecordingLLM:
    """The real model, with a record of every conversation it was shown (a spy, not a stand-in)."""

    def __init__(self, llm):
        self._llm = llm
        self.backend, self.model = llm.backend, llm.model
        self.shown: list[list] = []
        self.streams: list[RecordedStream] = []  # what each wrote, in the same order

    def stream(self, messages, options=None):
        self.shown.append(list(messages))
        self.streams.append(RecordedStream(self._llm.stream(messages, options) if options
                                           else self._llm.stream(messages)))
        return self.streams[-1]

    def warm(self, messages):
        self._llm.warm(messages)


def quick_talk(recording, speed: float = 2.0):
    """A person (the recording) and a speaker on one clock ``speed`` times as fast as the wall's.

    A live session's logic runs on the audio's own time (samples heard,
    samples played), so the conversation keeps its shape; only the
    models' work takes its real time, as on a machine ``speed`` times
    slower. For tests of what a session does, not of how fast.
    """
    from voice_journal.audio.capture import PacedFile
    from voice_journal.audio.playback import ClockedWavSink

    return PacedFile(recording, speed=speed), ClockedWavSink(None, speed=speed)
