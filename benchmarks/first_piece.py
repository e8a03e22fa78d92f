"""How soon the first words of a reply are heard, by where its first piece is cut.

    .venv/bin/python benchmarks/first_piece.py                # 20 tune turns: as shipped, and as before phrase cuts
    .venv/bin/python benchmarks/first_piece.py --cuts 16:off 48:off 16:24 16:32 --turns 30

The live benchmark (``live.py``) varies too much from run to run (unseeded
replies, a shared VM) to show a change of a tenth of a second. This one
holds everything else still: the same turns of the companion eval's tune
split, the same seeded replies from the real embedded model, the prompt
already in the model's cache before each reply (as after a pause), and the
real Piper voice; the settings are taken in turn, turn by turn, so that the
machine's drift falls on all of them alike. A setting is ``C:P``: the first
piece is cut at a clause break past C characters (``sentences.FIRST_CHARS``)
or, with none by then, before a word that begins a phrase past P
(``sentences.PHRASE_CHARS``; ``off``: never). ``C:P:held``: as before
``SentenceSplitter.unheard``, a first piece the gate holds back (it names
nothing of theirs) leaves the rest of its sentence uncut. Each turn takes
the settings in a rotated order, so that none is always first. It prints,
per setting, the
median and mean time from asking the model to the first audio, the first
piece's length, how many replies were asked again, and how many replies the
gate spoke differently from the first setting.
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
    ap.add_argument("--cuts", nargs="+", default=["16:24", "16:off:held"], help="C:P settings to compare (see above)")
    ap.add_argument("--turns", type=int, default=20, help="the first N tune exchanges' first turns")
    args = ap.parse_args()
    settings = config.load(profile="quality")
    from voice_journal.llm.select import open_llm

    llm = open_llm("embedded", ollama_model=settings.ollama_model, ollama_host=settings.ollama_host,
                   embedded_model=settings.llm_model, threads=settings.threads or None)
    voice = load_voice(settings)
    exchanges, _ = load("tune")
    cuts = {c: tuple(10_000 if x == "off" else int(x) for x in c.split(":")[:2]) for c in args.cuts}
    unheard = sentences.SentenceSplitter.unheard
    runs: dict[str, list] = {c: [] for c in args.cuts}
    console = Console(width=140)
    try:
        for ex in exchanges[: args.turns]:
            conv = Conversation(ex["mode"], locale=settings.locale)
            conv.replied(conv.opening())
            plan = conv.turn(ex["turn"][0]["text"])
            if plan.fixed is not None:
                continue
            options = dataclasses.replace(reply_options(settings, plan.rules), seed=SEED[0])
            order = list(cuts.items())
            turn = len(runs[args.cuts[0]])
            for cut, (chars, phrase) in order[turn % len(order):] + order[: turn % len(order)]:
                sentences.FIRST_CHARS, sentences.PHRASE_CHARS = chars, phrase
                sentences.SentenceSplitter.unheard = (lambda self: None) if cut.endswith(":held") else unheard
                llm.warm(plan.messages)  # the prompt in the cache, as a pause leaves it
                start = time.perf_counter()
                said = speak_reply(llm, voice, plan.messages, None, start, options, rules=plan.rules)
                first = said.parts[0][0] if said.parts else ""
                runs[cut].append((said.timings.end_to_first_audio_s, len(first), said.timings.asked_again,
                                  said.spoken_text))
                console.print(f"{ex['id']:14} {cut:>8} {said.timings.end_to_first_audio_s:5.2f} s  {first!r}")
    finally:
        llm.close()
    table = Table(title=f"request -> first audio by first piece · {settings.llm_model} · {machine()}"
                        f", {len(runs[args.cuts[0]])} tune turns, seed {SEED[0]}")
    for col in ("clause past : phrase past", "median s", "mean s", "first piece chars (median)", "asked again",
                "spoken differently"):
        table.add_column(col, justify="right")
    first = runs[args.cuts[0]]
    for cut, rs in runs.items():
        t = [r[0] for r in rs if r[0] is not None]
        table.add_row(cut, f"{statistics.median(t):.2f}", f"{statistics.mean(t):.2f}",
                      f"{statistics.median(r[1] for r in rs):.0f}", str(sum(r[2] for r in rs)),
                      str(sum(a[3] != b[3] for a, b in zip(first, rs))))
    console.print(table)


if __name__ == "__main__":
    main()
