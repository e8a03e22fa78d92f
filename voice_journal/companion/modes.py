"""The companion's modes: each one a file in ``companion/modes/``, run by one small state machine.

A mode file is TOML front matter between ``+++`` lines, then the system
prompt::

    +++
    title = "Daily check-in"
    opening = "Let's do a short check-in. How are you feeling right now?"
    voice = ["check-in", "check in"]      # "let's do a check-in" switches to it
    ask = "let's do a check-in"           # the example `voice-journal modes` shows
    max_words = 40                        # the reply checker's rules
    max_questions = 1

    [[steps]]                             # one per turn of the person's, in order
    field = "feeling"                     # their answer is kept under this name
    guide = "Say back to me how I feel, in one short sentence. Ask no question."  # in their voice
    then = "What's one thing that happened today that affected you?"
    questions = 0                         # this turn's reply may ask none (``then`` asks)
    +++
    You are a warm ... (the system prompt)

A step may also say ``until = "regex"``: it then holds for as many turns as
the person needs (an unsent letter) and moves on at the turn that matches,
whose reply follows the step's ``finish`` guide.
After the last step the mode's ``after`` guide applies. Adding a mode means
adding a file.
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass
from functools import cache
from importlib import resources

from ..errors import InputError
from .checker import ReplyRules

DEFAULT_MODE = "free"


@dataclass(frozen=True)
class Step:
    field: str
    guide: str
    then: str | None = None  # fixed words spoken after the model's reply: the next step's question
    questions: int | None = None  # this turn's question limit, if not the mode's
    until: str | None = None  # stay on this step until the person's turn matches
    finish: str | None = None  # the guide for the turn that matches ``until``


@dataclass(frozen=True)
class Mode:
    name: str
    title: str
    summary: str
    prompt: str  # the shared rules (_base.md), then the mode's own
    opening: str
    voice: tuple[str, ...] = ()
    ask: str = ""  # an example of asking for it aloud
    steps: tuple[Step, ...] = ()
    after: str | None = None
    max_words: int = 60
    max_questions: int = 1

    def rules(self, step: Step | None = None) -> ReplyRules:
        q = step.questions if step is not None and step.questions is not None else self.max_questions
        return ReplyRules(self.max_words, q)


def _folder():
    return resources.files(__package__).joinpath("modes")


def names() -> list[str]:
    """Every mode there is a file for, the default first."""
    found = sorted(p.name[:-3] for p in _folder().iterdir() if p.name.endswith(".md") and p.name[0] != "_")
    return sorted(found, key=lambda n: n != DEFAULT_MODE)


@cache
def load(name: str) -> Mode:
    """The mode in ``companion/modes/<name>.md``; InputError names the modes there are."""
    path = _folder().joinpath(f"{name}.md")
    if not re.fullmatch(r"[a-z][a-z-]*", name or "") or not path.is_file():
        raise InputError(f"unknown companion mode {name!r}; the modes are: {', '.join(names())}")
    return parse(name, path.read_text(encoding="utf-8"))


def parse(name: str, text: str) -> Mode:
    """A mode from the text of its file."""
    m = re.match(r"\A\+\+\+\n(.*?)\n\+\+\+\n(.*)\Z", text, re.DOTALL)
    if not m:
        raise ValueError(f"mode {name}: no +++ front matter")
    meta = tomllib.loads(m.group(1))
    steps = tuple(Step(**s) for s in meta.pop("steps", []))
    for s in steps:
        if s.until:
            re.compile(s.until)
    base = _folder().joinpath("_base.md").read_text(encoding="utf-8").strip()
    return Mode(name=name, prompt=f"{base}\n\n{m.group(2).strip()}", steps=steps,
                voice=tuple(meta.pop("voice", ())), **meta)


# "let's do a check-in", "can we do some reframing", "I just want to vent", "switch to gratitude".
_ASK = (r"(?:let'?s|let\s+us|can\s+we|could\s+we|shall\s+we|i'?d\s+like\s+to|i\s+would\s+like\s+to|"
        r"i\s+(?:just\s+)?(?:want|need)\s+(?:you\s+)?to|i\s+wanna|switch\s+to|go\s+back\s+to|start|try|do)")


def requested(text: str, current: str) -> Mode | None:
    """The mode the person asks for in a short turn ("let's do a check-in"), if another one."""
    said = text.lower().replace("’", "'")
    if len(said.split()) > 14:  # a long turn is journaling that mentions a word, not a request
        return None
    for name in names():
        mode = load(name)
        if name == current or not mode.voice:
            continue
        words = "|".join(re.escape(v).replace(r"\ ", r"[\s-]+").replace(r"\-", r"[\s-]?") for v in mode.voice)
        if re.search(rf"\b{_ASK}\b(?:\W+\w+){{0,4}}?\W+(?:{words})\b", said):
            return mode
    return None


@dataclass(frozen=True)
class StepTurn:
    """What the mode wants from the reply to one of the person's turns."""

    field: str | None  # their turn answers this field (None: free talk)
    guide: str | None  # a note for the model
    then: str | None  # fixed words after the reply
    rules: ReplyRules


class ModeRun:
    """Where a session is in its mode: which step the person's next turn answers."""

    def __init__(self, mode: Mode):
        self.mode = mode
        self.step = 0

    @property
    def finished(self) -> bool:
        return self.step >= len(self.mode.steps)

    def turn(self, text: str) -> StepTurn:
        """The person said ``text``: what this turn's reply should do; moves the machine on."""
        mode = self.mode
        if self.finished:
            return StepTurn(None, mode.after, None, mode.rules())
        step = mode.steps[self.step]
        if step.until and not re.search(step.until, text, re.IGNORECASE):
            return StepTurn(step.field, step.guide, None, mode.rules(step))  # they are still in the middle of it
        self.step += 1
        return StepTurn(step.field, step.finish or step.guide if step.until else step.guide, step.then,
                        mode.rules(step))
