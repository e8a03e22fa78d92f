"""Replies, the crisis message and the voice follow the language the person speaks."""

from __future__ import annotations

import logging

from ..companion.conversation import Conversation
from ..errors import VoiceJournalError
from ..speech.stt import Transcript

log = logging.getLogger(__name__)


def follow_language(conv: Conversation, voice, t: Transcript) -> None:
    """Before a turn is answered: once Whisper is sure of another language, answer (and speak) in it.

    ``voice`` may be None (no audio out) or a plain voice of one language;
    only a :class:`~voice_journal.speech.voices.LanguageVoices` changes voice.
    """
    if conv.heard_in(t.language, t.language_probability, t.text) and hasattr(voice, "use_language"):
        voice.use_language(conv.language.code, conv.language.name)


def in_english(transcriber, clip, t: Transcript) -> str | None:
    """The turn in English for the crisis net, when Whisper heard another language (None for English).

    Any turn Whisper places outside English is translated, however unsure it
    is: the net reads English, and a missed crisis costs more than a second
    pass over the audio.
    """
    if t.language in ("", "en") or not t.text or not hasattr(transcriber, "translate"):
        return None
    try:
        return transcriber.translate(clip, t.language) or None
    except VoiceJournalError as e:
        log.warning("could not translate the turn for the crisis check: %s", e)
        return None
