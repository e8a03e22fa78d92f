"""The companion's model served by Ollama, through the official client.

The host comes from the settings, which default to ``OLLAMA_HOST`` (as the
ollama CLI does) and then ``http://127.0.0.1:11434``. Failures reach the
caller as the package's own errors:

* nothing listening -> :class:`LLMUnavailable` (the client raises the builtin
  ``ConnectionError`` on plain calls, but a raw ``httpx.ConnectError`` at the
  first chunk of a streaming call: both are caught);
* the model is missing -> :class:`LLMModelNotFound` naming ``ollama pull``;
* any other ``ResponseError``, including an ``{"error"}`` line mid-stream ->
  :class:`LLMError`;
* a redirect (3xx) -> :class:`LLMError` naming the host and where it pointed:
  redirects are never followed, so the words go to the host named and nowhere else.

Journal text goes only where the person said: the client ignores the proxy
variables of the environment (``HTTP_PROXY``, ``HTTPS_PROXY``, ``ALL_PROXY``,
``NO_PROXY``, upper or lower case) and ``~/.netrc``; a proxy is used only when the
``ollama_proxy`` setting names one. :func:`remote_host_note` says, in one line,
when the host is not this machine.
"""

from __future__ import annotations

import ipaddress
import logging
import os
from typing import Iterator, Sequence
from urllib.parse import urlsplit

import httpx
import ollama
from ollama._client import _parse_host  # how the client itself reads a host (pinned: ollama==0.6.3)

from ..errors import LLMError, LLMModelNotFound, LLMUnavailable
from ..hosts import is_this_machine
from .base import GenerationOptions, Message, ReplyStream, Usage

log = logging.getLogger(__name__)

DEFAULT_HOST = "http://127.0.0.1:11434"
_NETWORK_ERRORS = (ConnectionError, httpx.TransportError)


class OllamaLLM:
    """A model on an Ollama server."""

    backend = "ollama"
    grammars = False  # Ollama has no GBNF: the gate alone holds a reply to its rules

    def __init__(self, model: str, host: str = DEFAULT_HOST, *, timeout: float = 120.0, check: bool = True,
                 proxy: str = ""):
        self.model = model
        self.host = host
        self.proxy = proxy
        self._client = _client(host, timeout, proxy)
        if check:
            self.check()

    @property
    def _via(self) -> str:
        return f" through the proxy {_shown(self.proxy)}" if self.proxy else ""

    def check(self) -> None:
        """Fail now, clearly, if the server is down or lacks the model."""
        try:
            self._client.show(self.model)
        except ollama.ResponseError as e:
            raise self._response_error(e, "") from None
        except _NETWORK_ERRORS as e:
            raise LLMUnavailable(f"cannot reach Ollama at {self.host}{self._via} ({_reason(e)}): "
                                 "is `ollama serve` running?") from None

    def _response_error(self, e: ollama.ResponseError, doing: str) -> LLMError:
        if 300 <= e.status_code < 400:  # the hook refuses redirects first; this is the fallback
            return LLMError(f"Ollama at {self.host} answered with a redirect (HTTP {e.status_code}); "
                            "voice-journal does not follow redirects")
        if e.status_code == 404:
            return LLMModelNotFound(f"Ollama at {self.host} has no model {self.model!r}: run `ollama pull {self.model}`")
        return LLMError(f"Ollama at {self.host}{doing}: {e.error}")

    def models(self) -> list[str]:
        """Names of the models the server has."""
        try:
            return [m.model for m in self._client.list().models if m.model]
        except _NETWORK_ERRORS as e:
            raise LLMUnavailable(f"cannot reach Ollama at {self.host}{self._via} ({_reason(e)})") from None
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
                        **({"seed": options.seed} if options.seed is not None else {}),
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
                raise LLMUnavailable(f"lost Ollama at {self.host}{self._via} ({_reason(e)})") from None

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
        except (ollama.ResponseError, LLMError, *_NETWORK_ERRORS) as e:
            log.warning("could not warm %s on Ollama: %s", self.model, _reason(e))

    def close(self) -> None:
        self._client._client.close()


