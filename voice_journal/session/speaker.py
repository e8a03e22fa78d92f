"""The reply of one turn: the model's words, sentence by sentence, held to the rules, spoken as they come."""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from ..audio import pcm
from ..audio.playback import AudioSink
from ..companion import arc
from ..companion.checker import FIRST_PERSON_TOKENS, OPENER_TOKENS, ReplyGate, ReplyRules, reply_grammar
from ..companion.conversation import Plan
from ..config import Settings
from ..errors import LLMError
from ..llm.base import LLM, GenerationOptions, ReplyStream
from ..llm.speculative import SpeculativeStream
from ..speech.sentences import SentenceSplitter, has_words
from ..speech.tts import Voice

from .timings import ReplyTimings

log = logging.getLogger(__name__)

# Said where the rules kept nothing of what the model wrote, even asked again. A small model
# that copies its earlier replies can end there turn after turn: one line said three times in a
# ten-turn live run sounded like a machine stuck, so a line is said again only once each is used.
FALLBACK_REPLIES = (
    "I'm here, and I'm listening. Take your time.",
    "Go on, I'm listening.",
    "Take all the time you need. I'm still listening.",
)
FALLBACK_REPLY = FALLBACK_REPLIES[0]


def fallback_line(said: Sequence[str] = (), *, closing: bool = False) -> str:
    """The gentle fixed line: the one said least often in ``said`` (the session's replies), the first on a tie.

    ``closing``: the reply ends the session, so the line is a goodbye ("take your time" is not).
    """
    if closing:
        return arc.CLOSING_INTERRUPTED
    return min(FALLBACK_REPLIES, key=said.count)


# -- the reply of one turn ----------------------------------------------------


@dataclass(frozen=True)
class SpokenReply:
    text: str  # what the model wrote
    spoken_text: str  # what was synthesised (differs on cancel)
    audio: np.ndarray
    rate: int
    timings: ReplyTimings
    error: LLMError | None = None
    parts: tuple[tuple[str, int], ...] = ()  # each synthesised sentence and its number of samples
    cancelled: bool = False
    draft: str = ""  # the model's first words as it wrote them, before the gate (the reply may differ)

    def heard(self, samples: int) -> tuple[str, np.ndarray]:
        """The text and audio of the first ``samples`` samples, for a reply cut short.

        Whole sentences that were played are kept; of the sentence that was
        playing, the share of its words matching the share of its audio.
        """
        words: list[str] = []
        left = samples
        for text, n in self.parts:
            if left >= n:
                words.append(text)
                left -= n
                continue
            if left > 0 and n:
                ws = text.split()
                k = int(len(ws) * left / n)
                if k:
                    words.append(" ".join(ws[:k]) + "…")
            break
        return " ".join(words), self.audio[: max(0, samples)]


def reply_options(settings: Settings, rules: ReplyRules | None = None) -> GenerationOptions:
    """How a companion's reply is generated: its length, its shape and its "you" held while it is written."""
    return GenerationOptions(max_tokens=max(8, settings.reply_tokens), grammar=reply_grammar(rules or ReplyRules()),
                             avoid=FIRST_PERSON_TOKENS + OPENER_TOKENS)


def speak_reply(llm: LLM, voice: Voice | None, messages, sink: AudioSink | None,
                turn_end: float, options: GenerationOptions = GenerationOptions(),
                cancel: threading.Event | None = None, *, rules: ReplyRules | None = None,
                then: str | None = None, lead: str | None = None,
                stream: ReplyStream | SpeculativeStream | None = None, closing: bool = False) -> SpokenReply:
    """Stream a reply from the LLM and speak it sentence by sentence.

    ``turn_end`` is the ``perf_counter`` time at which the person's turn was
    judged over; the timings are measured from it. Setting ``cancel`` (from
    any thread) stops the generation at its next token and the voice at its
    next sentence; the caller silences the sink itself. ``rules`` hold the
    reply to a length and a number of questions as it streams (what breaks
    them is not spoken, and the model is stopped); ``then`` is fixed words
    spoken after the model's (a check-in's next question); ``lead``, fixed
    words spoken before them, at once (the true answer to a question about
    the companion): the model's words fit in what it leaves of the length. ``stream``: the reply to
    ``messages``, already begun (:class:`SpeculativeStream`). ``closing``: the reply ends the
    session (where the rules keep nothing, a goodbye is said, see :func:`fallback_line`).
    """
    leads = getattr(llm, "grammars", False) and options.grammar is not None
    if rules is not None and rules.theirs and not leads:
        rules = dataclasses.replace(rules, theirs=frozenset())  # it could not be asked again, led in: cut only
    reply = _Reply(ReplyGate(rules) if rules is not None else None, cancel or threading.Event())
    voicing = _Voicing(voice, sink, reply.cancel)
    reply.marks["request"] = time.perf_counter()
    if lead:
        reply.begin_with(lead, voicing)
    early = len(stream.written.split()) if isinstance(stream, SpeculativeStream) else None
    stream = stream if stream is not None else llm.stream(messages, options)
    try:
        reply.read(stream, voicing)
        if reply.needs_asking_again():
            # Nothing it wrote named what they said: once more, begun with their words.
            log.info("the reply named nothing they said (%r): asking again, led in", "".join(reply.written)[:80])
            reply.again(rules)
            stream = llm.stream(messages, dataclasses.replace(options, grammar=reply_grammar(rules, led=True)))
            reply.read(stream, voicing)
    finally:
        reply.end(then, voicing, closing)
        voicing.finish()
    voicing.check()
    return SpokenReply(reply.text, " ".join(voicing.spoken), voicing.samples(), voicing.rate,
                       reply.timings(stream.usage, voicing, turn_end, early), reply.error, tuple(voicing.parts),
                       reply.cancel.is_set(), reply.draft if reply.draft is not None else "".join(reply.written).strip())


