"""How often the companion's model keeps each mode's reply rules, on realistic journaling turns.

    .venv/bin/python benchmarks/companion_eval.py                 # the quality default (Qwen2.5 1.5B)
    .venv/bin/python benchmarks/companion_eval.py --fast          # SmolLM2 135M, a quick check
    .venv/bin/python benchmarks/companion_eval.py --json eval.json --limit 2

Ctrl-C stops it and reports the replies so far.

Three spoken journaling turns per mode, written like Whisper transcripts of
people journaling (rambles, venting, asking for advice, a bare "I don't
know"), go through a :class:`Conversation` of that mode as consecutive turns,
so that a check-in's or a reframe's steps advance as they do in a session.
The real embedded model (llama.cpp in-process) writes each reply from
``plan.messages`` with the session's generation options.

Per reply: does the raw reply, before any gating, pass ``checker.check``
against the turn's rules (length, questions, markdown), and if not, why;
its words, questions and generation time; and does ``checker.trim`` of it
(what the app would speak) pass: it should, except where the first sentence
alone is over the word limit (the gate always lets the first one through).
Prints a table per mode and in total; ``--json`` keeps every reply.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline import machine  # noqa: E402
from voice_journal import config  # noqa: E402
from voice_journal.companion import modes  # noqa: E402
from voice_journal.companion.checker import check, is_question, trim, words  # noqa: E402
from voice_journal.companion.conversation import Conversation  # noqa: E402
from voice_journal.llm.select import open_llm  # noqa: E402
from voice_journal.session import FALLBACK_REPLY, reply_options  # noqa: E402
from voice_journal.speech.sentences import SentenceSplitter, has_words  # noqa: E402

# Three turns per mode, said one after the other in one conversation of that mode.
INPUTS: dict[str, list[str]] = {
    "free": [
        "So today was kind of a weird one, I had my performance review and it went fine, like objectively "
        "fine, my manager said all the right things and I even got a small raise. But I walked out of there "
        "feeling really flat and kind of empty and I've been trying all evening to figure out why, and I "
        "just can't.",
        "I think some of it is that she offered me the team lead role and I honestly don't know if I want it. "
        "Should I take it? Like, what would you do?",
        "I don't know.",
    ],
    "hold-space": [
        "I am so done with my landlord. The heating has been broken for three weeks, I've emailed him like "
        "six times and he just keeps saying next week, next week, and I'm literally sitting here in my coat.",
        "And then my sister calls and the first thing she says is, well, why don't you just move? Like, "
        "thanks, super helpful, as if I haven't thought of that. Everybody has an opinion and nobody actually "
        "helps.",
        "Sorry, I know I'm just ranting. Is it bad that I'm this angry about it?",
    ],
    "check-in": [
        "Um, tired. Kind of anxious, I guess.",
        "My daughter's teacher called about her grades and it kind of threw off my whole afternoon. I "
        "couldn't really focus after that.",
        "I think I just need to sit down for ten minutes without anyone needing something from me.",
    ],
    "gratitude": [
        "My neighbor brought over soup when she heard I was sick. I didn't even know she knew my name.",
        "The sunlight this morning on the kitchen table. That sounds silly, but it was really nice, I just "
        "sat there with my coffee for a bit.",
        "Honestly, I don't know. I'm struggling to think of a third one today.",
    ],
    "letter": [
        "To my grandmother, I think. She passed away last spring.",
        "Grandma, I never got to tell you how much those summers at your house meant to me. I was such a "
        "moody teenager and you never once made me feel like a burden. I'm sorry I didn't call more at the "
        "end. I kept thinking there would be more time.",
        "I just hope you knew. I think you did. Okay, that's the letter.",
    ],
    "parts": [
        "There's the bit of me that wants to quit my job and go back to school for design, and then there's "
        "another bit that is just terrified of losing the stability I've built.",
        "The first one says, you're thirty four, if you don't do this now you never will. It's afraid of "
        "waking up at fifty and realizing I just played it safe my whole life.",
        "The other one is like, we have rent, we have a car payment, you worked so hard to get here, why "
        "would you throw that away. It's scared of everything falling apart.",
    ],
    "reframe": [
        "The thought is that I'm a bad friend. I forgot my best friend's birthday yesterday, like completely "
        "forgot, and she posted about it and I only saw it this morning.",
        "Well, I did forget, that's a fact. But I've remembered it every other year, and I called her as soon "
        "as I saw, and she said it was okay. She didn't sound mad.",
        "I guess a friend would say that one missed birthday doesn't erase ten years. And I've been really "
        "overwhelmed with the move and everything.",
    ],
    "values": [
        "Last weekend I was teaching my nephew to ride a bike, and, I don't know, I just felt really like "
        "myself. Like patient and silly and actually present, not on my phone.",
        "I think it's, um, being there for people? Like actually showing up, not just texting.",
        "I don't know. Maybe. I don't really want to commit to anything right now.",
    ],
}

_KIND = re.compile(r"^\d+ (words|questions)")


def questions(text: str) -> int:
    splitter = SentenceSplitter(max_chars=10_000, first_chars=10_000)
    return sum(is_question(s) for s in [*splitter.feed(text + " "), *splitter.flush()])


def kind(problem: str) -> str:
    """ "72 words (at most 60)" -> "too many words"; "markdown or a list" stays."""
    m = _KIND.match(problem)
    return f"too many {m.group(1)}" if m else problem


def run(llm, settings, limit: int, console: Console, results: list[dict]) -> None:
    """Append one result per model reply to ``results`` (kept so far if interrupted)."""
    options = reply_options(settings)
    for mode in modes.names():
        conv = Conversation(mode, locale=settings.locale)
        conv.replied(conv.opening())  # the session speaks the opening first; the model sees it
        for text in INPUTS[mode][:limit]:
            plan = conv.turn(text)
            if plan.fixed is not None:  # not a model reply: nothing to check (an input to rewrite)
                console.print(f"[yellow]{mode}: fixed words instead of a reply, skipped: {text[:50]!r}[/yellow]")
                conv.replied(plan.fixed)
                continue
            stream = llm.stream(plan.messages, options)
            raw = stream.text().strip()
            spoken = trim(raw, plan.rules)
            fell_back = not plan.then and not has_words(spoken)
            if fell_back:  # as speak_reply does: a gentle fixed line rather than silence
                spoken = FALLBACK_REPLY
            usage = stream.usage
            results.append({
                "mode": mode, "input": text, "reply": raw,
                "rules": {"max_words": plan.rules.max_words, "max_questions": plan.rules.max_questions},
                "problems": check(raw, plan.rules), "words": words(raw), "questions": questions(raw),
                "first_token_s": round(usage.first_token_s, 3), "total_s": round(usage.total_s, 3),
                "stopped": usage.stopped, "spoken": spoken, "spoken_problems": check(spoken, plan.rules),
                "then": plan.then, "fallback": fell_back,
            })
            conv.replied(" ".join(s for s in (spoken, plan.then) if s))  # what the session would have said
            r = results[-1]
            console.print(f"[dim]{mode:<10} {r['total_s']:5.1f} s  {'ok  ' if not r['problems'] else 'FAIL'} "
                          f"{raw[:90]!r}[/dim]")


def report(console: Console, results: list[dict], settings, load_s: float, wall_s: float) -> None:
    threads = settings.threads or min(4, os.cpu_count() or 2)  # as EmbeddedLLM picks them
    table = Table(title=f"voice-journal companion replies vs. the reply rules · {machine()}", caption=(
        f"model: {settings.llm_model} (embedded, {threads} threads) · {len(results)} replies to scripted "
        f"journaling turns, the raw model reply before the gate · pass: checker.check finds nothing (length, "
        f"questions, markdown) · after trim: what the app speaks · fixed line: the gate kept nothing, so the "
        f"app said \"{FALLBACK_REPLY}\" · median s: generating the whole raw reply "
        f"(the app stops the model once the gate closes) · model load {load_s:.1f} s, run {wall_s:.0f} s"))
    for col, justify in (("mode", "left"), ("rules: words, ?", "right"), ("replies", "right"), ("raw pass", "right"),
                         ("common problems (raw)", "left"), ("median words", "right"),
                         ("median ?", "right"), ("median s", "right"), ("after trim pass", "right"),
                         ("fixed line", "right")):
        table.add_column(col, justify=justify)

    def row(name: str, rs: list[dict], rules: str = "") -> tuple[str, ...]:
        raw_ok = sum(not r["problems"] for r in rs)
        trim_ok = sum(not r["spoken_problems"] for r in rs)
        common = Counter(kind(p) for r in rs for p in r["problems"]).most_common(3)
        return (name, rules, str(len(rs)), f"{100 * raw_ok / len(rs):.0f}% ({raw_ok})",
                ", ".join(f"{k} ×{n}" for k, n in common) or "-",
                f"{statistics.median(r['words'] for r in rs):.0f}",
                f"{statistics.median(r['questions'] for r in rs):.0f}",
                f"{statistics.median(r['total_s'] for r in rs):.1f}",
                f"{100 * trim_ok / len(rs):.0f}%", str(sum(r.get("fallback", False) for r in rs)))

    for mode in modes.names():
        rs = [r for r in results if r["mode"] == mode]
        qs = sorted({r["rules"]["max_questions"] for r in rs})  # a step may allow none, or a question asked one
        if rs:
            table.add_row(*row(mode, rs, f"{modes.load(mode).max_words}w {'-'.join(map(str, qs))}?"))
    table.add_section()
    table.add_row(*row("[bold]total[/bold]", results))
    console.print(table)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--fast", action="store_true", help="SmolLM2 135M instead of Qwen2.5 1.5B")
    ap.add_argument("--json", type=Path, metavar="FILE", help="save every reply (mode, input, reply, problems)")
    ap.add_argument("--limit", type=int, default=3, metavar="N", help="inputs per mode (default: all 3)")
    args = ap.parse_args()
    settings = config.load(profile="fast" if args.fast else "quality")
    console = Console(width=140)

    t = time.perf_counter()
    llm = open_llm("embedded", ollama_model=settings.ollama_model, ollama_host=settings.ollama_host,
                   embedded_model=settings.llm_model, threads=settings.threads or None)
    load_s = time.perf_counter() - t
    t = time.perf_counter()
    results: list[dict] = []
    try:
        run(llm, settings, max(1, args.limit), console, results)
    except KeyboardInterrupt:
        console.print(f"[yellow]interrupted: the {len(results)} replies so far[/yellow]")
    finally:
        llm.close()
    wall_s = time.perf_counter() - t
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    if results:
        report(console, results, settings, load_s, wall_s)


if __name__ == "__main__":
    main()
