"""The companion's side of a session: what each of the person's turns gets back.

A session hands every transcript to :meth:`Conversation.turn` and gets a
:class:`Plan`: either fixed words to speak as they are (the crisis message,
a mode's opening, the mood questions) or messages for the model with the
rules its reply must keep and, sometimes, fixed words to say after it (a
check-in's next question). Then it tells the conversation what was actually
said with :meth:`Conversation.replied`. The order of the checks is the
order of what matters:

1. safety: a crisis stops everything (the crisis net, :class:`safety.SafetyNet`,
   sees the words before the model does, with the session's earlier turns);
2. the mood rating the session opened or is closing with;
3. a spoken request for another mode ("let's do a check-in");
4. a question about the companion itself ("are you a real person?"):
   the true answer in fixed words, said first (:mod:`.itself`);
5. the mode's step: its guide for the model, the field the answer fills;
6. memory: past turns that relate, offered to the model to mention.

Nothing here touches audio, models or the archive: the session wires those.
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import re
from dataclasses import dataclass
from typing import Callable

from ..llm.base import Message
from . import arc, itself, modes, safety
from .checker import ReplyRules, their_words, third_persons, words
from .dialog import Dialog
from .language import LanguageChoice, prompt_note
from .mood import parse_mood

HELLO = "Hi, I'm here and listening."
MOOD_BEFORE = "Before we begin: on a scale of one to ten, how are you feeling right now?"
MOOD_AFTER = "Before you go: on a scale of one to ten, how are you feeling now?"
GOODBYE_AFTER_MOOD = "Thank you. Take good care of yourself until next time."


@dataclass(frozen=True)
class Recalled:
    """A past turn of the person's, brought back because it relates to what they just said."""

    session: int
    turn: int
    at: dt.datetime  # UTC, naive, as archived
    text: str
    score: float

    def as_dict(self) -> dict:
        return {"session": self.session, "turn": self.turn, "at": self.at.isoformat(),
                "text": self.text, "score": round(self.score, 3)}


@dataclass(frozen=True)
class Plan:
    """What the companion does with one of the person's turns."""

    check: safety.Assessment
    messages: tuple[Message, ...] = ()  # for the model; empty when the words are fixed
    fixed: str | None = None  # spoken as it is, instead of a model reply
    then: str | None = None  # fixed words spoken after the model's reply
    lead: str | None = None  # fixed words spoken before it: the true answer to a question about the companion
    rules: ReplyRules = ReplyRules()
    answers: tuple[tuple[str, str, float | None], ...] = ()  # (field, their words, a rating) in ``mode``
    mode: str = modes.DEFAULT_MODE  # the mode the answers belong to
    switched: bool = False  # the person asked for this mode with this turn
    recalled: tuple[Recalled, ...] = ()
    ends: bool = False  # the session ends once this reply is spoken

    @property
    def crisis(self) -> bool:
        return self.check.crisis


