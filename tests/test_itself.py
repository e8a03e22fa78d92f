"""Questions about the companion itself: recognised by meaning, answered with the truth in fixed words."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from voice_journal.companion import itself
from voice_journal.companion.checker import ReplyRules, names_their_words, words
from voice_journal.companion.conversation import ANSWERED_NOTE, Conversation

FROZEN = Path(__file__).with_name("itself") / "frozen.tsv"


@pytest.fixture(scope="module")
def detector(embedder):
    return itself.Detector.load(embedder.embed)


def test_the_frozen_split_is_apart_from_the_training_data():
    train = {text for _, _, text in itself.read(itself.TRAINING_FILE)}
    frozen = itself.read(FROZEN)
    assert len(frozen) == 90 and not train & {text for _, _, text in frozen}


def test_questions_about_the_companion_are_found_on_phrases_it_never_saw(detector):
    """The frozen split: written before the training data, never tuned on (figures in the README)."""
    rows = itself.read(FROZEN)
    found = [(kind, detector.asks(text)) for _, kind, text in rows]
    asking = [a for kind, a in found if kind != "none"]
    hits = [a for a in asking if a is not None]
    alarms = [a for kind, a in found if kind == "none" and a is not None]
    right = [a.kind == kind for kind, a in found if kind != "none" and a is not None]
    # Measured once, after fitting: found 93 % (42/45), of the right kind 41 of 42, false alarms
    # 1 of 45 ("my therapist is a real person and she actually listens").
    assert len(hits) / len(asking) >= 0.85, len(hits)
    assert sum(right) / len(right) >= 0.9
    assert len(alarms) <= 2, [a.window for a in alarms]


def test_a_long_turn_is_read_for_the_question_at_its_end(detector):
    story = ("so the night shifts have been brutal this month and i barely see my partner we eat dinner at "
             "different times and i come home when she leaves and it has been like that since october "
             "and honestly wait is this even a real person i'm talking to")
    asked = detector.asks(story)
    assert asked is not None and asked.kind == "nature"
    assert detector.asks(story.rsplit(" and honestly", 1)[0]) is None


def test_the_shipped_model_must_match_its_training_data(embedder, tmp_path):
    with np.load(itself.MODEL_FILE) as m:
        stale = {k: m[k] for k in m.files}
    stale["digest"] = np.array("0" * 16)
    np.savez(tmp_path / "stale.npz", **stale)
    from voice_journal.errors import ModelError

    with pytest.raises(ModelError, match="other training data"):
        itself.Detector.load(embedder.embed, tmp_path / "stale.npz")


def test_the_answers_say_where_the_words_go_as_the_journal_is_set_up():
    local = itself.facts(backend="embedded", ollama_host="http://10.0.0.5:11434")  # not used: not named
    assert local.elsewhere == () and "nothing is sent anywhere" in itself.answer("private", local).lower()
    assert itself.facts(backend="ollama", ollama_host="http://0.0.0.0:11434", stt="[::ffff:127.0.0.1]:1").elsewhere == ()
    # A name that only begins like a loopback address is another machine.
    assert itself.facts(backend="ollama", ollama_host="http://127.example.com:11434").elsewhere == ("127.example.com",)
    loopback = itself.facts(backend="ollama", ollama_host="http://127.0.0.1:11434", tts="wyoming://localhost:10200")
    assert loopback.elsewhere == ()
    away = itself.facts(backend="ollama", ollama_host="http://gpu-box.lan:11434", stt="wyoming://10.0.0.9:10300")
    said = itself.answer("private", away)
    assert away.elsewhere == ("10.0.0.9", "gpu-box.lan") and "gpu-box.lan" in said and "10.0.0.9" in said
    assert "Later sessions may bring it back" in itself.answer("remembers", itself.Facts(memory=True))
    assert "bring it back" not in itself.answer("remembers", itself.Facts(memory=False))
    assert "not a person" in itself.answer("nature", local)


def test_the_fixed_answers_keep_the_reply_rules_and_leave_the_model_room_in_every_mode():
    from voice_journal.companion import modes
    from voice_journal.companion.checker import check

    shortest = min(modes.load(m).max_words for m in modes.names())
    for kind in itself.KINDS[1:]:
        for facts in (itself.Facts(), itself.Facts(("gpu-box.lan",), True)):
            said = itself.answer(kind, facts)
            assert check(said, ReplyRules(max_words=60, max_questions=0)) == [], said
            assert words(said) + 8 <= shortest, said


def test_a_question_about_the_companion_is_answered_first_then_the_model_says_back_the_rest(detector):
    truth = itself.answer("nature", itself.Facts())
    conv = Conversation("free", answers=itself.Answers(detector, itself.Facts()))
    conv.replied(conv.opening())
    # A first turn that only asks: the true answer is the whole reply.
    assert conv.turn("wait are you a bot").fixed == truth
    conv.replied(truth)
    plan = conv.turn("the night shifts are wrecking my sleep and i barely see my partner")
    assert plan.lead is None and plan.fixed is None
    conv.replied("Four night shifts, and you barely see your partner.")
    plan = conv.turn("do you even understand this or are you just a program")
    assert plan.lead == truth and plan.fixed is None
    # The model sees neither the question (it would answer it, and not truly) nor the answer
    # (it would say it again): it is asked to say back what they said before.
    told = plan.messages[-1].content
    assert ANSWERED_NOTE in told and "program" not in told and truth not in told
    assert "the night shifts are wrecking my sleep" in told  # their turn before, to say back
    assert names_their_words("The night shifts are wrecking your sleep.", plan.rules.theirs)
    assert plan.messages[-3].content.startswith("the night shifts")  # the dialog keeps what they said
    # A long turn: its story is said back, without the question at its end.
    plan = conv.turn("my partner and i finally had dinner together on sunday and it felt like us again "
                     "we laughed about the dog and made plans for the spring and honestly wait is this even "
                     "a real person i'm talking to")
    told = plan.messages[-1].content
    assert plan.lead == truth and "dinner together on sunday" in told and "real person" not in told
    # The reply begun in a pause is asked for exactly the same: the preview knows the answer too.
    conv.replied("Dinner together on Sunday felt like the two of you again.")
    preview = conv.previewer()("are you a bot")
    plan = conv.turn("are you a bot")
    from voice_journal.companion.checker import reply_grammar

    assert list(preview) == list(plan.messages) and reply_grammar(preview.rules) == reply_grammar(plan.rules)
    assert "dinner together on sunday" in plan.messages[-1].content  # what they last told is said back
    # A goodbye is not answered so, nor a turn in another language.
    assert conv.turn("are you a real person anyway bye", closing=True).lead is None
    conv.language.code = "es"
    assert conv.turn("are you a real person").lead is None


def test_the_answer_is_spoken_first_and_counts_in_the_reply(voice):
    from test_companion import ScriptedWords
    from voice_journal.session import speak_reply

    lead = itself.answer("private", itself.Facts())  # two sentences
    reply = speak_reply(ScriptedWords("You told me about four night shifts in a row."), voice, [], None, 0.0,
                        rules=ReplyRules(max_words=30, max_questions=1), lead=lead)
    assert " ".join(p for p, _ in reply.parts[:2]) == lead  # its sentences one by one, for Piper's sake
    assert reply.text == f"{lead} You told me about four night shifts in a row."
    # The model's words fit in what the answer left of the length.
    long = speak_reply(ScriptedWords("Four night shifts in a row. You barely see your partner at all these days."),
                       voice, [], None, 0.0, rules=ReplyRules(max_words=words(lead) + 8, max_questions=1), lead=lead)
    assert long.text == f"{lead} Four night shifts in a row."
    # Its first sentence is not cut at a comma: the voice has begun, and a clause said early
    # could be left hanging by the length the answer used up.
    whole = speak_reply(ScriptedWords("The dog is sick again, and the vet bill will be huge."), voice, [], None, 0.0,
                        rules=ReplyRules(max_words=words(lead) + 8, max_questions=1), lead=lead)
    assert whole.text == lead
    # A first sentence that does not fit after the answer is left out, as a later one would be.
    over = speak_reply(ScriptedWords("Four night shifts in a row and you barely see your partner at all."),
                       voice, [], None, 0.0, rules=ReplyRules(max_words=words(lead) + 8, max_questions=1), lead=lead)
    assert over.text == lead and not over.timings.fallback and not over.timings.asked_again
    # A model that says nothing the rules let through leaves the answer, not the fallback line.
    quiet = speak_reply(ScriptedWords("…"), voice, [], None, 0.0, rules=ReplyRules(40, 1), lead=lead)
    assert quiet.text == lead and not quiet.timings.fallback


def test_a_session_heard_asking_what_it_is_answers_with_the_truth_first(tiny_stt, small_llm, voice, embedder,
                                                                        tmp_path):
    """Through the real parts: speech, Whisper, the session's own wiring (memory.conversation), the archive."""
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.audio.playback import WavSink
    from voice_journal.session import Engines, FileSession
    from voice_journal.store.archive import Archive

    from conftest import spoken

    rec = tmp_path / "asks.wav"
    # Not "The night shifts are wearing me down.": on an AMD EPYC, tiny.en heard "nightchits", the
    # crisis net read that as a method (0.53), and the question after it as a goodbye in that light.
    pcm.write_wav(rec, spoken(voice, ["Work was long today and I feel tired.", "Will you remember this tomorrow?"]))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=48, memory=True)
    with Archive.open(s.db) as a:
        sid = FileSession(Engines(tiny_stt, voice, small_llm, embedder), a, s,
                          sink=WavSink(tmp_path / "r.wav")).run(rec).session_id
        turns = a.turns(sid)
    heard = [t.text for t in turns if t.role == "user"]
    replies = [t.text for t in turns if t.role == "assistant"]
    truth = itself.answer("remembers", itself.Facts(memory=True))  # as the settings have it
    assert not replies[-2].startswith(truth), heard
    assert replies[-1].startswith(truth), (heard, replies[-1])


def test_a_question_alone_in_a_check_in_answers_no_step(detector):
    from voice_journal.companion import modes

    conv = Conversation("check-in", answers=itself.Answers(detector, itself.Facts()))
    conv.replied(conv.opening())
    first = conv.turn("tired but okay i guess")
    assert first.answers and first.then
    conv.replied("Tired, but okay. " + first.then)
    asked = conv.turn("sorry are you a real person")
    assert asked.lead and not asked.answers and asked.then is None
    conv.replied(asked.lead)
    # The answer to the question the check-in is waiting on still fills its field.
    event = conv.turn("my sister called and we laughed")
    assert event.answers[0][0] == modes.load("check-in").steps[1].field


def test_a_story_with_a_question_at_its_end_is_said_back_without_it(detector):
    conv = Conversation("free", answers=itself.Answers(detector, itself.Facts()))
    conv.replied(conv.opening())
    plan = conv.turn("My mom yelled at me and I cried in the car. Are you even a real person?")
    told = plan.messages[-1].content
    assert plan.lead and "cried in the car" in told and "real person" not in told
