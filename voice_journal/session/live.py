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
import signal
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np

from ..audio import pcm
from ..audio.vad import PauseStarted, SpeechResumed, SpeechStarted, Utterance
from ..companion import arc, safety
from ..companion.conversation import Recalled
from ..companion.modes import DEFAULT_MODE
from ..config import Settings
from ..errors import HungUp
from ..speech.stt import Transcript
from ..store.archive import Archive
from .engines import Engines
from .events import BargedIn, LiveEvent, Listening, ModeChanged, SessionResult, Skipped, State
from .hearing import Hearing
from .language import follow_language, in_english
from .memory import conversation
from .turn_log import TurnLog, refresh_search
from .timings import HeardTimings
from .speaker import SpokenReply, reply_options
from .speaking import ReplyJob, Speaking
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
    listening: bool = False  # the source was started already (a wake phrase was heard on it)



def open_session(source, hearing: Hearing, options: LiveOptions, greet: Callable[[], None]) -> float:
    """Start listening and greet; returns when the session's clock starts (``time.monotonic``).

    A microphone listens from the start (the level meter, barge-in over the greeting); a
    recording standing in for a person starts talking once greeted and the greeting's deaf tail
    is over, as a person would; a source woken by a wake phrase is already listening.
    """
    woken = options.listening
    waits = not woken and getattr(source, "waits_for_greeting", False)
    if not woken and not waits:
        source.start()
    started = time.monotonic()
    if options.greet and woken:
        hearing.hold(True)  # a woken recording waits for the greeting, as once greeted
        greet()
        hearing.hold(False)
    elif options.greet:
        greet()
    if waits:
        source.start(at=hearing.deaf_until)
    return started


