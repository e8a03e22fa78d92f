"""Replies in the speaker's language: when the companion changes language, its crisis message, its voice."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import SAMPLES, RecordingLLM
from voice_journal.companion.conversation import Conversation
from voice_journal.companion.language import LanguageChoice, prompt_note
from voice_journal.companion.safety import crisis_message
from voice_journal.speech.tts import SpokenSentence
from voice_journal.speech.voices import LanguageVoices


def test_only_a_sure_turn_of_some_length_changes_the_language():
    choice = LanguageChoice()
    assert not choice.heard("de", 0.95, "ja genau")  # two words: could be anything
    assert not choice.heard("de", 0.6, "ich weiß nicht so recht was ich sagen soll")  # Whisper unsure
    assert choice.code == "en"
    assert choice.heard("de", 0.93, "ich weiß nicht so recht was ich sagen soll")
    assert choice.code == "de" and choice.name == "German"
    assert not choice.heard("en", 0.7, "okay okay sure thing then")  # a stray unsure English turn
    assert choice.heard("en", 0.97, "sorry let me say that in english instead")
    assert choice.code == "en"


def test_the_model_is_told_the_language_and_the_mode_keeps_it():
    conv = Conversation("free")
    english = conv.dialog.system
    assert conv.heard_in("es", 0.96, "hoy fue un día muy largo en el trabajo")
    assert conv.dialog.system.startswith(english) and "Always reply in Spanish" in conv.dialog.system
    plan = conv.turn("hoy fue un día muy largo en el trabajo")
    assert plan.messages[0].content == conv.dialog.system
    assert conv.turn("let's do gratitude").switched  # a mode switch rebuilds the prompt: the language stays in it
    assert "Always reply in Spanish" in conv.dialog.system and conv.dialog.system != english
    assert prompt_note("en") == ""


def test_a_crisis_message_in_the_person_s_language():
    conv = Conversation("free", locale="de_DE.UTF-8")
    conv.heard_in("de", 0.97, "ich kann einfach nicht mehr weiter so")
    plan = conv.turn("i want to kill myself tonight")  # the net's words are English; the message follows the person
    assert plan.crisis and "TelefonSeelsorge" in plan.fixed and "0800 111 0 111" in plan.fixed and "112" in plan.fixed
    assert plan.fixed.startswith("Ich bin wirklich froh")


@pytest.mark.parametrize("locale, language, has, lacks", [
    ("de_DE.UTF-8", "de", ["0800 111 0 111", "KI"], ["988"]),
    ("de_AT", "de", ["142"], ["0800"]),
    ("de-CH", "de", ["143"], []),
    ("en_US.UTF-8", "de", ["findahelpline.com", "Notrufnummer"], ["988"]),  # no German words for the US line
    ("es_ES", "es", ["024", "112"], []),
    ("es_MX", "es", ["800 911 2000"], []),
    ("en_US", "es", ["988", "en español"], []),
    ("fr_FR", "fr", ["findahelpline.com", "I'm an AI"], []),  # no French words: English and the directory
    ("es_US", "en", ["988", "911"], []),  # English speaker, US locale written in Spanish
    (None, "en", ["findahelpline.com"], []),
])
def test_crisis_messages_by_locale_and_language(locale, language, has, lacks):
    message = crisis_message(locale, language)
    assert all(h in message for h in has), message
    assert not any(x in message for x in lacks), message


class _Voice:
    def __init__(self, name, rate, language="en"):
        self.name, self.rate, self.language, self.said = name, rate, language, []

    def sentence(self, text):
        self.said.append(text)
        return SpokenSentence(text, np.ones(self.rate // 10, np.int16), self.rate, 0.0)


def test_a_language_without_a_voice_is_shown_not_spoken_and_said_once():
    told, english = [], _Voice("en_US-joe-medium", 22050)
    voices = LanguageVoices(english, lambda language: None, on_mute=told.append)
    assert not voices.use_language("de", "German")
    assert voices.sentence("Das klingt schwer.").samples.size == 0 and english.said == []
    assert not voices.use_language("de", "German")
    assert len(told) == 1 and "German" in told[0] and "\n" not in told[0]
    assert voices.use_language("en") and voices.sentence("That sounds hard.").samples.size == 2205


def test_another_language_s_voice_is_loaded_once_and_heard_at_the_session_s_rate():
    loaded = []

    def load(language):
        loaded.append(language)
        return _Voice("de_DE-thorsten-low", 16000, "de")

    voices = LanguageVoices(_Voice("en_US-joe-medium", 22050), load)
    assert voices.use_language("de") and voices.name == "de_DE-thorsten-low"
    s = voices.sentence("Das klingt schwer.")
    assert s.rate == 22050 and abs(len(s.samples) - 2205) <= 2  # 0.1 s at 16 kHz, resampled
    voices.use_language("en")
    voices.use_language("de")
    assert loaded == ["de"]


def test_a_turn_in_another_language_is_also_read_in_english():
    conv = Conversation("free")
    said = "ich habe tabletten gesammelt und heute nacht bringe ich mich um"
    assert not conv.guard.net.assess(said).crisis  # the net reads English: German alone gets past it
    plan = conv.turn(said, english="I have collected pills and tonight I will kill myself")
    assert plan.crisis and "read in English" in plan.check.reasons
    calm = conv.turn("heute war ein guter tag mit meiner schwester", english="Today was a good day with my sister")
    assert not calm.crisis and "read in English" not in calm.check.reasons


SPANISH = SAMPLES / "spanish" / "persuasion.opus"  # a real reader, Multilingual LibriSpeech (see samples/README.md)


def test_a_session_in_spanish_is_answered_in_spanish_and_shown_where_no_voice_speaks_it(base_stt, small_llm, voice,
                                                                                       embedder, tmp_path):
    from voice_journal import config
    from voice_journal.session import Engines, FileSession
    from voice_journal.store.archive import Archive

    told = []
    voices = LanguageVoices(voice, lambda language: None, on_mute=told.append)  # no Spanish voice installed
    llm = RecordingLLM(small_llm)
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=24, memory=False)
    with Archive.open(s.db) as a:
        sid = FileSession(Engines(base_stt, voices, llm, embedder), a, s).run(SPANISH).session_id
        turns = a.turns(sid, with_audio=True)
    user, reply = turns[0], turns[-1]
    assert user.language == "es" and "sorpresa" in user.text.lower()
    assert "Always reply in Spanish" in llm.shown[0][0].content
    assert reply.role == "assistant" and reply.text and reply.audio_flac is None and reply.voice is None
    assert len(told) == 1 and "Spanish" in told[0]


def test_the_crisis_net_gets_whisper_s_english_for_a_turn_in_spanish(base_stt):
    from voice_journal.audio import pcm
    from voice_journal.session.language import in_english

    clip = pcm.load(SPANISH)
    heard = base_stt.transcribe(clip)
    english = in_english(base_stt, clip, heard)
    assert heard.language == "es" and english and "surprise" in english.lower(), english
    assert in_english(base_stt, clip, dataclasses.replace(heard, language="en")) is None  # English needs none