class Conversation:
    """One session's conversation: mode, dialog, safety and mood, turn by turn."""

    def __init__(self, mode: str = modes.DEFAULT_MODE, *, locale: str | None = None, ask_mood: bool = False,
                 recall: Callable[[str], list[Recalled]] | None = None, now: Callable[[], dt.datetime] | None = None,
                 net: safety.SafetyNet | None = None, answers: itself.Answers | None = None):
        self.run = modes.ModeRun(modes.load(mode))
        self.dialog = Dialog(self.run.mode.prompt)
        self.guard = safety.SessionGuard(net, locale)  # without a net: the word list alone
        self.recall = recall
        self.answers = answers  # questions about the companion itself; None: the model answers them
        self._told: str | None = None  # their last words the model said back (see _said_back)
        self._now = now or (lambda: dt.datetime.now(dt.timezone.utc).replace(tzinfo=None))
        self._awaiting: str | None = "before" if ask_mood else None  # the mood rating we asked for
        self._ask_after = ask_mood
        self.language = LanguageChoice()  # the language replies are in: the person's, once Whisper is sure

    def heard_in(self, language: str, probability: float, text: str) -> bool:
        """Whisper's language for the turn about to be answered; True if replies change language with it.

        Call it before :meth:`turn`, so that the reply (and a crisis message)
        is in the language the person is speaking.
        """
        if not self.language.heard(language, probability, text):
            return False
        self.dialog.system = self._system()  # the model's cache is rebuilt once, on the next reply
        return True

    def crisis_message(self) -> str:
        """The fixed crisis message, in the language replies are in (where the project has its words)."""
        return self.guard.message(self.language.code)

    def _system(self) -> str:
        note = prompt_note(self.language.code)
        return f"{self.mode.prompt}\n\n{note}" if note else self.mode.prompt

    @property
    def mode(self) -> modes.Mode:
        return self.run.mode

    def opening(self) -> str:
        """What the companion says first."""
        return f"{HELLO} {MOOD_BEFORE if self._awaiting == 'before' else self.mode.opening}"

    def turn(self, text: str, *, closing: bool = False, wrap_up: bool = False, english: str | None = None) -> Plan:
        """The person said ``text``; ``closing``: it ends the session (goodbye, the turn or time limit).

        ``english``: the turn in English when it was said in another language, for the crisis net.
        """
        check = self.guard.check(text, english)  # before anything else sees their words
        if check.crisis:
            self._awaiting = self._ask_after = None  # no rating questions after that
            self._told = None  # nothing before a crisis message is said back after it
            self.dialog.add_user(text)
            return Plan(check, fixed=self.crisis_message(), mode=self.mode.name, ends=closing)

        if self._awaiting is not None:
            plan = self._mood_answer(text, check)
            if plan is not None:
                return plan

        wanted = modes.requested(text, self.mode.name) if not closing else None
        if wanted is not None:
            self.run = modes.ModeRun(wanted)
            self.dialog.system = self._system()  # the model's cache is rebuilt once, on the next reply
            self.dialog.add_user(text)
            return Plan(check, fixed=wanted.opening, mode=wanted.name, switched=True)

        mode, before = self.mode, _last_said(self.dialog.messages())
        answered = _answered(self.answers, text, closing, self.language.code)
        said = _said_back(text, answered, self._told)
        if said is None:
            self.dialog.add_user(text)  # only a question, and nothing told before it: the answer is the reply
            return Plan(check, fixed=answered.words, mode=mode.name)
        alone = answered is not None and not answered.rest  # the question was all of the turn
        if closing:
            step, guide = None, arc.WRAP_UP_NOTE if wrap_up else arc.CLOSING_NOTE
        else:
            step = (copy.copy(self.run) if alone else self.run).turn(text)  # a question alone answers no step
            guide = step.guide
        rules = _rules(mode, step, said, self.language.code, before)
        rules = dataclasses.replace(rules, last_question=self.dialog.last_question(), said=self.dialog.replies())
        notes = _notes(self.guard, check, guide, rules, answered)
        recalled = tuple(self.recall(said)) if self.recall is not None and not closing and not alone else ()
        memory = self._memory_note(recalled) if recalled else None
        messages = self.dialog.add_user(text)
        # For the model only: the dialog keeps their words as they said them.
        messages = [*messages[:-1], Message("user", _with_notes(said, notes, memory, _cue(notes, rules)))]
        then = step.then if step is not None and not alone else None  # a question alone moves no step on
        self._told = said
        ends = closing
        if closing and self._ask_after:
            then, ends = MOOD_AFTER, False
            self._awaiting, self._ask_after = "after", False
        answers = ((step.field, said, None),) if step is not None and step.field and not alone else ()
        lead = answered.words if answered is not None else None
        return Plan(check, tuple(messages), then=then, lead=lead, rules=rules, answers=answers, mode=mode.name,
                    recalled=recalled, ends=ends)

    def previewer(self, *, closing: bool = False,
                  wrap_up: bool = False) -> Callable[[str], list[Message] | None]:
        """What :meth:`turn` will most likely send the model, to begin the reply while the person pauses.

        Call it on the session's thread; the function it returns works on a
        copy, so another thread may call it with the turn so far, except
        with ``memory=True``: that searches the journal, as :meth:`turn`
        does (memory comes last, so without it a cache still covers
        everything before). It returns None where fixed words will answer
        (a crisis, a mood rating, a request for another mode): the model is
        not to begin a reply, nor see a crisis before the safety check has
        answered it. ``closing`` and ``wrap_up`` as :meth:`turn` will be
        told (a session's last turn is known before it is said).
        """
        messages = self.dialog.messages()
        run, guard, awaiting = copy.copy(self.run), copy.copy(self.guard), self._awaiting
        language, answers, told = self.language.code, self.answers, self._told

        def preview(text: str, memory: bool = False) -> list[Message] | None:
            check = guard.peek(text)  # an uncertain turn starts the judge now, for turn() to find
            if awaiting is not None or check is None or check.crisis:
                return None
            closes = closing or arc.is_goodbye(text)
            step = None
            if not closes and modes.requested(text, run.mode.name) is not None:
                return None
            before = _last_said(messages)
            answered = _answered(answers, text, closes, language)
            said = _said_back(text, answered, told)
            if said is None:
                return None  # fixed words will answer
            if closes:
                guide = arc.WRAP_UP_NOTE if wrap_up else arc.CLOSING_NOTE
            else:
                step = copy.copy(run).turn(text)
                guide = step.guide
            rules = _rules(run.mode, step, said, language, before)
            notes = _notes(guard, check, guide, rules, answered)
            recalled_note = None
            alone = answered is not None and not answered.rest
            if memory and not closes and not alone and self.recall is not None and (recalled := tuple(self.recall(said))):
                recalled_note = self._memory_note(recalled)
            return Preview([*messages, Message("user", _with_notes(said, notes, recalled_note, _cue(notes, rules)))],
                           rules)

        return preview

    def replied(self, text: str) -> None:
        """What the companion actually said (on barge-in, only what was heard)."""
        self.dialog.add_assistant(text or "…")

    # -- the mood rating ----------------------------------------------------

    def _mood_answer(self, text: str, check: safety.Assessment) -> Plan | None:
        """The person's answer to a mood question, or None if they went straight to journaling."""
        kind, self._awaiting = self._awaiting, None
        value = parse_mood(text)
        if value is None and len(text.split()) > 12:
            return None  # no rating: they began to talk, and that matters more
        answers = (("before" if kind == "before" else "after", text, value),) if value is not None else ()
        self.dialog.add_user(text)
        if kind == "after":
            return Plan(check, fixed=GOODBYE_AFTER_MOOD, answers=answers, mode="mood", ends=True)
        thanks = "Thank you." if value is not None else "That's all right, we don't need a number."
        return Plan(check, fixed=f"{thanks} {self.mode.opening}", answers=answers, mode="mood")

    # -- memory ---------------------------------------------------------------

    def _memory_note(self, recalled: tuple[Recalled, ...]) -> str:
        # In the person's voice, as the turn's other notes are (see _with_notes).
        said = " ".join(f'{_when(r.at, self._now())} I said: "{_clip(r.text)}"' for r in recalled)
        return (f"From my earlier journal entries: {said} If it truly relates, you may mention it "
                "naturally and briefly, for example \"last Tuesday you mentioned...\"; if not, ignore it.")


