"""A session from a recording: the person's turns come from a file, the replies go to a file or a speaker."""

from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

from ..audio import pcm
from ..audio.playback import AudioSink
from ..audio.vad import Segmenter, SegmenterConfig, Utterance
from ..companion.conversation import Plan
from ..companion.modes import DEFAULT_MODE
from ..config import Settings
from ..errors import NoSpeechError
from ..speech.stt import LanguagePin
from ..store.archive import Archive

from .engines import Engines
from .events import ModeChanged, SessionEvent, SessionResult, Skipped
from .language import follow_language, in_english
from .memory import conversation
from .turn_log import TurnLog
from .timings import HeardTimings
from .speaker import fixed_model, reply_options, speak_reply, speak_reply_text

log = logging.getLogger(__name__)

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
        self.conv = conversation(mode, settings, archive, engines, lambda: self.session_id)
        self.turns: TurnLog | None = None  # from the first turn heard: an empty file makes no session
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
                self.turns.end(status)
            if self.sink is not None:
                self.sink.close()
        if self.session_id is None:
            raise NoSpeechError(f"no speech found in {path}; nothing was stored")
        return self.turns.result()

    def _turn(self, u: Utterance, turn_end: float, vad_s: float, source: str) -> None:
        engines = self.engines
        transcript = engines.transcriber.transcribe(u.clip, self._pin.language)
        self._pin.learn(transcript)
        if not transcript.text:
            self.on_event(Skipped(u.start, u.end, "no words recognised"))
            return
        if self.session_id is None:
            self.turns = TurnLog.begin(self.archive, self.conv, self.on_event, source=f"file:{Path(source).name}",
                                       models=engines.names(), embedder=engines.embedder,
                                       voice=lambda: engines.voice.name if engines.voice is not None else None)
            self.session_id = self.turns.session_id
        follow_language(self.conv, engines.voice, transcript)
        # The safety check sees their words before the model does (in English too, if said in another language).
        plan = self.conv.turn(transcript.text, english=in_english(engines.transcriber, u.clip, transcript))
        idx = self.turns.heard(u.clip, transcript, u.start, u.end, HeardTimings(stt_s=transcript.stt_s, vad_s=vad_s),
                               engine=engines.transcriber.name, check=plan.check)
        self.turns.recorder.answers(idx, plan)
        if plan.switched:
            self.on_event(ModeChanged(self.session_id, plan.mode))
        if plan.fixed is not None:
            self._fixed(plan)
            return

        reply = speak_reply(engines.llm, engines.voice, plan.messages, self.sink, turn_end,
                            reply_options(self.settings, plan.rules), rules=plan.rules, then=plan.then,
                            lead=plan.lead, closing=plan.ends)
        if reply.error is not None and not reply.text:
            raise reply.error
        # The reply's clock starts at the end of the person's turn, so it includes their STT.
        self.turns.reply(reply, model=f"{engines.llm.backend}:{engines.llm.model}",
                         timings=reply.timings.but(user_stt_s=transcript.stt_s),
                         recalled=[r.as_dict() for r in plan.recalled])
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
        self.turns.said(text, audio, voice.rate if voice is not None else None, model=fixed_model(plan, voice),
                        crisis=plan.crisis)
        self.archive.release()
        if self.sink is not None and voice is not None:
            self.sink.gap(0.6, voice.rate)


