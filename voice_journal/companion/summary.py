"""What a session was about: a short summary, one to five themes, and an estimated mood.

Written after a session by the companion's own model, from the person's
words only (the companion's replies would colour it). A small model's JSON
is not to be trusted as it comes: :func:`parse` takes the first JSON object
in its answer, keeps only what makes sense (a summary of a few sentences,
short lower-case themes, a mood from 1 to 10) and says what was wrong
otherwise, so that :func:`summarise` can ask once more.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass

from ..errors import LLMError
from ..llm.base import LLM, GenerationOptions, Message

log = logging.getLogger(__name__)

PROMPT = """You help someone keep a private journal. Below is what they said aloud in one journaling session.

Answer with one JSON object and nothing else, with these keys:
"summary": two or three plain sentences, in the second person ("You talked about..."), saying what they talked about and how they seemed; no advice and no diagnosis;
"themes": one to five short themes of this session, each one to three lower-case words, using their own words where you can;
"mood": your estimate of their mood in this session from 1 (very low) to 10 (very good), as a number, or null if it is unclear.

What they said:
{said}"""

# The answer's shape, enforced while it is written (a grammar in llama.cpp, ``format`` in Ollama):
# even a 135M model then writes parseable JSON, and parse() still checks the content.
SCHEMA = {
    "type": "object",
    "properties": {
        "summary": {"type": "string", "maxLength": 600},
        "themes": {"type": "array", "items": {"type": "string", "maxLength": 40}, "minItems": 1, "maxItems": 5},
        "mood": {"anyOf": [{"type": "integer", "minimum": 1, "maximum": 10}, {"type": "null"}]},
    },
    "required": ["summary", "themes", "mood"],
}

MAX_CHARS = 6000  # of the person's words; the start and end of a long session matter most


@dataclass(frozen=True)
class SessionSummary:
    summary: str
    themes: tuple[str, ...]
    mood: float | None


def parse(answer: str, said: str | None = None) -> SessionSummary:
    """The summary in a model's answer; ValueError says what is missing or wrong.

    With ``said`` (the person's words), a theme none of whose words appear
    there, even as a stem, is dropped: small models copy themes from their
    prompt or invent a person ("sister" for a session about a brother).
    """
    m = re.search(r"\{.*\}", answer, re.DOTALL)
    if not m:
        raise ValueError("no JSON object")
    try:
        data = json.loads(m.group(0))
    except json.JSONDecodeError as e:
        raise ValueError(f"bad JSON: {e.msg}") from None
    if not isinstance(data, dict):
        raise ValueError("not an object")
    summary = data.get("summary")
    if not isinstance(summary, str) or len(summary.split()) < 4:
        raise ValueError("no summary")
    themes = data.get("themes")
    if isinstance(themes, str):
        themes = re.split(r"[,;]", themes)
    if not isinstance(themes, list):
        raise ValueError("no themes")
    clean: list[str] = []
    for t in themes:
        if not isinstance(t, str):
            continue
        words = re.sub(r"[^\w\s'-]", "", t).lower().split()
        while words and words[0] in _LEADING:
            words = words[1:]
        # A theme is a short phrase; four words or a dangling "with" is a clipped sentence.
        if not words or len(words) > 3 or words[-1] in _FUNCTION:
            continue
        t = " ".join(words)
        if t not in clean and (said is None or _grounded(t, said)):
            clean.append(t)
    if not clean:
        raise ValueError("no themes")
    mood = data.get("mood")
    if isinstance(mood, str):
        mood = re.search(r"\d+(?:\.\d+)?", mood)
        mood = float(mood.group(0)) if mood else None
    if isinstance(mood, bool) or not isinstance(mood, (int, float)) or not 1 <= mood <= 10:
        mood = None
    return SessionSummary(" ".join(summary.split()), tuple(clean[:5]), None if mood is None else round(float(mood), 1))


_LEADING = {"the", "a", "an", "my", "your", "their", "his", "her", "theme"}
_FUNCTION = {"with", "of", "and", "the", "a", "an", "to", "that", "about", "in", "on", "for", "is", "was", "i",
             "makes", "me", "it"}


def _grounded(theme: str, said: str) -> bool:
    text = said.lower()
    return any(w[:4] in text for w in theme.split() if len(w) >= 4 and w not in _FUNCTION)


def summarise(llm: LLM, said: list[str], *, tries: int = 2) -> SessionSummary:
    """Summarise the person's turns of one session with ``llm``.

    Raises ValueError when the model gave no usable answer in ``tries``.
    """
    text = "\n".join(f"- {s.strip()}" for s in said if s.strip())
    if len(text) > MAX_CHARS:
        half = MAX_CHARS // 2
        text = text[:half] + "\n[...]\n" + text[-half:]
    messages = [Message("user", PROMPT.format(said=text))]
    options = GenerationOptions(max_tokens=220, temperature=0.2, json_schema=SCHEMA)
    problem = "no answer"
    for attempt in range(tries):
        stream = llm.stream(messages, options)
        try:
            answer = "".join(stream)
        except LLMError:
            raise
        try:
            return parse(answer, text)
        except ValueError as e:
            problem = str(e)
            log.info("summary attempt %d unusable (%s): %r", attempt + 1, problem, answer[:200])
            options = GenerationOptions(max_tokens=220, temperature=0.5, json_schema=SCHEMA)
    raise ValueError(f"the model gave no usable summary ({problem})")


def summarise_entries(llm: LLM, entries: list[str]) -> list[SessionSummary]:
    """Short entries of one day, read together: each keeps its own words as its summary.

    A line or two needs no model to say it shorter; what the model adds is
    the themes and mood, and those it finds better in the whole day than in
    one line. Each entry keeps only the themes grounded in its own words.
    Raises ValueError when the model gave no usable answer.
    """
    day = summarise(llm, entries)
    out = []
    for text in entries:
        words = " ".join(text.split())
        themes = tuple(t for t in day.themes if _grounded(t, words.lower()))
        out.append(SessionSummary(words[:600], themes, day.mood))
    return out


def too_short(said: list[str]) -> SessionSummary | None:
    """A summary for words too few to summarise (a word or three): themselves, with no model."""
    words = " ".join(" ".join(said).split())
    if len(words.split()) >= 4:
        return None
    return SessionSummary(words, (), None)
