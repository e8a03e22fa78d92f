"""A journaling session: the one place where the stages are wired together.

From a file (this module) the data flows::

    pcm.stream ──blocks──▶ Segmenter ──Utterance──▶ Transcriber ──Transcript──▶ archive: user turn
                                                                   │
                                                                   ▼
     Conversation (safety check, mode step, mood, memory) ──Plan──▶ fixed words, or
                                          messages ──▶ LLM ──deltas──▶ SentenceSplitter ─▶ ReplyGate
                                                                        (length, questions) │ sentences
                                                                          queue ◀───────────┘
                                                                            │
                                               tts thread: Voice ──audio──▶ sink (WAV / speaker)
                                                                            │
                                                          archive: assistant turn (text, audio, timings)

The LLM streams on the caller's thread while a second thread speaks each
finished sentence, so the first sentence is heard while the second is
being written. Each turn is committed to the archive the moment it is over.
"""

from __future__ import annotations

import collections
import concurrent.futures
import logging
import queue
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import numpy as np

from . import models
from .audio import pcm
from .audio.playback import AudioSink
from .audio.vad import (BargeInDetector, PauseStarted, Segmenter, SegmenterConfig, SpeechResumed,
                        SpeechStarted, Utterance, silero_speech_s)
from .companion import arc, safety
from .companion.checker import ReplyGate, ReplyRules, reply_grammar
from .companion.conversation import Conversation, Plan, Recalled
from .companion.modes import DEFAULT_MODE
from .config import Settings
from .errors import InputError, LLMError, NoSpeechError, VoiceJournalError
from .llm.base import LLM, GenerationOptions, Message, ReplyStream
from .llm.prefetch import PrefetchedReply
from .speech.sentences import SentenceSplitter, has_words
from .speech.stt import LanguagePin, Segment, SttConfig, Transcriber, Transcript
from .speech.tts import Voice
from .recorder import Recorder
from .store import search
from .store.archive import Answer, Archive, interrupted
from .store.embedding import Embedder

log = logging.getLogger(__name__)

_PROMPT_CHARS = 200  # of the turn so far, given to Whisper with each new piece

FALLBACK_REPLY = "I'm here, and I'm listening. Take your time."


@dataclass(frozen=True)
class Engines:
    """The loaded models a session needs."""

    transcriber: Transcriber | None  # None only for work without audio (summaries)
    voice: Voice | None
    llm: LLM | None
    embedder: Embedder | None = None  # for search; a turn is archived without a vector if None
    safety: safety.SafetyNet | None = None  # the crisis net; built from the embedder if None

    def names(self) -> dict[str, str]:
        out = {"stt": self.transcriber.name} if self.transcriber is not None else {}
        if self.llm is not None:
            out["llm"] = f"{self.llm.backend}:{self.llm.model}"
        if self.voice is not None:
            out["tts"] = self.voice.name
        return out

    def close(self) -> None:
        """Stop any generation still running and free the models, now.

        Left to the interpreter's exit, a model could be torn down while a
        native thread still uses it (a crash at exit, after Ctrl-C).
        """
        if self.safety is not None:
            self.safety.close()
        if self.llm is not None:
            self.llm.close()

    def safety_net(self) -> safety.SafetyNet:
        """The crisis net every turn goes through: this one's, or one on the search embeddings."""
        if self.safety is not None:
            return self.safety
        return safety.SafetyNet.load((self.embedder or Embedder.load()).embed)


def load_safety_net(settings: Settings, embedder: Embedder, llm: LLM | None) -> safety.SafetyNet:
    """The crisis net as the settings have it: rules, embeddings, and the model as judge if asked."""
    judge = safety.Judge(llm, settings.safety_judge_timeout_s) if settings.safety_judge and llm is not None else None
    return safety.SafetyNet.load(embedder.embed, judge=judge)


def load_transcriber(settings: Settings) -> Transcriber:
    """The configured Whisper model, with the configured language and threads."""
    return Transcriber(models.resolve(settings.stt_model, kind="stt"),
                       SttConfig(language=settings.language or None, threads=settings.threads or 2))


def load_engines(settings: Settings, *, voice: bool = True, llm: bool = True, stt: bool = True, crisis_net: bool = True,
                 on_status: Callable[[str], None] = lambda s: None) -> Engines:
    """Load (and on first use assemble and verify) the configured models."""
    threads = settings.threads or None
    transcriber = None
    if stt:
        on_status(f"loading speech recognition ({settings.stt_model})")
        transcriber = load_transcriber(settings)
    the_llm = None
    if llm:
        from .llm.select import open_llm

        on_status(f"loading the companion's model ({settings.backend})")
        the_llm = open_llm(
            settings.backend, ollama_model=settings.ollama_model, ollama_host=settings.ollama_host,
            ollama_proxy=settings.ollama_proxy,
            embedded_model=settings.llm_model, threads=threads,
        )
    the_voice = None
    if voice:
        on_status(f"loading the voice ({settings.tts_voice})")
        the_voice = Voice(models.resolve(settings.tts_voice, kind="tts"))
    on_status("loading the search embeddings (minilm-l6)")
    embedder = Embedder.load()
    net = load_safety_net(settings, embedder, the_llm) if crisis_net else None  # summaries need none
    return Engines(transcriber, the_voice, the_llm, embedder, net)


# -- what a session reports as it goes --------------------------------------


@dataclass(frozen=True)
class UserSpoke:
    session_id: int
    idx: int
    text: str
    start: float
    end: float
    language: str


@dataclass(frozen=True)
class CompanionReplied:
    session_id: int
    idx: int
    text: str
    timings: dict[str, float]
    partial: bool = False


@dataclass(frozen=True)
class Skipped:
    start: float
    end: float
    reason: str


@dataclass(frozen=True)
class SafetyAlert:
    """The safety check was worried by what the person said (see :mod:`companion.safety`).

    On "crisis" the companion speaks ``message`` instead of a reply: print it too.
    """

    session_id: int
    idx: int  # the person's turn
    level: str  # "concern" or "crisis"
    reasons: tuple[str, ...]
    message: str | None = None


@dataclass(frozen=True)
class ModeChanged:
    """The person asked for another mode ("let's do a check-in")."""

    session_id: int
    mode: str


SessionEvent = UserSpoke | CompanionReplied | Skipped | SafetyAlert | ModeChanged


@dataclass(frozen=True)
class SessionResult:
    session_id: int
    user_turns: int
    replies: int
    timings: tuple[dict[str, float], ...] = field(default=())


# -- the reply of one turn ----------------------------------------------------


