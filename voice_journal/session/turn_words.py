"""A turn's words while it is spoken: :class:`TurnTranscriber`.

Whisper's cost is mostly one 30 s encoder window per call, whatever the
length of the clip, plus its tokens. Waiting for the end of a turn to
start it left the person waiting for all of it. Instead, each pause closes
a piece of the turn (audio cut in a silence, so no word is split),
transcribed at once on a thread of its own while the person thinks or goes
on; when the turn ends, only what followed the last piece is left to do
(usually nothing: the last pause was the end of the turn). Each piece is
prompted with the pieces before it so that Whisper keeps the thread.

>>> words = TurnTranscriber(transcriber, language=None)        # doctest: +SKIP
>>> so_far = words.piece(segmenter.turn_so_far())               # in a pause  # doctest: +SKIP
>>> words.text_of(so_far)                                       # once done   # doctest: +SKIP
'so today was a lot'
>>> heard = words.finish(utterance)                             # the turn is over  # doctest: +SKIP
>>> heard.transcript.text, heard.pieces, heard.all_early        # doctest: +SKIP
('so today was a lot and then my sister called', 2, True)
"""

from __future__ import annotations

import concurrent.futures
from dataclasses import dataclass

from ..audio import pcm
from ..audio.vad import Utterance, silero_speech_s
from ..speech.stt import LanguagePin, Transcriber, Transcript

PROMPT_CHARS = 200  # of the turn so far, given to Whisper with each new piece
MIN_PIECE = pcm.RATE // 4  # shorter than this is not worth a Whisper window

Pieces = list[concurrent.futures.Future]  # a turn's pieces so far, in order, each a Transcript to be


@dataclass(frozen=True)
class HeardTurn:
    """A finished turn's words and how they were come by."""

    transcript: Transcript | None  # None: Silero heard no speech (a noise started the turn)
    pieces: int  # transcribed in the person's pauses
    all_early: bool  # every word was transcribed in a pause, none after the turn ended


class TurnTranscriber:
    """The words of the turn in progress, transcribed piece by piece as the person pauses."""

    def __init__(self, transcriber: Transcriber, language: str | None):
        self.transcriber = transcriber
        self.pin = LanguagePin(language)  # the language of the first confident turn, kept from then on
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="stt")
        self._pieces: list[tuple[int, concurrent.futures.Future]] = []  # (end sample in the turn, transcript)

    def new_turn(self) -> None:
        """Forget the pieces: they belonged to a turn that is over, or to audio thrown away."""
        self._pieces = []

    def piece(self, turn_so_far: pcm.Clip | None) -> Pieces | None:
        """Close a piece (the audio since the last one) and send it to Whisper; the turn's pieces so far.

        None when there is too little new audio to be worth a piece.
        """
        if turn_so_far is None:
            return None
        start = self._pieces[-1][0] if self._pieces else 0
        if len(turn_so_far.samples) - start < MIN_PIECE:
            return None
        before = [f for _, f in self._pieces]
        future = self._pool.submit(self._transcribe, pcm.Clip(turn_so_far.samples[start:]), before)
        self._pieces.append((len(turn_so_far.samples), future))
        return [*before, future]

    @staticmethod
    def text_of(pieces: Pieces) -> str:
        """The words of pieces already transcribed (raises what Whisper raised)."""
        return " ".join(t for t in (f.result().text for f in pieces) if t)

    def finish(self, u: Utterance, confirm_speech_s: float) -> HeardTurn:
        """The whole turn's transcript: its pieces and what followed them (waits for Whisper)."""
        pieces, self._pieces = self._pieces, []
        covered = pieces[-1][0] if pieces else 0
        futures = [f for _, f in pieces]
        offsets = [0, *(end for end, _ in pieces[:-1])]
        if len(u.clip.samples) - covered >= MIN_PIECE:  # speech after the last pause (or no pause at all)
            futures.append(self._pool.submit(self._transcribe, pcm.Clip(u.clip.samples[covered:]), list(futures)))
            offsets.append(covered)
        all_early = bool(pieces) and len(u.clip.samples) - covered < MIN_PIECE
        if silero_speech_s(u.clip) < confirm_speech_s:
            return HeardTurn(None, len(pieces), all_early)
        t = Transcript.joined([(o / pcm.RATE, f.result()) for o, f in zip(offsets, futures)])
        self.pin.learn(t)
        return HeardTurn(t, len(pieces), all_early)

    def now(self, clip: pcm.Clip) -> Transcript:
        """Transcribe a clip at once, on the caller's thread (a turn cut short by Ctrl-C)."""
        return self.transcriber.transcribe(clip, self.pin.language)

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _transcribe(self, clip: pcm.Clip, before: Pieces) -> Transcript:
        """One piece, on the stt thread, after the pieces before it (their words are its prompt)."""
        said = self.text_of(before)
        if silero_speech_s(clip) < 0.1:  # webrtcvad heard a noise as speech
            return Transcript("", self.pin.language or "", 0.0, (), clip.duration, 0.0)
        t = self.transcriber.transcribe(clip, self.pin.language, prompt=said[-PROMPT_CHARS:] or None)
        self.pin.learn(t)
        return t
