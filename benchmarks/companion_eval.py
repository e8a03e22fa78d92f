"""Does the companion listen? Its replies to written journaling turns, scored by rule, raw and as spoken.

    .venv/bin/python benchmarks/companion_eval.py                       # the frozen split, default model
    .venv/bin/python benchmarks/companion_eval.py --split tune          # the split prompts may be tuned on
    .venv/bin/python benchmarks/companion_eval.py --model qwen2.5-coder-0.5b --json out/eval.json
    make eval

The turns (``benchmarks/companion_eval_data.toml``) were written apart from
the prompts, as Whisper writes speech, in exchanges of one to three turns
in each of the eight modes (a step mode's exchange answers its steps in
order), each turn with what a good reply must reflect. A third of them
is frozen: prompts are tuned on ``tune`` only, and the figures quoted are
``frozen`` ones (a test pins the file's hash).

Every reply is scored **raw**, as the model wrote it (after the llama.cpp
grammar that holds its shape while it writes, which is part of the
model's output), and **as spoken**: what the session would say, through
the same ``speak_reply`` (the reply gate, and a reply asked again, led in
by their words, where nothing it first wrote named what they said). The rules:

* reflects: it names something specific the person said (one of the turn's
  ``reflect`` alternatives, as a word stem);
* length: no more words than the mode allows;
* questions: no more than the turn allows (none in hold-space), and not the
  question asked the turn before;
* no advice unless asked, no stock phrase, no list or markdown, no
  letters of another script in an English reply;
* speaks to them: their "I" and "my" said back as "you" and "your", not
  as if the companion had their mother-in-law (``checker.speaks_as_them``);
  and to them, not of them: not "The person said..." or "They just
  mentioned..." where "they" can only mean the person (``checker.speaks_of_them``;
  added 2026-12-04).

A question about the companion itself ("are you a real person?") is
answered first in fixed, true words, as in a session (``companion.itself``):
the spoken reply holds them, the raw one is the model's alone.

Multi-turn conversations (three turns each) are scored for not repeating
a question or an opening, and for bringing back, in the third reply,
what the person said in the first.

    .venv/bin/python benchmarks/companion_eval.py --split tune --concern

scores the replies on turns that worry the crisis net short of a crisis:
every turn carries the note the net adds then (``safety.CONCERN_NOTE``), as
if each had raised a concern, and the table adds how many spoken replies
check in on how the person is, or whether they are safe (``CHECKS_IN``).
A crisis in the word list still gets the fixed crisis message, unscored.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import re
import statistics
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline import machine  # noqa: E402
from voice_journal import config  # noqa: E402
from voice_journal.companion import itself, modes, safety  # noqa: E402
from voice_journal.companion.checker import check, is_question, same_question, words  # noqa: E402
from voice_journal.companion.conversation import Conversation  # noqa: E402
from voice_journal.llm.base import ReplyStream  # noqa: E402
from voice_journal.llm.select import open_llm  # noqa: E402
from voice_journal.session import reply_options, speak_reply  # noqa: E402
from voice_journal.speech.sentences import SentenceSplitter, has_words  # noqa: E402

DATA = ROOT / "benchmarks" / "companion_eval_data.toml"
SEED = [1]  # set from --seed
DATA_FILE = [DATA]  # set from --data
ANSWERS: list = [None]  # the true answers to questions about the companion, as a session has them
_KIND = re.compile(r"^\d+ (words|questions)")
CONCERNED = [False]  # set from --concern
# A check-in, as the concern note asks for one: how they are, whether they feel safe, someone to reach
# (not "a safe space" or "reach out to your sister").
CHECKS_IN = re.compile(r"\b(?:(?:feel|feeling|are you|you're|you are) safe|how are you|how you(?:'re| are) (?:doing|holding|"
                       r"feeling)|are you (?:ok|okay|alright|all right)|holding up|someone you trust|crisis line)\b",
                       re.IGNORECASE)


class Concerned(safety.SafetyNet):
    """The crisis net's word list, and every turn it finds no crisis in a concern (the replies under its note)."""

    def assess(self, text: str, earlier=(), *, wait: bool = True) -> safety.Assessment:
        floor = safety.assess(text)
        concern = safety.Assessment("concern", ("every turn, for the eval",), "distress", "eval")
        return floor if floor.crisis else concern


def conversation(mode: str, settings) -> Conversation:
    """A session's conversation in ``mode``, its opening said (the model sees it)."""
    conv = Conversation(mode, locale=settings.locale, answers=ANSWERS[0], net=Concerned() if CONCERNED[0] else None)
    conv.replied(conv.opening())
    return conv


def load(split: str) -> tuple[list[dict], list[dict]]:
    data = tomllib.loads(DATA_FILE[0].read_text(encoding="utf-8"))
    keep = (lambda x: True) if split == "all" else (lambda x: x["split"] == split)
    return [x for x in data["exchange"] if keep(x)], [c for c in data.get("conversation", []) if keep(c)]