@dataclass(frozen=True)
class SpokenReply:
    text: str  # what the model wrote
    spoken_text: str  # what was synthesised (differs on cancel)
    audio: np.ndarray
    rate: int
    timings: dict[str, float]
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
                then: str | None = None, stream: ReplyStream | PrefetchedReply | None = None) -> SpokenReply:
    """Stream a reply from the LLM and speak it sentence by sentence.

    ``turn_end`` is the ``perf_counter`` time at which the person's turn was
    judged over; the timings are measured from it. Setting ``cancel`` (from
    any thread) stops the generation at its next token and the voice at its
    next sentence; the caller silences the sink itself. ``rules`` hold the
    reply to a length and a number of questions as it streams (what breaks
    them is not spoken, and the model is stopped); ``then`` is fixed words
    spoken after the model's (a check-in's next question). ``stream``: the
    reply to ``messages``, already begun (:class:`PrefetchedReply`).
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
    early = len(stream.written.split()) if isinstance(stream, PrefetchedReply) else None
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
    timings = {
        # From the request (or, for a reply begun in the pause, from the end of the turn).
        "llm_first_token_s": marks["first_token"] - marks["request"] if "first_token" in marks else 0.0,
        "llm_total_s": usage.total_s if usage else 0.0,
        "prompt_tokens": float(usage.prompt_tokens if usage else 0),
        "cached_tokens": float(usage.cached_tokens if usage else 0),
        "completion_tokens": float(usage.completion_tokens if usage else 0),
    }
    if turn_end:  # the work between the end of the turn and asking the model (safety check, memory)
        timings["before_llm_s"] = marks["request"] - turn_end
    if early is not None:
        timings["early_words"] = float(early)  # written in the pause, before the turn was over
    if fell_back:
        timings["fallback"] = 1.0
    if "first_sentence" in marks:
        timings["llm_first_sentence_s"] = marks["first_sentence"] - turn_end
    if "first_audio" in marks:
        timings["tts_first_s"] = marks["tts_first_s"]
        timings["tts_total_s"] = marks["tts_total_s"]
        timings["end_to_first_audio_s"] = marks["first_audio"] - turn_end
    rate = voice.rate if voice is not None else pcm.RATE
    samples = np.concatenate(audio) if audio else np.zeros(0, np.int16)
    return SpokenReply("".join(text).strip(), " ".join(spoken), samples, rate, timings, error,
                       tuple(parts), cancel.is_set())


# -- a session from a recording ----------------------------------------------


class FileSession:
    """Treat a recording as a person talking to the companion, turn by turn."""

    def __init__(self, engines: Engines, archive: Archive, settings: Settings, *,
                 sink: AudioSink | None = None, mode: str = DEFAULT_MODE,
                 on_event: Callable[[SessionEvent], None] = lambda e: None,
                 on_progress: Callable[[float], None] | None = None):
        if engines.llm is None:
            raise ValueError("a session needs an LLM")
        self.engines = engines
        self.archive = archive
        self.settings = settings
        self.sink = sink
        self.on_event = on_event
        self.on_progress = on_progress
        self.session_id: int | None = None
        self.conv = Conversation(mode, locale=settings.locale, ask_mood=settings.mood_check,
                                 recall=recaller(archive, engines.embedder, lambda: self.session_id)
                                 if settings.memory else None, net=engines.safety_net())
        self.recorder: Recorder | None = None  # from the first turn heard: an empty file makes no session
        self._languages: collections.Counter[str] = collections.Counter()
        self._timings: list[dict[str, float]] = []
        self._pin = LanguagePin(settings.language)

    @property
    def mode(self) -> str:
        return self.conv.mode.name

    def _segmenter(self) -> Segmenter:
        return Segmenter(SegmenterConfig(end_silence_ms=self.settings.end_silence_ms,
                                         max_turn_s=self.settings.max_turn_s))

    def run(self, path: str | Path) -> SessionResult:
        """Process the whole recording. Raises NoSpeechError if nobody spoke."""
        path = Path(path)
        pcm.info(path)  # a bad file fails before any model time is spent
        llm = self.engines.llm
        warm = threading.Thread(target=llm.warm, args=(self.conv.dialog.messages(),), name="llm-warm", daemon=True)
        warm.start()  # the system prompt evaluates while the first turn is heard
        seg = self._segmenter()
        status = "interrupted"
        try:
            vad_s = 0.0
            for block in pcm.stream(path, on_progress=self.on_progress):
                t = time.perf_counter()
                events = seg.feed(block)
                vad_s += time.perf_counter() - t
                for u in (e for e in events if isinstance(e, Utterance)):
                    warm.join()
                    self._turn(u, time.perf_counter(), vad_s, str(path))
                    vad_s = 0.0
            for u in (e for e in seg.flush() if isinstance(e, Utterance)):
                warm.join()
                self._turn(u, time.perf_counter(), vad_s, str(path))
            status = "complete"
        finally:
            warm.join()
            if self.session_id is not None:
                language = self._languages.most_common(1)[0][0] if self._languages else None
                self.archive.end_session(self.session_id, status=status, language=language)
                try:
                    search.refresh_index(self.archive)  # cheap unless the index lags by hundreds of turns
                except VoiceJournalError as e:  # never let indexing hide why a session ended
                    log.warning("search index not refreshed: %s", e)
                self.archive.release()
            if self.sink is not None:
                self.sink.close()
        if self.session_id is None:
            raise NoSpeechError(f"no speech found in {path}; nothing was stored")
        users = sum(1 for t in self._timings if "stt_s" in t)
        return SessionResult(self.session_id, users, len(self._timings) - users, tuple(self._timings))

    def _turn(self, u: Utterance, turn_end: float, vad_s: float, source: str) -> None:
        engines = self.engines
        transcript = engines.transcriber.transcribe(u.clip, self._pin.language)
        self._pin.learn(transcript)
        if not transcript.text:
            self.on_event(Skipped(u.start, u.end, "no words recognised"))
            return
        if self.session_id is None:
            self.session_id = self.archive.begin_session(
                mode=self.mode, source=f"file:{Path(source).name}", models=engines.names()
            )
            self.recorder = Recorder(self.archive, self.session_id, engines.embedder)
        plan = self.conv.turn(transcript.text)  # the safety check sees their words before the model does
        user_timings = {"vad_s": vad_s, "stt_s": transcript.stt_s}
        idx = self.recorder.user(u.clip, transcript, u.start, u.end,
                                 timings=user_timings, engine=engines.transcriber.name, check=plan.check)
        _keep_answers(self.archive, self.session_id, idx, plan)
        self._languages[transcript.language] += 1
        self._timings.append(user_timings)
        self.on_event(UserSpoke(self.session_id, idx, transcript.text, u.start, u.end, transcript.language))
        if plan.check.level != "none":
            self.on_event(SafetyAlert(self.session_id, idx, plan.check.level, plan.check.reasons,
                                      plan.fixed if plan.crisis else None))
        if plan.switched:
            self.on_event(ModeChanged(self.session_id, plan.mode))
        if plan.fixed is not None:
            self._fixed(plan)
            return

        reply = speak_reply(engines.llm, engines.voice, plan.messages, self.sink, turn_end,
                            reply_options(self.settings, plan.rules), rules=plan.rules, then=plan.then)
        text = reply.text or FALLBACK_REPLY
        if reply.error is not None and not reply.text:
            raise reply.error
        # The reply's clock starts at the end of the person's turn, so it includes their STT.
        timings = {**reply.timings, "user_stt_s": transcript.stt_s}
        idx = self.recorder.companion(
            text, reply.audio if len(reply.audio) else None, reply.rate, timings=timings,
            model=f"{engines.llm.backend}:{engines.llm.model}", partial=reply.error is not None,
            recalled=[r.as_dict() for r in plan.recalled])
        self.conv.replied(text)
        self._timings.append(timings)
        self.on_event(CompanionReplied(self.session_id, idx, text, timings, reply.error is not None))
        self.archive.release()  # between turns the journal is free for search, list and play elsewhere
        if self.sink is not None:
            self.sink.gap(0.6, reply.rate)
        if reply.error is not None:
            raise reply.error

    def _fixed(self, plan: Plan) -> None:
        """Fixed words instead of a model reply: the crisis message, a mode's opening, a mood question."""
        text = plan.fixed
        voice = self.engines.voice
        audio = speak_reply_text(voice, text, self.sink) if voice is not None else np.zeros(0, np.int16)
        idx = self.recorder.companion(text, audio if len(audio) else None, voice.rate if voice is not None else None,
                                      timings={}, model=_fixed_model(plan, voice), crisis=plan.crisis)
        self.archive.release()
        self.conv.replied(text)
        self._timings.append({})
        self.on_event(CompanionReplied(self.session_id, idx, text, {}))
        if self.sink is not None and voice is not None:
            self.sink.gap(0.6, voice.rate)