_ADVICE_WANTED = re.compile(
    r"\b(?:what\s+should\s+i|what\s+(?:do|can|could)\s+i\s+do|any\s+(?:advice|tips|ideas|suggestions)|"
    r"(?:give|got)\s+(?:me\s+)?(?:some\s+|any\s+)?(?:advice|tips)|how\s+(?:do|can|should|could)\s+i|"
    r"what\s+would\s+you\s+(?:do|suggest)|what\s+do\s+you\s+(?:suggest|recommend)|"
    r"help\s+me\s+(?:figure|decide|work\s+out|think)|i\s+(?:need|want|could\s+use)\s+(?:some\s+)?advice)\b",
    re.IGNORECASE)


class Preview(list):
    """The messages a turn will most likely send (a list of them), with the rules its reply will have.

    The rules choose the grammar the reply begun in the pause is written in,
    so they must be the turn's own for that reply to be kept.
    """

    def __init__(self, messages: list[Message], rules: ReplyRules):
        super().__init__(messages)
        self.rules = rules


def _rules(mode: modes.Mode, step: modes.StepTurn | None, text: str, language: str = "en",
           before: tuple[str, ...] = ()) -> ReplyRules:
    """What the reply to ``text`` may be: the step's rules, loosened where the person asked for it.

    In English, the reply also begins by naming something they said (``theirs``;
    the test of it knows English words only): in this turn or in their turns
    just ``before`` it, so that "i don't know" is answered from what they said
    before, and bringing back what they said two turns ago counts as listening.
    And it speaks to them, not of them: the third persons those turns spoke of
    (``others``) tell a "they" that means someone else from one that means them.
    """
    said = " ".join((text, *before))
    if step is None:  # a closing: a warm goodbye asks nothing
        english = language == "en"
        return ReplyRules(mode.max_words, 0, others=third_persons(said) if english else None, latin=english)
    rules = step.rules
    if asks_for_advice(text):
        rules = ReplyRules(rules.max_words, rules.max_questions, advice=True)
    if rules.max_questions == 0 and not step.then and _asks(text):
        rules = ReplyRules(rules.max_words, 1, rules.advice)  # they asked something: an answer may ask back
    if language == "en":
        rules = dataclasses.replace(rules, theirs=their_words(said), others=third_persons(said), latin=True)
    return rules


