"""The conversation the companion sees: a system prompt and this session's turns.

The message list only ever grows (until it must be trimmed), because the
LLM backends reuse their KV cache for an unchanged prefix: with an
append-only list, each reply evaluates only the newest turn.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..llm.base import Message


@dataclass
class Dialog:
    """The running conversation of one session."""

    system: str
    max_chars: int = 9000  # about 2,500 tokens: leaves room in a 4k context
    turns: list[Message] = field(default_factory=list)

    def messages(self) -> list[Message]:
        return [Message("system", self.system), *self.turns]

    def add_user(self, text: str) -> list[Message]:
        """Record what the person said; return the messages to send."""
        self.turns.append(Message("user", text))
        self._trim()
        return self.messages()

    def add_assistant(self, text: str) -> None:
        """Record what the companion actually said (on barge-in: only the spoken part)."""
        self.turns.append(Message("assistant", text))

    def last_question(self) -> str | None:
        """The question the companion's last reply ended on, if it asked one (not to be asked again)."""
        for m in reversed(self.turns):
            if m.role == "assistant":
                said = m.content.strip()
                if not said.endswith("?"):
                    return None
                start = max(said.rfind(". ", 0, len(said) - 1), said.rfind("! ", 0, len(said) - 1))
                return said[start + 2 if start >= 0 else 0:]
        return None

    def replies(self, last: int = 8) -> tuple[str, ...]:
        """The companion's last replies in this session, oldest first (not to be said again)."""
        return tuple(m.content for m in self.turns if m.role == "assistant")[-last:]

    def _trim(self) -> None:
        # Dropping old turns changes the prefix and costs one full prompt
        # evaluation, so drop a third at once rather than one turn per reply.
        while sum(len(m.content) for m in self.turns) > self.max_chars and len(self.turns) > 2:
            drop = max(2, len(self.turns) // 3)
            drop += drop % 2  # keep user/assistant pairs together
            self.turns = self.turns[drop:]
