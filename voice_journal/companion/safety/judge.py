"""Layer (c) of the crisis net: the local model, asked only about the turns the other layers are unsure of.

The judge answers one JSON object held to :data:`SCHEMA` while it is
written (a llama.cpp grammar, Ollama's ``format``): a level, a C-SSRS
category and a short reason, nothing else. It is slow (about a second on
two cores) and a small model misses many crises when asked cold, so the
net asks it only in the uncertain band, and never lets it clear a turn
outright: "not a crisis" from the judge still leaves a gentle check-in,
and no answer in time is treated as a crisis (see :mod:`.net`).
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass

from ...errors import VoiceJournalError
from ...llm.base import LLM, GenerationOptions, Message

log = logging.getLogger(__name__)

CRISIS_CATEGORIES = ["wish_dead", "ideation", "method", "intent", "plan", "preparatory", "self_harm", "goodbye",
                     "means", "attempt"]

SCHEMA = {
    "type": "object",
    # The reason comes first: written before the level, it is the model's one step of thought.
    "properties": {
        "reason": {"type": "string", "maxLength": 90},
        "category": {"enum": [*CRISIS_CATEGORIES, "distress", "past", "other_person", "figure_of_speech",
                              "everyday"]},
        "level": {"enum": ["crisis", "concern", "none"]},
    },
    "required": ["reason", "category", "level"],
}

PROMPT = """You screen one turn of a private spoken journal for suicide and self-harm risk. The speaker is the journal's owner.

Answer "crisis" if the speaker, now or recently, wishes to be dead or not to exist, thinks about killing themselves (also in slang or euphemism), asks about or has a method, means, plan or intent, prepares (saves pills, buys a rope or weapon, writes a note, gives things away, says goodbye), has just tried, or is harming themselves now.
Answer "concern" for distress without that: hopelessness, feeling a burden or worthless, self-harm or suicidal thoughts that are in the past, an urge they resisted.
Answer "none" for figures of speech ("this job is killing me"), someone else's death or risk, the news, films, books or games, medical talk, accidents, and everyday uses of such words.

The turn:
\"\"\"{text}\"\"\""""


@dataclass(frozen=True)
class Verdict:
    level: str
    category: str
    reason: str


class Judge:
    """Ask ``llm`` for a verdict on one turn, within ``timeout_s``; None when it cannot say in time."""

    def __init__(self, llm: LLM, timeout_s: float = 3.0, max_tokens: int = 72):
        self.llm = llm
        self.timeout_s = timeout_s
        self.options = GenerationOptions(max_tokens=max_tokens, temperature=0.0, top_p=1.0, json_schema=SCHEMA)

    def messages(self, text: str) -> list[Message]:
        return [Message("user", PROMPT.format(text=text[:1500]))]

    def verdict(self, text: str, timeout_s: float | None = None) -> Verdict | None:
        """The model's verdict, or None if it failed or did not finish in time (the caller is cautious)."""
        timeout = self.timeout_s if timeout_s is None else timeout_s
        try:
            stream = self.llm.stream(self.messages(text), self.options)
        except VoiceJournalError as e:
            log.warning("the safety judge could not be asked: %s", e)
            return None
        parts: list[str] = []
        failed: list[BaseException] = []

        def read() -> None:
            try:
                parts.extend(stream)
            except Exception as e:  # noqa: BLE001 - reported below as "no verdict"
                failed.append(e)

        reader = threading.Thread(target=read, name="safety-judge", daemon=True)
        reader.start()
        reader.join(timeout)
        if reader.is_alive():
            stream.cancel()
            reader.join(5)
            log.warning("the safety judge gave no verdict within %.1f s", timeout)
            return None
        if failed:
            log.warning("the safety judge failed: %s", failed[0])
            return None
        return parse("".join(parts))


def parse(answer: str) -> Verdict | None:
    try:
        data = json.loads(answer[answer.index("{"): answer.rindex("}") + 1])
    except ValueError:
        return None
    if not isinstance(data, dict) or data.get("level") not in ("crisis", "concern", "none"):
        return None
    return Verdict(data["level"], str(data.get("category") or ""), " ".join(str(data.get("reason") or "").split())[:90])
