"""The language the companion answers in: the one the person speaks, once Whisper is sure of it.

Whisper names a language for every clip it hears (and how sure it is).
One short or unclear turn is not enough to change language: a turn of at
least :data:`MIN_WORDS` words that Whisper gives at least :data:`SURE`
probability moves the conversation to that language, and it stays there
until an equally sure turn in another one (English included) moves it
back. The model is then told, in the system prompt, to answer in that
language; the crisis message has that language's words where the project
has them (:mod:`.safety.messages`).

>>> choice = LanguageChoice()
>>> choice.heard("de", 0.97, "ich hatte heute einen langen tag bei der arbeit")
True
>>> choice.code, choice.name
('de', 'German')
>>> choice.heard("en", 0.55, "okay")         # too short and unsure: no change
False
"""

from __future__ import annotations

SURE = 0.8  # Whisper's language probability a turn needs to change the reply language
MIN_WORDS = 3

# Whisper's codes for the languages people most often journal in, with their English names
# (the prompt is written in English; a small model follows "Reply in German" better than "Deutsch").
NAMES: dict[str, str] = {
    "en": "English", "de": "German", "es": "Spanish", "fr": "French", "it": "Italian", "pt": "Portuguese",
    "nl": "Dutch", "sv": "Swedish", "da": "Danish", "no": "Norwegian", "fi": "Finnish", "pl": "Polish",
    "cs": "Czech", "ru": "Russian", "uk": "Ukrainian", "tr": "Turkish", "el": "Greek", "ro": "Romanian",
    "hu": "Hungarian", "ca": "Catalan", "ar": "Arabic", "he": "Hebrew", "hi": "Hindi", "ja": "Japanese",
    "ko": "Korean", "zh": "Chinese", "vi": "Vietnamese", "id": "Indonesian",
}


def name(code: str) -> str:
    """A language's English name (the code itself for one not listed)."""
    return NAMES.get(code, code)


def prompt_note(code: str) -> str:
    """What the system prompt adds for a language other than English ("" for English)."""
    if code in ("", "en"):
        return ""
    lang = name(code)
    return (f"The person is speaking {lang}. Always reply in {lang}, in the same plain, warm, spoken style, "
            f"whatever language these instructions are in.")


class LanguageChoice:
    """The reply language of one session, moved only by turns Whisper is sure of."""

    def __init__(self, code: str = "en"):
        self.code = code or "en"

    @property
    def name(self) -> str:
        return name(self.code)

    def heard(self, code: str, probability: float, text: str) -> bool:
        """A turn in ``code`` (Whisper's guess, ``probability`` sure); True if the reply language changed."""
        if not code or code == self.code or probability < SURE or len(text.split()) < MIN_WORDS:
            return False
        self.code = code
        return True
