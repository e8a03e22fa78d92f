"""Replies, the crisis message and the voice follow the language the person speaks."""

from __future__ import annotations

from ..companion.conversation import Conversation
from ..speech.stt import Transcript


def follow_language(conv: Conversation, voice, t: Transcript) -> None:
    """Before a turn is answered: once Whisper is sure of another language, answer (and speak) in it.

    ``voice`` may be None (no audio out) or a plain voice of one language;
    only a :class:`~voice_journal.speech.voices.LanguageVoices` changes voice.
    """
    if conv.heard_in(t.language, t.language_probability, t.text) and hasattr(voice, "use_language"):
        voice.use_language(conv.language.code, conv.language.name)
