"""The engines a session runs on: speech to text, the companion's model, the voice, memory's embedder, the crisis net."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Callable

from .. import heap, models
from ..companion import safety
from ..config import Settings
from ..llm.base import LLM
from ..speech.fallback import FallbackTranscriber, FallbackVoice
from ..speech.stt import SttConfig, Transcriber
from ..speech.tts import Voice
from ..speech.voices import LanguageVoices
from ..store.embedding import Embedder

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Engines:
    """The loaded models a session needs."""

    transcriber: Transcriber | FallbackTranscriber | None  # None only for work without audio (summaries)
    voice: Voice | LanguageVoices | None
    llm: LLM | None
    embedder: Embedder | None = None  # for search; a turn is archived without a vector if None
    safety: safety.SafetyNet | None = None  # the crisis net; built from the embedder if None

    def names(self) -> dict[str, str]:
        out = {"stt": self.transcriber.name} if self.transcriber is not None else {}
        if self.llm is not None:
            out["llm"] = f"{self.llm.backend}:{self.llm.model}"
        if self.voice is not None:
            out["tts"] = self.voice.name
        return out

    def close(self) -> None:
        """Stop any generation still running and free the models, now.

        Left to the interpreter's exit, a model could be torn down while a
        native thread still uses it (a crash at exit, after Ctrl-C).
        """
        if self.safety is not None:
            self.safety.close()
        if self.llm is not None:
            self.llm.close()

    def safety_net(self) -> safety.SafetyNet:
        """The crisis net every turn goes through: this one's, or one on the search embeddings."""
        if self.safety is not None:
            return self.safety
        return safety.SafetyNet.load((self.embedder or Embedder.load()).embed)


def load_safety_net(settings: Settings, embedder: Embedder, llm: LLM | None) -> safety.SafetyNet:
    """The crisis net as the settings have it: rules, embeddings, and the model as judge if asked."""
    judge = safety.Judge(llm, settings.safety_judge_timeout_s) if settings.safety_judge and llm is not None else None
    return safety.SafetyNet.load(embedder.embed, judge=judge)


def load_transcriber(settings: Settings) -> Transcriber | FallbackTranscriber:
    """Speech to text as the settings have it: a Wyoming service with the local Whisper behind it, or Whisper."""
    def whisper() -> Transcriber:
        return Transcriber(models.resolve(settings.stt_model, kind="stt"),
                           SttConfig(language=settings.language or None, threads=settings.threads or 2))

    if settings.stt:
        return FallbackTranscriber(settings.stt, whisper, language=settings.language or None,
                                   timeout=settings.speech_timeout_s)
    return whisper()


def load_voice(settings: Settings) -> LanguageVoices:
    """The voice as the settings have it (a Wyoming service with the local Piper voice behind it, or
    Piper), and the registry's installed voices for the other languages a person may speak."""
    def piper(name: str = settings.tts_voice) -> Voice:
        return Voice(models.resolve(name, kind="tts"), threads=settings.threads or None)

    def for_language(language: str) -> Voice | None:
        installed = models.voices_for(language)
        return piper(installed[0]) if installed else None

    base = FallbackVoice(settings.tts, piper, timeout=settings.speech_timeout_s) if settings.tts else piper()
    return LanguageVoices(base, for_language)


def load_engines(settings: Settings, *, voice: bool = True, llm: bool = True, stt: bool = True, crisis_net: bool = True,
                 on_status: Callable[[str], None] = lambda s: None) -> Engines:
    """Load (and on first use assemble and verify) the configured models."""
    heap.keep_large_blocks_out_of_arenas()  # a session's turn buffers, freed, must not stay resident
    threads = settings.threads or None
    transcriber = None
    if stt:
        on_status(f"loading speech recognition ({settings.stt or settings.stt_model})")
        transcriber = load_transcriber(settings)
    the_llm = None
    if llm:
        from ..llm.select import open_llm

        on_status(f"loading the companion's model ({settings.backend})")
        the_llm = open_llm(
            settings.backend, ollama_model=settings.ollama_model, ollama_host=settings.ollama_host,
            ollama_proxy=settings.ollama_proxy,
            embedded_model=settings.llm_model, threads=threads,
        )
    the_voice = None
    if voice:
        on_status(f"loading the voice ({settings.tts or settings.tts_voice})")
        the_voice = load_voice(settings)
    on_status("loading the search embeddings (minilm-l6)")
    embedder = Embedder.load()
    net = load_safety_net(settings, embedder, the_llm) if crisis_net else None  # summaries need none
    return Engines(transcriber, the_voice, the_llm, embedder, net)
