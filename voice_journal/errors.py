"""The one exception hierarchy of voice-journal.

Library code raises these; the CLI turns each into a one-line message and
an exit code, so that a person never sees a traceback for bad input.
"""

from __future__ import annotations


class VoiceJournalError(Exception):
    """Base of every error voice-journal raises on purpose."""

    exit_code = 1


class InputError(VoiceJournalError):
    """The person gave us something we cannot use (a path, an option, a query)."""

    exit_code = 2


class NotFound(InputError):
    """Something asked for by name is not in the journal: a session, a turn, a turn's audio."""


class AudioError(InputError):
    """An audio file is missing, empty, truncated, or not audio at all."""


class NoSpeechError(VoiceJournalError):
    """The audio holds no speech; nothing is transcribed or stored."""

    exit_code = 3


class ModelError(VoiceJournalError):
    """A model is unknown, not installed, or fails its checksum."""

    exit_code = 4


class LLMError(VoiceJournalError):
    """The language model could not answer."""

    exit_code = 5


class LLMUnavailable(LLMError):
    """The LLM backend cannot be reached (Ollama down, wrong host)."""


class LLMModelNotFound(LLMError, ModelError):
    """The backend answers but does not have the requested model."""

    exit_code = 4


class StoreError(VoiceJournalError):
    """The journal database cannot be opened, read or written."""

    exit_code = 6


class DeviceError(VoiceJournalError):
    """An audio device (microphone, speaker) is missing or failed."""

    exit_code = 7


class SpeechServiceError(VoiceJournalError):
    """A speech service on another machine (Wyoming) is down, too slow, or not what its address says.

    A session does not end on it: the local model takes over (see
    :mod:`voice_journal.speech.fallback`).
    """

    exit_code = 8


class Cancelled(VoiceJournalError):
    """Work was cancelled on purpose (barge-in, Ctrl-C)."""

    exit_code = 130


class HungUp(VoiceJournalError):
    """The far end of a live session went away mid-session (a browser tab closed).

    A session treats it as it treats Ctrl-C, without the spoken goodbye:
    whatever was in progress is archived (as partial), nothing else is lost.
    """

    exit_code = 130
