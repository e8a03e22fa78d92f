"""A private PulseAudio daemon with a virtual microphone and a separate virtual speaker.

The stand-in for a person at a computer, for tests and benchmarks of the
live path (named as such: no physical device exists here). Real recorded
speech is played into the microphone in real time; the companion's voice
goes to its own speaker, whose monitor is recorded. The two are kept apart,
as headphones keep them, unless a test asks for an echo path
(:meth:`VirtualAudio.echo`), as a laptop's speakers and microphone have.

    with VirtualAudio.start(tmp) as va:
        env = va.env()                       # PULSE_SERVER for the process under test
        va.say("samples/librivox/0870.flac")  # into the microphone, in real time
        with va.record_speaker() as rec: ...  # what the companion said, 16-bit mono
"""

from __future__ import annotations

import ctypes.util
import glob
import os
import shutil
import subprocess
import threading
import time
from pathlib import Path

import numpy as np

MIC_SINK = "vmic_in"  # what is played here is what the microphone hears
MIC = "vmic"
SPEAKER = "vspeaker"
SPEAKER_RATE = 22_050


def available() -> str | None:
    """None if a daemon can be started here, else why not."""
    missing = [b for b in ("pulseaudio", "pactl", "paplay", "parec") if shutil.which(b) is None]
    if not glob.glob("/usr/lib/*/alsa-lib/libasound_module_pcm_pulse.so") and not glob.glob(
            "/usr/lib/alsa-lib/libasound_module_pcm_pulse.so"):
        missing.append("the ALSA pulse plugin")
    if missing:
        return (f"PulseAudio is not installed ({', '.join(missing)} missing): "
                "sudo apt-get install pulseaudio pulseaudio-utils libasound2-plugins")
    if ctypes.util.find_library("portaudio") is None:
        return "PortAudio is not installed: sudo apt-get install libportaudio2"
    return None


