"""The companion's memory: what the person said in other sessions that relates to what they say now."""

from __future__ import annotations

import logging
from typing import Callable

from ..companion import itself
from ..companion.conversation import Conversation, Recalled
from ..config import Settings
from ..errors import VoiceJournalError
from ..store import search
from ..store.archive import Archive, interrupted
from ..store.embedding import Embedder

log = logging.getLogger(__name__)

MEMORY_MIN_SCORE = 0.5  # a hybrid score (cosine plus keyword bonus) below which a past turn rarely relates
MEMORY_TURNS = 2


def recaller(archive: Archive, embedder: Embedder | None,
             current: Callable[[], int | None]) -> Callable[[str], list[Recalled]] | None:
    """The companion's memory: the person's past turns most related to what they just said.

    Found with the journal's own search (so what memory sees is what
    ``voice-journal search`` finds), from other sessions than ``current()``.
    """
    if embedder is None:
        return None

    def recall(text: str) -> list[Recalled]:
        if len(text.split()) < 4:  # "yes", "thank you": nothing to relate
            return []
        try:
            hits = search.search(archive, text[:1000], embedder=embedder, limit=MEMORY_TURNS + 6,
                                 filters=search.Filters(role="user"))
        except VoiceJournalError as e:  # memory is a courtesy: never let it stop a reply
            log.warning("memory not searched: %s", e)
            return []
        except Exception as e:
            if interrupted(e):  # Ctrl-C while DuckDB searched: the session's own handling keeps the turn
                raise KeyboardInterrupt from None
            raise
        now = current()
        return [Recalled(h.session_id, h.idx, h.at, h.text, h.score) for h in hits
                if h.session_id != now and h.score >= MEMORY_MIN_SCORE][:MEMORY_TURNS]

    return recall


def conversation(mode: str, settings: Settings, archive: Archive, engines, current: Callable[[], int | None], *,
                 remember_last: bool = False) -> Conversation:
    """The conversation a session holds: its mode, locale, mood question, crisis net and memory.

    ``current()`` is the session being held (memory recalls from the
    others); ``remember_last``: the same words recalled twice in a row get
    the same answer without a second search (a live session recalls in the
    pause that ends a turn, then again for the turn itself).
    """
    recall = recaller(archive, engines.embedder, current) if settings.memory else None
    if recall is not None and remember_last:
        recall = _LastAnswer(recall)
    return Conversation(mode, locale=settings.locale, ask_mood=settings.mood_check, recall=recall,
                        net=engines.safety_net(), answers=_answers(settings, engines))


def _answers(settings: Settings, engines) -> itself.Answers | None:
    """The true answers to questions about the companion, as this journal is set up (None without embeddings)."""
    if engines.embedder is None or engines.llm is None:
        return None
    try:
        detector = itself.Detector.load(engines.embedder.embed)
    except (VoiceJournalError, OSError) as e:  # a broken install: the model answers such questions, as before
        log.warning("questions about the companion will not be recognised: %s", e)
        return None
    return itself.Answers(detector, itself.facts(
        backend=engines.llm.backend, ollama_host=settings.ollama_host, ollama_proxy=settings.ollama_proxy,
        stt=settings.stt, tts=settings.tts, memory=settings.memory))


class _LastAnswer:
    """A function that remembers its last call: the same argument gets the same answer, at once."""

    def __init__(self, fn: Callable):
        self._fn = fn
        self._last: tuple | None = None

    def __call__(self, arg):
        if self._last is None or self._last[0] != arg:
            self._last = (arg, self._fn(arg))
        return self._last[1]
