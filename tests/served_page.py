"""`voice-journal serve` and Debian's headless Chromium, for the page's tests and benchmarks/browser.py.

    proc, url = serve(db, "--fast")                 # on a free port; url carries the token
    driver = chromium(*fake_microphone("me.wav"))   # a recording plays as the microphone
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM, DRIVER = shutil.which("chromium"), shutil.which("chromedriver")
MISSING = "no chromium and chromium-driver (sudo apt-get install chromium chromium-driver)"


def serve(db: Path, *args: str) -> tuple[subprocess.Popen, str]:
    """`voice-journal serve` on a free port: (the process, the link it printed once listening)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "voice_journal", "serve", "--db", str(db), "--port", str(port),
                             *args], cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "COLUMNS": "300"})
    url = re.search(r"http://\S+/\?token=\S+", proc.stdout.readline())  # printed once it listens
    if url is None:
        proc.kill()
        raise RuntimeError(f"serve did not start: {proc.stderr.read()[-500:]}")
    return proc, url.group(0)


def fake_microphone(wav: Path) -> tuple[str, ...]:
    """Chromium's flags for a microphone that plays ``wav`` once (then silence), asked no permission."""
    return ("--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={wav}%noloop")


def chromium(*flags: str):
    """A headless Chromium driven by Selenium, muted, allowed to play without a click."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--autoplay-policy=no-user-gesture-required",
                 "--mute-audio", *flags):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(DRIVER), options=options)
    driver.set_page_load_timeout(60)
    return driver
