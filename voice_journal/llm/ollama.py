"""The companion's model served by Ollama, through the official client.

The host comes from the settings, which default to ``OLLAMA_HOST`` (as the
ollama CLI does) and then ``http://127.0.0.1:11434``. Failures reach the
caller as the package's own errors:

* nothing listening -> :class:`LLMUnavailable` (the client raises the builtin
  ``ConnectionError`` on plain calls, but a raw ``httpx.ConnectError`` at the
  first chunk of a streaming call: both are caught);
* the model is missing -> :class:`LLMModelNotFound` naming ``ollama pull``;
* any other ``ResponseError``, including an ``{"error"}`` line mid-stream ->
  :class:`LLMError`.
"""

from __future__ import annotations

import logging
from typing import Iterator, Sequence

import httpx
import ollama

from ..errors import LLMError, LLMModelNotFound, LLMUnavailable
from .base import GenerationOptions, Message, ReplyStream, Usage

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
_NETWORK_ERRORS = (ConnectionError, httpx.TransportError)


class OllamaLLM:
    """A model on an Ollama server."""

    backend = "ollama"

    def __init__(self, model: str, host: str = DEFAULT_HOST, *, timeout: float = 120.0, check: bool = True):
        self.model = model
        self.host = host
        self._client = ollama.Client(host=host, timeout=timeout)
        if check:
            self.check()

    def check(self) -> None:
        """Fail now, clearly, if the server is down or lacks the model."""
        try:
            self._client.show(self.model)
        except ollama.ResponseError as e:
            raise self._response_error(e, "") from None
        except _NETWORK_ERRORS as e:
            raise LLMUnavailable(f"cannot reach Ollama at {self.host} ({_reason(e)}): is `ollama serve` running?") from None

    def _response_error(self, e: ollama.ResponseError, doing: str) -> LLMError:
        if e.status_code == 404:
            return LLMModelNotFound(f"Ollama at {self.host} has no model {self.model!r}: run `ollama pull {self.model}`")
        return LLMError(f"Ollama at {self.host}{doing}: {e.error}")

    def models(self) -> list[str]:
        """Names of the models the server has."""
        try:
            return [m.model for m in self._client.list().models if m.model]
        except _NETWORK_ERRORS as e:
            raise LLMUnavailable(f"cannot reach Ollama at {self.host} ({_reason(e)})") from None
        except ollama.ResponseError as e:
            raise self._response_error(e, "") from None

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> ReplyStream:
        final: dict = {}

        def deltas() -> Iterator[str]:
            try:
                chunks = self._client.chat(
                    model=self.model,
                    messages=[m.as_dict() for m in messages],
                    stream=True,
                    format=options.json_schema,
                    options={
                        "num_predict": options.max_tokens,
                        "temperature": options.temperature,
                        "top_p": options.top_p,
                        "repeat_penalty": options.repeat_penalty,
                    },
                )
                try:
                    for chunk in chunks:
                        if chunk.done:
                            final.update(
                                prompt=chunk.prompt_eval_count or 0,
                                completion=chunk.eval_count or 0,
                                stopped=chunk.done_reason or "stop",
                            )
                        yield chunk.message.content or ""
                finally:
                    chunks.close()  # closes the HTTP response: Ollama stops generating
            except ollama.ResponseError as e:
                raise self._response_error(e, " failed mid-reply") from None
            except _NETWORK_ERRORS as e:
                raise LLMUnavailable(f"lost Ollama at {self.host} ({_reason(e)})") from None

        def finish(cancelled: bool, first: float, total: float) -> Usage:
            return Usage(
                prompt_tokens=final.get("prompt", 0),
                completion_tokens=final.get("completion", 0),
                first_token_s=first,
                total_s=total,
                stopped="cancelled" if cancelled else final.get("stopped", ""),
            )

        return ReplyStream(deltas(), finish)

    def warm(self, messages: Sequence[Message]) -> None:
        """Ask Ollama to load the model and evaluate the prefix (Ollama keeps its cache)."""
        try:
            self._client.chat(model=self.model, messages=[m.as_dict() for m in messages], options={"num_predict": 1})
        except (ollama.ResponseError, *_NETWORK_ERRORS) as e:
            log.warning("could not warm %s on Ollama: %s", self.model, _reason(e))

    def close(self) -> None:
        self._client._client.close()


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
