"""Would llama.cpp's n-gram speculative decoding write the companion's replies faster here?

    .venv/bin/python benchmarks/speculative_decoding.py                 # none, then each n-gram kind
    .venv/bin/python benchmarks/speculative_decoding.py --turns 10 --kinds none ngram_map_k

A reflection says back the person's words, so a draft copied from the
prompt (llama.cpp's n-gram lookup: no draft model, no extra weights)
should often be right, and checking several drafted tokens in one batch
costs less than writing them one by one on a GPU. This measures whether
that holds on this machine's cores: the same tune-split turns as
``companion_eval.py``, the same prompts, grammar and seed, one model per
kind of speculation, generation tokens/s and first-token time (medians),
and how many replies came out word for word as without it.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import xllamacpp as xlc  # noqa: E402
from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from companion_eval import load  # noqa: E402
from pipeline import machine  # noqa: E402
from voice_journal import config, models  # noqa: E402
from voice_journal.companion.conversation import Conversation  # noqa: E402
from voice_journal.llm.embedded import EmbeddedLLM  # noqa: E402
from voice_journal.session import reply_options  # noqa: E402

KINDS = ("none", "ngram_simple", "ngram_map_k", "ngram_mod")
NGRAM = 2  # the draft is looked up after this many tokens (llama.cpp's default, 12, never matched a reply)


def speculating(kind: str):
    """llama.cpp's Server, made with ``kind`` of speculation (the session's own settings otherwise)."""
    server = xlc.Server

    def make(params):
        if kind != "none":
            params.speculative.types = [getattr(xlc.common_speculative_type, f"COMMON_SPECULATIVE_TYPE_{kind.upper()}")]
            lookup = getattr(params.speculative, kind)
            if hasattr(lookup, "size_n"):
                lookup.size_n, lookup.size_m = NGRAM, 6
            else:
                lookup.n_match = NGRAM
        return server(params)

    return make


def run(kind: str, model: str, turns: int, threads: int) -> dict:
    xlc.Server = speculating(kind)  # main() puts the real one back
    llm = EmbeddedLLM(models.resolve(model, kind="llm"), threads=threads)
    settings = config.load()
    rates, firsts, replies = [], [], []
    exchanges, _ = load("tune")
    for ex in exchanges:
        conv = Conversation(ex["mode"], locale=settings.locale)
        conv.replied(conv.opening())
        for turn in ex["turn"]:
            if len(replies) >= turns:
                break
            plan = conv.turn(turn["text"])
            if plan.fixed is not None:
                conv.replied(plan.fixed)
                continue
            stream = llm.stream(plan.messages, dataclasses.replace(reply_options(settings, plan.rules), seed=1))
            text = stream.text().strip()
            u = stream.usage
            if u.completion_tokens > 1 and u.total_s > u.first_token_s:
                rates.append((u.completion_tokens - 1) / (u.total_s - u.first_token_s))
            firsts.append(u.first_token_s)
            replies.append(text)
            conv.replied(text)
    llm.close()
    return {"kind": kind, "rate": statistics.median(rates), "first": statistics.median(firsts), "replies": replies}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="qwen2.5-coder-1.5b")
    ap.add_argument("--turns", type=int, default=20)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--kinds", nargs="+", choices=KINDS, default=list(KINDS))
    args = ap.parse_args()
    real_server = xlc.Server
    results = []
    for kind in args.kinds:
        started = time.perf_counter()
        try:
            results.append(run(kind, args.model, args.turns, args.threads))
        finally:
            xlc.Server = real_server
        print(f"{kind}: {time.perf_counter() - started:.0f} s", file=sys.stderr)
    base = next((r for r in results if r["kind"] == "none"), None)
    table = Table(title=f"n-gram speculative decoding · {args.model} · {args.threads} threads · {machine()}",
                  caption=f"{args.turns} tune-split turns, seed 1; the draft looked up after {NGRAM} tokens")
    for col in ("speculation", "generation tokens/s (median)", "first token s (median)", "replies as without"):
        table.add_column(col, justify="left" if col == "speculation" else "right")
    for r in results:
        same = sum(a == b for a, b in zip(r["replies"], base["replies"])) if base else None
        table.add_row(r["kind"], f"{r['rate']:.1f}", f"{r['first']:.2f}",
                      f"{same}/{len(r['replies'])}" if same is not None else "-")
    Console().print(table)


if __name__ == "__main__":
    main()
