"""Fit the detector of questions about the companion, from ``data/train.tsv`` alone.

    python -m voice_journal.companion.itself.train    # writes data/model.npz, reports cross-validation

The threshold comes from cross-validation on the training phrases (each
scored by a model that never saw it): the lowest score at which
at most :data:`FALSE_ALARMS` of the training's "none" phrases would be
answered as a question about the companion. A false alarm costs more than a
miss: a person talking about their robot of a boss would hear "I'm a
computer program", while a missed question still gets the model's reply.
The frozen split in ``tests/itself`` is never read here.
"""

from __future__ import annotations

import argparse

import numpy as np

from ..safety.semantic import closeness, fit, softmax
from . import K_NEAREST, KINDS, MODEL_FILE, TRAINING_FILE, asking, combined, digest, read

FOLDS = 8
L2 = 1e-3
STEPS = 600
FALSE_ALARMS = 0.03


def _fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    return fit(x, y, len(KINDS), l2=L2, steps=STEPS)


def cross_validated(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each phrase's class probabilities and closeness, from a fold that never saw it."""
    folds = np.arange(len(y)) % FOLDS
    p, near = np.zeros((len(y), len(KINDS))), np.zeros(len(y))
    for f in range(FOLDS):
        seen, unseen = folds != f, folds == f
        w, b = _fit(x[seen], y[seen])
        p[unseen] = softmax(x[unseen] @ w + b)
        questions, other = x[seen & (y > 0)], x[seen & (y == 0)]
        near[unseen] = closeness(x[unseen] @ questions.T, x[unseen] @ other.T, K_NEAREST)
    return p, near


def mix_of(p: np.ndarray, near: np.ndarray) -> np.ndarray:
    """The mean and spread of each reading on unseen phrases, to put them on one scale."""
    z = asking(p)
    return np.array([z.mean(), z.std(), near.mean(), near.std()], np.float32)


def threshold(score: np.ndarray, y: np.ndarray) -> float:
    """The lowest score at which at most FALSE_ALARMS of the "none" phrases are taken for questions."""
    alarms = np.sort(score[y == 0])[::-1]
    return float(alarms[int(FALSE_ALARMS * len(alarms))] + 1e-6)


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    from ...store.embedding import Embedder
    from ..safety.semantic import prepare

    rows = read(TRAINING_FILE)
    x = Embedder.load().embed([prepare(text) for _, _, text in rows])
    y = np.array([KINDS.index(kind) for _, kind, _ in rows])
    p, near = cross_validated(x, y)
    mix = mix_of(p, near)
    score = combined(p, near, mix)
    t = threshold(score, y)
    flagged, kind, asks = score >= t, p[:, 1:].argmax(axis=1) + 1, y > 0
    print(f"cross-validated on {len(y)} training phrases: questions found {np.mean(flagged[asks]):.0%} "
          f"({np.sum(flagged[asks])}/{np.sum(asks)}), of the right kind "
          f"{np.mean(kind[asks & flagged] == y[asks & flagged]):.0%}; false alarms {np.mean(flagged[~asks]):.1%} "
          f"({np.sum(flagged[~asks])}/{np.sum(~asks)})")
    for (ident, k, text), f, sc in zip(rows, flagged, score):
        if f != (k != "none"):
            print(f"  {'alarm ' if f else 'missed'} {ident} {k:9} {sc:+.2f} {text}")
    w, b = _fit(x, y)
    np.savez(MODEL_FILE, weights=w, bias=b, asking=x[asks], other=x[~asks], mix=mix,
             threshold=np.float32(t), digest=np.array(digest()))
    print(f"wrote {MODEL_FILE}")


if __name__ == "__main__":
    main()
