"""The companion's model in-process: llama.cpp through xllamacpp.

llama.cpp's own server runs inside this process (no HTTP); a chat request
with ``"stream": True`` calls back once per chunk from a worker thread, and
the callback returning True stops the generation, which is how
:meth:`ReplyStream.cancel` reaches it. The server keeps the KV cache of its
one slot between requests, so a conversation whose message list only grows
is evaluated only for its new turn.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from pathlib import Path
from typing import Sequence

from ..errors import LLMError, ModelError
from .base import GenerationOptions, Message, ReplyStream, Usage

log = logging.getLogger(__name__)

_DONE = object()


RAM_PROMPT_CACHE_MIB = 0  # llama-server's host-memory prompt cache: off (see EmbeddedLLM)


class EmbeddedLLM:
    """A GGUF chat model loaded with llama.cpp."""

    backend = "embedded"
    grammars = True  # GenerationOptions.grammar holds while it writes

    def __init__(self, model_path: str | Path, *, n_ctx: int = 4096, threads: int | None = None):
        import xllamacpp as xlc

        path = Path(model_path)
        if not path.is_file():
            raise ModelError(f"no GGUF model at {path}")
        params = xlc.CommonParams()
        params.model.path = str(path)
        params.n_ctx = n_ctx
        params.n_parallel = 1  # one conversation: one slot whose cache we keep
        # When a long session drops its oldest turns, the prompt changes right after the
        # system prompt; without this, every later token was evaluated again (36 s at 2,800
        # tokens on 2 cores). With it, llama.cpp finds the kept turns in the cache and shifts
        # them into place (llama-server's --cache-reuse, llama.cpp PR #9866; the kept turns'
        # cache still carries what the dropped ones said, as after its own context shift).
        params.n_cache_reuse = 256  # the shortest run of tokens worth shifting (llama.vim's setting)
        # llama-server also keeps copies of a slot's cache in RAM for prompts it may see again
        # (--cache-ram, 8 GiB by default). One conversation in one slot never goes back to an
        # old prompt, so once the dialogue began dropping its oldest turns those copies grew the
        # process by some 30 MB a turn even with SmolLM (benchmarks/llm_memory.py); off, it stays
        # flat. The cost: with the crisis judge on, a verdict evicts the conversation's cache.
        params.cache_ram_mib = RAM_PROMPT_CACHE_MIB
        params.cpuparams.n_threads = threads or min(4, os.cpu_count() or 2)
        params.cpuparams_batch.n_threads = params.cpuparams.n_threads
        params.verbosity = -1  # llama.cpp logs to stderr otherwise
        params.warmup = False
        t = time.perf_counter()
        try:
            self._server = xlc.Server(params)
        except Exception as e:
            raise ModelError(f"cannot load {path.name} with llama.cpp: {e}") from None
        self.model = path.stem
        if (dropped := _drop_copied_pages(path)) is not None:
            log.debug("let go of %d MB of the model file's pages (llama.cpp holds its own copy)", dropped >> 20)
        self._lock = threading.Lock()  # one request at a time keeps the slot's cache ours
        self._closing = threading.Event()
        log.info("loaded %s in-process in %.1f s", path.name, time.perf_counter() - t)

    def stream(self, messages: Sequence[Message], options: GenerationOptions = GenerationOptions()) -> ReplyStream:
        q: queue.Queue = queue.Queue()
        final: dict = {}
        reply = None

        request = _request(messages, options)

        def on_chunk(chunk: dict) -> bool:
            if "error" in chunk:
                q.put(LLMError(f"llama.cpp: {chunk['error'].get('message', chunk['error'])}"))
                return True
            for choice in chunk.get("choices", ()):
                content = (choice.get("delta") or {}).get("content")
                if content:
                    q.put(content)
                if choice.get("finish_reason"):
                    final["stopped"] = choice["finish_reason"]
            if "timings" in chunk:
                final["timings"] = chunk["timings"]
            return self._closing.is_set() or (reply is not None and reply.cancelled.is_set())

        def run() -> None:
            with self._lock:
                if self._server is None:
                    q.put(LLMError("the model was closed"))
                    q.put(_DONE)
                    return
                try:
                    result = self._server.handle_chat_completions(request, on_chunk)
                    if isinstance(result, dict) and "error" in result:
                        q.put(LLMError(f"llama.cpp: {result['error']}"))
                except Exception as e:  # surface it in the consumer's thread
                    q.put(LLMError(f"llama.cpp failed: {e}"))
                finally:
                    q.put(_DONE)

        worker = threading.Thread(target=run, name="llm-embedded", daemon=True)

        def deltas():
            worker.start()
            while True:
                item = q.get()
                if item is _DONE:
                    return
                if isinstance(item, Exception):
                    raise item
                yield item

        def finish(cancelled: bool, first: float, total: float) -> Usage:
            if worker.is_alive():
                worker.join()  # cancellation takes effect at the next token
            return _usage(final, cancelled, first, total)

        reply = ReplyStream(deltas(), finish)
        return reply

    def warm(self, messages: Sequence[Message]) -> None:
        """Fill the KV cache with ``messages`` (one token of output, thrown away)."""
        with self._lock:
            if self._server is None:
                return
            self._server.handle_chat_completions(
                {"messages": [m.as_dict() for m in messages], "max_tokens": 1, "cache_prompt": True}
            )

    def close(self, timeout: float = 10.0) -> None:
        """Stop a generation in progress, wait for it, and free the model."""
        self._closing.set()  # a streaming generation stops at its next token
        got = self._lock.acquire(timeout=timeout)
        try:
            self._server = None
        finally:
            if got:
                self._lock.release()


def _drop_copied_pages(path: Path) -> int | None:
    """Give back this process's pages of the model file's mapping; the bytes advised, None where it cannot.

    On x86 and ARM llama.cpp copies most weights out of the mapped file at
    load, into a layout its matrix kernels read faster (about 600 MB for
    Qwen2.5-1.5B), yet the pages it read them from stay in the process:
    the session counted the same weights twice (1.88 GB resident with the
    model alone). The mapping is shared and read-only, so the kernel drops
    the pages at no risk, and the few weights still read from the file
    (the embedding table, the output layer) come back on their own the
    first time they are used, from the page cache.
    """
    import ctypes
    import mmap

    advice = getattr(mmap, "MADV_DONTNEED", None)
    if advice is None or not os.path.exists("/proc/self/maps"):
        return None  # not Linux: the mapping stays as it is
    real = os.path.realpath(path)
    try:
        madvise = ctypes.CDLL(None, use_errno=True).madvise
        madvise.argtypes = (ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int)
        done = 0
        with open("/proc/self/maps") as f:
            for line in f:
                fields = line.split(maxsplit=5)
                if len(fields) < 6 or fields[5].strip() != real or "w" in fields[1]:
                    continue  # only the model's own read-only mapping: nothing in it was written
                start, end = (int(x, 16) for x in fields[0].split("-"))
                if madvise(start, end - start, advice) == 0:
                    done += end - start
        return done
    except (OSError, AttributeError, ValueError) as e:
        log.debug("kept the model file's pages: %s", e)
        return None


def _request(messages: Sequence[Message], options: GenerationOptions) -> dict:
    """llama.cpp's OpenAI-style chat request, streamed, with the prompt cache on and the answer's shape held."""
    request = {
        "messages": [m.as_dict() for m in messages],
        "stream": True,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "repeat_penalty": options.repeat_penalty,
        "cache_prompt": True,
    }
    if options.json_schema is not None:
        request["response_format"] = {"type": "json_schema", "json_schema": {"schema": options.json_schema}}
    elif options.grammar is not None:
        request["grammar"] = options.grammar
    if options.seed is not None:
        request["seed"] = options.seed
    if options.avoid:
        request["logit_bias"] = [[text, False] for text in options.avoid]  # False: never sampled
    return request


def _usage(final: dict, cancelled: bool, first: float, total: float) -> Usage:
    """What a generation cost, from llama.cpp's last chunk (its timings and why it stopped)."""
    t = final.get("timings", {})
    return Usage(
        prompt_tokens=int(t.get("prompt_n", 0)) + int(t.get("cache_n", 0)),
        cached_tokens=int(t.get("cache_n", 0)),
        completion_tokens=int(t.get("predicted_n", 0)),
        first_token_s=first,
        total_s=total,
        stopped="cancelled" if cancelled else final.get("stopped", ""),
    )