def digest() -> str:
    return hashlib.sha256(DATA_FILE[0].read_bytes()).hexdigest()


def reflects(reply: str, groups: list[str]) -> bool:
    """Whether the reply names one alternative of one group (as a word stem: "exhaust" in "exhausted")."""
    said = reply.lower().replace("’", "'")
    return any(re.search(rf"\b{re.escape(alt.strip().lower())}", said) for g in groups for alt in g.split("|"))


def sentences(text: str) -> list[str]:
    splitter = SentenceSplitter(max_chars=10_000, first_chars=10_000)
    return [*splitter.feed(text + " "), *splitter.flush()]


def kind(problem: str) -> str:
    """ "72 words (at most 60)" -> "too many words"; "a stock phrase (...)" -> "a stock phrase"."""
    m = _KIND.match(problem)
    return f"too many {m.group(1)}" if m else problem.split(" (")[0]


def score(raw: str, rules, reflect: list[str]) -> list[str]:
    problems = check(raw, rules) if has_words(raw) else ["empty"]
    if not reflects(raw, reflect):
        problems.append("reflects nothing specific")
    return problems


def reply(llm, conv: Conversation, text: str, settings) -> dict | None:
    plan = conv.turn(text)
    if plan.fixed is not None:  # fixed words (a crisis, a mode switch): not a model reply
        conv.replied(plan.fixed)
        return None
    # The model's whole reply, with the sampling fixed so that two runs differ by the change, not by luck.
    options = dataclasses.replace(reply_options(settings, plan.rules), seed=SEED[0])
    stream = llm.stream(plan.messages, options)
    deltas = list(stream)
    raw, u = "".join(deltas).strip(), stream.usage
    # Then what the session would say of it: the same deltas through speak_reply, unvoiced (its
    # gate, and the model asked again, led in, where nothing it wrote named what they said).
    replay = ReplyStream(iter(deltas), lambda cancelled, first, total: u)
    said = speak_reply(llm, None, plan.messages, None, 0.0, options, rules=plan.rules, lead=plan.lead, stream=replay)
    spoken, t = said.spoken_text, said.timings
    conv.replied(" ".join(s for s in (spoken, plan.then) if s))  # what the session would have said
    return {"raw": raw, "spoken": spoken, "rules": plan.rules, "fallback": t.fallback, "asked_again": t.asked_again,
            "checks_in": bool(CHECKS_IN.search(spoken)),
            "first_token_s": u.first_token_s, "total_s": u.total_s, "tokens": u.completion_tokens,
            "words": words(raw), "questions": sum(is_question(s) for s in sentences(raw))}


def run_exchanges(llm, settings, exchanges: list[dict], console: Console, results: list[dict]) -> None:
    for ex in exchanges:
        conv = conversation(ex["mode"], settings)
        for i, turn in enumerate(ex["turn"]):
            r = reply(llm, conv, turn["text"], settings)
            if r is None:
                console.print(f"[yellow]{ex['id']} turn {i}: fixed words, not scored[/yellow]")
                continue
            rules = r.pop("rules")
            if turn.get("advice"):
                rules = type(rules)(rules.max_words, rules.max_questions, True, rules.last_question)
            r.update(id=ex["id"], mode=ex["mode"], turn=i, input=turn["text"],
                     problems=score(r["raw"], rules, turn["reflect"]),
                     spoken_problems=score(r["spoken"], rules, turn["reflect"]) if not r["fallback"]
                     else ["a fixed line"])
            results.append(r)
            console.print(f"[dim]{ex['id']:<14} {r['total_s']:5.1f} s  {'ok  ' if not r['problems'] else 'FAIL'} "
                          f"{r['raw'][:100]!r}[/dim]")


def run_conversations(llm, settings, conversations: list[dict], console: Console, results: list[dict]) -> None:
    for c in conversations:
        conv = conversation(c["mode"], settings)
        said = [r for text in c["turns"] if (r := reply(llm, conv, text, settings)) is not None]
        spoken = [r["spoken"] for r in said]
        asked = [next((s for s in reversed(sentences(x)) if is_question(s)), None) for x in spoken]
        repeats = any(q and any(same_question(q, p) for p in asked[:i] if p) for i, q in enumerate(asked))
        openings = [" ".join(x.lower().split()[:4]) for x in spoken]
        results.append({"id": c["id"], "replies": spoken, "raw": [r["raw"] for r in said],
                        "repeats": repeats or len(set(openings)) < len(openings),
                        "remembers": len(spoken) == 3 and reflects(spoken[2], c["remember"])})
        r = results[-1]
        console.print(f"[dim]{c['id']:<14} repeats={r['repeats']} remembers={r['remembers']} "
                      f"{spoken[-1][:90]!r}[/dim]")


