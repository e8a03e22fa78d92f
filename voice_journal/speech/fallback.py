"""A speech service with the local model behind it: the session never stops for a service that went away.

:class:`FallbackTranscriber` and :class:`FallbackVoice` use a Wyoming
service (:mod:`.wyoming`) while it answers. The first time it does not (down
at the start, gone mid-session, too slow, not a Wyoming service at all, or
an address that is not one), they say so once, in one line, and the local
model takes over for the rest of the session; the request that failed is
done again locally, so no turn is lost. Their ``name`` is the engine in use
now, which is what the journal records for each turn.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Iterator

from ..audio import pcm
from ..errors import InputError, SpeechServiceError
from .stt import SttConfig, Transcriber, Transcript
from .tts import SpokenSentence, Voice, speak_sentences
from .wyoming import RemoteTranscriber, RemoteVoice

log = logging.getLogger(__name__)


class _Fallback:
    """The remote engine until it fails once, then the local one (built on first need) for good."""

    what = "speech"

    def __init__(self, url: str, local: Callable[[], object], connect: Callable[[str], object],
                 on_fallback: Callable[[str], None] | None):
        self.url = url
        self._local_factory = local
        self._local = None
        self._lock = threading.Lock()
        self._on_fallback = on_fallback or (lambda line: log.warning("%s", line))
        self.fell_back: str | None = None  # why, once it has
        self._remote = None
        try:
            self._remote = connect(url)
        except (SpeechServiceError, InputError) as e:
            self._fail(e)

    def _fail(self, e: Exception) -> None:
        self._remote = None
        if self.fell_back is None:
            self.fell_back = str(e)
            self._on_fallback(f"{self.what}: {e}; the local model takes over for the rest of the session")

    def _local_engine(self):
        with self._lock:
            if self._local is None:
                self._local = self._local_factory()
            return self._local

    def _engine(self):
        return self._remote if self._remote is not None else self._local_engine()

    def _call(self, method: str, *args, **kwargs):
        remote = self._remote
        if remote is not None:
            try:
                return getattr(remote, method)(*args, **kwargs)
            except SpeechServiceError as e:
                self._fail(e)
        return getattr(self._local_engine(), method)(*args, **kwargs)

    @property
    def remote(self) -> bool:
        """Whether the service is still the one in use."""
        return self._remote is not None

    @property
    def name(self) -> str:
        return self._engine().name


class FallbackTranscriber(_Fallback):
    """Speech to text by a Wyoming service, with the local Whisper behind it."""

    what = "speech to text"

    def __init__(self, url: str, local: Callable[[], Transcriber], *, language: str | None = None,
                 timeout: float = 10.0, on_fallback: Callable[[str], None] | None = None):
        super().__init__(url, local, lambda u: RemoteTranscriber(u, language=language, timeout=timeout), on_fallback)

    @property
    def config(self) -> SttConfig:
        return self._engine().config

    @property
    def english_only(self) -> bool:
        return self._engine().english_only

    def transcribe(self, clip: pcm.Clip, language: str | None = None, *, prompt: str | None = None) -> Transcript:
        return self._call("transcribe", clip, language, prompt=prompt)

    def translate(self, clip: pcm.Clip, language: str | None = None) -> str:
        """English for the crisis net, by the local Whisper: Wyoming asks a service for one task only."""
        return self._local_engine().translate(clip, language)


class FallbackVoice(_Fallback):
    """Text to speech by a Wyoming service, with the local Piper voice behind it.

    The rate is fixed for the session, at the first engine's: a sink opened
    for the service's audio plays the local voice's too (resampled).
    """

    what = "text to speech"

    def __init__(self, url: str, local: Callable[[], Voice], *, timeout: float = 10.0,
                 on_fallback: Callable[[str], None] | None = None):
        super().__init__(url, local, lambda u: RemoteVoice(u, timeout=timeout), on_fallback)
        self.rate = self._engine().rate

    def sentence(self, text: str) -> SpokenSentence:
        return self._call("sentence", text).at(self.rate)

    def speak(self, text: str, cancel: threading.Event | None = None) -> Iterator[SpokenSentence]:
        return speak_sentences(self.sentence, text, cancel)