MEMORY_MIN_SCORE = 0.5  # a hybrid score (cosine plus keyword bonus) below which a past turn rarely relates
MEMORY_TURNS = 2


def recaller(archive: Archive, embedder: Embedder | None,
             current: Callable[[], int | None]) -> Callable[[str], list[Recalled]] | None:
    """The companion's memory: the person's past turns most related to what they just said.

    Found with the journal's own search (so what memory sees is what
    ``voice-journal search`` finds), from other sessions than ``current()``.
    """
    if embedder is None:
        return None

    def recall(text: str) -> list[Recalled]:
        if len(text.split()) < 4:  # "yes", "thank you": nothing to relate
            return []
        try:
            hits = search.search(archive, text[:1000], embedder=embedder, limit=MEMORY_TURNS + 6,
                                 filters=search.Filters(role="user"))
        except VoiceJournalError as e:  # memory is a courtesy: never let it stop a reply
            log.warning("memory not searched: %s", e)
            return []
        except Exception as e:
            if interrupted(e):  # Ctrl-C while DuckDB searched: the session's own handling keeps the turn
                raise KeyboardInterrupt from None
            raise
        now = current()
        return [Recalled(h.session_id, h.idx, h.at, h.text, h.score) for h in hits
                if h.session_id != now and h.score >= MEMORY_MIN_SCORE][:MEMORY_TURNS]

    return recall


def _keep_answers(archive: Archive, session_id: int, idx: int, plan: Plan) -> None:
    """Archive what a turn answered (a check-in's field, a mood rating) and a mode the person asked for."""
    for field_, text, value in plan.answers:
        archive.add_answer(Answer(session_id, idx, plan.mode, field_, text, value))
    if plan.switched:
        archive.set_mode(session_id, plan.mode)


def _fixed_model(plan: Plan, voice: Voice | None) -> str:
    return "safety" if plan.crisis else (voice.name if voice is not None else "fixed")


def speak_reply_text(voice: Voice, text: str, sink: AudioSink | None) -> np.ndarray:
    chunks = []
    for s in voice.speak(text):
        if sink is not None:
            sink.write(s.samples, s.rate)
        chunks.append(s.samples)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


# -- a live session: microphone in, speaker out --------------------------------


@dataclass(frozen=True)
class LiveOptions:
    """How a live session behaves (see :class:`LiveSession`)."""

    barge_in: bool = False  # speaking over the companion stops it (needs headphones or echo cancellation)
    max_turns: int | None = None  # the person's turns; the last reply closes the session
    max_minutes: float | None = 20.0  # then the companion wraps up gently
    deaf_tail_s: float = 0.35  # half-duplex: the microphone stays ignored this long after the voice stops
    greet: bool = True
    confirm_speech_s: float = 0.2  # Silero must find this much speech in a turn, or it was noise
    early_stt_ms: int = 300  # a pause this long closes a piece of the turn, transcribed at once
    early_reply: bool = True  # start the reply in that pause; kept if the turn ends there, else cancelled


@dataclass(frozen=True)
class Listening:
    """The companion is ready for the person to talk."""

    session_id: int


@dataclass(frozen=True)
class BargedIn:
    """The person spoke over the companion, which stopped."""

    session_id: int
    heard_s: float  # how much of the reply was played
    stop_s: float  # from the start of their speech to silence


LiveEvent = UserSpoke | CompanionReplied | Skipped | SafetyAlert | ModeChanged | Listening | BargedIn


@dataclass
class _ReplyJob:
    """A reply being written and spoken on its own thread, cancellable."""

    thread: threading.Thread
    cancel: threading.Event
    result: list  # [SpokenReply] or [exception]
    closing: bool
    recalled: tuple[Recalled, ...] = ()

    def outcome(self) -> SpokenReply:
        self.thread.join()
        if isinstance(self.result[0], BaseException):
            raise self.result[0]
        return self.result[0]


@dataclass(frozen=True)
class _PendingPiece:
    """A piece of a turn sent to be transcribed, and what to ready the model with once it is."""

    seq: int
    futures: list  # the turn's pieces up to this one, in order (this one last)
    preview: Callable[..., list[Message] | None]


class _LastAnswer:
    """A function that remembers its last call: the same argument gets the same answer, at once."""

    def __init__(self, fn: Callable):
        self._fn = fn
        self._last: tuple | None = None

    def __call__(self, arg):
        if self._last is None or self._last[0] != arg:
            self._last = (arg, self._fn(arg))
        return self._last[1]


