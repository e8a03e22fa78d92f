"""Choose the LLM backend: Ollama when it answers with the model, else in-process."""

from __future__ import annotations

import logging

from .. import models
from ..errors import LLMError, VoiceJournalError
from .base import LLM

log = logging.getLogger(__name__)

BACKENDS = ("auto", "ollama", "embedded")


def open_llm(backend: str, *, ollama_model: str, ollama_host: str, embedded_model: str, threads: int | None = None,
             ollama_proxy: str = "") -> LLM:
    """Open the configured backend.

    ``auto`` asks Ollama first (2 s connect budget) and falls back to the
    embedded model if Ollama is down or lacks ``ollama_model``; it logs
    which one it chose, once.
    """
    if backend not in BACKENDS:
        raise LLMError(f"unknown LLM backend {backend!r}; choose one of {', '.join(BACKENDS)}")
    if backend in ("auto", "ollama"):
        from .ollama import OllamaLLM

        try:
            llm = OllamaLLM(ollama_model, ollama_host, timeout=120.0 if backend == "ollama" else 5.0,
                            proxy=ollama_proxy)
            if backend == "auto":
                llm = OllamaLLM(ollama_model, ollama_host, check=False, proxy=ollama_proxy)
            log.info("using Ollama at %s with %s", ollama_host, ollama_model)
            return llm
        except VoiceJournalError as e:
            if backend == "ollama":
                raise
            log.info("%s; using the embedded model %s instead", e, embedded_model)
    from .embedded import EmbeddedLLM

    llm = EmbeddedLLM(models.resolve(embedded_model, kind="llm"), threads=threads)
    log.info("using the embedded model %s (llama.cpp in-process)", embedded_model)
    return llm
