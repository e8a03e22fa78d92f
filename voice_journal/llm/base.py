"""The protocol every LLM backend implements, and the values it passes."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from typing import Callable, Iterator, Protocol, Sequence


@dataclass(frozen=True)
class Message:
    role: str  # "system", "user" or "assistant"
    content: str

    def as_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class Usage:
    """What one reply cost, as the backend reports it."""

    prompt_tokens: int = 0
    cached_tokens: int = 0  # prompt tokens reused from the KV cache
    completion_tokens: int = 0
    first_token_s: float = 0.0  # from the request to the first text
    total_s: float = 0.0
    stopped: str = ""  # "stop", "length" or "cancelled"


@dataclass(frozen=True)
class GenerationOptions:
    max_tokens: int = 120  # about 60 spoken words, with room to finish the sentence
    temperature: float = 0.7
    top_p: float = 0.9
    repeat_penalty: float = 1.1
    json_schema: dict | None = None  # constrain the answer to JSON of this schema (llama.cpp grammar, Ollama format)
    grammar: str | None = None  # GBNF the answer must match, while it is written (llama.cpp only; Ollama has none)
    seed: int | None = None  # fix the sampling (an evaluation that compares changes, not luck); None: random
    # Tokens the model may never write, as text ("I", " my"): llama.cpp drops each from sampling
    # (a logit bias); Ollama has no such option, so what they guard is checked afterwards too.
    avoid: tuple[str, ...] = ()


class ReplyStream:
    """Text deltas of one reply; iterate once. Cancel from any thread.

    Backends build one from a generator of deltas and a function that
    returns the final :class:`Usage`.
    """

    def __init__(self, deltas: Iterator[str], finish: Callable[[bool, float, float], Usage]):
        self._deltas = deltas
        self._finish = finish
        self._cancel = threading.Event()
        self.usage: Usage | None = None

    @property
    def cancelled(self) -> threading.Event:
        return self._cancel

    def cancel(self) -> None:
        self._cancel.set()

    def __iter__(self) -> Iterator[str]:
        t0 = time.perf_counter()
        first = 0.0
        try:
            for delta in self._deltas:
                if self._cancel.is_set():
                    break
                if delta:
                    if not first:
                        first = time.perf_counter() - t0
                    yield delta
        finally:
            close = getattr(self._deltas, "close", None)
            if close:
                close()  # ends the HTTP stream or the generation thread
            self.usage = self._finish(self._cancel.is_set(), first, time.perf_counter() - t0)

    def text(self) -> str:
        return "".join(self)


class LLM(Protocol):
    """A chat model that streams its reply."""

    backend: str  # "ollama" or "embedded"
    model: str  # the model's name as the backend knows it
    # Whether GenerationOptions.grammar holds while it writes (llama.cpp: True). A backend
    # without the attribute is taken to have none (Ollama).
    grammars: bool

    def stream(self, messages: Sequence[Message], options: GenerationOptions = ...) -> ReplyStream: ...

    def warm(self, messages: Sequence[Message]) -> None:
        """Evaluate a prompt prefix ahead of time so the first reply is quicker."""
        ...

    def close(self) -> None: ...