class LiveSession:
    """A spoken conversation through a microphone and a speaker, until goodbye.

    Stages, threads and queues::

        PortAudio callback ──Block──▶ bounded queue ──▶ session thread (this one, the only one
          (or PacedFile)                                 that touches the archive and the dialog)
                                                          │ Segmenter events
               PauseStarted: the piece since the last pause ─▶ stt worker ─▶ (piece) ─▶ llm-warm worker:
                                                                    still silent: the reply to the
                                                                    turn so far begins (prefetch);
                                                                    talking again: the turn so far
                                                                    is evaluated into the KV cache
               SpeechResumed ─▶ the reply begun in the pause is cancelled
               Utterance ─▶ the pieces' transcripts, joined
                            (plus any speech after the last pause) ─▶ Conversation.turn ─▶ Plan
                          ─▶ reply thread: LLM deltas ─▶ SentenceSplitter ─▶ tts thread ─▶ sink
                               (the reply begun in the pause,             (plays while the next
                                if the plan asks for exactly it)           sentence is synthesised)
                          ─▶ archive: user turn (while the reply starts)
          while the reply plays the session thread keeps reading the microphone:
            half-duplex (default): blocks captured while the companion speaks, and for
              ``deaf_tail_s`` after, are thrown away, so it never hears itself;
            barge-in: a BargeInDetector watches them; when it fires the reply is
              cancelled, the sink silenced, and only what was played is archived.
          ─▶ archive: assistant turn (text, audio, timings), committed when it ends

    The session ends on a goodbye, after ``max_turns`` of the person's turns
    (the last reply is a closing one), at ``max_minutes`` (a gentle wrap-up,
    never a cut-off), when the input ends, or on Ctrl-C: then whatever is in
    progress is archived as partial and a short closing is spoken (a second
    Ctrl-C skips it).
    """

    def __init__(self, engines: Engines, archive: Archive, settings: Settings, source, sink,
                 options: LiveOptions = LiveOptions(), *, mode: str = DEFAULT_MODE,
                 on_event: Callable[[LiveEvent], None] = lambda e: None):
        if engines.llm is None or engines.voice is None:
            raise ValueError("a live session needs an LLM and a voice")
        self.engines = engines
        self.archive = archive
        self.settings = settings
        self.source = source
        self.sink = sink
        self.options = options
        self.on_event = on_event
        self.session_id: int | None = None
        recall = recaller(archive, engines.embedder, lambda: self.session_id) if settings.memory else None
        # Recalled once in the pause that ends a turn (for the reply begun there), then again,
        # for the same words, by Conversation.turn: the same answer, without a second search.
        self.conv = Conversation(mode, locale=settings.locale, ask_mood=settings.mood_check,
                                 recall=_LastAnswer(recall) if recall is not None else None,
                                 net=engines.safety_net())
        self.state = "starting"  # listening, hearing, thinking, speaking, closing, ended
        self.level_dbfs = -120.0
        self.started = time.monotonic()
        self.recorder: Recorder | None = None  # once the session is begun (run)
        self._user_turns = 0
        self._timings: list[dict[str, float]] = []
        self._languages: collections.Counter[str] = collections.Counter()
        self._pin = LanguagePin(settings.language)
        self._stt = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stt")
        self._warmer = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llm-warm")
        self._seg = self._segmenter()
        self._seg_origin: float | None = None  # session time of the segmenter's first sample
        self._deaf_until = 0.0
        self._pieces: list[tuple[int, concurrent.futures.Future]] = []  # this turn's: (end sample, transcript)
        self._pausing = False  # the person is silent within a turn (PauseStarted, no speech since)
        self._pieces_sent = 0  # pieces of turns so far: a warm for an older one is stale
        self._unprepared: _PendingPiece | None = None  # the latest piece, until the model is readied for it
        self._early: PrefetchedReply | None = None  # a reply begun in the pause that may end the turn
        self._early_lock = threading.Lock()
        self._utterance: Utterance | None = None  # heard, not archived yet
        self._reply: _ReplyJob | None = None
        self._partial = False
        self._closing_spoken = False
        self._crisis_unanswered = False

    # -- the public face ---------------------------------------------------

    @property
    def mode(self) -> str:
        return self.conv.mode.name

    @property
    def dialog(self):
        return self.conv.dialog

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self) -> SessionResult:
        """Hold the session; returns when it is over. Ctrl-C ends it without losing anything."""
        self.session_id = self.archive.begin_session(
            mode=self.mode, source=self.source.name if self.source.name.startswith("file:") else "microphone",
            models=self.engines.names(),
        )
        self.recorder = Recorder(self.archive, self.session_id, self.engines.embedder)
        try:  # cheap unless the index lags, or was built by an older version (memory searches it every turn)
            search.refresh_index(self.archive)
        except VoiceJournalError as e:
            log.warning("search index not refreshed: %s", e)
        self.archive.release()
        status = "complete"
        try:
            try:
                # A microphone listens from the start (the level meter, barge-in over the greeting);
                # a recording standing in for a person starts talking once greeted.
                waits = getattr(self.source, "waits_for_greeting", False)
                if not waits:
                    self.source.start()
                self.started = time.monotonic()
                if self.options.greet:
                    self._say(self.conv.opening(), greeting=True)
                if waits:
                    self.source.start()
                self._warmer.submit(self._warm, self.dialog.messages())
                self._listen()
            except KeyboardInterrupt:
                self._on_interrupt()
            if self._partial:
                status = "interrupted"
        finally:
            self.state = "ended"
            self._stt.shutdown(wait=True, cancel_futures=True)
            self._warmer.shutdown(wait=True, cancel_futures=True)
            self._take_early_reply(())  # cancels a reply begun in a pause the session ended in
            self.source.close()
            try:
                self.sink.close()
            finally:
                self._end(status)
        return SessionResult(self.session_id, self._user_turns, len(self._timings) - self._user_turns,
                             tuple(self._timings))

    def _end(self, status: str) -> None:
        language = self._languages.most_common(1)[0][0] if self._languages else None
        self.archive.end_session(self.session_id, status=status, language=language)
        try:
            search.refresh_index(self.archive)
        except VoiceJournalError as e:
            log.warning("search index not refreshed: %s", e)
        self.archive.release()
        if self.source.overflows or self.source.dropped:
            log.warning("the microphone overflowed %d times and %d blocks were dropped",
                        self.source.overflows, self.source.dropped)

    # -- listening ---------------------------------------------------------

    def _segmenter(self) -> Segmenter:
        self._seg_origin = None
        self._pieces = []  # they belong to the old segmenter's turn
        # A piece is transcribed at PauseStarted: late enough in a silence that a breath
        # rarely triggers it (each piece costs a Whisper window of CPU), early enough to
        # be done near the end-of-turn decision.
        pause_ms = min(self.options.early_stt_ms, max(0, self.settings.end_silence_ms - 300))
        return Segmenter(SegmenterConfig(end_silence_ms=self.settings.end_silence_ms,
                                         max_turn_s=self.settings.max_turn_s, pause_ms=pause_ms))

    def _feed(self, block) -> list:
        """Feed the segmenter; its times are counted from its first block, the session's from its start."""
        if self._seg_origin is None:
            self._seg_origin = block.at - len(block.samples) / pcm.RATE - self.started
        return self._seg.feed(block.samples)

    def _session_time(self, t: float) -> float:
        return round((self._seg_origin or 0.0) + t, 3)

    def _time_up(self) -> bool:
        m = self.options.max_minutes
        return m is not None and self.elapsed >= m * 60

    def _listen(self) -> None:
        self.state = "listening"
        self.on_event(Listening(self.session_id))
        while True:
            if self._time_up() and not self._seg.in_speech:
                self._say(arc.CLOSING_TIME)
                return
            self._ready_model()
            block = self.source.read(timeout=0.1)
            if block is None:
                if self.source.finished:  # the recording (or the device) ended
                    for e in self._seg.flush():
                        if isinstance(e, Utterance) and self._person_spoke(e, time.perf_counter()):
                            return
                    return
                continue
            self.level_dbfs = block.level_dbfs
            if block.at < self._deaf_until:
                continue  # the companion's own voice, or its tail
            for e in self._feed(block):
                if isinstance(e, SpeechStarted):
                    self.state = "hearing"
                    self._pausing = False
                    self._new_turn()
                elif isinstance(e, PauseStarted):
                    self._pausing = True
                    self._transcribe_piece()
                elif isinstance(e, SpeechResumed):
                    self._pausing = False
                    self._drop_early_reply()  # they went on: the guess was early
                elif isinstance(e, Utterance):
                    if self._person_spoke(e, time.perf_counter()):
                        return
                    self.state = "listening"

    # -- transcription in pieces ------------------------------------------
    #
    # Whisper's cost is mostly one 30 s encoder window per call, whatever the
    # length of the clip, plus its tokens. Waiting for the end of a turn to
    # start it left the person waiting for all of it. Instead, each pause of
    # ``early_stt_ms`` closes a piece of the turn (audio cut in a silence, so
    # no word is split), transcribed at once while the person thinks or goes
    # on; when the turn ends, only what followed the last piece is left to do
    # (usually nothing: the last pause was the end of the turn). Each piece
    # is prompted with the pieces before it so that Whisper keeps the thread.

    def _new_turn(self) -> None:
        self._pieces = []

    def _transcribe_piece(self) -> None:
        clip = self._seg.turn_so_far()
        if clip is None:
            return
        start = self._pieces[-1][0] if self._pieces else 0
        if len(clip.samples) - start < pcm.RATE // 4:
            return
        before = [f for _, f in self._pieces]
        # What the model will be sent, to begin the reply or warm it (taken here, on the session thread).
        last = self.options.max_turns is not None and self._user_turns + 1 >= self.options.max_turns
        preview = self.conv.previewer(closing=last or self._time_up(), wrap_up=self._time_up())
        self._pieces_sent += 1
        future = self._stt.submit(self._piece, pcm.Clip(clip.samples[start:]), before)
        self._pieces.append((len(clip.samples), future))
        self._unprepared = _PendingPiece(self._pieces_sent, [*before, future], preview)

    def _piece(self, clip: pcm.Clip, before: list[concurrent.futures.Future]) -> Transcript:
        """Transcribe one piece of a turn (on the stt thread, after the pieces before it)."""
        said = " ".join(t.text for t in (f.result() for f in before) if t.text)
        if silero_speech_s(clip) < 0.1:  # webrtcvad heard a noise as speech
            return Transcript("", self._pin.language or "", 0.0, (), clip.duration, 0.0)
        t = self.engines.transcriber.transcribe(clip, self._pin.language, prompt=said[-_PROMPT_CHARS:] or None)
        self._pin.learn(t)
        return t

    def _ready_model(self) -> None:
        """Once the latest piece is transcribed, ready the model for the turn so far (session thread).

        Begin the reply to it (or, if they talk on, evaluate it into the
        cache), with the mode's notes to the model after it and, while they
        are silent, what memory recalls (the journal is this thread's): if
        this was the end of the turn, the reply has begun; if not, the next
        piece adds its own words, the rest being cached. Nothing where fixed
        words will answer (a crisis among them).
        """
        piece = self._unprepared
        if piece is None or not piece.futures[-1].done():
            return
        self._unprepared = None
        try:
            texts = [f.result().text for f in piece.futures]
        except Exception:  # the turn's end raises it where the transcript is needed
            return
        if not texts[-1]:
            return
        messages = piece.preview(" ".join(t for t in texts if t), memory=self._pausing)
        self.archive.release()  # memory searched the journal: let other commands in while they talk
        if messages is not None:
            self._warmer.submit(self._prepare, piece.seq, messages)

    def _prepare(self, seq: int, messages: list[Message]) -> None:
        """Ready the model for the turn so far (on the llm-warm thread).

        Still silent: start the reply itself, which the end of the turn
        takes over if it asks for the same (:meth:`_take_early_reply`). Talking
        again: warm the cache only. A newer piece makes this one stale.
        """
        with self._early_lock:
            if seq != self._pieces_sent:
                return  # a newer piece is on its way: warming this one would only delay it
            if self._pausing and self.options.early_reply:
                self._cancel_early()
                try:
                    self._early = PrefetchedReply(self.engines.llm, messages,
                                                  reply_options(self.settings, messages.rules))
                except VoiceJournalError as e:
                    log.warning("could not start the reply early: %s", e)
                return
        self._warm(messages)

    def _cancel_early(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.cancel()

    def _drop_early_reply(self) -> None:
        with self._early_lock:
            self._cancel_early()

    def _take_early_reply(self, messages: Sequence[Message], rules: ReplyRules | None = None) -> PrefetchedReply | None:
        """The reply begun in the pause, if the turn ended there and asks for exactly it; else None."""
        with self._early_lock:
            self._pieces_sent += 1  # the turn is over: a prepare still queued for it is stale
            early, self._early = self._early, None
        if early is not None and early.matches(messages, reply_options(self.settings, rules)):
            return early
        if early is not None:
            early.cancel()
        return None

    def _transcript_of(self, u: Utterance, pieces: list[tuple[int, concurrent.futures.Future]]) -> Transcript | None:
        """The whole turn's transcript from its pieces and what followed them; None if Silero hears no speech."""
        covered = pieces[-1][0] if pieces else 0
        futures = [f for _, f in pieces]
        offsets = [0, *(end for end, _ in pieces[:-1])]
        if len(u.clip.samples) - covered >= pcm.RATE // 4:  # speech after the last pause (or no pause at all)
            futures.append(self._stt.submit(self._piece, pcm.Clip(u.clip.samples[covered:]), list(futures)))
            offsets.append(covered)
        if silero_speech_s(u.clip) < self.options.confirm_speech_s:
            return None  # a noise started the turn
        return Transcript.joined([(o / pcm.RATE, f.result()) for o, f in zip(offsets, futures)])

    def _warm(self, messages) -> None:
        try:
            self.engines.llm.warm(messages)
        except VoiceJournalError as e:
            log.warning("could not warm the model: %s", e)

    def _hold(self, holding: bool) -> None:
        # A recording standing in for a polite person waits while the companion talks
        # (never with barge-in, where talking over it is the point).
        if self.options.barge_in:
            return
        if holding:
            getattr(self.source, "hold", lambda: None)()
        else:
            getattr(self.source, "resume", lambda at: None)(self._deaf_until)

    def _person_spoke(self, u: Utterance, turn_end: float) -> bool:
        """A turn of the person's is over: archive it and answer. True when the session should end."""
        self._hold(True)
        try:
            return self._respond(u, turn_end)
        finally:
            self._hold(False)

    def _respond(self, u: Utterance, turn_end: float) -> bool:
        self._utterance = u
        self.state = "thinking"
        self._pausing = False
        self._unprepared = None
        pieces, self._pieces = self._pieces, []
        covered = pieces[-1][0] if pieces else 0
        t0 = time.perf_counter()
        transcript = self._transcript_of(u, pieces)
        stt_wait = time.perf_counter() - t0
        if transcript is not None:
            self._pin.learn(transcript)
        if transcript is None or not transcript.text:
            self._utterance = None
            self._take_early_reply(())  # cancels it
            self.on_event(Skipped(u.start, u.end, "no speech" if transcript is None else "no words recognised"))
            return False
        closing = (arc.is_goodbye(transcript.text) or self._time_up()
                   or (self.options.max_turns is not None and self._user_turns + 1 >= self.options.max_turns))
        # The safety check sees their words before the model does.
        plan = self.conv.turn(transcript.text, closing=closing, wrap_up=self._time_up())
        # The model is asked first and the turn archived while it starts writing: archiving
        # (audio, embedding, a committed transaction) took ~0.1 s of the person's wait. The
        # reply is archived after the turn, and Ctrl-C in between keeps both (_on_interrupt).
        early = self._take_early_reply(plan.messages if plan.fixed is None else (), plan.rules)
        job = self._start_answer(plan, turn_end, early) if plan.fixed is None else None
        try:
            self._archive_user(u.clip, transcript, self._session_time(u.start), self._session_time(u.end), {
                "stt_s": transcript.stt_s, "stt_wait_s": stt_wait, "stt_pieces": float(len(pieces)),
                # 1.0: every word was transcribed during the person's pauses, none after the turn ended.
                "early_stt": float(bool(pieces) and len(u.clip.samples) - covered < pcm.RATE // 4),
            }, check=plan.check)
            _keep_answers(self.archive, self.session_id, self.recorder.next_idx - 1, plan)
            self.archive.release()
        except KeyboardInterrupt:
            raise  # _on_interrupt keeps the turn, then what was heard of the reply
        except BaseException:
            job, _ = self._stop_reply()  # the journal failed (a full disk): no reply to a turn it could not keep
            if job is not None:
                job.thread.join(timeout=10)
            raise
        if plan.switched:
            self.on_event(ModeChanged(self.session_id, plan.mode))
            # A new mode is a new system prompt: evaluate it while its opening is spoken.
            self._warmer.submit(self._warm, self.conv.dialog.messages())
        if job is None:  # crisis message, a mode's opening, a mood question: fixed, reviewed words
            self._say(plan.fixed, crisis=plan.crisis, interruptible=not plan.ends)
        else:
            self._finish_answer(job)
        return plan.ends

    def _archive_user(self, clip: pcm.Clip, t: Transcript, start: float, end: float,
                      timings: dict[str, float], partial: bool = False, *, check: safety.Assessment) -> None:
        idx = self.recorder.user(clip, t, start, end, timings=timings, engine=self.engines.transcriber.name,
                                 check=check, partial=partial)
        self._utterance = None  # at once: from here a Ctrl-C must not archive this turn again (see _on_interrupt)
        self._user_turns += 1
        self.archive.release()
        self._languages[t.language] += 1
        self._timings.append(timings)
        self.on_event(UserSpoke(self.session_id, idx, t.text, start, end, t.language))
        if check.level != "none":
            self.on_event(SafetyAlert(self.session_id, idx, check.level, check.reasons,
                                      self.conv.guard.message() if check.crisis else None))

    # -- speaking ----------------------------------------------------------

    def _start_answer(self, plan: Plan, turn_end: float, early: PrefetchedReply | None = None) -> _ReplyJob:
        """Start writing and speaking the reply on its own thread (taking over ``early``, begun in the pause)."""
        engines = self.engines
        cancel = threading.Event()
        result: list = []

        def work() -> None:
            try:
                result.append(speak_reply(engines.llm, engines.voice, plan.messages, self.sink, turn_end,
                                          reply_options(self.settings, plan.rules), cancel=cancel, rules=plan.rules,
                                          then=plan.then, stream=early))
            except BaseException as e:  # handed to the session thread
                result.append(e)

        self.sink.mark()
        job = _ReplyJob(threading.Thread(target=work, name="reply", daemon=True), cancel, result, plan.ends,
                        plan.recalled)
        self._reply = job
        job.thread.start()
        return job

    def _finish_answer(self, job: _ReplyJob) -> None:
        """Listen while the reply is spoken (for barge-in), then archive what was said."""
        barge = self._play_while_listening(job)
        reply = job.outcome()
        self._reply = None
        self._archive_reply(reply, *(barge or (None, None)), recalled=job.recalled)
        if reply.error is not None and not reply.text:
            raise reply.error

    def _play_while_listening(self, job: _ReplyJob) -> tuple[float, float] | None:
        """Read the microphone until the reply has been written and played.

        Returns (samples heard, seconds from their speech to silence) if the
        person barged in, else None.
        """
        detector = BargeInDetector() if self.options.barge_in and not job.closing else None
        onset: float | None = None
        while job.thread.is_alive() or self.sink.pending_s > 0:
            if job.thread.is_alive() and self.sink.pending_s == 0:
                self.state = "thinking"
            else:
                self.state = "speaking"
            block = self.source.read(timeout=0.05)
            if block is None:
                continue
            self.level_dbfs = block.level_dbfs
            if detector is None:
                continue  # half-duplex: the companion does not listen while it speaks
            for e in self._feed(block):  # the barge-in speech starts their next turn
                if isinstance(e, SpeechStarted):
                    self._new_turn()
                    onset = e.at if onset is None else onset
            speaking = self.sink.pending_s > 0
            if detector.feed(block.samples) and speaking:
                heard = self.sink.played
                job.cancel.set()
                self.sink.stop()
                stopped = time.monotonic()
                # From the first voiced block we have to the silence: detection plus stopping.
                stop_s = stopped - block.at + self._detector_span()
                self.on_event(BargedIn(self.session_id, heard / self.engines.voice.rate, stop_s))
                self.state = "hearing"
                return heard, stop_s
        self._deaf_until = time.monotonic() + self.options.deaf_tail_s
        if detector is None:
            self._seg = self._segmenter()  # what it heard while deaf is gone
        self.state = "listening"
        return None

    @staticmethod
    def _detector_span() -> float:
        return 5 * 0.030  # the voiced frames BargeInDetector needs before it fires

    def _archive_reply(self, reply: SpokenReply, heard: float | None, stop_s: float | None = None, *,
                       recalled: tuple[Recalled, ...] = ()) -> None:
        """Archive a reply; ``heard``: the samples played before it was cut (barge-in, Ctrl-C)."""
        engines = self.engines
        text, audio = reply.text or FALLBACK_REPLY, reply.audio
        timings = dict(reply.timings)
        partial = reply.error is not None
        if heard is not None:
            text, audio = reply.heard(int(heard))
            timings["heard_s"] = len(audio) / reply.rate
            partial = True
        if stop_s is not None:
            timings["barge_in_stop_s"] = stop_s
        if not text and not len(audio):
            self.conv.replied("")  # keep user/assistant pairs for the cache
            return
        idx = self.recorder.companion(text, audio if len(audio) else None, reply.rate, timings=timings,
                                      model=f"{engines.llm.backend}:{engines.llm.model}", partial=partial,
                                      recalled=[r.as_dict() for r in recalled])
        self.archive.release()
        self.conv.replied(text)
        self._timings.append(timings)
        self._partial = self._partial or partial
        self.on_event(CompanionReplied(self.session_id, idx, text, timings, partial))

    def _say(self, text: str, *, greeting: bool = False, crisis: bool = False, interruptible: bool = False) -> None:
        """Speak fixed words (greeting, crisis message, a mode's opening, closings) and archive them.

        ``greeting``, ``crisis`` and ``interruptible`` words can be talked over with barge-in.
        """
        interruptible = interruptible or greeting or crisis
        self.state = "speaking" if interruptible else "closing"
        self.sink.mark()
        chunks: list[np.ndarray] = []
        heard: int | None = None  # None: all of it
        try:
            for s in self.engines.voice.speak(text):
                self.sink.write(s.samples, s.rate)
                chunks.append(s.samples)
            if interruptible and self.options.barge_in:
                heard = self._play_fixed_with_barge_in()
            else:
                while self.sink.pending_s > 0:  # keep the level meter alive while it plays
                    block = self.source.read(timeout=0.05)
                    if block is not None:
                        self.level_dbfs = block.level_dbfs
        except KeyboardInterrupt:
            heard = int(self.sink.played)
            self.sink.stop()
            raise
        finally:
            if chunks:
                audio = np.concatenate(chunks)
                if heard is None or heard >= len(audio):
                    self._archive_fixed(text, audio, partial=False, crisis=crisis)
                else:
                    said, cut = SpokenReply(text, text, audio, self.engines.voice.rate, {},
                                            parts=((text, len(audio)),)).heard(heard)
                    self._archive_fixed(said, cut, partial=True, crisis=crisis)
        self._deaf_until = time.monotonic() + self.options.deaf_tail_s
        self._seg = self._segmenter()

    def _play_fixed_with_barge_in(self) -> int | None:
        detector = BargeInDetector()
        while self.sink.pending_s > 0:
            block = self.source.read(timeout=0.05)
            if block is None:
                continue
            self.level_dbfs = block.level_dbfs
            if detector.feed(block.samples):
                heard = self.sink.played
                self.sink.stop()
                return int(heard)
        return None

    def _archive_fixed(self, text: str, audio: np.ndarray, partial: bool, crisis: bool = False) -> None:
        idx = self.recorder.companion(text or "…", audio, self.engines.voice.rate, timings={}, partial=partial,
                                      model="safety" if crisis else self.engines.voice.name, crisis=crisis)
        self.archive.release()
        self.conv.replied(text)
        self.on_event(CompanionReplied(self.session_id, idx, text, {}, partial))

    # -- Ctrl-C --------------------------------------------------------------

    def _on_interrupt(self) -> None:
        """Keep whatever was in progress, then say goodbye (a second Ctrl-C skips the goodbye)."""
        import signal

        again = threading.Event()
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *a: again.set()) if in_main else None
        try:
            self.state = "closing"
            self._drop_early_reply()  # begun in a pause, never heard: nothing to keep
            job, heard = self._stop_reply()  # a reply begun: stop it, keep what was heard
            u, self._utterance = self._utterance, None
            if u is not None and self._committed(self.recorder.next_idx):
                # Ctrl-C came between the turn's commit and the next line: it is kept already.
                self.recorder.skip()
                self._user_turns += 1
            elif u is not None:  # a whole turn heard, not archived yet (its reply may have begun)
                self._archive_unanswered(u.clip, self._session_time(u.start), self._session_time(u.end),
                                         partial=False)
            if job is not None:  # after the turn it answers
                self._archive_reply(job.outcome(), heard, recalled=job.recalled)
            elif u is None and self._seg.in_speech:  # a turn in progress
                clip = self._seg.turn_so_far()
                if clip is not None:
                    start = self._session_time(self._seg.turn_start)
                    self._archive_unanswered(clip, start, start + clip.duration, partial=True)
        finally:
            if in_main:
                signal.signal(signal.SIGINT, previous)
        if again.is_set():
            return
        try:
            if self._crisis_unanswered:  # they said it, then Ctrl-C: the helplines matter more than a goodbye
                self._say(self.conv.guard.message(), crisis=True)
            else:
                self._say(arc.CLOSING_INTERRUPTED)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: they want to go now

    def _stop_reply(self) -> tuple[_ReplyJob | None, float | None]:
        """Cancel the reply in progress, if any, and silence it: (its job, the samples played)."""
        job, self._reply = self._reply, None
        if job is None:
            return None, None
        heard = self.sink.played
        job.cancel.set()
        self.sink.stop()
        return job, heard

    def _committed(self, idx: int) -> bool:
        """Whether the journal holds turn ``idx`` of this session (the journal, not our counters, knows)."""
        held = any(t.idx == idx for t in self.archive.turns(self.session_id))
        self.archive.release()
        return held

    def _archive_unanswered(self, clip: pcm.Clip, start: float, end: float, *, partial: bool) -> None:
        transcript = self.engines.transcriber.transcribe(clip, self._pin.language)
        if not transcript.text and not partial:
            return
        check = self.conv.guard.check(transcript.text)
        self._archive_user(clip, transcript, start, end, {"stt_s": transcript.stt_s}, partial=partial, check=check)
        self._crisis_unanswered = check.crisis
        self._partial = self._partial or partial


# -- transcription of files, without the companion ---------------------------


def file_utterances(path: Path, seg: Segmenter, on_progress: Callable[[float], None] | None) -> Iterator[Utterance]:
    """The turns of a whole file, read in bounded memory."""
    for block in pcm.stream(path, on_progress=on_progress):
        yield from (e for e in seg.feed(block) if isinstance(e, Utterance))
    yield from (e for e in seg.flush() if isinstance(e, Utterance))


@dataclass(frozen=True)
class FileTranscript:
    file: str
    text: str
    language: str
    segments: tuple[Segment, ...]  # times from the start of the file
    duration: float


def transcribe_file(transcriber: Transcriber, path: str | Path, *,
                    on_progress: Callable[[float], None] | None = None) -> FileTranscript:
    """Transcribe a file of any length in bounded memory.

    The file is cut at pauses by the same segmenter a session uses, with
    turns capped near Whisper's 30 s window; segment times are file times.
    """
    path = Path(path)
    info = pcm.info(path)
    seg = Segmenter(SegmenterConfig(end_silence_ms=700, max_turn_s=28.0))
    segments: list[Segment] = []
    languages: collections.Counter[str] = collections.Counter()

    pin = LanguagePin(transcriber.config.language)
    for u in file_utterances(path, seg, on_progress):
        t: Transcript = transcriber.transcribe(u.clip, pin.language)
        pin.learn(t)
        if t.text:
            languages[t.language] += len(t.text)
        segments.extend(
            Segment(round(u.start + s.start, 3), round(u.start + s.end, 3), s.text, s.confidence) for s in t.segments
        )
    if not segments:
        raise NoSpeechError(f"no speech found in {path}")
    language = languages.most_common(1)[0][0] if languages else ""
    return FileTranscript(str(path), " ".join(s.text for s in segments), language, tuple(segments), info.duration)


# -- entries that are not conversations: typed, and imported voice memos ------


MAX_WRITTEN_CHARS = 100_000


def write_entry(archive: Archive, embedder: Embedder | None, text: str, at=None) -> int:
    """Archive a typed entry as a one-turn session; return its session id."""
    clean = "".join(ch for ch in text if ch in "\n\t" or not unicodedata.category(ch).startswith("C")).strip()
    if not clean:
        raise InputError("the entry is empty")
    if len(clean) > MAX_WRITTEN_CHARS:
        raise InputError(f"the entry is too long ({len(clean):,} characters; {MAX_WRITTEN_CHARS:,} at most)")
    sid = archive.begin_session(mode=DEFAULT_MODE, source="typed", models={}, started_at=at)
    Recorder(archive, sid, embedder).typed(clean, at)
    archive.end_session(sid, ended_at=at)
    search.refresh_index(archive)
    return sid


@dataclass(frozen=True)
class Imported:
    path: str
    session_id: int | None  # None: skipped or no speech
    turns: int
    skipped: str = ""  # why nothing was imported


def file_hash(path: Path) -> str:
    import hashlib

    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def import_recording(archive: Archive, transcriber: Transcriber, embedder: Embedder | None, path: str | Path,
                     settings: Settings, *, at=None, on_progress: Callable[[float], None] | None = None,
                     on_turn: Callable[[int, Utterance, str], None] = lambda i, u, t: None) -> Imported:
    """Archive an existing recording as a session of the person's turns, dated by the file.

    A recording imported before is skipped (same audio hash). One whose import
    was cut short (the session never completed) is imported again from scratch.
    """
    import datetime as dt

    path = Path(path)
    info = pcm.info(path)
    digest = file_hash(path)
    previous = archive.session_by_hash(digest)
    if previous is not None:
        if previous.status == "complete":
            return Imported(str(path), None, 0, f"already imported as session {previous.id}")
        archive.delete(previous.id)  # a half-finished import: start over
    if at is None:
        at = dt.datetime.fromtimestamp(path.stat().st_mtime, dt.timezone.utc).replace(tzinfo=None)
        at -= dt.timedelta(seconds=info.duration)  # a file's time is when recording stopped
    seg = Segmenter(SegmenterConfig(end_silence_ms=settings.end_silence_ms, max_turn_s=settings.max_turn_s))
    sid = recorder = None
    languages: collections.Counter[str] = collections.Counter()

    pin = LanguagePin(transcriber.config.language)
    for u in file_utterances(path, seg, on_progress):
        t = transcriber.transcribe(u.clip, pin.language)
        pin.learn(t)
        if not t.text:
            continue
        if sid is None:
            sid = archive.begin_session(mode=DEFAULT_MODE, source=f"import:{path.name}",
                                        models={"stt": transcriber.name}, started_at=at, source_hash=digest)
            recorder = Recorder(archive, sid, embedder)
        idx = recorder.user(u.clip, t, u.start, u.end, timings={"stt_s": t.stt_s}, engine=transcriber.name,
                            at=at + dt.timedelta(seconds=u.start))
        archive.release()
        languages[t.language] += 1
        on_turn(idx, u, t.text)
    if recorder is None:
        return Imported(str(path), None, 0, "no speech found")
    archive.end_session(sid, language=languages.most_common(1)[0][0], ended_at=at + dt.timedelta(seconds=info.duration))
    search.refresh_index(archive)
    archive.release()
    return Imported(str(path), sid, recorder.next_idx)
