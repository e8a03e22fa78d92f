"""Where a person's turn starts and ends: a webrtcvad state machine.

The segmenter is fed audio as it arrives (a file block, a microphone
callback's worth) and answers with events. It never looks ahead, so the
same code serves a whole file and a live stream::

    seg = Segmenter()
    for block in pcm.stream("talk.wav"):
        for event in seg.feed(block):
            if isinstance(event, Utterance):
                ...
    for event in seg.flush():
        ...

States and the events between them::

    SILENCE --(start window mostly voiced)--> SPEECH      emits SpeechStarted
    SPEECH  --(pause_ms of silence)---------> (pause)     emits PauseStarted once
    (pause) --(two voiced frames in a row)--> SPEECH      emits SpeechResumed
    SPEECH  --(end_silence_ms of silence)---> SILENCE     emits Utterance(reason="silence")
    SPEECH  --(turn reaches max length)-----> SPEECH      emits Utterance(reason="max_length")
    flush() in SPEECH -----------------------> SILENCE    emits Utterance(reason="end_of_stream")

"Silence" tolerates a lone voiced frame (a click, a breath): only two voiced
frames in a row count as speech again. PauseStarted lets a live session start
transcribing early and throw the result away on SpeechResumed (see
DESIGN.md, latency budget).
"""

from __future__ import annotations

import collections
from dataclasses import dataclass

import numpy as np

from .pcm import RATE, Clip

FRAME_MS = 30
FRAME = RATE * FRAME_MS // 1000  # 480 samples


@dataclass(frozen=True)
class SegmenterConfig:
    """Knobs of the segmenter; the defaults suit unhurried journaling speech."""

    aggressiveness: int = 2  # webrtcvad mode 0-3; 2 rejects most room noise
    start_ms: int = 300  # window that must be mostly voiced to start a turn
    start_ratio: float = 0.7
    end_silence_ms: int = 1000  # journaling has thoughtful pauses: don't cut them off
    pause_ms: int = 240  # silence long enough to announce PauseStarted
    pre_roll_ms: int = 300  # audio kept from before the trigger: onsets are quiet
    tail_ms: int = 200  # silence kept after the last voiced frame
    min_speech_ms: int = 250  # a turn with less voice than this was a noise
    max_turn_s: float = 90.0  # in steady noise the end may never come: cap a turn
    ignore_initial_ms: int = 150  # webrtcvad fires on the onset of a stream's noise floor
    floor_dbfs: float = -55.0  # frames quieter than this are silence whatever the VAD says


@dataclass(frozen=True)
class SpeechStarted:
    at: float  # seconds from the start of the stream, pre-roll included


@dataclass(frozen=True)
class PauseStarted:
    at: float


@dataclass(frozen=True)
class SpeechResumed:
    at: float


@dataclass(frozen=True)
class Utterance:
    """One turn of speech, with where it lies in the stream."""

    clip: Clip
    start: float
    end: float
    reason: str  # "silence", "max_length" or "end_of_stream"
    voiced_s: float

    @property
    def duration(self) -> float:
        return self.clip.duration


Event = SpeechStarted | PauseStarted | SpeechResumed | Utterance


