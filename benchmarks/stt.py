"""Whisper's encoder window: 30 s (Whisper's own) against one fitted to the clip.

    .venv/bin/python benchmarks/stt.py

A live session transcribes a turn in pieces of a few seconds each, and
faster-whisper pads every clip to a 30 s window. This times both windows,
per clip, on the same clips with the same models, and counts the word
error rate (WER) of each, so that the speed is not bought with words:
the five LibriVox sentences and ALSA's "front center" (real voices), and
the demo monologue's turns and their sentences spoken by the Piper voice
(short clips, as pieces are).
"""

from __future__ import annotations

import re
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "samples"))
sys.path.insert(0, str(ROOT / "tests"))

import numpy as np  # noqa: E402
import soxr  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from make_demo import TURNS  # noqa: E402
from pipeline import machine  # noqa: E402
from test_speech import normalise, wer  # noqa: E402  (the suite's own word error rate)
from voice_journal import models  # noqa: E402
from voice_journal.audio import pcm  # noqa: E402
from voice_journal.speech.stt import SttConfig, Transcriber  # noqa: E402
from voice_journal.speech.tts import Voice  # noqa: E402


def clips() -> list[tuple[pcm.Clip, str]]:
    out = []
    for line in (ROOT / "samples" / "librivox" / "transcripts.tsv").read_text().splitlines():
        key, ref = line.split("\t")
        out.append((pcm.load(ROOT / "samples" / "librivox" / f"{key}.flac"), ref))
    out.append((pcm.load(ROOT / "samples" / "alsa" / "front_center.wav"), "front center"))
    voice = Voice(models.resolve("joe-medium", kind="tts"))
    pad = np.zeros(pcm.RATE // 5, np.int16)
    for turn in TURNS:
        for text in [turn, *re.split(r"(?<=[.!?,])\s+", turn)]:
            audio = np.concatenate([s.samples for s in voice.speak(text)]).astype(np.float32) / 32768
            audio = (soxr.resample(audio, voice.rate, pcm.RATE) * 32767).astype(np.int16)
            out.append((pcm.Clip(np.concatenate([pad, audio, pad])), text))
    return out


def main() -> None:
    console = Console(width=120)
    data = clips()
    table = Table(title=f"Whisper encoder window · {machine()}", caption=(
        f"{len(data)} clips, {min(c.duration for c, _ in data):.1f}-{max(c.duration for c, _ in data):.1f} s "
        f"(median {statistics.median(c.duration for c, _ in data):.1f} s); language given; 2 threads"))
    for col in ("model", "window", "WER", "per clip p50 s", "per clip max s"):
        table.add_column(col, justify="left" if col in ("model", "window") else "right")
    for name in ("whisper-base", "whisper-tiny.en"):
        path = models.resolve(name, kind="stt")
        for label, shortest in (("30 s (Whisper's)", 30), ("fitted, >= 10 s", 10)):
            stt = Transcriber(path, SttConfig(min_window_s=shortest))
            stt.transcribe(data[0][0], "en")  # the first call allocates
            errors = total = 0
            times = []
            for clip, ref in data:
                t = time.perf_counter()
                hyp = stt.transcribe(clip, "en").text
                times.append(time.perf_counter() - t)
                errors += wer(normalise(ref), normalise(hyp)) * len(normalise(ref))
                total += len(normalise(ref))
            table.add_row(name, label, f"{errors / total:.3f}", f"{statistics.median(times):.3f}", f"{max(times):.3f}")
    console.print(table)


if __name__ == "__main__":
    main()
