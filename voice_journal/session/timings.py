"""How long each part of a turn took: typed values, stored with the turn as plain JSON.

All times are seconds. A reply's times run from the end of the person's
turn (when the session judged it over), so ``end_to_first_audio_s`` is the
wait the person heard. ``voice-journal show --json`` prints the stored
form (:meth:`HeardTimings.as_dict`, :meth:`ReplyTimings.as_dict`): the
fields that were measured, by these names.
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace


def _stored(value) -> dict[str, float]:
    out = {}
    for f in fields(value):
        v = getattr(value, f.name)
        if v is None or v is False:
            continue  # not measured (or did not happen): absent, not zero
        out[f.name] = float(v)
    return out


@dataclass(frozen=True)
class HeardTimings:
    """How the person's turn was heard."""

    stt_s: float | None = None  # Whisper's own time on the turn (all its pieces)
    vad_s: float | None = None  # file sessions: the segmenter's time on the turn
    stt_wait_s: float | None = None  # live: waited for Whisper after the turn was over
    stt_pieces: int | None = None  # live: pieces transcribed in the person's pauses
    early_stt: bool | None = None  # live: every word was transcribed in a pause, none after the turn ended

    def as_dict(self) -> dict[str, float]:
        return _stored(self)


@dataclass(frozen=True)
class ReplyTimings:
    """How the companion's reply was written and spoken."""

    llm_first_token_s: float | None = None  # from the request to the model's first token
    llm_total_s: float | None = None  # the model's whole generation
    before_llm_s: float | None = None  # from the end of the turn to the request (or its take-over)
    early_words: int | None = None  # words written in the pause, before the turn was over
    fallback: bool = False  # the model gave nothing speakable: the fallback words were spoken
    asked_again: bool = False  # its first words named nothing the person said: it was asked again, led in
    prompt_tokens: int | None = None  # what the model read for this reply...
    cached_tokens: int | None = None  # ...of which it had in its cache already
    completion_tokens: int | None = None  # what it wrote
    llm_first_sentence_s: float | None = None  # end of turn to the first sentence the gate let through
    tts_first_s: float | None = None  # Piper's time on that sentence
    tts_total_s: float | None = None
    end_to_first_audio_s: float | None = None  # end of turn to the first reply audio: the wait they heard
    user_stt_s: float | None = None  # file sessions: the turn's Whisper time, inside the wait above
    heard_s: float | None = None  # cut short: how much of it was played
    barge_in_stop_s: float | None = None  # barge-in: from their speech onset to silence

    def as_dict(self) -> dict[str, float]:
        return _stored(self)

    def but(self, **changes) -> "ReplyTimings":
        """The same timings with some fields set (``heard_s`` once a reply is cut)."""
        return replace(self, **changes)


NONE = ReplyTimings()  # fixed words: nothing was generated, nothing measured
