"""Fit the semantic layer and choose its thresholds, from the training corpus alone.

    python -m voice_journal.companion.safety.train      # writes data/model.npz, reports on data/dev.tsv

Thresholds come from grouped cross-validation on the training phrases (the
two forms of a phrase always in the same fold): each phrase is scored by a
model that never saw it. A crisis outright needs a score that at most
:data:`FALSE_ALARMS` of the hard negatives reach; the uncertain band below
it keeps :data:`RECALL_BAND` of the crises.

The constants here (the regression's strength, how many exemplars, their
share of the score, the false-alarm rate in cross-validation) were chosen
on ``data/dev.tsv``: 172 phrases written by another hand, apart from the
training files and from the frozen split, and never trained on. The frozen
split in ``tests/safety`` is never read here.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass

import numpy as np

from . import corpus
from .levels import LEVELS
from .net import MODEL_FILE, SafetyNet
from .semantic import Embed, Mix, SemanticModel, closeness, fit, logit, prepare

log = logging.getLogger(__name__)

FOLDS = 8
L2 = 1e-5
STEPS = 800
K_NEAREST = 10
MIX_WEIGHT = 0.5  # the regression's share of the crisis score
# On phrases the model has not seen: what is called a crisis outright, and what is uncertain
# (a gentle check-in, or the judge's question where one is set).
# Cross-validated hard negatives are harder than new wording (each sits among near-twins written to
# fool it), so 8% here gave 2.3% on the dev split, with 91% of its crises caught by the net.
FALSE_ALARMS = 0.08  # of the hard negatives, at most, called a crisis by this layer
# Plain journaling ("my sister called"): taught as none, but not counted as hard negatives,
# or their easy scores would loosen the false-alarm threshold.
ORDINARY = "ordinary"
RECALL_BAND = 0.90  # of the crises, at least, in the band or above
CONCERN_RECALL = 0.80  # of concern phrases, by concern + crisis probability


@dataclass(frozen=True)
class Fitted:
    model: SemanticModel
    oof: np.ndarray  # (phrases, 3): out-of-fold level probabilities
    phrases: list[corpus.Phrase]
    risk: np.ndarray  # (phrases,): out-of-fold crisis scores


def _fold_of(ids: list[str]) -> np.ndarray:
    """A fixed fold per phrase id, stratified by level in the order the corpus lists them."""
    unique = list(dict.fromkeys(ids))
    return np.array([unique.index(i) % FOLDS for i in ids])


def _weights(y: np.ndarray, levels: np.ndarray) -> np.ndarray:
    """Each level weighs the same in total, and each category the same within its level."""
    w = np.zeros(len(y))
    for level in np.unique(levels):
        in_level = levels == level
        cats = np.unique(y[in_level])
        for c in cats:
            sel = in_level & (y == c)
            w[sel] = 1.0 / (len(cats) * sel.sum())
    return w


def fit_corpus(phrases: list[corpus.Phrase], embed: Embed, *, cross_validate: bool = True) -> Fitted:
    categories = sorted({p.category for p in phrases}, key=lambda c: (LEVELS.index(_level(phrases, c)), c))
    levels = [_level(phrases, c) for c in categories]
    x = embed([prepare(p.text) for p in phrases])
    y = np.array([categories.index(p.category) for p in phrases])
    lv = np.array([LEVELS.index(p.level) for p in phrases])
    sw = _weights(y, lv)
    exemplar = lv != 1  # crisis and calm phrases; concern sits between and is neither side's example
    oof = np.zeros((len(phrases), 3))
    near = np.zeros(len(phrases))
    if cross_validate:
        fold = _fold_of([p.id for p in phrases])
        for k in range(FOLDS):
            tr, te = fold != k, fold == k
            w, b = fit(x[tr], y[tr], len(categories), l2=L2, steps=STEPS, sample_weight=sw[tr])
            model = SemanticModel(w, b, categories, levels, {})
            oof[te] = model.level_probs(x[te])
            near[te] = closeness(x[te] @ x[tr & (lv == 2)].T, x[te] @ x[tr & (lv == 0)].T, K_NEAREST)
    w, b = fit(x, y, len(categories), l2=L2, steps=STEPS, sample_weight=sw)
    mix = risk = None
    thresholds: dict[str, float] = {}
    if cross_validate:
        lg = logit(oof[:, 2])
        mix = Mix(K_NEAREST, MIX_WEIGHT, round(float(lg.mean()), 5), round(float(lg.std()), 5),
                  round(float(near.mean()), 5), round(float(near.std()), 5))
        risk = mix.risk(oof[:, 2], near)
        hard = np.array([p.category != ORDINARY for p in phrases])
        thresholds = choose_thresholds(oof[hard], risk[hard], lv[hard])
    model = SemanticModel(w, b, categories, levels, thresholds, corpus.digest(corpus.training_files()),
                          x[exemplar], lv[exemplar] == 2, mix)
    return Fitted(model, oof, phrases, risk if risk is not None else oof[:, 2])


def _level(phrases: list[corpus.Phrase], category: str) -> str:
    return next(p.level for p in phrases if p.category == category)


def _at_recall(scores: np.ndarray, recall: float) -> float:
    """The highest threshold that keeps ``recall`` of these scores at or above it."""
    return float(np.quantile(scores, 1.0 - recall, method="lower"))


def choose_thresholds(oof: np.ndarray, risk: np.ndarray, lv: np.ndarray) -> dict[str, float]:
    """From out-of-fold readings: level probabilities (for concern) and crisis scores."""
    crisis = risk[lv == 2]
    alarm = float(np.quantile(risk[lv == 0], 1.0 - FALSE_ALARMS))
    band = min(_at_recall(crisis, RECALL_BAND), alarm)
    concern = oof[lv == 1, 1] + oof[lv == 1, 2]
    return {
        "crisis": round(alarm, 4),
        "band": round(band, 4),
        "concern": round(_at_recall(concern, CONCERN_RECALL), 4),
        # After an earlier concern in the session, the upper half of the band is a crisis.
        "context": round((band + alarm) / 2, 4),
    }


def report(f: Fitted) -> str:
    t = f.model.thresholds
    lv = np.array([LEVELS.index(p.level) for p in f.phrases])
    cat = np.array([p.category for p in f.phrases])
    c = f.risk
    lines = [f"thresholds {t}"]
    for name, sel in (("crisis", lv == 2), ("concern", lv == 1), ("none", lv == 0)):
        lines.append(f"{name:8s} n={sel.sum():4d}  >=crisis {np.mean(c[sel] >= t['crisis']):.3f}  "
                     f">=band {np.mean(c[sel] >= t['band']):.3f}")
    for k in sorted(set(cat)):
        sel = cat == k
        lines.append(f"  {k:18s} n={sel.sum():3d} >=crisis {np.mean(c[sel] >= t['crisis']):.2f} "
                     f">=band {np.mean(c[sel] >= t['band']):.2f}")
    return "\n".join(lines)


def main() -> None:
    from ...store.embedding import Embedder

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(MODEL_FILE))
    args = parser.parse_args()
    embedder = Embedder.load()
    fitted = fit_corpus(corpus.training(), embedder.embed)
    print(report(fitted))
    net = SafetyNet(embedder.embed, fitted.model)
    print(on_dev(net))
    print(on_dev(net, corpus.dev_hard(), "hard dev split (never tuned on)"))
    fitted.model.save(args.out)
    print(f"wrote {args.out}")


def on_dev(net: "SafetyNet", phrases: list[corpus.Phrase] | None = None, name: str = "dev split") -> str:
    """The whole net (word list included) on the dev split: what the constants above were chosen by."""
    rows = [(p, net.assess(p.text).level) for p in (corpus.dev() if phrases is None else phrases)]

    def rate(level: str, said: set[str]) -> str:
        xs = [lv in said for p, lv in rows if p.level == level]
        return f"{sum(xs)}/{len(xs)} ({100 * sum(xs) / len(xs):.1f}%)"

    return (f"{name}: crises caught {rate('crisis', {'crisis'})}, hard negatives called crisis "
            f"{rate('none', {'crisis'})}, concern called crisis {rate('concern', {'crisis'})}, "
            f"hard negatives checked in on {rate('none', {'concern'})}")


if __name__ == "__main__":
    main()