def _client(host: str, timeout: float, proxy: str) -> ollama.Client:
    """The official client, talking to ``host`` only: no proxy from the environment, no redirects."""

    def refuse_redirects(response: httpx.Response) -> None:
        # Called before the client looks at the status: the 3xx response is closed unread,
        # and its target is never asked (follow_redirects=False would only hand it back).
        if response.is_redirect:
            to = response.headers.get("location", "")
            raise LLMError(f"Ollama at {host} answered with a redirect to {to or 'nowhere'}; "
                           "voice-journal does not follow redirects")

    options: dict = {"follow_redirects": False, "trust_env": False, "event_hooks": {"response": [refuse_redirects]}}
    if os.environ.get("SSL_CERT_FILE") or os.environ.get("SSL_CERT_DIR"):
        # trust_env=False would also drop these, which only choose whom to trust: keep them.
        options["verify"] = httpx.create_ssl_context(trust_env=True)
    if proxy:
        options["proxy"] = proxy if "://" in proxy else f"http://{proxy}"  # host:port, as curl takes it
    try:
        return ollama.Client(host=host, timeout=timeout, **options)
    except (ValueError, ImportError) as e:  # an unknown scheme; socks:// without socksio
        if proxy:
            raise LLMError(f"ollama_proxy {_shown(proxy)} is not a proxy voice-journal can use "
                           f"({_reason(e)}): give http://HOST:PORT, or leave it empty") from None
        raise LLMError(f"Ollama host {host!r} is not an address voice-journal can use ({_reason(e)})") from None


def _shown(proxy: str) -> str:
    """A proxy URL without the password it may hold."""
    try:
        url = httpx.URL(proxy)
    except (ValueError, TypeError):
        return "(the ollama_proxy setting)"
    return str(url.copy_with(username=None, password=None)) if url.userinfo else proxy


def remote_host_note(host: str | None, *, proxy: str = "") -> str | None:
    """One line that says where the words go when that is not this machine; None when it is.

    ``host`` is read the way the ollama client reads it (``1.2.3.4``, ``:11434``,
    ``example.com:8080``, ``http://[::1]:11434``, empty for the default). This
    machine is the loopback range (127.0.0.0/8, ``::1``, also as ``::ffff:127.x``),
    ``localhost`` and names under ``.localhost``, and the unspecified address
    ``0.0.0.0`` / ``::`` (an Ollama *listening* address often copied into
    ``OLLAMA_HOST``; connecting to it reaches this machine). Any other name counts
    as another machine: no name is looked up, so a name for this machine is named too.
    A proxy that is not on this machine is named as well, since the words pass through it.
    """
    try:
        where = _parse_host(host or None)
    except ValueError:  # "::1" unbracketed, a bad port: the client cannot use it either; never raise for a note
        where = f"[{host}]" if _is_ip(host) and ":" in host else host
    parts = []
    if not is_this_machine(where):
        parts.append(_host_port(where))
    if proxy and not is_this_machine(proxy):
        parts.append(f"the proxy {_host_port(proxy)}")
    if not parts:
        return None
    return f"your words go to {' through '.join(parts)} (not this machine)"


def _host_port(url: str) -> str:
    try:
        split = urlsplit(url if "://" in url else f"http://{url}")
        name = split.hostname or url
        name = f"[{name}]" if ":" in name else name
        return f"{name}:{split.port}" if split.port else name
    except ValueError:
        return url


def _is_ip(text: str | None) -> bool:
    try:
        ipaddress.ip_address(text or "")
        return True
    except ValueError:
        return False


def _reason(e: BaseException) -> str:
    text = str(e).strip() or type(e).__name__
    return text.splitlines()[0]
