"""The reply begun in the pause: :class:`SpeculativeReply`.

Most pauses in a turn are not its end, but the one that is comes without
warning. So once the words so far are transcribed, the model is readied on
a thread of its own: while the person is still silent, the reply to the
turn so far begins (a :class:`~voice_journal.llm.speculative.SpeculativeStream`);
if they talk again, it is cancelled and the turn so far is evaluated into
the model's cache instead, so that the next piece only adds its own words.
When the turn ends, the reply begun is taken over if what the turn asks of
the model is exactly what it was asked, and thrown away unheard if not.

Nothing of it is spoken before the turn is over and the crisis check has
passed for the whole turn: the session decides what to do with it, after.
"""

from __future__ import annotations

import concurrent.futures
import logging
import threading
from dataclasses import dataclass
from typing import Callable, Sequence

from ..companion.checker import ReplyRules
from ..errors import VoiceJournalError
from ..llm.base import LLM, GenerationOptions, Message
from ..llm.speculative import SpeculativeStream
from .turn_words import Pieces, TurnTranscriber

log = logging.getLogger(__name__)

Preview = Callable[..., "list[Message] | None"]  # (words so far, memory=...) -> what the model would be sent


@dataclass(frozen=True)
class _Pending:
    """A piece sent to Whisper, and how to ready the model once it is transcribed."""

    seq: int
    pieces: Pieces  # the turn's pieces up to this one, in order (this one last)
    preview: Preview


class SpeculativeReply:
    """Readies the model for the turn so far, and holds the reply begun in the pause that may end it."""

    def __init__(self, llm: LLM, options: Callable[[ReplyRules | None], GenerationOptions], *, begin: bool = True):
        self.llm = llm
        self.options = options  # the generation options for a reply under some rules
        self.begin = begin  # begin replies in pauses (else only warm the cache)
        self.pausing = False  # the person is silent within a turn (a pause, no speech since)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="llm-warm")
        self._lock = threading.Lock()
        self._seq = 0  # pieces of turns so far: readying for an older one is stale
        self._pending: _Pending | None = None  # the latest piece, until the model is readied for it
        self._early: SpeculativeStream | None = None

    def piece_sent(self, pieces: Pieces, preview: Preview) -> None:
        """A new piece went to Whisper: ready the model for it once it is back (see :meth:`ready`)."""
        self._seq += 1
        self._pending = _Pending(self._seq, pieces, preview)

    def ready(self, release: Callable[[], None] = lambda: None) -> None:
        """Once the latest piece is transcribed, ready the model for the turn so far (session thread).

        The preview is built here, on the session's thread (memory searches
        the journal, which is that thread's; ``release`` lets the journal go
        after it); the model works on the warm thread.
        """
        pending = self._pending
        if pending is None or not pending.pieces[-1].done():
            return
        self._pending = None
        try:
            if not pending.pieces[-1].result().text:
                return
            words = TurnTranscriber.text_of(pending.pieces)
        except Exception:  # the turn's end raises it where the transcript is needed
            return
        messages = pending.preview(words, memory=self.pausing)
        release()
        if messages is not None:
            self._pool.submit(self._prepare, pending.seq, messages)

    def talking_again(self) -> None:
        """They went on after a pause: the reply begun in it was early."""
        self.pausing = False
        self.drop()

    def drop(self) -> None:
        """Cancel the reply begun in the pause, if any (it was never heard: nothing to keep)."""
        with self._lock:
            self._cancel()

    def turn_over(self) -> None:
        """The turn has ended: from here the model is only warmed until :meth:`take` decides."""
        self.pausing = False
        self._pending = None

    def take(self, messages: Sequence[Message], rules: ReplyRules | None = None) -> SpeculativeStream | None:
        """The turn is over: the reply begun in its last pause if it asks for exactly that, else None."""
        self.pausing = False
        self._pending = None
        with self._lock:
            self._seq += 1  # a prepare still queued for this turn is stale
            early, self._early = self._early, None
        if early is not None and early.matches(messages, self.options(rules)):
            return early
        if early is not None:
            early.cancel()
        return None

    def warm(self, messages: Sequence[Message]) -> None:
        """Evaluate ``messages`` into the model's cache on the warm thread (a greeting, a new mode)."""
        self._pool.submit(self._warm, messages)

    def idle(self) -> None:
        """Wait until the model has been readied for everything sent so far (its thread is idle)."""
        self._pool.submit(lambda: None).result()

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        self.take(())  # cancels a reply begun in a pause the session ended in

    def _prepare(self, seq: int, messages: list[Message]) -> None:
        with self._lock:
            if seq != self._seq:
                return  # a newer piece is on its way: readying for this one would only delay it
            if self.pausing and self.begin:
                self._cancel()
                try:
                    self._early = SpeculativeStream(self.llm, messages, self.options(messages.rules))
                except VoiceJournalError as e:
                    log.warning("could not start the reply early: %s", e)
                return
        self._warm(messages)

    def _cancel(self) -> None:
        early, self._early = self._early, None
        if early is not None:
            early.cancel()

    def _warm(self, messages: Sequence[Message]) -> None:
        try:
            self.llm.warm(messages)
        except VoiceJournalError as e:
            log.warning("could not warm the model: %s", e)
