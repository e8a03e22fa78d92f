"""Entries that are not conversations: files transcribed, typed entries, imported voice memos."""

from __future__ import annotations

import collections
import logging
import unicodedata
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

from ..audio import pcm
from ..audio.vad import Segmenter, SegmenterConfig, Utterance
from ..companion.modes import DEFAULT_MODE
from ..config import Settings
from ..errors import InputError, NoSpeechError
from ..speech.stt import LanguagePin, Segment, Transcriber, Transcript
from ..store import search
from ..store.archive import Archive
from ..store.embedding import Embedder

from .recorder import Recorder
from .timings import HeardTimings

log = logging.getLogger(__name__)

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
        idx = recorder.user(u.clip, t, u.start, u.end, timings=HeardTimings(stt_s=t.stt_s), engine=transcriber.name,
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