def report(console: Console, results: list[dict], talks: list[dict], model: str, split: str, load_s: float,
           rss_mb: float) -> None:
    table = Table(title=f"companion replies vs. the reply rules · {model} · {split} split · {machine()}", caption=(
        f"{len(results)} replies · raw: as the model wrote them (grammar included), before the gate · "
        "all rules: reflects something specific, length, questions (and not last turn's again), no unasked "
        "advice, no stock phrase, no list, their words not in the first person, spoken to them · spoken: after the gate, and "
        "asked again, led in by their words, where nothing it wrote named them · "
        f"data sha256 {digest()[:12]} · seed {SEED[0]} · load {load_s:.1f} s · RSS {rss_mb:,.0f} MB"))
    for col in ("mode", "replies", "raw: all rules", "raw: reflects", "common problems (raw)", "spoken: all rules",
                "fixed line", "asked again", "median words", "first token s", "tokens/s"):
        table.add_column(col, justify="left" if col in ("mode", "common problems (raw)") else "right")

    def row(name, rs):
        n = len(rs)
        ok = sum(not r["problems"] for r in rs)
        refl = sum("reflects nothing specific" not in r["problems"] for r in rs)
        spoken = sum(not r["spoken_problems"] for r in rs)
        common = Counter(kind(p) for r in rs for p in r["problems"]).most_common(3)
        rate = [r["tokens"] / (r["total_s"] - r["first_token_s"]) for r in rs
                if r["tokens"] > 1 and r["total_s"] > r["first_token_s"]]
        return (name, str(n), f"{100 * ok / n:.0f}% ({ok})", f"{100 * refl / n:.0f}%",
                ", ".join(f"{k} ×{c}" for k, c in common) or "-", f"{100 * spoken / n:.0f}% ({spoken})",
                str(sum(r["fallback"] for r in rs)), str(sum(r["asked_again"] for r in rs)),
                f"{statistics.median(r['words'] for r in rs):.0f}",
                f"{statistics.median(r['first_token_s'] for r in rs):.2f}",
                f"{statistics.median(rate):.1f}" if rate else "-")

    for mode in modes.names():
        rs = [r for r in results if r["mode"] == mode]
        if rs:
            table.add_row(*row(mode, rs))
    table.add_section()
    table.add_row(*row("[bold]total[/bold]", results))
    console.print(table)
    if CONCERNED[0]:
        console.print(f"every turn under the concern note: {sum(r['checks_in'] for r in results)} of {len(results)} "
                      "spoken replies check in (how they are, whether they are safe, someone to reach)")
    if talks:
        rep = sum(not t["repeats"] for t in talks)
        mem = sum(t["remembers"] for t in talks)
        console.print(f"three-turn conversations: {len(talks)} · no repeated question or opening {rep}/{len(talks)}"
                      f" · third reply brings back the first turn {mem}/{len(talks)}")


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--split", choices=["frozen", "tune", "all"], default="frozen")
    ap.add_argument("--model", default=None, help="embedded model: registry name or GGUF (default: the setting)")
    ap.add_argument("--fast", action="store_true", help="SmolLM2 135M (a quick check of the wiring)")
    ap.add_argument("--limit", type=int, default=0, help="only the first N exchanges (0: all)")
    ap.add_argument("--conversations", action="store_true", help="only the three-turn conversations")
    ap.add_argument("--json", type=Path, metavar="FILE", help="save every reply")
    ap.add_argument("--data", type=Path, default=DATA, help="the turns (default: the eval's own, with its splits)")
    ap.add_argument("--seed", type=int, default=1, help="the sampling seed (replies differ from run to run without one)")
    ap.add_argument("--concern", action="store_true",
                    help="every turn as if the crisis net raised a concern: the replies under its note")
    args = ap.parse_args()
    SEED[0], CONCERNED[0] = args.seed, args.concern
    settings = config.load(profile="fast" if args.fast else "quality")
    model = args.model or settings.llm_model
    DATA_FILE[0] = args.data
    exchanges, conversations = load(args.split)
    if args.limit:
        exchanges, conversations = exchanges[: args.limit], conversations[: max(1, args.limit // 10)]
    if args.conversations:
        exchanges = []
    console = Console(width=160)
    t = time.perf_counter()
    llm = open_llm("embedded", ollama_model=settings.ollama_model, ollama_host=settings.ollama_host,
                   embedded_model=model, threads=settings.threads or None)
    load_s = time.perf_counter() - t
    from voice_journal.store.embedding import Embedder

    # As a session with the embedded model and no memory: nothing leaves the device.
    ANSWERS[0] = itself.Answers(itself.Detector.load(Embedder.load().embed),
                                itself.facts(backend="embedded", memory=False))
    results: list[dict] = []
    talks: list[dict] = []
    try:
        run_exchanges(llm, settings, exchanges, console, results)
        run_conversations(llm, settings, conversations, console, talks)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted: the {len(results)} replies so far[/yellow]")
    finally:
        rss = rss_mb()
        llm.close()
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"model": model, "split": args.split, "replies": results,
                                         "conversations": talks}, indent=2, ensure_ascii=False, default=str))
    if results:
        report(console, results, talks, model, args.split, load_s, rss)


if __name__ == "__main__":
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    main()
