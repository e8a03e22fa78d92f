"""Audio relayed from and to another program (a browser tab): cut into blocks, ended, hung up, refused."""

from __future__ import annotations

import threading

import numpy as np
import pytest

from voice_journal.audio.relay import BLOCK, MAX_PUSH_BYTES, RelayedMicrophone, RelayedSpeaker
from voice_journal.errors import HungUp, InputError


def test_pushes_of_any_size_come_out_as_whole_blocks_in_order():
    mic = RelayedMicrophone("tab").start()
    samples = np.arange(BLOCK * 5 + 100, dtype=np.int16)
    for piece in np.array_split(samples, 7):  # 7 uneven pushes, as an AudioWorklet's 128-sample quanta arrive
        mic.push(piece.astype("<i2").tobytes())
    got = [mic.read(timeout=0) for _ in range(5)]
    assert all(len(b.samples) == BLOCK for b in got)
    assert np.array_equal(np.concatenate([b.samples for b in got]), samples[:BLOCK * 5])
    assert all(b.at - a.at == pytest.approx(BLOCK / 16000) for a, b in zip(got, got[1:]))  # a stream's clock
    assert mic.read(timeout=0) is None and not mic.finished  # the last 100 samples wait for more


def test_end_finishes_after_what_was_pushed_is_read():
    mic = RelayedMicrophone()
    mic.push(np.ones(BLOCK * 2, "<i2").tobytes())
    mic.end()
    assert mic.read(timeout=0) is not None and mic.read(timeout=0) is not None
    assert mic.read(timeout=0) is None and mic.finished


def test_a_hang_up_wakes_a_waiting_reader_with_hungup():
    mic = RelayedMicrophone("browser")
    raised: list[BaseException] = []

    def reader():
        try:
            mic.read(timeout=30)
        except HungUp as e:
            raised.append(e)

    t = threading.Thread(target=reader)
    t.start()
    mic.hang_up()
    t.join(timeout=10)
    assert not t.is_alive() and raised and "browser" in str(raised[0])
    with pytest.raises(HungUp):  # and every read after
        mic.read(timeout=0)


@pytest.mark.parametrize("data", [b"", b"\x01\x02\x03", b"\x00" * (MAX_PUSH_BYTES + 2)], ids=["empty", "odd", "huge"])
def test_garbage_is_refused_and_what_came_before_is_kept(data):
    mic = RelayedMicrophone()
    mic.push(np.full(BLOCK, 7, "<i2").tobytes())
    with pytest.raises(InputError, match="16-bit PCM"):
        mic.push(data)
    assert mic.read(timeout=0).samples[0] == 7


def test_a_session_far_behind_drops_the_newest_audio_and_counts_it():
    mic = RelayedMicrophone(queue_seconds=0.3)  # 10 blocks
    for _ in range(12):
        mic.push(np.zeros(BLOCK, "<i2").tobytes())
    assert mic.dropped == 2


def test_the_relayed_speaker_sends_at_once_and_tells_a_stop():
    sent, stops = [], []
    speaker = RelayedSpeaker(lambda samples, rate: sent.append((len(samples), rate)), lambda: stops.append(True))
    speaker.mark()
    speaker.write(np.zeros(22050, np.int16), 22050)
    assert sent == [(22050, 22050)] and speaker.pending_s > 0.5  # sent whole, "playing" for about a second
    speaker.stop()
    assert stops == [True] and speaker.pending_s == 0
    speaker.close()