class VirtualAudio:
    def __init__(self, folder: Path, proc: subprocess.Popen):
        self.folder = folder
        self.proc = proc
        self.socket = folder / "native"
        self._echo_module: str | None = None

    @classmethod
    def start(cls, folder: Path) -> "VirtualAudio":
        folder.mkdir(parents=True, exist_ok=True)
        script = folder / "default.pa"
        script.write_text(
            f"load-module module-native-protocol-unix socket={folder}/native auth-anonymous=1\n"
            f"load-module module-null-sink sink_name={MIC_SINK} rate=16000 channels=1\n"
            f"load-module module-remap-source master={MIC_SINK}.monitor source_name={MIC}\n"
            f"load-module module-null-sink sink_name={SPEAKER} rate={SPEAKER_RATE} channels=1\n"
            f"set-default-source {MIC}\n"
            f"set-default-sink {SPEAKER}\n"
        )
        env = {**os.environ, "HOME": str(folder), "XDG_RUNTIME_DIR": str(folder), "PULSE_RUNTIME_PATH": str(folder)}
        log = open(folder / "pulseaudio.log", "wb")
        proc = subprocess.Popen(
            ["pulseaudio", "-n", "-F", str(script), "--daemonize=no", "--use-pid-file=false",
             "--exit-idle-time=-1", "--disallow-exit", "--log-target=stderr"],
            env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        va = cls(folder, proc)
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # it takes a few seconds to accept connections
            if proc.poll() is not None:
                raise RuntimeError(f"pulseaudio exited: {(folder / 'pulseaudio.log').read_text()[-500:]}")
            if va._pactl("info").returncode == 0:
                return va
            time.sleep(0.2)
        va.stop()
        raise RuntimeError("pulseaudio did not start accepting connections")

    def env(self, base: dict | None = None) -> dict:
        return {**(base if base is not None else os.environ), "PULSE_SERVER": f"unix:{self.socket}"}

    def _pactl(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(["pactl", *args], env=self.env(), capture_output=True, text=True, timeout=10)

    def say(self, path: str | Path, *, wait: bool = True) -> subprocess.Popen:
        """Play a recording into the virtual microphone, in real time."""
        p = subprocess.Popen(["paplay", f"--device={MIC_SINK}", str(path)], env=self.env(),
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if wait:
            p.wait(timeout=120)
        return p

    def echo(self, on: bool = True) -> None:
        """Let the speaker reach the microphone (a laptop without headphones)."""
        if on and self._echo_module is None:
            r = self._pactl("load-module", "module-loopback", f"source={SPEAKER}.monitor", f"sink={MIC_SINK}",
                            "latency_msec=60")
            r.check_returncode()
            self._echo_module = r.stdout.strip()
        elif not on and self._echo_module is not None:
            self._pactl("unload-module", self._echo_module)
            self._echo_module = None

    def record_speaker(self) -> "Recorder":
        return Recorder(self, f"{SPEAKER}.monitor", SPEAKER_RATE)

    def record_microphone(self) -> "Recorder":
        """What the microphone hears (the person, and with echo() the companion too)."""
        return Recorder(self, f"{MIC_SINK}.monitor", 16_000)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()

    def __enter__(self) -> "VirtualAudio":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


class Recorder:
    """Records a monitor source; knows when each 20 ms chunk arrived."""

    def __init__(self, va: VirtualAudio, device: str, rate: int):
        self.rate = rate
        self._chunk_bytes = rate // 50 * 2
        self._proc = subprocess.Popen(
            ["parec", f"--device={device}", "--format=s16le", f"--rate={rate}", "--channels=1",
             "--latency-msec=20"],
            env=va.env(), stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
        )
        self._chunks: list[tuple[float, np.ndarray]] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()
        # parec takes a moment to connect: what plays before then would be missed.
        deadline = time.monotonic() + 10
        while not self._chunks and self._proc.poll() is None and time.monotonic() < deadline:
            time.sleep(0.01)
        if not self._chunks:
            raise RuntimeError(f"parec recorded nothing from {device} within 10 s")

    def _read(self) -> None:
        while True:
            data = self._proc.stdout.read(self._chunk_bytes)
            if not data:
                return
            samples = np.frombuffer(data[: len(data) // 2 * 2], np.int16)
            with self._lock:
                self._chunks.append((time.monotonic(), samples))

    def samples(self) -> np.ndarray:
        with self._lock:
            return np.concatenate([c for _, c in self._chunks]) if self._chunks else np.zeros(0, np.int16)

    def loud_since(self, t: float, dbfs: float = -40.0) -> bool:
        """Has anything louder than ``dbfs`` arrived since ``t`` (time.monotonic())?"""
        return self.first_loud(t, dbfs) is not None

    def first_loud(self, t: float, dbfs: float = -40.0) -> float | None:
        floor = 32768 * 10 ** (dbfs / 20)
        with self._lock:
            for at, c in self._chunks:
                if at >= t and len(c) and np.sqrt(np.mean(c.astype(np.float32) ** 2)) > floor:
                    return at
        return None

    def last_loud(self, dbfs: float = -40.0) -> float | None:
        floor = 32768 * 10 ** (dbfs / 20)
        with self._lock:
            for at, c in reversed(self._chunks):
                if len(c) and np.sqrt(np.mean(c.astype(np.float32) ** 2)) > floor:
                    return at
        return None

    def seconds(self) -> float:
        """How much was recorded, loud or quiet."""
        with self._lock:
            return sum(len(c) for _, c in self._chunks) / self.rate

    def voiced_seconds(self, dbfs: float = -40.0) -> float:
        floor = 32768 * 10 ** (dbfs / 20)
        with self._lock:
            return sum(len(c) for _, c in self._chunks
                       if len(c) and np.sqrt(np.mean(c.astype(np.float32) ** 2)) > floor) / self.rate

    def silent_after(self, t: float, gap_s: float = 0.2, dbfs: float = -40.0) -> float | None:
        """The first time after ``t`` at which ``gap_s`` of quiet begins."""
        floor = 32768 * 10 ** (dbfs / 20)
        start = None
        with self._lock:
            for at, c in self._chunks:
                if at < t:
                    continue
                loud = len(c) and np.sqrt(np.mean(c.astype(np.float32) ** 2)) > floor
                if loud:
                    start = None
                elif start is None:
                    start = at - len(c) / self.rate
                elif at - start >= gap_s:
                    return start
        return None

    def stop(self) -> None:
        self._proc.terminate()
        self._proc.wait(timeout=5)
        self._thread.join(timeout=5)

    def __enter__(self) -> "Recorder":
        return self

    def __exit__(self, *exc) -> None:
        self.stop()
