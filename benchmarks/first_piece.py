"""How soon the first words of a reply are heard, by where its first piece is cut.

    .venv/bin/python benchmarks/first_piece.py                # 20 tune turns, 16 and 48 characters
    .venv/bin/python benchmarks/first_piece.py --chars 16 32 48 --turns 30

The live benchmark (``live.py``) varies too much from run to run (unseeded
replies, a shared VM) to show a change of a tenth of a second. This one
holds everything else still: the same turns of the companion eval's tune
split, the same seeded replies from the real embedded model, the prompt
already in the model's cache before each reply (as after a pause), and the
real Piper voice; the settings are taken in turn, turn by turn, so that the
machine's drift falls on all of them alike. It prints, per setting, the
median and mean time from asking the model to the first audio, the first
piece's length, and how many replies were asked again.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "benchmarks"))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from companion_eval import SEED, load  # noqa: E402
from pipeline import machine  # noqa: E402
from voice_journal import config  # noqa: E402
from voice_journal.companion.conversation import Conversation  # noqa: E402
from voice_journal.session.engines import load_voice  # noqa: E402
from voice_journal.session.speaker import reply_options, speak_reply  # noqa: E402
from voice_journal.speech import sentences  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--chars", type=int, nargs="+", default=[16, 48], help="first_chars settings to compare")
    ap.add_argument("--turns", type=int, default=20, help="the first N tune exchanges' first turns")
    args = ap.parse_args()
    settings = config.load(profile="quality")
    from voice_journal.llm.select import open_llm

    llm = open_llm("embedded", ollama_model=settings.ollama_model, ollama_host=settings.ollama_host,
                   embedded_model=settings.llm_model, threads=settings.threads or None)
    voice = load_voice(settings)
    exchanges, _ = load("tune")
    runs: dict[int, list] = {c: [] for c in args.chars}
    console = Console(width=140)
    try:
        for ex in exchanges[: args.turns]:
            conv = Conversation(ex["mode"], locale=settings.locale)
            conv.replied(conv.opening())
            plan = conv.turn(ex["turn"][0]["text"])
            if plan.fixed is not None:
                continue
            options = dataclasses.replace(reply_options(settings, plan.rules), seed=SEED[0])
            for chars in args.chars:
                sentences.FIRST_CHARS = chars
                llm.warm(plan.messages)  # the prompt in the cache, as a pause leaves it
                start = time.perf_counter()
                said = speak_reply(llm, voice, plan.messages, None, start, options, rules=plan.rules)
                first = said.parts[0][0] if said.parts else ""
                runs[chars].append((said.timings.end_to_first_audio_s, len(first), said.timings.asked_again))
                console.print(f"{ex['id']:14} {chars:3} chars {said.timings.end_to_first_audio_s:5.2f} s  {first!r}")
    finally:
        llm.close()
    table = Table(title=f"request -> first audio by first piece · {settings.llm_model} · {machine()}"
                        f", {len(runs[args.chars[0]])} tune turns, seed {SEED[0]}")
    for col in ("first piece at", "median s", "mean s", "first piece chars (median)", "asked again"):
        table.add_column(col, justify="right")
    for chars, rs in runs.items():
        t = [r[0] for r in rs if r[0] is not None]
        table.add_row(f"{chars} chars", f"{statistics.median(t):.2f}", f"{statistics.mean(t):.2f}",
                      f"{statistics.median(r[1] for r in rs):.0f}", str(sum(r[2] for r in rs)))
    console.print(table)


if __name__ == "__main__":
    main()
