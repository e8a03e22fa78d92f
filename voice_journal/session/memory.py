"""The companion's memory: what the person said in other sessions that relates to what they say now."""

from __future__ import annotations

import logging
from typing import Callable

from ..companion.conversation import Recalled
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
