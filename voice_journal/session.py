"""A journaling session: the one place where the stages are wired together.

From a file (this module) the data flows::

    pcm.stream ──blocks──▶ Segmenter ──Utterance──▶ Transcriber ──Transcript──▶ archive: user turn
                                                                   │
                                                                   ▼
                                          Dialog ──messages──▶ LLM ──deltas──▶ SentenceSplitter
                                                                                    │ sentences
                                                                          queue ◀───┘
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
import logging
import queue
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator

import numpy as np

from . import models
from .audio import pcm
from .audio.playback import AudioSink
from .audio.vad import Segmenter, SegmenterConfig, Utterance
from .companion.dialog import DEFAULT_MODE, Dialog, system_prompt
from .config import Settings
from .errors import InputError, LLMError, NoSpeechError, VoiceJournalError
from .llm.base import LLM, GenerationOptions
from .speech.sentences import SentenceSplitter
from .speech.stt import Segment, SttConfig, Transcriber, Transcript
from .speech.tts import Voice
from .store import search
from .store.archive import Archive, TurnRecord
from .store.embedding import Embedder

log = logging.getLogger(__name__)

FALLBACK_REPLY = "I'm here, and I'm listening. Take your time."


@dataclass(frozen=True)
class Engines:
    """The loaded models a session needs."""

    transcriber: Transcriber
    voice: Voice | None
    llm: LLM | None
    embedder: Embedder | None = None  # for search; a turn is archived without a vector if None

    def names(self) -> dict[str, str]:
        out = {"stt": self.transcriber.name}
        if self.llm is not None:
            out["llm"] = f"{self.llm.backend}:{self.llm.model}"
        if self.voice is not None:
            out["tts"] = self.voice.name
        return out


def load_engines(settings: Settings, *, voice: bool = True, llm: bool = True,
                 on_status: Callable[[str], None] = lambda s: None) -> Engines:
    """Load (and on first use assemble and verify) the configured models."""
    threads = settings.threads or None
    on_status(f"loading speech recognition ({settings.stt_model})")
    transcriber = Transcriber(
        models.resolve(settings.stt_model, kind="stt"),
        SttConfig(language=settings.language or None, threads=threads or 2),
    )
    the_llm = None
    if llm:
        from .llm.select import open_llm

        on_status(f"loading the companion's model ({settings.backend})")
        the_llm = open_llm(
            settings.backend, ollama_model=settings.ollama_model, ollama_host=settings.ollama_host,
            embedded_model=settings.llm_model, threads=threads,
        )
    the_voice = None
    if voice:
        on_status(f"loading the voice ({settings.tts_voice})")
        the_voice = Voice(models.resolve(settings.tts_voice, kind="tts"))
    on_status("loading the search embeddings (minilm-l6)")
    return Engines(transcriber, the_voice, the_llm, Embedder.load())


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


SessionEvent = UserSpoke | CompanionReplied | Skipped


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


def speak_reply(llm: LLM, voice: Voice | None, messages, sink: AudioSink | None,
                turn_end: float, options: GenerationOptions = GenerationOptions()) -> SpokenReply:
    """Stream a reply from the LLM and speak it sentence by sentence.

    ``turn_end`` is the ``perf_counter`` time at which the person's turn was
    judged over; the timings are measured from it.
    """
    sentences: queue.Queue[str | None] = queue.Queue()
    spoken: list[str] = []
    audio: list[np.ndarray] = []
    marks: dict[str, float] = {}
    failure: list[BaseException] = []

    def tts_worker() -> None:
        try:
            while (s := sentences.get()) is not None:
                if voice is None:
                    spoken.append(s)
                    continue
                out = voice.sentence(s)
                if "first_audio" not in marks:
                    marks["first_audio"] = time.perf_counter()
                    marks["tts_first_s"] = out.synth_s
                marks["tts_total_s"] = marks.get("tts_total_s", 0.0) + out.synth_s
                if sink is not None:
                    sink.write(out.samples, out.rate)
                audio.append(out.samples)
                spoken.append(s)
        except BaseException as e:  # surface it on the session's thread
            failure.append(e)
            while sentences.get() is not None:
                pass

    worker = threading.Thread(target=tts_worker, name="tts", daemon=True)
    worker.start()
    splitter = SentenceSplitter()
    text: list[str] = []
    error: LLMError | None = None
    stream = llm.stream(messages, options)
    try:
        for delta in stream:
            text.append(delta)
            for s in splitter.feed(delta):
                marks.setdefault("first_sentence", time.perf_counter())
                sentences.put(s)
    except LLMError as e:
        error = e
    finally:
        rest = splitter.flush()
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
        "llm_first_token_s": usage.first_token_s if usage else 0.0,
        "llm_total_s": usage.total_s if usage else 0.0,
        "prompt_tokens": float(usage.prompt_tokens if usage else 0),
        "cached_tokens": float(usage.cached_tokens if usage else 0),
        "completion_tokens": float(usage.completion_tokens if usage else 0),
    }
    if "first_sentence" in marks:
        timings["llm_first_sentence_s"] = marks["first_sentence"] - turn_end
    if "first_audio" in marks:
        timings["tts_first_s"] = marks["tts_first_s"]
        timings["tts_total_s"] = marks["tts_total_s"]
        timings["end_to_first_audio_s"] = marks["first_audio"] - turn_end
    rate = voice.rate if voice is not None else pcm.RATE
    samples = np.concatenate(audio) if audio else np.zeros(0, np.int16)
    return SpokenReply("".join(text).strip(), " ".join(spoken), samples, rate, timings, error)


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
        self.mode = mode
        self.on_event = on_event
        self.on_progress = on_progress
        self.dialog = Dialog(system_prompt(mode))
        self.session_id: int | None = None
        self._idx = 0
        self._languages: collections.Counter[str] = collections.Counter()
        self._timings: list[dict[str, float]] = []

    def _segmenter(self) -> Segmenter:
        return Segmenter(SegmenterConfig(end_silence_ms=self.settings.end_silence_ms,
                                         max_turn_s=self.settings.max_turn_s))

    def run(self, path: str | Path) -> SessionResult:
        """Process the whole recording. Raises NoSpeechError if nobody spoke."""
        path = Path(path)
        pcm.info(path)  # a bad file fails before any model time is spent
        llm = self.engines.llm
        warm = threading.Thread(target=llm.warm, args=(self.dialog.messages(),), name="llm-warm", daemon=True)
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

    def _embed(self, text: str):
        return self.engines.embedder.embed([text])[0] if self.engines.embedder is not None else None

    def _turn(self, u: Utterance, turn_end: float, vad_s: float, source: str) -> None:
        engines = self.engines
        transcript = engines.transcriber.transcribe(u.clip)
        if not transcript.text:
            self.on_event(Skipped(u.start, u.end, "no words recognised"))
            return
        if self.session_id is None:
            self.session_id = self.archive.begin_session(
                mode=self.mode, source=f"file:{Path(source).name}", models=engines.names()
            )
        user_timings = {"vad_s": vad_s, "stt_s": transcript.stt_s}
        self.archive.add_turn(TurnRecord(
            self.session_id, self._idx, "user", transcript.text, pcm.to_flac(u.clip), u.clip.rate,
            u.start, u.end, u.duration, transcript.language, round(transcript.confidence, 4),
            user_timings, engines.transcriber.name, embedding=self._embed(transcript.text),
        ))
        self._languages[transcript.language] += 1
        self._timings.append(user_timings)
        self.on_event(UserSpoke(self.session_id, self._idx, transcript.text, u.start, u.end, transcript.language))
        self._idx += 1

        messages = self.dialog.add_user(transcript.text)
        reply = speak_reply(engines.llm, engines.voice, messages, self.sink, turn_end)
        text = reply.text or FALLBACK_REPLY
        if not reply.text and reply.error is None and engines.voice is not None:
            # The model said nothing: a gentle fixed line rather than silence.
            fallback = speak_reply_text(engines.voice, text, self.sink)
            reply = SpokenReply(text, text, fallback, engines.voice.rate, {**reply.timings, "fallback": 1.0})
        if reply.error is not None and not reply.text:
            raise reply.error
        # The reply's clock starts at the end of the person's turn, so it includes their STT.
        timings = {**reply.timings, "user_stt_s": transcript.stt_s}
        has_audio = len(reply.audio) > 0
        self.archive.add_turn(TurnRecord(
            self.session_id, self._idx, "assistant", text,
            pcm.to_flac(pcm.Clip(reply.audio, reply.rate)) if has_audio else None,
            reply.rate if has_audio else None,
            duration_s=len(reply.audio) / reply.rate if has_audio else None,
            timings=timings, model=f"{engines.llm.backend}:{engines.llm.model}",
            partial=reply.error is not None, embedding=self._embed(text),
        ))
        self.dialog.add_assistant(text)
        self._timings.append(timings)
        self.on_event(CompanionReplied(self.session_id, self._idx, text, timings, reply.error is not None))
        self._idx += 1
        self.archive.release()  # between turns the journal is free for search, list and play elsewhere
        if self.sink is not None:
            self.sink.gap(0.6, reply.rate)
        if reply.error is not None:
            raise reply.error


def speak_reply_text(voice: Voice, text: str, sink: AudioSink | None) -> np.ndarray:
    chunks = []
    for s in voice.speak(text):
        if sink is not None:
            sink.write(s.samples, s.rate)
        chunks.append(s.samples)
    return np.concatenate(chunks) if chunks else np.zeros(0, np.int16)


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

    for u in file_utterances(path, seg, on_progress):
        t: Transcript = transcriber.transcribe(u.clip)
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
    vec = embedder.embed([clean])[0] if embedder is not None else None
    archive.add_turn(TurnRecord(sid, 0, "user", clean, at=at, embedding=vec))
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
    sid = None
    idx = 0
    languages: collections.Counter[str] = collections.Counter()

    for u in file_utterances(path, seg, on_progress):
        t = transcriber.transcribe(u.clip)
        if not t.text:
            continue
        if sid is None:
            sid = archive.begin_session(mode=DEFAULT_MODE, source=f"import:{path.name}",
                                        models={"stt": transcriber.name}, started_at=at, source_hash=digest)
        vec = embedder.embed([t.text])[0] if embedder is not None else None
        archive.add_turn(TurnRecord(
            sid, idx, "user", t.text, pcm.to_flac(u.clip), u.clip.rate, u.start, u.end, u.duration, t.language,
            round(t.confidence, 4), {"stt_s": t.stt_s}, transcriber.name,
            at=at + dt.timedelta(seconds=u.start), embedding=vec,
        ))
        archive.release()
        languages[t.language] += 1
        on_turn(idx, u, t.text)
        idx += 1
    if sid is None:
        return Imported(str(path), None, 0, "no speech found")
    archive.end_session(sid, language=languages.most_common(1)[0][0], ended_at=at + dt.timedelta(seconds=info.duration))
    search.refresh_index(archive)
    archive.release()
    return Imported(str(path), sid, idx)
