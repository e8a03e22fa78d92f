"""The segmenter's state machine on real speech, noises and odd chunkings."""

import numpy as np
import pytest

from conftest import librivox_clips, speech_with_pauses
from voice_journal.audio import pcm
from voice_journal.audio.vad import (
    FRAME,
    PauseStarted,
    Segmenter,
    SegmenterConfig,
    SpeechResumed,
    SpeechStarted,
    Utterance,
    segment,
)


def _utterances(audio, config=None, chunk=None):
    seg = Segmenter(config)
    events = []
    chunk = chunk or len(audio)
    for i in range(0, len(audio), chunk):
        events += seg.feed(audio[i : i + chunk])
    events += seg.flush()
    return [e for e in events if isinstance(e, Utterance)], events


def test_n_utterances_separated_by_pauses_give_n_turns():
    clips = [p for p, _ in librivox_clips()]
    audio, spans = speech_with_pauses(clips, pause_s=1.5)
    utts, _ = _utterances(audio)
    assert len(utts) == len(clips)
    for u, (start, end) in zip(utts, spans):
        # Each turn covers its clip: pre-roll before, a short tail after.
        assert u.start <= start + 0.25 and u.start >= start - 0.5
        assert u.end >= end - 0.35 and u.end <= end + 0.5
        assert u.reason == "silence"
        assert len(u.clip.samples) == round((u.end - u.start) * pcm.RATE)


def test_pauses_shorter_than_the_end_silence_do_not_cut_a_turn():
    clips = [p for p, _ in librivox_clips()[:3]]
    audio, _ = speech_with_pauses(clips, pause_s=0.3)  # the clips add ~0.45 s of their own quiet
    utts, events = _utterances(audio, SegmenterConfig(end_silence_ms=1000))
    assert len(utts) == 1
    # ...but they are announced, so a live session can start transcribing early.
    assert any(isinstance(e, PauseStarted) for e in events)
    assert any(isinstance(e, SpeechResumed) for e in events)
    # With a shorter end silence the same audio splits at every pause.
    utts, _ = _utterances(audio, SegmenterConfig(end_silence_ms=450))
    assert len(utts) == 3


def test_feeding_in_odd_chunks_gives_the_same_turns():
    audio, _ = speech_with_pauses([p for p, _ in librivox_clips()[:3]])
    whole, _ = _utterances(audio)
    for chunk in (1, 7, 479, 481, 1600, 12345):
        if chunk == 1:
            audio_small = audio[: 3 * pcm.RATE]  # byte by byte is slow: a prefix will do
            a, _ = _utterances(audio_small, chunk=1)
            b, _ = _utterances(audio_small)
            assert [(u.start, u.end) for u in a] == [(u.start, u.end) for u in b]
            continue
        parts, _ = _utterances(audio, chunk=chunk)
        assert [(u.start, u.end, u.clip.samples.tobytes()) for u in parts] == [
            (u.start, u.end, u.clip.samples.tobytes()) for u in whole
        ]


def test_short_noises_do_not_start_a_turn():
    rng = np.random.default_rng(3)
    quiet = lambda s: rng.normal(0, 20, int(s * pcm.RATE)).astype(np.int16)  # noqa: E731
    pieces = [quiet(1.0)]
    for length_ms in (30, 60, 90, 120, 150):
        burst = rng.normal(0, 8000, int(length_ms * pcm.RATE / 1000)).astype(np.int16)  # a knock, a click
        pieces += [burst, quiet(1.0)]
    t = np.arange(int(0.12 * pcm.RATE)) / pcm.RATE
    pieces += [(np.sin(2 * np.pi * 220 * t) * 9000).astype(np.int16), quiet(1.0)]  # a short hum
    utts, events = _utterances(np.concatenate(pieces))
    assert utts == []
    assert not any(isinstance(e, SpeechStarted) for e in events)


def test_pure_silence_and_digital_zero_give_nothing():
    assert list(segment([np.zeros(10 * pcm.RATE, np.int16)])) == []


def test_the_maximum_length_splits_a_long_turn():
    # Five clips back to back with no pause: one long turn of ~24 s.
    audio = np.concatenate([pcm.load(p).samples for p, _ in librivox_clips()])
    utts, _ = _utterances(audio, SegmenterConfig(max_turn_s=8.0))
    assert len(utts) >= 3
    assert all(u.duration <= 8.0 + 1e-6 for u in utts)
    assert [u.reason for u in utts[:-1]] == ["max_length"] * (len(utts) - 1)
    # The pieces are contiguous: nothing the person said falls between them.
    for a, b in zip(utts, utts[1:]):
        assert b.start == pytest.approx(a.end, abs=1e-9)


def test_flush_hands_over_a_turn_in_progress():
    clip = pcm.load(librivox_clips()[0][0]).samples
    seg = Segmenter()
    events = seg.feed(np.concatenate([np.zeros(pcm.RATE // 2, np.int16), clip[: 3 * pcm.RATE]]))
    assert any(isinstance(e, SpeechStarted) for e in events)
    assert seg.in_speech
    utts = [e for e in seg.flush() if isinstance(e, Utterance)]
    assert len(utts) == 1 and utts[0].reason == "end_of_stream"


def test_feed_rejects_float_audio():
    with pytest.raises(TypeError):
        Segmenter().feed(np.zeros(FRAME, np.float32))
