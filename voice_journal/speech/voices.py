"""The voice for the language the companion is answering in.

A Piper voice speaks one language: an English voice reading German is
worse than silence. :class:`LanguageVoices` speaks with the configured
voice while replies are in its language, with an installed voice of the
registry for another language (loaded the first time it is needed), and
with none where there is no such voice: the reply is then shown and
archived without audio, and the session says so once, in one line.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator

import numpy as np

from ..errors import ModelError
from .tts import SpokenSentence, speak_sentences

log = logging.getLogger(__name__)


class LanguageVoices:
    """The configured voice, and others for other languages, behind one voice's shape.

    ``load(language)`` gives a voice for a language or None. The rate is
    the configured voice's for the whole session (a sink is opened at it),
    so another voice's audio is resampled to it.
    """

    def __init__(self, base, load: Callable[[str], object | None], *,
                 on_mute: Callable[[str], None] | None = None):
        self.base = base
        self.rate = base.rate
        self.language = getattr(base, "language", "") or "en"
        self._voices: dict[str, object | None] = {self.language: base}
        self._current = base
        self._load = load
        self._on_mute = on_mute or (lambda line: log.warning("%s", line))
        self._told: set[str] = set()
        self._lock = threading.Lock()

    @property
    def name(self) -> str:
        return self._current.name if self._current is not None else f"none for {self.language}"

    @property
    def speaking(self) -> bool:
        """Whether there is a voice for the current language."""
        return self._current is not None

    def use_language(self, language: str, name: str = "") -> bool:
        """Speak ``language`` from now on; False (said once per language) when no voice can."""
        with self._lock:
            if language not in self._voices:
                try:
                    self._voices[language] = self._load(language)
                except ModelError as e:
                    log.warning("could not load a voice for %s: %s", language, e)
                    self._voices[language] = None
            self.language, self._current = language, self._voices[language]
            if self._current is None and language not in self._told:
                self._told.add(language)
                self._on_mute(f"no voice is installed for {name or language}: replies in it are shown and kept "
                              "in the journal, not spoken")
            return self._current is not None

    def sentence(self, text: str) -> SpokenSentence:
        voice = self._current
        if voice is None:
            return SpokenSentence(text, np.zeros(0, np.int16), self.rate, 0.0)
        return voice.sentence(text).at(self.rate)

    def speak(self, text: str, cancel: threading.Event | None = None) -> Iterator[SpokenSentence]:
        return speak_sentences(self.sentence, text, cancel)
