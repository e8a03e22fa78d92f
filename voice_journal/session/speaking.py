"""The companion's voice in a live session, and the microphone while it speaks: :class:`Speaking`.

A reply is written and spoken on a thread of its own (:meth:`Speaking.start`,
see :func:`~voice_journal.session.speaker.speak_reply`) while the session's
thread listens (:meth:`Speaking.finish`). Half-duplex, nothing is heard while
the voice plays, and for a short tail after. With barge-in, a voice over
the reply stops it at once: the model at its next token, the speaker at
once; only what was played counts as said. Fixed words (:meth:`Speaking.say`)
go the same way.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..audio.vad import BargeInDetector, SpeechStarted
from ..companion.conversation import Plan, Recalled
from ..config import Settings
from ..errors import HungUp
from ..llm.speculative import SpeculativeStream
from .engines import Engines
from .events import State
from .hearing import Hearing
from .speaker import SpokenReply, reply_options, speak_reply
from .timings import ReplyTimings

DETECTOR_SPAN_S = 5 * 0.030  # the voiced frames BargeInDetector needs before it fires


@dataclass
class ReplyJob:
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
class BargeIn:
    """The person spoke over a reply: how much of it was played, and how fast it stopped."""

    heard: float  # samples played
    stop_s: float  # from their speech onset to silence


class Speaking:
    """Speaks replies and fixed words into the sink, listening meanwhile as the session asks."""

    def __init__(self, engines: Engines, settings: Settings, sink, hearing: Hearing, *, barge_in: bool,
                 deaf_tail_s: float, on_state: Callable[[State], None] = lambda s: None,
                 on_barge_in: Callable[[float, float], None] = lambda heard_s, stop_s: None,
                 on_their_speech: Callable[[], None] = lambda: None):
        self.engines, self.settings, self.sink, self.hearing = engines, settings, sink, hearing
        self.barge_in, self.deaf_tail_s = barge_in, deaf_tail_s
        self.on_state = on_state
        self.on_barge_in = on_barge_in  # (seconds of the reply heard, seconds from their voice to silence)
        self.on_their_speech = on_their_speech  # a voice over the reply starts their next turn
        self.job: ReplyJob | None = None  # the reply being written or played

    def start(self, plan: Plan, turn_end: float, early: SpeculativeStream | None = None) -> ReplyJob:
        """Start writing and speaking the reply on its own thread (taking over ``early``, begun in the pause)."""
        engines, cancel, result = self.engines, threading.Event(), []

        def work() -> None:
            try:
                result.append(speak_reply(engines.llm, engines.voice, plan.messages, self.sink, turn_end,
                                          reply_options(self.settings, plan.rules), cancel=cancel, rules=plan.rules,
                                          then=plan.then, lead=plan.lead, stream=early, closing=plan.ends))
            except BaseException as e:  # handed to the session thread
                result.append(e)

        self.sink.mark()
        self.job = ReplyJob(threading.Thread(target=work, name="reply", daemon=True), cancel, result, plan.ends,
                            plan.recalled)
        self.job.thread.start()
        return self.job

    def finish(self, job: ReplyJob) -> tuple[SpokenReply, BargeIn | None]:
        """Listen until the reply has been written and played (or talked over); the reply, and the barge-in."""
        barge = self._play_while_listening(job)
        reply = job.outcome()
        self.job = None
        return reply, barge

    def stop(self) -> tuple[ReplyJob | None, float | None]:
        """Cancel the reply in progress, if any, and silence it: (its job, the samples played)."""
        job, self.job = self.job, None
        if job is None:
            return None, None
        heard = self.sink.played
        job.cancel.set()
        self.sink.stop()
        return job, heard

    def say(self, text: str, *, interruptible: bool, keep: Callable[[str, np.ndarray, bool], None]) -> None:
        """Speak fixed words; ``keep(words heard, their audio, cut short)`` is called even on Ctrl-C."""
        self.sink.mark()
        chunks: list[np.ndarray] = []
        heard: int | None = None  # None: all of it
        try:
            for s in self.engines.voice.speak(text):
                self.sink.write(s.samples, s.rate)
                chunks.append(s.samples)
            playing = lambda: self.sink.pending_s > 0  # noqa: E731
            if interruptible and self.barge_in:
                if self.hearing.talked_over(playing):
                    heard = int(self.sink.played)
                    self.sink.stop()
            else:
                self.hearing.listen_while(playing)
        except (KeyboardInterrupt, HungUp):
            heard = int(self.sink.played)
            self.sink.stop()
            raise
        finally:
            if chunks:
                audio = np.concatenate(chunks)
                if heard is None or heard >= len(audio):
                    keep(text, audio, False)
                else:
                    said, cut = SpokenReply(text, text, audio, self.engines.voice.rate, ReplyTimings(),
                                            parts=((text, len(audio)),)).heard(heard)
                    keep(said, cut, True)
        self.hearing.deafen(self.deaf_tail_s)
        self.hearing.restart()

    def _play_while_listening(self, job: ReplyJob) -> BargeIn | None:
        detector = BargeInDetector() if self.barge_in and not job.closing else None
        while job.thread.is_alive() or self.sink.pending_s > 0:
            self.on_state(State.THINKING if job.thread.is_alive() and self.sink.pending_s == 0 else State.SPEAKING)
            block = self.hearing.read(timeout=0.05)
            if block is None or detector is None:
                continue  # half-duplex: the companion does not listen while it speaks
            if any(isinstance(e, SpeechStarted) for e in self.hearing.feed(block)):
                self.on_their_speech()  # the barge-in speech starts their next turn
            if detector.feed(block.samples) and self.sink.pending_s > 0:
                heard = self.sink.played
                job.cancel.set()
                self.sink.stop()
                # From the first voiced block we have to the silence: detection plus stopping.
                stop_s = time.monotonic() - block.at + DETECTOR_SPAN_S
                self.on_barge_in(heard / self.engines.voice.rate, stop_s)
                self.on_state(State.HEARING)
                return BargeIn(heard, stop_s)
        self.hearing.deafen(self.deaf_tail_s)
        if detector is None:
            self.hearing.restart()  # what it heard while deaf is gone
        self.on_state(State.LISTENING)
        return None