class _Voicing:
    """The voice's thread: each sentence it is given, synthesised and played in order; what was heard."""

    def __init__(self, voice: Voice | None, sink: AudioSink | None, cancel: threading.Event):
        self.voice, self.sink, self.cancel = voice, sink, cancel
        self.rate = voice.rate if voice is not None else pcm.RATE
        self.spoken: list[str] = []
        self.parts: list[tuple[str, int]] = []  # each sentence played, with its number of samples
        self.audio: list[np.ndarray] = []
        self.first_audio: float | None = None  # perf_counter time of the first audio
        self.tts_first_s = self.tts_total_s = 0.0
        self._queue: queue.Queue[str | None] = queue.Queue()
        self._failure: list[BaseException] = []
        self._thread = threading.Thread(target=self._run, name="tts", daemon=True)
        self._thread.start()

    def say(self, sentence: str) -> None:
        self._queue.put(sentence)

    def finish(self) -> None:
        """Wait for every sentence given to be spoken (or skipped, once cancelled)."""
        self._queue.put(None)
        self._thread.join()

    def check(self) -> None:
        """Raise, on the caller's thread, what failed on the voice's."""
        if self._failure:
            raise self._failure[0]

    def samples(self) -> np.ndarray:
        return np.concatenate(self.audio) if self.audio else np.zeros(0, np.int16)

    def _run(self) -> None:
        try:
            while (s := self._queue.get()) is not None:
                if self.cancel.is_set():
                    continue
                if self.voice is None:
                    self.spoken.append(s)
                    continue
                out = self.voice.sentence(s)
                if self.cancel.is_set():
                    continue
                if self.first_audio is None:
                    self.first_audio, self.tts_first_s = time.perf_counter(), out.synth_s
                self.tts_total_s += out.synth_s
                if self.sink is not None:
                    self.sink.write(out.samples, out.rate)
                self.audio.append(out.samples)
                self.spoken.append(s)
                self.parts.append((s, len(out.samples)))
        except BaseException as e:  # surface it on the session's thread
            self._failure.append(e)
            while self._queue.get() is not None:
                pass


