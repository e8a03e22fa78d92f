"""Time each stage of a journaling session on the demo recording.

    .venv/bin/python benchmarks/pipeline.py            # the quality defaults
    .venv/bin/python benchmarks/pipeline.py --fast     # tiny.en + SmolLM2

Prints a table: per stage, the median and the worst over the turns, and the
time a person waits from the end of their turn (the segmenter's decision) to
the first audio of the reply. Numbers, not claims: the machine is named.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from voice_journal import config  # noqa: E402
from voice_journal.audio import pcm  # noqa: E402
from voice_journal.audio.vad import Segmenter  # noqa: E402
from voice_journal.session import FileSession, load_engines  # noqa: E402
from voice_journal.store.archive import Archive  # noqa: E402


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="use the small fast models")
    ap.add_argument("--input", type=Path, default=ROOT / "samples" / "demo" / "journal.flac")
    args = ap.parse_args()
    settings = config.load(profile="fast" if args.fast else "quality")
    console = Console(width=120)

    # VAD alone, over the whole recording.
    blocks = list(pcm.stream(args.input))
    audio_s = sum(len(b) for b in blocks) / pcm.RATE
    t = time.perf_counter()
    seg = Segmenter()
    for b in blocks:
        seg.feed(b)
    seg.flush()
    vad_s = time.perf_counter() - t

    t = time.perf_counter()
    engines = load_engines(settings)
    load_s = time.perf_counter() - t
    with tempfile.TemporaryDirectory() as d:
        archive = Archive.open(Path(d) / "bench.duckdb")
        t = time.perf_counter()
        result = FileSession(engines, archive, settings).run(args.input)
        wall = time.perf_counter() - t
        turns = archive.turns(result.session_id)
        stored, spoken = archive.execute(
            "SELECT sum(octet_length(audio)), sum(duration_s) FILTER (WHERE role = 'user') FROM turns").fetchone()
        archive.close()
    users = [x.timings for x in turns if x.role == "user"]
    replies = [x.timings for x in turns if x.role == "assistant"]

    rows = [
        ("VAD (webrtcvad, whole recording)", [vad_s]),
        ("STT (Whisper) per turn", [u["stt_s"] for u in users]),
        ("LLM first token (from end of STT)", [r["llm_first_token_s"] for r in replies]),
        ("LLM first sentence (from end of turn)", [r.get("llm_first_sentence_s", 0) for r in replies]),
        ("TTS first sentence synthesis", [r.get("tts_first_s", 0) for r in replies]),
        ("end of turn -> first reply audio", [r.get("end_to_first_audio_s", 0) for r in replies]),
        ("LLM whole reply", [r["llm_total_s"] for r in replies]),
    ]
    names = engines.names()
    table = Table(title=f"voice-journal pipeline · {machine()}", caption=(
        f"models: stt {names['stt']}, llm {names['llm']}, tts {names['tts']} · {len(users)} turns, "
        f"{audio_s:.1f} s of audio · model load {load_s:.1f} s · session wall {wall:.1f} s"))
    table.add_column("stage")
    table.add_column("p50 s", justify="right")
    table.add_column("max s", justify="right")
    for name, values in rows:
        table.add_row(name, f"{statistics.median(values):.3f}", f"{max(values):.3f}")
    tokens = [r["completion_tokens"] / max(r["llm_total_s"] - r["llm_first_token_s"], 1e-6) for r in replies]
    table.add_row("LLM generation rate (tokens/s)", f"{statistics.median(tokens):.1f}", "")
    table.add_row("VAD real-time factor", f"{vad_s / audio_s:.5f}", "")
    cached = [r["cached_tokens"] / max(r["prompt_tokens"], 1) for r in replies[1:]]
    if cached and any(cached):
        table.add_row("prompt tokens reused from cache (turns 2+)", f"{statistics.median(cached):.0%}", "")
    table.add_row("journal audio per hour of speech (MB, FLAC)", f"{stored / spoken * 3600 / 1e6:.0f}", "")
    console.print(table)


if __name__ == "__main__":
    main()
