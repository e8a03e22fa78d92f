"""The real Wyoming speech servers, on loopback, for the tests: ``wyoming-faster-whisper`` and ``wyoming-piper``.

They are the servers a person runs on a home server (Home Assistant's
speech add-ons), pointed at the models this project already installs, so
nothing is downloaded: Whisper tiny.en and the joe-medium voice.
"""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

from voice_journal import models
from voice_journal.errors import SpeechServiceError
from voice_journal.speech.wyoming import describe


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def command(kind: str, port: int, data_dir: Path, model: str | None = None) -> list[str]:
    """The server's command line; ``model``: a registry name (else Whisper tiny.en or the joe-medium voice)."""
    uri = f"tcp://127.0.0.1:{port}"
    if kind == "stt":
        return [sys.executable, "-m", "wyoming_faster_whisper", "--uri", uri,
                "--model", str(models.resolve(model or "whisper-tiny.en", kind="stt")), "--data-dir", str(data_dir),
                "--stt-library", "faster-whisper", "--local-files-only", "--compute-type", "int8",
                "--beam-size", "1", "--cpu-threads", os.environ.get("VOICE_JOURNAL_THREADS", "2")]
    return [sys.executable, "-m", "wyoming_piper", "--uri", uri,
            "--voice", str(models.resolve(model or "joe-medium", kind="tts")), "--data-dir", str(data_dir), "--local-files-only"]


@contextlib.contextmanager
def serving(kind: str, data_dir: Path, *, model: str | None = None, ready_within: float = 120.0):
    """Start a server of ``kind`` ("stt" or "tts") on a free port; yields (its wyoming:// URL, its process)."""
    port = free_port()
    data_dir.mkdir(parents=True, exist_ok=True)
    log = (data_dir / f"{kind}.log").open("wb")
    proc = subprocess.Popen(command(kind, port, data_dir, model), stdout=log, stderr=subprocess.STDOUT)
    url = f"wyoming://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + ready_within
        while True:
            try:
                describe(url, timeout=5)
                break
            except SpeechServiceError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"the {kind} server did not start: {(data_dir / f'{kind}.log').read_text()[-2000:]}")
                time.sleep(0.2)
        yield url, proc
    finally:
        proc.kill()
        proc.wait()
        log.close()