def _last_said(messages: list[Message], turns: int = 2) -> tuple[str, ...]:
    """The person's last ``turns`` turns in the dialog, as they said them, latest first."""
    return tuple(m.content for m in reversed(messages) if m.role == "user")[:turns]


def asks_for_advice(text: str) -> bool:
    """Did the person ask for advice? Only then may a reply give it."""
    return bool(_ADVICE_WANTED.search(text.replace("’", "'")))


def _asks(text: str) -> bool:
    """Did the person end on a question to the companion (not a question they quote)?"""
    return text.rstrip(" \"'”’)").endswith("?")


def _clip(text: str, limit: int = 220) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[:limit].rsplit(" ", 1)[0] + "…"


def _answered(answers: itself.Answers | None, text: str, closing: bool, language: str) -> itself.Answer | None:
    """The fixed, true answer said first, where the turn asks about the companion.

    In English only: the detector and the answers know no other language.
    """
    if answers is None or closing or language != "en":
        return None
    return answers.to(text)


def _said_back(text: str, answered: itself.Answer | None, told: str | None) -> str | None:
    """What the model is given to say back: the turn, or, where it asked about the companion, the rest of it.

    The model never sees such a question: shown one, even after the app's
    true answer, it answered it too, and falsely ("this has been uploaded to
    a platform"). Where the question was all of the turn, the model says
    back ``told``, their words it was last given; None where there are none
    (the fixed answer is then the whole reply).
    """
    if answered is None:
        return text
    return answered.rest or told


def _notes(guard: safety.SessionGuard, check: safety.Assessment, guide: str | None,
           rules: ReplyRules, answered: itself.Answer | None = None) -> list[str]:
    """The app's notes to the model for a turn: the step's guide, the reply's shape, then the crisis net's.

    The net's note comes last, next to their words: the others are the same
    for most turns and are read into the model's cache once the last reply
    is spoken (see ``session.live``), and the net's note is only known once
    the worrying words are said. When it came first, all of them were read
    again after the turn (160 to 180 tokens instead of the words alone: the
    slowest two turns of ten in a live run).
    """
    notes = [guide] if guide else []
    if answered is not None:
        notes.append(ANSWERED_NOTE)
    notes.append(_shape(rules, words(answered.words) if answered is not None else 0))
    if note := guard.model_note(check):
        notes.append(note)
    return notes


