"""The reply of one turn: the model's words, sentence by sentence, held to the rules, spoken as they come."""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from ..audio import pcm
from ..audio.playback import AudioSink
from ..companion.checker import ReplyGate, ReplyRules, reply_grammar
from ..companion.conversation import Plan
from ..config import Settings
from ..errors import LLMError
from ..llm.base import LLM, GenerationOptions, ReplyStream
from ..llm.speculative import SpeculativeStream
from ..speech.sentences import SentenceSplitter, has_words
from ..speech.tts import Voice

from .timings import ReplyTimings

log = logging.getLogger(__name__)

FALLBACK_REPLY = "I'm here, and I'm listening. Take your time."


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
    """How a companion's reply is generated: its length, and its shape held while it is written."""
    return GenerationOptions(max_tokens=max(8, settings.reply_tokens), grammar=reply_grammar(rules or ReplyRules()))


def speak_reply(llm: LLM, voice: Voice | None, messages, sink: AudioSink | None,
                turn_end: float, options: GenerationOptions = GenerationOptions(),
                cancel: threading.Event | None = None, *, rules: ReplyRules | None = None,
                then: str | None = None, stream: ReplyStream | SpeculativeStream | None = None) -> SpokenReply:
    """Stream a reply from the LLM and speak it sentence by sentence.

    ``turn_end`` is the ``perf_counter`` time at which the person's turn was
    judged over; the timings are measured from it. Setting ``cancel`` (from
    any thread) stops the generation at its next token and the voice at its
    next sentence; the caller silences the sink itself. ``rules`` hold the
    reply to a length and a number of questions as it streams (what breaks
    them is not spoken, and the model is stopped); ``then`` is fixed words
    spoken after the model's (a check-in's next question). ``stream``: the
    reply to ``messages``, already begun (:class:`SpeculativeStream`).
    """
    gate = ReplyGate(rules) if rules is not None else None
    cancel = cancel or threading.Event()
    sentences: queue.Queue[str | None] = queue.Queue()
    spoken: list[str] = []
    parts: list[tuple[str, int]] = []
    audio: list[np.ndarray] = []
    marks: dict[str, float] = {}
    failure: list[BaseException] = []

    def tts_worker() -> None:
        try:
            while (s := sentences.get()) is not None:
                if cancel.is_set():
                    continue
                if voice is None:
                    spoken.append(s)
                    continue
                out = voice.sentence(s)
                if cancel.is_set():
                    continue
                if "first_audio" not in marks:
                    marks["first_audio"] = time.perf_counter()
                    marks["tts_first_s"] = out.synth_s
                marks["tts_total_s"] = marks.get("tts_total_s", 0.0) + out.synth_s
                if sink is not None:
                    sink.write(out.samples, out.rate)
                audio.append(out.samples)
                spoken.append(s)
                parts.append((s, len(out.samples)))
        except BaseException as e:  # surface it on the session's thread
            failure.append(e)
            while sentences.get() is not None:
                pass

    worker = threading.Thread(target=tts_worker, name="tts", daemon=True)
    worker.start()
    splitter = SentenceSplitter()
    text: list[str] = []
    sent: list[str] = []
    error: LLMError | None = None
    wordless = False  # a "sentence" of punctuation alone was left out
    marks["request"] = time.perf_counter()
    early = len(stream.written.split()) if isinstance(stream, SpeculativeStream) else None
    stream = stream if stream is not None else llm.stream(messages, options)
    deltas = iter(stream)
    try:
        for delta in deltas:
            if cancel.is_set():
                stream.cancel()
                continue  # the stream ends at its next step
            marks.setdefault("first_token", time.perf_counter())
            text.append(delta)
            for s in splitter.feed(delta):
                if not has_words(s):
                    wordless = True
                    continue
                if gate is not None and (s := gate.spoken(s)) is None:
                    continue
                marks.setdefault("first_sentence", time.perf_counter())
                sentences.put(s)
                sent.append(s)
            if gate is not None and gate.done:
                stream.cancel()  # the rest would not be spoken: stop paying for it
    except LLMError as e:
        error = e
    except BaseException:  # Ctrl-C: stop the model at its next token rather than let it run on
        cancel.set()
        raise
    finally:
        if cancel.is_set():
            stream.cancel()
        deltas.close()  # joins the generation, which the cancel has ended
        rest = [] if cancel.is_set() else splitter.flush()
        wordless = wordless or not all(map(has_words, rest))
        rest = [s for s in rest if has_words(s)]
        if gate is not None:
            rest = [t for s in rest if (t := gate.spoken(s)) is not None]
        if rest and sent and stream.usage is not None and stream.usage.stopped == "length":
            # The reply hit its length limit mid-sentence: end on the last whole sentence
            # rather than speak a dangling "And you".
            rest = []
            text = [" ".join(sent)]
        if wordless or (gate is not None and gate.trimmed):
            text = [" ".join([*sent, *rest])]  # what is spoken is what is kept
        fell_back = not cancel.is_set() and error is None and not then and not sent and not rest
        if fell_back:
            # The model said nothing, or nothing the rules let through ("…", all advice in
            # hold-space): a gentle fixed line rather than silence after someone opened up.
            rest, text = [FALLBACK_REPLY], [FALLBACK_REPLY]
        if then and not cancel.is_set() and error is None:
            # Said even if the gate kept nothing of the model's: the check-in goes on.
            rest = [*rest, then]
            text = [("".join(text).strip() + " " + then).strip()]
        if rest:
            marks.setdefault("first_sentence", time.perf_counter())
        for s in rest:
            sentences.put(s)
        sentences.put(None)
        worker.join()
    if failure:
        raise failure[0]
    usage = stream.usage
    heard = "first_audio" in marks
    timings = ReplyTimings(
        # From the request (or, for a reply begun in the pause, from the end of the turn).
        llm_first_token_s=marks["first_token"] - marks["request"] if "first_token" in marks else 0.0,
        llm_total_s=usage.total_s if usage else 0.0,
        prompt_tokens=usage.prompt_tokens if usage else 0,
        cached_tokens=usage.cached_tokens if usage else 0,
        completion_tokens=usage.completion_tokens if usage else 0,
        # The work between the end of the turn and asking the model (safety check, memory).
        before_llm_s=marks["request"] - turn_end if turn_end else None,
        early_words=early,
        fallback=fell_back,
        llm_first_sentence_s=marks["first_sentence"] - turn_end if "first_sentence" in marks else None,
        tts_first_s=marks["tts_first_s"] if heard else None,
        tts_total_s=marks["tts_total_s"] if heard else None,
        end_to_first_audio_s=marks["first_audio"] - turn_end if heard else None,
    )
    rate = voice.rate if voice is not None else pcm.RATE
    samples = np.concatenate(audio) if audio else np.zeros(0, np.int16)
    return SpokenReply("".join(text).strip(), " ".join(spoken), samples, rate, timings, error,
                       tuple(parts), cancel.is_set())



def fixed_model(plan: Plan, voice: Voice | None) -> str:
    return "safety" if plan.crisis else (voice.name if voice is not None else "fixed")


def speak_reply_text(voice: Voice, text: str, sink: AudioSink | None) -> np.ndarray:
    chunks = []
    for s in voice.speak(text):
        if sink is not None:
            sink.write(s.samples, s.rate)
        chunks.append(s.samples)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)