class Segmenter:
    """Streaming voice-activity segmenter over 30 ms frames."""

    def __init__(self, config: SegmenterConfig | None = None):
        import webrtcvad  # from webrtcvad-wheels

        self.config = c = config or SegmenterConfig()
        self._vad = webrtcvad.Vad(c.aggressiveness)
        self._start_n = max(1, c.start_ms // FRAME_MS)
        self._end_n = max(1, c.end_silence_ms // FRAME_MS)
        self._pause_n = max(1, min(c.pause_ms, c.end_silence_ms) // FRAME_MS)
        self._pre_n = max(self._start_n, c.pre_roll_ms // FRAME_MS)
        self._tail_n = c.tail_ms // FRAME_MS
        self._max_n = int(c.max_turn_s * 1000 // FRAME_MS)
        self._ignore_n = c.ignore_initial_ms // FRAME_MS
        self._floor = 32768.0 * 10 ** (c.floor_dbfs / 20)
        self._pending = np.zeros(0, np.int16)
        self._frame_index = 0  # frames seen so far
        self._history: collections.deque[tuple[np.ndarray, bool]] = collections.deque(maxlen=self._pre_n)
        self._in_speech = False
        self._turn: list[np.ndarray] = []
        self._turn_start = 0  # frame index of the turn's first frame
        self._voiced_n = 0
        self._silent_run = 0  # frames of silence since the speech stopped
        self._voiced_run = 0
        self._paused = False

    @property
    def in_speech(self) -> bool:
        return self._in_speech

    def turn_so_far(self) -> Clip | None:
        """The audio of the turn in progress (for early transcription, or a partial turn on Ctrl-C)."""
        if not self._in_speech or not self._turn:
            return None
        return Clip(np.concatenate(self._turn))

    @property
    def turn_start(self) -> float:
        return self._t(self._turn_start)

    def is_voiced(self, frame: np.ndarray) -> bool:
        """webrtcvad's verdict on one 30 ms frame, with an energy floor."""
        if self._frame_index < self._ignore_n:
            return False
        if np.sqrt(np.mean(frame.astype(np.float32) ** 2)) < self._floor:
            return False
        return self._vad.is_speech(frame.tobytes(), RATE)

    def feed(self, samples: np.ndarray) -> list[Event]:
        """Take any number of 16 kHz int16 samples; return what they decided."""
        if samples.dtype != np.int16:
            raise TypeError("Segmenter.feed takes int16 samples at 16 kHz")
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        events: list[Event] = []
        n_frames = len(data) // FRAME
        for i in range(n_frames):
            self._step(data[i * FRAME : (i + 1) * FRAME], events)
        self._pending = data[n_frames * FRAME :].copy()
        return events

    def flush(self) -> list[Event]:
        """End of stream: hand over a turn in progress, if it holds enough voice."""
        events: list[Event] = []
        if self._in_speech:
            if len(self._pending):
                self._turn.append(self._pending)
            self._pending = np.zeros(0, np.int16)
            self._emit(events, "end_of_stream", keep_tail=True)
        return events

    def _t(self, frame_index: int) -> float:
        return frame_index * FRAME / RATE

    def _step(self, frame: np.ndarray, events: list[Event]) -> None:
        voiced = self.is_voiced(frame)
        index = self._frame_index
        self._frame_index += 1
        if not self._in_speech:
            self._history.append((frame, voiced))
            window = list(self._history)[-self._start_n :]
            if len(window) == self._start_n and sum(v for _, v in window) >= self.config.start_ratio * self._start_n:
                self._in_speech = True
                self._turn = [f for f, _ in self._history]
                self._turn_start = index + 1 - len(self._history)
                self._voiced_n = sum(v for _, v in self._history)
                self._silent_run = 0
                self._voiced_run = 0
                self._paused = False
                self._history.clear()
                events.append(SpeechStarted(self._t(self._turn_start)))
            return
        self._turn.append(frame)
        if voiced:
            self._voiced_n += 1
            self._voiced_run += 1
            if self._silent_run == 0 or self._voiced_run >= 2:
                if self._paused:
                    self._paused = False
                    events.append(SpeechResumed(self._t(index - 1)))
                self._silent_run = 0
            else:
                self._silent_run += 1  # a lone voiced frame inside a pause: still a pause
        else:
            self._voiced_run = 0
            self._silent_run += 1
        if self._silent_run == self._pause_n and not self._paused:
            self._paused = True
            events.append(PauseStarted(self._t(index + 1 - self._silent_run)))
        if self._silent_run >= self._end_n:
            self._emit(events, "silence", keep_tail=False)
        elif len(self._turn) >= self._max_n:
            self._emit(events, "max_length", keep_tail=True)
            # The speaker is still talking: the next turn starts right here.
            self._in_speech = True
            self._turn = []
            self._turn_start = self._frame_index
            self._voiced_n = 0
            events.append(SpeechStarted(self._t(self._turn_start)))

    def _emit(self, events: list[Event], reason: str, keep_tail: bool) -> None:
        frames = self._turn
        if not keep_tail:
            # Drop the trailing silence but a short tail: Whisper likes a little room.
            drop = max(0, self._silent_run - self._tail_n)
            if drop:
                frames = frames[:-drop]
        voiced_s = self._voiced_n * FRAME_MS / 1000
        self._in_speech = False
        self._paused = False
        self._turn = []
        self._silent_run = 0
        self._voiced_run = 0
        if voiced_s * 1000 < self.config.min_speech_ms or not frames:
            return
        samples = np.concatenate(frames)
        start = self._t(self._turn_start)
        events.append(Utterance(Clip(samples), start, start + len(samples) / RATE, reason, voiced_s))


class BargeInDetector:
    """Says when a person starts talking over the companion, as early as it safely can.

    The turn segmenter waits for 300 ms of mostly voiced audio before it calls
    it speech; stopping the companion's voice should take about 200 ms, so
    this asks for a shorter run of consecutive voiced frames (150 ms by
    default) above a louder floor. Only for use with headphones or echo
    cancellation: without them the companion's own voice would trigger it.
    """

    def __init__(self, *, frames: int = 5, aggressiveness: int = 3, floor_dbfs: float = -45.0):
        import webrtcvad

        self._vad = webrtcvad.Vad(aggressiveness)
        self._need = frames
        self._floor = 32768.0 * 10 ** (floor_dbfs / 20)
        self._run = 0
        self._pending = np.zeros(0, np.int16)

    def reset(self) -> None:
        self._run = 0
        self._pending = np.zeros(0, np.int16)

    def feed(self, samples: np.ndarray) -> bool:
        """True once the run of voiced frames is long enough."""
        data = np.concatenate([self._pending, samples]) if len(self._pending) else samples
        n = len(data) // FRAME
        fired = False
        for i in range(n):
            frame = data[i * FRAME : (i + 1) * FRAME]
            loud = np.sqrt(np.mean(frame.astype(np.float32) ** 2)) >= self._floor
            if loud and self._vad.is_speech(frame.tobytes(), RATE):
                self._run += 1
                fired = fired or self._run >= self._need
            else:
                self._run = 0
        self._pending = data[n * FRAME :].copy()
        return fired


def silero_speech_s(clip: Clip) -> float:
    """Seconds of speech Silero finds in a clip (the VAD bundled with faster-whisper).

    A second opinion on a turn webrtcvad started: a cough, a door or a fan
    can fool webrtcvad but rarely Silero.
    """
    from faster_whisper.vad import VadOptions, get_speech_timestamps

    stamps = get_speech_timestamps(clip.float32(), VadOptions(min_silence_duration_ms=300, speech_pad_ms=0))
    return sum(s["end"] - s["start"] for s in stamps) / RATE


def segment(blocks, config: SegmenterConfig | None = None):
    """Utterances of a whole stream of blocks (a convenience over :class:`Segmenter`)."""
    seg = Segmenter(config)
    for block in blocks:
        for e in seg.feed(block):
            if isinstance(e, Utterance):
                yield e
    for e in seg.flush():
        if isinstance(e, Utterance):
            yield e