# After the fixed answer, the model says back what the person said. It is shown neither the
# question nor the answer: quoted the answer, it said it over again; shown the question, it
# answered it too, and falsely ("this has been uploaded to a platform").
ANSWERED_NOTE = "I asked about you, and that is answered. Say back, in new words, what I told you."


def _shape(rules: ReplyRules, said: int = 0) -> str:
    """The length the reply may have, said plainly: a small model keeps to a number it was just given.

    ``said``: words the app says before the model's (a fixed answer); the model has what is left.
    """
    left = max(MIN_LEFT, rules.max_words - said)
    most = max(1, left // 17)
    sentences = "one short sentence" if most == 1 else f"{most} short sentences at most"
    return f"Reply in {sentences}, under {left} words" + ("; ask no question" if not rules.max_questions
                                                           else "") + "."


MIN_LEFT = 10  # words a model's reply after fixed words is told it has, at least


# A few words after theirs, because a small model heeds the last words it read most: with the
# notes before their words and nothing after, fewer replies said back what was said (37 of 50
# tuning turns against 43 with the notes after). Short, so that it costs little to read once
# the turn is over.
REPLY_CUE = "Begin by saying back to me the specific thing I just said."
# The same on a turn the crisis net is concerned about: the check-in its note asks for, said
# where the model heeds it most.
CHECK_IN_CUE = ("Begin by saying back to me the specific thing I just said, "
                "then gently ask how I am and if I feel safe.")


def _cue(notes: list[str], rules: ReplyRules) -> str:
    """What is asked after their words: the check-in the concern note asks for, where a question may be asked.

    Where none may (hold-space, a step whose next question is fixed), the
    gate would cut it: the cue then asks for the reflection alone.
    """
    return CHECK_IN_CUE if safety.CONCERN_NOTE in notes and rules.max_questions else REPLY_CUE


def _with_notes(text: str, notes: list[str], memory: str | None = None, cue: str = REPLY_CUE) -> str:
    """The app's notes to the model, then their words, then what memory recalled.

    The notes come first because they hardly change while the person talks,
    and their words do: the turn so far is evaluated into the model's cache
    at every pause, so notes before the words stay cached, and only the
    words since the last pause are read when the turn ends (notes after the
    words were read again each time, some 50 tokens, about 0.8 s on two
    cores). Memory is searched only in a pause, so it comes last.

    The notes are written in the person's voice ("Say back to me the good
    thing I named"), as the rest of their message is. Notes that spoke of
    them as "they" made a small model answer someone else about them ("They
    just mentioned how long they have been sober."): 5 of 50 tuning replies,
    by ``checker.speaks_of_them``. In their voice, with "The person..." held
    back by the grammar (``checker.NOT_OPENINGS``), none.
    """
    said = " ".join(f"({n.strip('()')})" for n in notes)
    asked = f"({cue})" if notes and text else ""
    return "\n\n".join(part for part in (said, text, asked, f"({memory})" if memory else "") if part)


def _when(at: dt.datetime, now: dt.datetime) -> str:
    """A spoken, relative date: "yesterday", "last Tuesday", "on 3 November" (both times naive UTC)."""
    at, now = (t.replace(tzinfo=dt.timezone.utc).astimezone() for t in (at, now))  # the person's calendar
    days = (now.date() - at.date()).days
    if days <= 0:
        return "Earlier today"
    if days == 1:
        return "Yesterday"
    if days < 7:
        return f"On {at:%A}"
    if days < 14:
        return f"Last {at:%A}" if at.weekday() <= now.weekday() else f"On {at:%A} {at.day} {at:%B}"
    return f"On {at.day} {at:%B}" + ("" if at.year == now.year else f" {at.year}")