@contextmanager
def second_interrupt_noted() -> Iterator[threading.Event]:
    """While what was in progress is kept, a second Ctrl-C is noted (the event is set), not raised.

    Only the main thread may handle signals; elsewhere the event is never set.
    """
    again = threading.Event()
    in_main = threading.current_thread() is threading.main_thread()
    previous = signal.signal(signal.SIGINT, lambda *a: again.set()) if in_main else None
    try:
        yield again
    finally:
        if in_main:
            signal.signal(signal.SIGINT, previous)


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
        # Recalled once in the pause that ends a turn (for the reply begun there), then again,
        # for the same words, by Conversation.turn: the same answer, without a second search.
        self.conv = conversation(mode, settings, archive, engines, lambda: self.session_id, remember_last=True)
        self.state = State.STARTING
        self.started = time.monotonic()
        self.turns: TurnLog | None = None  # once the session is begun (run)
        self.words = TurnTranscriber(engines.transcriber, settings.language)
        self.speculative = SpeculativeReply(engines.llm, lambda rules: reply_options(settings, rules),
                                            begin=options.speculative_reply)
        self.hearing = Hearing(source, end_silence_ms=settings.end_silence_ms, max_turn_s=settings.max_turn_s,
                               piece_pause_ms=options.early_stt_ms, origin=lambda: self.started,
                               on_restart=self.words.new_turn, polite=not options.barge_in)
        self._utterance: Utterance | None = None  # heard, not archived yet
        self.speaking = Speaking(engines, settings, sink, self.hearing, barge_in=options.barge_in,
                                 deaf_tail_s=options.deaf_tail_s, on_state=lambda st: setattr(self, "state", st),
                                 on_their_speech=self.words.new_turn,
                                 on_barge_in=lambda heard_s, stop_s: self.on_event(BargedIn(self.session_id, heard_s,
                                                                                            stop_s)))
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
        self.turns = TurnLog.begin(self.archive, self.conv, self.on_event, models=self.engines.names(),
                                   source=self.source.name if self.source.name.startswith(("file:", "browser")) else "microphone",
                                   embedder=self.engines.embedder,
                                   voice=lambda: self.engines.voice.name if self.engines.voice is not None else None)
        self.session_id = self.turns.session_id
        refresh_search(self.archive)  # memory searches it every turn: an index that lags costs each one
        status = "complete"
        try:
            try:
                self.started = open_session(self.source, self.hearing, self.options,
                                            greet=lambda: self._say(self.conv.opening(), greeting=True))
                # The dialogue alone: warming the first turn's notes too (as after each reply) left
                # 47 tokens to read after the turn instead of 93, yet its first token came later
                # (2.3 s against 1.4-1.8 s in three live runs each; not yet explained: perhaps the
                # longer warm, beside Whisper's first transcription, still held the model).
                self.speculative.warm(self.dialog.messages())
                self._listen()
            except KeyboardInterrupt:
                self._on_interrupt()
            except HungUp:  # nobody is left to hear a goodbye
                self._on_interrupt(goodbye=False)
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
        self.turns.end(status)
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
        self.speculative.piece_sent(pieces, self._previewer())

    def _previewer(self):
        """What the next turn will most likely send the model (see Conversation.previewer)."""
        last = self.options.max_turns is not None and self.turns.user_turns + 1 >= self.options.max_turns
        return self.conv.previewer(closing=last or self._time_up(), wrap_up=self._time_up())

    def _person_spoke(self, u: Utterance, turn_end: float) -> bool:
        """A turn of the person's is over: archive it and answer. True when the session should end."""
        self.hearing.hold(True)
        try:
            ends = self._respond(u, turn_end)
        finally:
            self.hearing.hold(False)
        if not ends:
            # While they begin their next turn, the model reads what it will begin with: this
            # turn as the dialogue keeps it, the reply as heard, and the notes that come before
            # their words. Without it the reply to the next turn read all of that (100 to 240
            # tokens, 1.5 to 3.5 s on two cores) after the turn had ended.
            self.speculative.warm(self._previewer()("") or self.dialog.messages())
        return ends

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
        follow_language(self.conv, self.engines.voice, transcript)
        # The safety check sees their words before the model does (in English too, if said in another language).
        plan = self.conv.turn(transcript.text, closing=closing, wrap_up=self._time_up(),
                              english=in_english(self.engines.transcriber, u.clip, transcript))
        # The model is asked first and the turn archived while it starts writing: archiving
        # (audio, embedding, a committed transaction) took ~0.1 s of the person's wait. The
        # reply is archived after the turn, and Ctrl-C in between keeps both (_on_interrupt).
        early = self.speculative.take(plan.messages if plan.fixed is None else (), plan.rules)
        job = self.speaking.start(plan, turn_end, early) if plan.fixed is None else None
        try:
            self._archive_user(u.clip, transcript, self.hearing.session_time(u.start), self.hearing.session_time(u.end),
                               HeardTimings(stt_s=transcript.stt_s, stt_wait_s=stt_wait, stt_pieces=heard.pieces,
                                            early_stt=heard.all_early), check=plan.check)
            self.turns.recorder.answers(self.turns.recorder.next_idx - 1, plan)
            self.archive.release()
        except KeyboardInterrupt:
            raise  # _on_interrupt keeps the turn, then what was heard of the reply
        except BaseException:
            job, _ = self.speaking.stop()  # the journal failed (a full disk): no reply to a turn it could not keep
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

    def _finish_answer(self, job: ReplyJob) -> None:
        """Listen while the reply is spoken (for barge-in), then archive what was said."""
        reply, barge = self.speaking.finish(job)
        self._archive_reply(reply, *((barge.heard, barge.stop_s) if barge else (None, None)), recalled=job.recalled)
        if reply.error is not None and not reply.text:
            raise reply.error

    def _archive_reply(self, reply: SpokenReply, heard: float | None, stop_s: float | None = None, *,
                       recalled: tuple[Recalled, ...] = ()) -> None:
        """Archive a reply; ``heard``: the samples played before it was cut (barge-in, Ctrl-C)."""
        llm = self.engines.llm
        cut = self.turns.reply(reply, model=f"{llm.backend}:{llm.model}", heard=heard, stop_s=stop_s,
                               recalled=[r.as_dict() for r in recalled])
        self._partial = self._partial or bool(cut)
        self.archive.release()

    def _say(self, text: str, *, greeting: bool = False, crisis: bool = False, interruptible: bool = False) -> None:
        """Speak fixed words (greeting, crisis message, a mode's opening, closings) and archive them.

        ``greeting``, ``crisis`` and ``interruptible`` words can be talked over with barge-in.
        """
        interruptible = interruptible or greeting or crisis
        self.state = State.SPEAKING if interruptible else State.CLOSING
        self.speaking.say(text, interruptible=interruptible,
                          keep=lambda said, audio, partial: self._archive_fixed(said, audio, partial, crisis))

    def _archive_fixed(self, text: str, audio: np.ndarray, partial: bool, crisis: bool = False) -> None:
        self.turns.said(text or "…", audio, self.engines.voice.rate, partial=partial,
                        model="safety" if crisis else self.engines.voice.name, crisis=crisis)
        self.archive.release()

    # -- Ctrl-C --------------------------------------------------------------

    def _on_interrupt(self, goodbye: bool = True) -> None:
        """Keep whatever was in progress, then say goodbye (a second Ctrl-C skips the goodbye)."""
        with second_interrupt_noted() as again:
            self.state = State.CLOSING
            self.speculative.drop()  # begun in a pause, never heard: nothing to keep
            job, heard = self.speaking.stop()  # a reply begun: stop it, keep what was heard
            u, self._utterance = self._utterance, None
            # A whole turn heard and not archived yet (its reply may have begun), unless Ctrl-C came
            # between its commit and the next line.
            if u is not None and not self.turns.kept_already():
                self._archive_unanswered(u.clip, self.hearing.session_time(u.start), self.hearing.session_time(u.end),
                                         partial=False)
            if job is not None:  # after the turn it answers
                self._archive_reply(job.outcome(), heard, recalled=job.recalled)
            elif u is None and self.hearing.seg.in_speech:  # a turn in progress
                clip = self.hearing.seg.turn_so_far()
                if clip is not None:
                    start = self.hearing.session_time(self.hearing.seg.turn_start)
                    self._archive_unanswered(clip, start, start + clip.duration, partial=True)
        if again.is_set() or not goodbye:
            return
        try:
            if self._crisis_unanswered:  # they said it, then Ctrl-C: the helplines matter more than a goodbye
                self._say(self.conv.crisis_message(), crisis=True)
            else:
                self._say(arc.CLOSING_INTERRUPTED)
        except KeyboardInterrupt:
            pass  # a second Ctrl-C: they want to go now

    def _archive_unanswered(self, clip: pcm.Clip, start: float, end: float, *, partial: bool) -> None:
        transcript = self.words.now(clip)
        if not transcript.text and not partial:
            return
        check = self.conv.guard.check(transcript.text)
        self._archive_user(clip, transcript, start, end, HeardTimings(stt_s=transcript.stt_s), partial=partial,
                           check=check)
        self._crisis_unanswered = check.crisis
        self._partial = self._partial or partial
