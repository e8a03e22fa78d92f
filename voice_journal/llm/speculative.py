"""A reply started before anyone knows it will be wanted.

A live session can guess what it will ask the model before the person's
turn is over: the words so far, when they pause. Started then, the reply's
first words are written during the rest of the pause; if the turn ends
there and the request is the same, the session speaks them at once, and
otherwise it cancels them (LiveKit calls this preemptive generation).

>>> early = SpeculativeStream(llm, messages, options)   # the person pauses
>>> if early.matches(final_messages, options):         # the turn is over
...     speak(early)                                    # what was written meanwhile comes first
... else:
...     early.cancel()
"""

from __future__ import annotations

import threading
from typing import Iterator, Sequence

from .base import LLM, GenerationOptions, Message, Usage


class SpeculativeStream:
    """A :class:`~voice_journal.llm.base.ReplyStream` read ahead on its own thread.

    Iterate it once, as a reply stream: the deltas written so far come at
    once, then the rest as they come. :meth:`cancel` works from any thread
    and stops the model at its next token.
    """

    def __init__(self, llm: LLM, messages: Sequence[Message], options: GenerationOptions):
        self.messages = tuple(messages)
        self.options = options
        self._stream = llm.stream(self.messages, options)
        self._deltas: list[str] = []
        self._ended = False
        self._error: BaseException | None = None
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._read, name="llm-speculative", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            for delta in self._stream:
                with self._changed:
                    self._deltas.append(delta)
                    self._changed.notify_all()
        except BaseException as e:  # raised to whoever iterates
            self._error = e
        finally:
            with self._changed:
                self._ended = True
                self._changed.notify_all()

    def matches(self, messages: Sequence[Message], options: GenerationOptions) -> bool:
        """Whether this is the reply to ``messages`` with ``options``, word for word."""
        return tuple(messages) == self.messages and options == self.options

    @property
    def written(self) -> str:
        """What the model has written so far."""
        with self._changed:
            return "".join(self._deltas)

    @property
    def usage(self) -> Usage | None:
        return self._stream.usage

    def cancel(self) -> None:
        self._stream.cancel()

    def __iter__(self) -> Iterator[str]:
        i = 0
        try:
            while True:
                with self._changed:
                    while i >= len(self._deltas) and not self._ended:
                        self._changed.wait()
                    if i < len(self._deltas):
                        delta = self._deltas[i]
                        i += 1
                    elif self._error is not None:
                        raise self._error
                    else:
                        return
                yield delta
        finally:
            if self._stream.cancelled.is_set():
                self._thread.join()  # so that usage is there, as after a ReplyStream
