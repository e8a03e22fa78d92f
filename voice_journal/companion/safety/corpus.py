"""The labelled phrases the semantic layer learns from, and the frozen split it is judged on.

One phrase a line, tab-separated: ``id level category form text``. Every
phrase is written twice under one id, ``typed`` and ``spoken`` (as Whisper
writes speech: lower case, fillers, little punctuation), so the two forms
of one phrase always fall on the same side of any split.
"""

from __future__ import annotations

import csv
import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from .levels import LEVELS

COLUMNS = ["id", "level", "category", "form", "text"]
CONTEXT_COLUMNS = ["id", "level", "earlier", "current"]
CONTEXT_FILE = "train_context.tsv"


@dataclass(frozen=True)
class Phrase:
    id: str
    level: str
    category: str
    form: str  # "typed" or "spoken"
    text: str


@dataclass(frozen=True)
class InContext:
    """A turn judged with what the same person said earlier in the session."""

    id: str
    level: str
    earlier: str
    current: str


def _rows(path: Path, columns: list[str]) -> list[list[str]]:
    with open(path, encoding="utf-8", newline="") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    if not rows or rows[0] != columns:
        raise ValueError(f"{path}: the header must be {' '.join(columns)}")
    for n, row in enumerate(rows[1:], 2):
        if len(row) != len(columns):
            raise ValueError(f"{path}:{n}: {len(row)} fields, not {len(columns)}")
    return rows[1:]


def read(path: str | Path) -> list[Phrase]:
    phrases = [Phrase(*(c.strip() for c in row)) for row in _rows(Path(path), COLUMNS)]
    for p in phrases:
        if p.level not in LEVELS or p.form not in ("typed", "spoken") or not p.text:
            raise ValueError(f"{path}: bad row {p}")
    return phrases


def read_context(path: str | Path) -> list[InContext]:
    return [InContext(*(c.strip() for c in row)) for row in _rows(Path(path), CONTEXT_COLUMNS)]


def data_dir() -> Path:
    return Path(str(resources.files(__package__) / "data"))


def training() -> list[Phrase]:
    """Every phrase the semantic layer is trained on (never the frozen split, which lives in tests/)."""
    return [p for f in training_files() if f.name != CONTEXT_FILE for p in read(f)]


def dev() -> list[Phrase]:
    """The tuning split: phrases by another hand, never trained on, that the training constants were chosen by."""
    return read(data_dir() / "dev.tsv")


def dev_hard() -> list[Phrase]:
    """A second held-out set, the hardest wordings: never trained on, and no constant was chosen by it.

    Written by a third hand for the wordings a meaning model misses most:
    preparations and goodbyes told as errands, attempts in progress, distance
    ("asking for a friend"), slang, turns buried in a long ramble; and
    look-alikes that are only errands, jokes or accidents. It says how far
    the net generalises, not how it was tuned.
    """
    return read(data_dir() / "dev_hard.tsv")


def training_context() -> list[InContext]:
    return read_context(data_dir() / CONTEXT_FILE)


def digest(paths: list[Path]) -> str:
    """The sha256 of files' bytes, in order: what a fitted model or a frozen split is pinned to."""
    h = hashlib.sha256()
    for p in paths:
        h.update(Path(p).read_bytes())
    return h.hexdigest()


def training_files() -> list[Path]:
    return sorted(data_dir().glob("train_*.tsv"))