class _Reply:
    """The model's side of one reply: its words as they come, cut into sentences, held to the rules."""

    def __init__(self, gate: ReplyGate | None, cancel: threading.Event):
        self.gate, self.cancel = gate, cancel
        self.splitter = SentenceSplitter()
        self.written: list[str] = []  # every delta, as the model wrote it
        self.sent: list[str] = []  # the sentences given to the voice
        self.kept: str | None = None  # what the reply is, where that differs from what was written
        self.wordless = False  # a "sentence" of punctuation alone was left out
        self.fell_back = False
        self.error: LLMError | None = None
        self.marks: dict[str, float] = {}
        self.draft: str | None = None  # what the model wrote first, where it was asked again
        self.lead = ""  # fixed words said before the model's

    @property
    def text(self) -> str:
        return f"{self.lead} {self._body}".strip()

    @property
    def _body(self) -> str:
        """The model's part of the reply."""
        return (self.kept if self.kept is not None else "".join(self.written)).strip()

    def begin_with(self, lead: str, voicing: _Voicing) -> None:
        """Say ``lead`` before anything the model writes; the model's words then fit in what is left.

        The lead counts as the reply's first sentence for the gate: a model
        sentence that does not fit after it is left out, and an empty
        model reply is no reason to ask again (the lead said something).
        """
        self.lead = lead
        # Its sentences one by one, for Piper's sake, none cut at a comma. The model's words then go
        # through the same splitter, its first piece given: the voice has begun, so the model's
        # first sentence is not cut early either (a clause said early could be left hanging by
        # the length the lead used up).
        self.splitter = SentenceSplitter(first_chars=len(lead))
        for sentence in self.splitter.feed(lead + " ") + self.splitter.flush():
            voicing.say(sentence)
        if self.gate is not None:
            self.gate.said_first(lead)

    def read(self, stream, voicing: _Voicing) -> None:
        """Write ``stream`` out (see :meth:`write`), and leave the model stopped and joined."""
        deltas = iter(stream)
        try:
            self.write(stream, deltas, voicing)
        except BaseException:  # Ctrl-C: stop the model at its next token rather than let it run on
            self.cancel.set()
            raise
        finally:
            if self.cancel.is_set():
                stream.cancel()
            deltas.close()  # joins the generation, which the cancel has ended
        self._last_words(stream, voicing)

    def _last_words(self, stream, voicing: _Voicing) -> None:
        """The words after the last sentence's end, once the model is done: spoken as a sentence if whole."""
        rest = [] if self.cancel.is_set() else list(self._speakable(self.splitter.flush()))
        if rest and self.sent and stream.usage is not None and stream.usage.stopped == "length":
            # The reply hit its length limit mid-sentence: end on the last whole sentence
            # rather than speak a dangling "And you".
            rest = []
            self.kept = " ".join(self.sent)
        if rest:
            self.marks.setdefault("first_sentence", time.perf_counter())
        for s in rest:
            voicing.say(s)
            self.sent.append(s)
        if self.gate is not None:
            self.gate.finish()

    def needs_asking_again(self) -> bool:
        """Nothing was spoken, as nothing named what they said, and the model is free to try once more."""
        return (self.draft is None and self.gate is not None and self.gate.needs_asking_again
                and not self.cancel.is_set() and self.error is None)

    def again(self, rules: ReplyRules) -> None:
        """Start over for a reply asked again, keeping the first as the draft; it is a reflection from its lead."""
        self.draft = "".join(self.written).strip()
        self.gate = ReplyGate(dataclasses.replace(rules, theirs=frozenset()))
        self.splitter = SentenceSplitter()
        self.written, self.wordless, self.kept = [], False, None

    def write(self, stream, deltas, voicing: _Voicing) -> None:
        """Read the model's deltas, giving each sentence the gate lets through to the voice at once."""
        try:
            for delta in deltas:
                if self.cancel.is_set():
                    stream.cancel()
                    continue  # the stream ends at its next step
                self.marks.setdefault("first_token", time.perf_counter())
                self.written.append(delta)
                for s in self._speakable(self.splitter.feed(delta)):
                    self.marks.setdefault("first_sentence", time.perf_counter())
                    voicing.say(s)
                    self.sent.append(s)
                if self.gate is not None and self.gate.done:
                    stream.cancel()  # the rest would not be spoken: stop paying for it
        except LLMError as e:
            self.error = e

    def end(self, then: str | None, voicing: _Voicing, closing: bool = False) -> None:
        """The model is done: a fixed line where nothing was kept, and ``then``."""
        rest: list[str] = []
        if self.wordless or (self.gate is not None and self.gate.trimmed):
            self.kept = " ".join(self.sent)  # what is spoken is what is kept
        going_on = not self.cancel.is_set() and self.error is None
        self.fell_back = going_on and not then and not self.sent and not self.lead
        if self.fell_back:
            # The model said nothing, or nothing the rules let through ("…", all advice in
            # hold-space): a gentle fixed line rather than silence after someone opened up.
            line = fallback_line(self.gate.rules.said if self.gate is not None else (), closing=closing)
            rest, self.kept = [line], line
        if then and going_on:
            # Said even if the gate kept nothing of the model's: the check-in goes on.
            rest = [*rest, then]
            self.kept = (self._body + " " + then).strip()
        if rest:
            self.marks.setdefault("first_sentence", time.perf_counter())
        for s in rest:
            voicing.say(s)

    def timings(self, usage, voicing: _Voicing, turn_end: float, early: int | None) -> ReplyTimings:
        m, heard = self.marks, voicing.first_audio is not None
        return ReplyTimings(
            # From the request (or, for a reply begun in the pause, from the end of the turn).
            llm_first_token_s=m["first_token"] - m["request"] if "first_token" in m else 0.0,
            llm_total_s=usage.total_s if usage else 0.0,
            prompt_tokens=usage.prompt_tokens if usage else 0,
            cached_tokens=usage.cached_tokens if usage else 0,
            completion_tokens=usage.completion_tokens if usage else 0,
            # The work between the end of the turn and asking the model (safety check, memory).
            before_llm_s=m["request"] - turn_end if turn_end else None,
            early_words=early,
            fallback=self.fell_back,
            asked_again=self.draft is not None,
            llm_first_sentence_s=m["first_sentence"] - turn_end if "first_sentence" in m else None,
            tts_first_s=voicing.tts_first_s if heard else None,
            tts_total_s=voicing.tts_total_s if heard else None,
            end_to_first_audio_s=voicing.first_audio - turn_end if heard else None,
        )

    def _speakable(self, sentences):
        """The sentences to speak: with words in them, as the gate lets them through (perhaps turned)."""
        for s in sentences:
            if not has_words(s):
                self.wordless = True
                continue
            if self.gate is not None and (s := self.gate.spoken(s)) is None:
                if self.gate.holding and not self.sent and not self.lead:
                    self.splitter.unheard()  # nothing is heard yet: the next piece is still the first
                continue
            yield s


def fixed_model(plan: Plan, voice: Voice | None) -> str:
    return "safety" if plan.crisis else (voice.name if voice is not None else "fixed")


def speak_reply_text(voice: Voice, text: str, sink: AudioSink | None) -> np.ndarray:
    chunks = []
    for s in voice.speak(text):
        if sink is not None:
            sink.write(s.samples, s.rate)
        chunks.append(s.samples)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
