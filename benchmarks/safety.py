"""The crisis net on its frozen split: recall and false alarms per layer and per category, and latency.

    .venv/bin/python benchmarks/safety.py             # rules and semantic layers, and the net
    .venv/bin/python benchmarks/safety.py --judge     # and the judge on the default model (slow)

The frozen split (``tests/safety/frozen.tsv``, ``frozen_context.tsv``) was
written apart from the training data and the detector and frozen before
any tuning; nothing here feeds back into the thresholds. Figures are on
it alone. "hard negatives" are the ``none`` phrases; a concern phrase
called a crisis is counted separately.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rich.console import Console  # noqa: E402
from rich.table import Table  # noqa: E402

from pipeline import machine  # noqa: E402
from voice_journal import config  # noqa: E402
from voice_journal.companion import safety  # noqa: E402
from voice_journal.companion.safety import corpus, rules  # noqa: E402
from voice_journal.session import load_engines  # noqa: E402

FROZEN = ROOT / "tests" / "safety" / "frozen.tsv"
FROZEN_CONTEXT = ROOT / "tests" / "safety" / "frozen_context.tsv"


def _pct(xs: list[bool]) -> str:
    return f"{100 * sum(xs) / len(xs):.1f}% ({sum(xs)}/{len(xs)})" if xs else "-"


def _ms(xs: list[float], q: float) -> str:
    return f"{1000 * statistics.quantiles(xs, n=20)[int(q * 20) - 1]:.1f}" if len(xs) > 1 else "-"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--judge", action="store_true", help="also ask the default model about the uncertain band")
    args = parser.parse_args()
    phrases = corpus.read(FROZEN)
    engines = load_engines(config.load(safety_judge=args.judge), voice=False, stt=False, llm=args.judge)
    net = engines.safety_net()
    semantic_only = safety.SafetyNet(net.embed, net.model)
    for p in phrases[:5]:
        net.assess(p.text)  # warm the ONNX session

    got: dict[str, list[tuple[corpus.Phrase, str]]] = defaultdict(list)
    took: dict[str, list[float]] = defaultdict(list)
    for p in phrases:
        t = time.perf_counter()
        r = rules.assess(p.text)
        took["rules"].append(time.perf_counter() - t)
        got["rules"].append((p, r.level))
        t = time.perf_counter()
        score = semantic_only.scores(p.text)
        took["semantic"].append(time.perf_counter() - t)
        th = semantic_only.model.thresholds
        level = "crisis" if score.crisis >= th["crisis"] else "concern" if score.crisis >= th["band"] else "none"
        got["semantic"].append((p, level))
        t = time.perf_counter()
        a = net.assess(p.text)
        took["net" + (" + judge" if args.judge else "")].append(time.perf_counter() - t)
        got["net" + (" + judge" if args.judge else "")].append((p, a.level))

    console = Console()
    table = Table(title=f"Crisis net on the frozen split ({len(phrases)} phrases, {len({p.id for p in phrases})} "
                        f"written twice) · {machine()}")
    for col in ("layer", "crisis recall", "hard negatives called crisis", "concern called crisis",
                "concern or crisis noticed", "p50 ms", "p95 ms"):
        table.add_column(col, justify="left" if col == "layer" else "right")
    for layer, rows in got.items():
        crisis = [lv == "crisis" for p, lv in rows if p.level == "crisis"]
        negatives = [lv == "crisis" for p, lv in rows if p.level == "none"]
        concern = [lv == "crisis" for p, lv in rows if p.level == "concern"]
        noticed = [lv != "none" for p, lv in rows if p.level != "none"]
        table.add_row(layer, _pct(crisis), _pct(negatives), _pct(concern), _pct(noticed),
                      _ms(took[layer], 0.5), _ms(took[layer], 0.95))
    console.print(table)

    final = list(got.values())[-1]
    cats = Table(title="The net, per category (frozen split)")
    for col in ("level", "category", "called crisis", "concern", "none"):
        cats.add_column(col)
    by: dict[tuple[str, str], list[str]] = defaultdict(list)
    for p, lv in final:
        by[(p.level, p.category)].append(lv)
    for (level, category), lvs in sorted(by.items(), key=lambda kv: (safety.LEVELS.index(kv[0][0]) * -1, kv[0][1])):
        cats.add_row(level, category, *(f"{lvs.count(x)}/{len(lvs)}" for x in ("crisis", "concern", "none")))
    console.print(cats)

    forms = Table(title="By form: as typed, and as Whisper writes speech")
    for col in ("form", "crisis recall", "hard negatives called crisis"):
        forms.add_column(col)
    for form in ("typed", "spoken"):
        forms.add_row(form, _pct([lv == "crisis" for p, lv in final if p.form == form and p.level == "crisis"]),
                      _pct([lv == "crisis" for p, lv in final if p.form == form and p.level == "none"]))
    console.print(forms)

    ctx = corpus.read_context(FROZEN_CONTEXT)
    alone, together = [], []
    for c in ctx:
        guard = safety.SessionGuard(net)
        guard.check(c.earlier)
        together.append((c, guard.check(c.current).level))
        alone.append((c, net.assess(c.current).level))
    context = Table(title=f"Context: a turn after an earlier one ({len(ctx)} pairs, frozen)")
    for col in ("read", "crisis caught", "controls called crisis"):
        context.add_column(col)
    for name, rows in (("the turn alone", alone), ("with the session so far", together)):
        context.add_row(name, _pct([lv == "crisis" for c, lv in rows if c.level == "crisis"]),
                        _pct([lv == "crisis" for c, lv in rows if c.level != "crisis"]))
    console.print(context)

    # The hardest wordings, by a third hand (data/dev_hard.tsv): never trained or tuned on. How far
    # the net generalises beyond phrasings like its corpus; the frozen split alone overstates it.
    hard = Table(title="The net on the hard dev split (errands, distance, slang; never trained or tuned on)")
    for col in ("level", "phrases", "called crisis", "concern", "none"):
        hard.add_column(col, justify="left" if col == "level" else "right")
    hard_rows = [(p, net.assess(p.text).level) for p in corpus.dev_hard()]
    for level in ("crisis", "concern", "none"):
        lvs = [lv for p, lv in hard_rows if p.level == level]
        hard.add_row(level, str(len(lvs)), *(_pct([x == want for x in lvs]) for want in ("crisis", "concern", "none")))
    console.print(hard)

    missed = [p for p, lv in final if p.level == "crisis" and lv != "crisis"]
    console.print(f"[bold]Crises missed by the net[/] ({len(missed)}):")
    for p in missed:
        console.print(f"  {p.category:12s} {p.form:6s} {p.text[:110]}", markup=False, highlight=False)
    alarms = [p for p, lv in final if p.level == "none" and lv == "crisis"]
    console.print(f"[bold]Hard negatives called crisis[/] ({len(alarms)}):")
    for p in alarms:
        console.print(f"  {p.category:12s} {p.form:6s} {p.text[:110]}", markup=False, highlight=False)
    engines.close()


if __name__ == "__main__":
    main()
