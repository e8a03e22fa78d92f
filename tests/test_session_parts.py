"""The live session's parts on their own, driven by scripted events: no model, no audio device, no clock.

The model's words and Whisper's come from small scripts here, as the
session's threads would see them; what is tested is what the parts do with
them: which reply begun in a pause is kept, which is dropped, and how a
turn's pieces become its words.
"""

from __future__ import annotations

import concurrent.futures
import threading

import numpy as np

from voice_journal.audio import pcm
from voice_journal.audio.vad import Utterance
from voice_journal.companion.checker import ReplyRules
from voice_journal.companion.conversation import Preview
from voice_journal.llm.base import GenerationOptions, Message, ReplyStream, Usage
from voice_journal.session.speculative import SpeculativeReply
from voice_journal.session.turn_words import TurnTranscriber
from voice_journal.speech.stt import Transcript


class ScriptedModel:
    """The model's side: records what it was asked, and writes until cancelled (or ``words`` run out)."""

    backend, model = "scripted", "scripted"

    def __init__(self, words: str = "You carried a lot today."):
        self.words = words.split()
        self.asked: list[list[Message]] = []
        self.warmed: list[list[Message]] = []
        self.streams: list[ReplyStream] = []
        self.release = threading.Event()  # hold the last word until the test lets it go

    def stream(self, messages, options=None) -> ReplyStream:
        self.asked.append(list(messages))
        gate = self.release

        def deltas():
            for i, w in enumerate(self.words):
                if i == len(self.words) - 1:
                    gate.wait(timeout=10)
                yield w + " "

        s = ReplyStream(deltas(), lambda cancelled, first, total: Usage(stopped="cancelled" if cancelled else "stop"))
        self.streams.append(s)
        return s

    def warm(self, messages) -> None:
        self.warmed.append(list(messages))


def _done(text: str) -> concurrent.futures.Future:
    f: concurrent.futures.Future = concurrent.futures.Future()
    f.set_result(Transcript(text, "en", 0.9, (), 1.0, 0.1))
    return f


def _preview(rules=ReplyRules(40, 1)):
    def preview(words: str, memory: bool = False):
        return Preview([Message("system", "be kind"), Message("user", words)], rules)
    return preview


def _options(rules):
    return GenerationOptions(max_tokens=(rules or ReplyRules()).max_words * 2)


def _pause_after(spec: SpeculativeReply, *texts: str, preview=None) -> None:
    """The person paused after saying ``texts`` (pieces, all transcribed): the model is readied."""
    spec.pausing = True
    spec.piece_sent([_done(t) for t in texts], preview or _preview())
    spec.ready()
    spec.idle()


def test_a_reply_begun_in_the_pause_that_ends_the_turn_is_the_one_kept():
    model = ScriptedModel()
    spec = SpeculativeReply(model, _options)
    _pause_after(spec, "my sister called", "and we laughed")
    assert [m.content for m in model.asked[0]] == ["be kind", "my sister called and we laughed"]
    taken = spec.take(_preview()("my sister called and we laughed"), ReplyRules(40, 1))
    assert taken is not None and taken.matches(model.asked[0], _options(ReplyRules(40, 1)))
    model.release.set()
    assert "".join(taken).split() == model.words  # every word, including those written in the pause
    spec.close()


def test_talking_again_drops_the_reply_begun_in_the_pause():
    model = ScriptedModel()
    spec = SpeculativeReply(model, _options)
    _pause_after(spec, "my sister called")
    spec.talking_again()
    assert model.streams[0].cancelled.is_set()
    assert spec.take(_preview()("my sister called"), ReplyRules(40, 1)) is None
    spec.close()


def test_a_turn_that_ends_otherwise_than_guessed_drops_it():
    model = ScriptedModel()
    spec = SpeculativeReply(model, _options)
    _pause_after(spec, "my sister called")
    # The turn ended with other words (or another plan: a crisis, a mood rating): not this reply.
    assert spec.take(_preview()("my sister called and then my brother"), ReplyRules(40, 1)) is None
    assert model.streams[0].cancelled.is_set()
    # Nor when only the rules differ: a reply written under other rules is another reply.
    _pause_after(spec, "my sister called")
    assert spec.take(_preview()("my sister called"), ReplyRules(60, 0)) is None
    spec.close()


def test_a_reply_begun_in_a_pause_asks_for_memory_and_a_warm_up_does_not():
    # Memory searches the journal (tens of ms): worth it for a reply that may be the one spoken,
    # not for warming the model while they still talk.
    model, seen = ScriptedModel(), []

    def preview(words: str, memory: bool = False):
        seen.append(memory)
        recalled = " (earlier: a fight with my brother)" if memory else ""
        return Preview([Message("system", "be kind"), Message("user", words + recalled)], ReplyRules(40, 1))

    spec = SpeculativeReply(model, _options)
    spec.pausing = False
    spec.piece_sent([_done("my brother called")], preview)
    spec.ready()
    spec.idle()
    _pause_after(spec, "my brother called", "again", preview=preview)
    assert seen == [False, True]
    assert model.asked[0][-1].content == "my brother called again (earlier: a fight with my brother)"
    assert spec.take(preview("my brother called again", memory=True), ReplyRules(40, 1)) is not None
    spec.close()


