"""How the embedded model's memory grows over a long session, with and without llama-server's RAM prompt cache.

    .venv/bin/python benchmarks/llm_memory.py                 # the default model, 60 turns
    .venv/bin/python benchmarks/llm_memory.py --model smollm2-135m --turns 30

A live session asks the model for a reply to the turn so far in each pause
and cancels it when the person goes on, then asks for the reply to the
whole turn; the dialogue grows by a turn and a reply each time. This
replays that pattern on the model alone (no audio, no other models), in a
fresh process per setting, and prints the process's resident memory
(``Rss``) and the part of it that is its own (``Anonymous``: not the model
file's mapped pages, which the kernel can share and drop) every few turns.
llama-server keeps copies of a slot's cache in RAM (``--cache-ram``, 8 GiB
by default); voice-journal turns it off (``RAM_PROMPT_CACHE_MIB`` in
``voice_journal/llm/embedded.py``). Timing is not the point here: see
``benchmarks/live.py`` (``--soak 20`` for a whole 20-minute session).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

ROOT = Path(__file__).resolve().parent.parent

_CHILD = r"""
import json, sys
from voice_journal import models
from voice_journal.companion.dialog import Dialog
from voice_journal.llm import embedded
from voice_journal.llm.base import GenerationOptions, Message

def memory():
    found = {}
    with open("/proc/self/smaps_rollup") as f:
        for line in f:
            key, *rest = line.split()
            if key in ("Rss:", "Anonymous:"):
                found[key[:-1]] = int(rest[0]) // 1024
    return found

name, cache_mib, turns, every = sys.argv[1], *map(int, sys.argv[2:5])
embedded.RAM_PROMPT_CACHE_MIB = cache_mib
llm = embedded.EmbeddedLLM(models.resolve(name, kind="llm"), n_ctx=4096, threads=2)
rows = [(0, memory())]
first_tps = None  # prompt tokens a second, the first reply that read any
# The session's own dialogue, dropping its oldest turns past a bound: a smaller one than a
# session's, so that it begins dropping them after about 20 turns instead of 35.
dialog = Dialog(system="You are a warm, reflective journaling companion. Reflect what was said, "
                       "then ask at most one open question. Keep it short.", max_chars=5600)
for t in range(turns):
    said = (f"Day {t}: I walked by the river after work again and kept thinking about my sister, "
            f"the garden we planted, and whether to call her this weekend or wait for her to call.")
    begun = llm.stream([*dialog.messages(), Message("user", said[: len(said) // 2])], GenerationOptions(max_tokens=8))
    for _ in begun:
        break
    begun.cancel()  # they went on talking
    reply = llm.stream(dialog.add_user(said), GenerationOptions(max_tokens=24))
    dialog.add_assistant(reply.text())
    u = reply.usage
    if first_tps is None and u is not None and u.first_token_s and u.prompt_tokens > u.cached_tokens:
        first_tps = (u.prompt_tokens - u.cached_tokens) / u.first_token_s
    if (t + 1) % every == 0:
        rows.append((t + 1, memory()))
llm.close()
print(json.dumps({"rows": rows, "first_prompt_tps": first_tps}))
"""


def run(model: str, cache_mib: int, turns: int, every: int) -> dict:
    out = subprocess.run([sys.executable, "-c", _CHILD, model, str(cache_mib), str(turns), str(every)],
                         capture_output=True, text=True, cwd=ROOT, check=False)
    if out.returncode != 0:
        sys.exit(f"the measuring process failed: {out.stderr.strip().splitlines()[-1:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b", help="a registry name (default: the companion's)")
    ap.add_argument("--turns", type=int, default=60)
    ap.add_argument("--every", type=int, default=10, help="measure every this many turns")
    args = ap.parse_args()
    console = Console()
    settings = {"RAM prompt cache off (voice-journal)": 0, "llama-server's default (8 GiB)": 8192}
    measured = {label: run(args.model, mib, args.turns, args.every) for label, mib in settings.items()}
    table = Table(title=f"{args.model}: resident memory, MB, after each {args.every} turns "
                        "(a reply begun and cancelled, then the reply, each turn)",
                  caption="first prompt read, tokens/s: " + ", ".join(
                      f"{label} {m['first_prompt_tps']:.0f}" for label, m in measured.items() if m["first_prompt_tps"]))
    table.add_column("turns", justify="right")
    for label in measured:
        table.add_column(f"{label}: Rss / own", justify="right")
    for i, (turn, _) in enumerate(next(iter(measured.values()))["rows"]):
        table.add_row(str(turn), *(f"{m['rows'][i][1]['Rss']:,} / {m['rows'][i][1]['Anonymous']:,}"
                                   for m in measured.values()))
    console.print(table)


if __name__ == "__main__":
    main()
