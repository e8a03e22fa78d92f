"""A live session: microphone in, speaker out, turn-taking in real time: :class:`LiveSession`.

Stages, threads and queues::

    PortAudio callback ──Block──▶ bounded queue ──▶ Hearing (level, deafness, Segmenter) on the
      (or PacedFile)                                 session thread, the only one that touches
                                                     the archive and the dialog │ Segmenter events
           PauseStarted: the piece since the last pause ─▶ TurnTranscriber ─▶ (piece) ─▶ SpeculativeReply:
                                                                still silent: the reply to the
                                                                turn so far begins (speculative);
                                                                talking again: the turn so far
                                                                is evaluated into the KV cache
           SpeechResumed ─▶ the reply begun in the pause is cancelled
           Utterance ─▶ the pieces' transcripts, joined
                        (plus any speech after the last pause) ─▶ Conversation.turn ─▶ Plan
                      ─▶ reply thread: LLM deltas ─▶ SentenceSplitter ─▶ tts thread ─▶ sink
                           (the reply begun in the pause,             (plays while the next
                            if the plan asks for exactly it)           sentence is synthesised)
                      ─▶ TurnLog: user turn committed and told (while the reply starts)
      while the reply plays the session thread keeps reading the microphone:
        half-duplex (default): blocks captured while the companion speaks, and for
          ``deaf_tail_s`` after, are thrown away, so it never hears itself;
        barge-in: a BargeInDetector watches them; when it fires the reply is
          cancelled, the sink silenced, and only what was played is archived.
      ─▶ TurnLog: assistant turn (text, audio, timings), committed when it ends

The session ends on a goodbye, after ``max_turns`` of the person's turns
(the last reply is a closing one), at ``max_minutes`` (a gentle wrap-up,
never a cut-off), when the input ends, or on Ctrl-C: then whatever is in
progress is archived as partial and a short closing is spoken (a second
Ctrl-C skips it).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

from ..audio import pcm
from ..audio.vad import BargeInDetector, PauseStarted, SpeechResumed, SpeechStarted, Utterance
from ..companion import arc, safety
from ..companion.conversation import Conversation, Plan, Recalled
from ..companion.modes import DEFAULT_MODE
from ..config import Settings
from ..errors import VoiceJournalError
from ..llm.speculative import SpeculativeStream
from ..speech.stt import Transcript
from ..store import search
from ..store.archive import Archive
from .engines import Engines
from .events import BargedIn, LiveEvent, Listening, ModeChanged, SessionResult, Skipped, State
from .hearing import Hearing
from .memory import recaller
from .recorder import Recorder
from .turn_log import TurnLog
from .timings import HeardTimings, ReplyTimings
from .speaker import FALLBACK_REPLY, SpokenReply, reply_options, speak_reply
from .speculative import SpeculativeReply
from .turn_words import TurnTranscriber

log = logging.getLogger(__name__)


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
    speculative_reply: bool = True  # begin the reply in that pause; kept if the turn ends there, else dropped



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
    """A spoken conversation through a microphone and a speaker, until goodbye (see the module's notes)."""

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
        self.state = State.STARTING
        self.started = time.monotonic()
        self.turns: TurnLog | None = None  # once the session is begun (run)
        self.words = TurnTranscriber(engines.transcriber, settings.language)
        self.speculative = SpeculativeReply(engines.llm, lambda rules: reply_options(settings, rules),
                                            begin=options.speculative_reply)
        self.hearing = Hearing(source, end_silence_ms=settings.end_silence_ms, max_turn_s=settings.max_turn_s,
                               piece_pause_ms=options.early_stt_ms, origin=lambda: self.started,
                               on_restart=self.words.new_turn)
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
    def level_dbfs(self) -> float:
        """The microphone's level now, for a meter."""
        return self.hearing.level_dbfs

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self.started

    def run(self) -> SessionResult:
        """Hold the session; returns when it is over. Ctrl-C ends it without losing anything."""
        self.session_id = self.archive.begin_session(
            mode=self.mode, source=self.source.name if self.source.name.startswith("file:") else "microphone",
            models=self.engines.names(),
        )
        self.turns = TurnLog(Recorder(self.archive, self.session_id, self.engines.embedder), self.conv, self.on_event)
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
                self.speculative.warm(self.dialog.messages())
                self._listen()
            except KeyboardInterrupt:
                self._on_interrupt()
            if self._partial:
                status = "interrupted"
        finally:
            self.state = State.ENDED
            self.words.close()
            self.speculative.close()  # cancels a reply begun in a pause the session ended in
            self.source.close()
            try:
                self.sink.close()
            finally:
                self._end(status)
        return self.turns.result()

    def _end(self, status: str) -> None:
        self.archive.end_session(self.session_id, status=status, language=self.turns.language())
        try:
            search.refresh_index(self.archive)
        except VoiceJournalError as e:
            log.warning("search index not refreshed: %s", e)
        self.archive.release()
        if self.source.overflows or self.source.dropped:
            log.warning("the microphone overflowed %d times and %d blocks were dropped",
                        self.source.overflows, self.source.dropped)

    # -- listening ---------------------------------------------------------

    def _time_up(self) -> bool:
        m = self.options.max_minutes
        return m is not None and self.elapsed >= m * 60

    def _listen(self) -> None:
        self.state = State.LISTENING
        self.on_event(Listening(self.session_id))
        while True:
            if self._time_up() and not self.hearing.seg.in_speech:
                self._say(arc.CLOSING_TIME)
                return
            self.speculative.ready(self.archive.release)
            block = self.hearing.read(timeout=0.1)
            if block is None:
                if self.source.finished:  # the recording (or the device) ended
                    for e in self.hearing.seg.flush():
                        if isinstance(e, Utterance) and self._person_spoke(e, time.perf_counter()):
                            return
                    return
                continue
            if self.hearing.deaf_to(block):
                continue  # the companion's own voice, or its tail
            for e in self.hearing.feed(block):
                if isinstance(e, SpeechStarted):
                    self.state = State.HEARING
                    self.speculative.pausing = False
                    self.words.new_turn()
                elif isinstance(e, PauseStarted):
                    self.speculative.pausing = True
                    self._transcribe_piece()
                elif isinstance(e, SpeechResumed):
                    self.speculative.talking_again()  # they went on: the guess was early
                elif isinstance(e, Utterance):
                    if self._person_spoke(e, time.perf_counter()):
                        return
                    self.state = State.LISTENING

    # -- the turn's words, and the reply begun in its pauses ------------------

    def _transcribe_piece(self) -> None:
        """A pause: its piece of the turn goes to Whisper, and the model is readied once it is back."""
        pieces = self.words.piece(self.hearing.seg.turn_so_far())
        if pieces is None:
            return
        # What the model will be sent, to begin the reply or warm it (taken here, on the session thread).
        last = self.options.max_turns is not None and self.turns.user_turns + 1 >= self.options.max_turns
        self.speculative.piece_sent(pieces, self.conv.previewer(closing=last or self._time_up(),
                                                                 wrap_up=self._time_up()))

    def _hold(self, holding: bool) -> None:
        # A recording standing in for a polite person waits while the companion talks
        # (never with barge-in, where talking over it is the point).
        if self.options.barge_in:
            return
        if holding:
            getattr(self.source, "hold", lambda: None)()
        else:
            getattr(self.source, "resume", lambda at: None)(self.hearing.deaf_until)

    def _person_spoke(self, u: Utterance, turn_end: float) -> bool:
        """A turn of the person's is over: archive it and answer. True when the session should end."""
        self._hold(True)
        try:
            return self._respond(u, turn_end)
        finally:
            self._hold(False)

    def _respond(self, u: Utterance, turn_end: float) -> bool:
        self._utterance = u
        self.state = State.THINKING
        self.speculative.turn_over()
        t0 = time.perf_counter()
        heard = self.words.finish(u, self.options.confirm_speech_s)
        stt_wait = time.perf_counter() - t0
        transcript = heard.transcript
        if transcript is None or not transcript.text:
            self._utterance = None
            self.speculative.take(())  # cancels it
            self.on_event(Skipped(u.start, u.end, "no speech" if transcript is None else "no words recognised"))
            return False
        closing = (arc.is_goodbye(transcript.text) or self._time_up()
                   or (self.options.max_turns is not None and self.turns.user_turns + 1 >= self.options.max_turns))
        # The safety check sees their words before the model does.
        plan = self.conv.turn(transcript.text, closing=closing, wrap_up=self._time_up())
        # The model is asked first and the turn archived while it starts writing: archiving
        # (audio, embedding, a committed transaction) took ~0.1 s of the person's wait. The
        # reply is archived after the turn, and Ctrl-C in between keeps both (_on_interrupt).
        early = self.speculative.take(plan.messages if plan.fixed is None else (), plan.rules)
        job = self._start_answer(plan, turn_end, early) if plan.fixed is None else None
        try:
            self._archive_user(u.clip, transcript, self.hearing.session_time(u.start), self.hearing.session_time(u.end),
                               HeardTimings(stt_s=transcript.stt_s, stt_wait_s=stt_wait, stt_pieces=heard.pieces,
                                            early_stt=heard.all_early), check=plan.check)
            self.turns.recorder.answers(self.turns.recorder.next_idx - 1, plan)
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
            self.speculative.warm(self.conv.dialog.messages())
        if job is None:  # crisis message, a mode's opening, a mood question: fixed, reviewed words
            self._say(plan.fixed, crisis=plan.crisis, interruptible=not plan.ends)
        else:
            self._finish_answer(job)
        return plan.ends

    def _archive_user(self, clip: pcm.Clip, t: Transcript, start: float, end: float,
                      timings: HeardTimings, partial: bool = False, *, check: safety.Assessment) -> None:
        # Once committed, a Ctrl-C must not archive this turn again (see _on_interrupt): the events
        # that tell of it come after, so the utterance is forgotten before them.
        self.turns.heard(clip, t, start, end, timings, engine=self.engines.transcriber.name, check=check,
                         partial=partial, committed=self._forget_utterance)
        self.archive.release()

    def _forget_utterance(self) -> None:
        self._utterance = None

    # -- speaking ----------------------------------------------------------

    def _start_answer(self, plan: Plan, turn_end: float, early: SpeculativeStream | None = None) -> _ReplyJob:
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
                self.state = State.THINKING
            else:
                self.state = State.SPEAKING
            block = self.hearing.read(timeout=0.05)
            if block is None or detector is None:
                continue  # half-duplex: the companion does not listen while it speaks
            for e in self.hearing.feed(block):  # the barge-in speech starts their next turn
                if isinstance(e, SpeechStarted):
                    self.words.new_turn()
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
                self.state = State.HEARING
                return heard, stop_s
        self.hearing.deafen(self.options.deaf_tail_s)
        if detector is None:
            self.hearing.restart()  # what it heard while deaf is gone
        self.state = State.LISTENING
        return None

    @staticmethod
    def _detector_span() -> float:
        return 5 * 0.030  # the voiced frames BargeInDetector needs before it fires

    def _archive_reply(self, reply: SpokenReply, heard: float | None, stop_s: float | None = None, *,
                       recalled: tuple[Recalled, ...] = ()) -> None:
        """Archive a reply; ``heard``: the samples played before it was cut (barge-in, Ctrl-C)."""
        engines = self.engines
        text, audio = reply.text or FALLBACK_REPLY, reply.audio
        timings = reply.timings
        partial = reply.error is not None
        if heard is not None:
            text, audio = reply.heard(int(heard))
            timings = timings.but(heard_s=len(audio) / reply.rate)
            partial = True
        if stop_s is not None:
            timings = timings.but(barge_in_stop_s=stop_s)
        if not text and not len(audio):
            self.conv.replied("")  # keep user/assistant pairs for the cache
            return
        self._partial = self._partial or partial
        self.turns.said(text, audio, reply.rate, timings=timings, partial=partial,
                        model=f"{engines.llm.backend}:{engines.llm.model}", recalled=[r.as_dict() for r in recalled])
        self.archive.release()

    def _say(self, text: str, *, greeting: bool = False, crisis: bool = False, interruptible: bool = False) -> None:
        """Speak fixed words (greeting, crisis message, a mode's opening, closings) and archive them.

        ``greeting``, ``crisis`` and ``interruptible`` words can be talked over with barge-in.
        """
        interruptible = interruptible or greeting or crisis
        self.state = State.SPEAKING if interruptible else State.CLOSING
        self.sink.mark()
        chunks: list[np.ndarray] = []
        heard: int | None = None  # None: all of it
        try:
            for s in self.engines.voice.speak(text):
                self.sink.write(s.samples, s.rate)
                chunks.append(s.samples)
            playing = lambda: self.sink.pending_s > 0  # noqa: E731
            if interruptible and self.options.barge_in:
                if self.hearing.talked_over(playing):
                    heard = int(self.sink.played)
                    self.sink.stop()
            else:
                self.hearing.listen_while(playing)
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
                    said, cut = SpokenReply(text, text, audio, self.engines.voice.rate, ReplyTimings(),
                                            parts=((text, len(audio)),)).heard(heard)
                    self._archive_fixed(said, cut, partial=True, crisis=crisis)
        self.hearing.deafen(self.options.deaf_tail_s)
        self.hearing.restart()

    def _archive_fixed(self, text: str, audio: np.ndarray, partial: bool, crisis: bool = False) -> None:
        self.turns.said(text or "…", audio, self.engines.voice.rate, partial=partial,
                        model="safety" if crisis else self.engines.voice.name, crisis=crisis)
        self.archive.release()

    # -- Ctrl-C --------------------------------------------------------------

    def _on_interrupt(self) -> None:
        """Keep whatever was in progress, then say goodbye (a second Ctrl-C skips the goodbye)."""
        import signal

        again = threading.Event()
        in_main = threading.current_thread() is threading.main_thread()
        previous = signal.signal(signal.SIGINT, lambda *a: again.set()) if in_main else None
        try:
            self.state = State.CLOSING
            self.speculative.drop()  # begun in a pause, never heard: nothing to keep
            job, heard = self._stop_reply()  # a reply begun: stop it, keep what was heard
            u, self._utterance = self._utterance, None
            if u is not None and self._committed(self.turns.recorder.next_idx):
                # Ctrl-C came between the turn's commit and the next line: it is kept already.
                self.turns.kept_already()
            elif u is not None:  # a whole turn heard, not archived yet (its reply may have begun)
                self._archive_unanswered(u.clip, self.hearing.session_time(u.start), self.hearing.session_time(u.end),
                                         partial=False)
            if job is not None:  # after the turn it answers
                self._archive_reply(job.outcome(), heard, recalled=job.recalled)
            elif u is None and self.hearing.seg.in_speech:  # a turn in progress
                clip = self.hearing.seg.turn_so_far()
                if clip is not None:
                    start = self.hearing.session_time(self.hearing.seg.turn_start)
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
        transcript = self.words.now(clip)
        if not transcript.text and not partial:
            return
        check = self.conv.guard.check(transcript.text)
        self._archive_user(clip, transcript, start, end, HeardTimings(stt_s=transcript.stt_s), partial=partial,
                           check=check)
        self._crisis_unanswered = check.crisis
        self._partial = self._partial or partial