def test_while_they_talk_the_model_is_only_warmed():
    model = ScriptedModel()
    spec = SpeculativeReply(model, _options)
    spec.pausing = False  # a piece closed, and they are talking again already
    spec.piece_sent([_done("my sister called")], _preview())
    spec.ready()
    spec.idle()
    assert model.asked == [] and [m.content for m in model.warmed[0]] == ["be kind", "my sister called"]
    spec.close()


def test_a_piece_not_yet_transcribed_waits_and_an_older_one_is_stale():
    model = ScriptedModel()
    spec = SpeculativeReply(model, _options)
    spec.pausing = True
    pending: concurrent.futures.Future = concurrent.futures.Future()
    spec.piece_sent([_done("my sister called"), pending], _preview())
    spec.ready()  # Whisper is not done: nothing yet
    spec.idle()
    assert model.asked == [] and model.warmed == []
    pending.set_result(Transcript("and we laughed", "en", 0.9, (), 1.0, 0.1))
    spec.ready()
    spec.idle()
    assert [m.content for m in model.asked[0]][-1] == "my sister called and we laughed"
    # A piece whose words are nothing (a noise) readies nothing.
    spec.piece_sent([_done("")], _preview())
    spec.ready()
    spec.idle()
    assert len(model.asked) == 1
    spec.close()
    assert model.streams[0].cancelled.is_set()  # the session ended in the pause: dropped unheard


def test_no_reply_is_begun_where_fixed_words_will_answer():
    model = ScriptedModel()
    spec = SpeculativeReply(model, _options)
    _pause_after(spec, "i want to die", preview=lambda words, memory=False: None)  # a crisis: no model
    assert model.asked == [] and model.warmed == []
    spec.close()


class ScriptedWhisper:
    """Whisper's side: each clip's words by its length in samples, and the prompt it was given."""

    name = "scripted-whisper"

    def __init__(self, words_by_length: dict[int, str]):
        self.words = words_by_length
        self.prompts: list[str | None] = []

    def transcribe(self, clip, language=None, prompt=None):
        self.prompts.append(prompt)
        return Transcript(self.words[len(clip.samples)], "en", 0.9, (), clip.duration, 0.1)


def _speech(seconds: float) -> np.ndarray:
    t = np.arange(int(seconds * pcm.RATE)) / pcm.RATE
    return (np.sin(2 * np.pi * 220 * t) * 8000 * (1 + np.sin(2 * np.pi * 3 * t))).astype(np.int16)


def test_a_turn_is_transcribed_in_pieces_and_only_the_rest_after_it_ends(monkeypatch):
    import voice_journal.session.turn_words as turn_words

    monkeypatch.setattr(turn_words, "silero_speech_s", lambda clip: clip.duration)  # every piece is speech
    audio = _speech(3.0)
    whisper = ScriptedWhisper({16000: "so today", 24000: "was a lot", 8000: "really"})
    words = TurnTranscriber(whisper, None)
    first = words.piece(pcm.Clip(audio[:16000]))
    assert words.piece(pcm.Clip(audio[:16000 + 2000])) is None  # an eighth of a second more: not a piece
    second = words.piece(pcm.Clip(audio[:40000]))
    assert TurnTranscriber.text_of(second) == "so today was a lot" and len(first) == 1
    heard = words.finish(Utterance(pcm.Clip(audio), 0.0, 3.0, "silence", 3.0), confirm_speech_s=0.2)
    assert heard.transcript.text == "so today was a lot really"
    assert heard.pieces == 2 and not heard.all_early  # the last half second was left for after the turn
    # Each piece was prompted with the words before it, so Whisper keeps the thread.
    assert whisper.prompts == [None, "so today", "so today was a lot"]
    words.close()


def test_a_turn_said_in_pauses_has_nothing_left_after_it_ends(monkeypatch):
    import voice_journal.session.turn_words as turn_words

    monkeypatch.setattr(turn_words, "silero_speech_s", lambda clip: clip.duration)
    audio = _speech(2.0)
    words = TurnTranscriber(ScriptedWhisper({32000: "my sister called"}), None)
    words.piece(pcm.Clip(audio))
    heard = words.finish(Utterance(pcm.Clip(audio), 0.0, 2.0, "silence", 2.0), confirm_speech_s=0.2)
    assert heard.transcript.text == "my sister called" and heard.all_early


def test_a_noise_that_started_a_turn_is_no_turn(monkeypatch):
    import voice_journal.session.turn_words as turn_words

    monkeypatch.setattr(turn_words, "silero_speech_s", lambda clip: 0.05)  # Silero hears no speech
    words = TurnTranscriber(ScriptedWhisper({}), None)
    heard = words.finish(Utterance(pcm.Clip(_speech(0.2)), 0.0, 0.2, "silence", 0.2), confirm_speech_s=0.2)
    assert heard.transcript is None and heard.pieces == 0
    words.close()
