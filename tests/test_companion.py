"""The companion's conversation: modes as state machines, the reply checker, mood, memory, voice requests.

The first half scripts transcripts through :class:`Conversation` (no audio,
no model: the plans are what is checked). The second half holds spoken
sessions with the real models: a check-in from a recording, and a live
session that asks for a mood rating, switches mode by voice, and recalls a
past entry.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest

from conftest import THREADS, RecordingLLM, quick_talk, their_words
from voice_journal.companion import arc, modes, safety
from voice_journal.companion.checker import ReplyGate, ReplyRules, check, speaks_as_them, trim, words
from voice_journal.companion.conversation import (CHECK_IN_CUE, MOOD_AFTER, MOOD_BEFORE, REPLY_CUE, Conversation,
                                                  Recalled)
from voice_journal.errors import InputError


def test_every_mode_file_loads_with_the_shared_rules():
    names = modes.names()
    assert names[0] == "free"
    assert set(names) >= {"free", "check-in", "reframe", "hold-space", "values", "parts", "letter", "gratitude"}
    for name in names:
        m = modes.load(name)
        assert m.title and m.opening and "not a therapist" in m.prompt and "never diagnose" in m.prompt.lower()
        assert "never encourage them to withdraw" in m.prompt
    assert modes.load("hold-space").max_questions == 0


@pytest.mark.parametrize("bad", ["nope", "../free", "", "FREE", "free.md", "_base"])
def test_an_unknown_mode_is_a_clear_input_error(bad):
    with pytest.raises(InputError, match="the modes are: free, "):
        modes.load(bad)


def test_adding_a_mode_is_adding_a_file():
    m = modes.parse("walk", '+++\ntitle = "Walk"\nsummary = "s"\nopening = "Where are you walking?"\n'
                            'voice = ["walk"]\n[[steps]]\nfield = "where"\nguide = "Reflect where."\n+++\nWalk with them.')
    run = modes.ModeRun(m)
    first = run.turn("By the river.")
    assert first.field == "where" and first.guide == "Reflect where." and run.finished
    assert m.prompt.endswith("Walk with them.") and "journaling companion" in m.prompt


# -- the reply checker -----------------------------------------------------------


def test_the_gate_ends_a_reply_on_its_one_question():
    gate = ReplyGate(ReplyRules(max_words=60, max_questions=1))
    said = [s for s in ["That sounds exhausting.", "What made it so hard?", "And how did you sleep?",
                        "You could try a walk."] if gate.admit(s)]
    assert said == ["That sounds exhausting.", "What made it so hard?"] and gate.done and gate.trimmed


def test_the_gate_keeps_statements_but_drops_questions_where_none_are_allowed():
    gate = ReplyGate(ReplyRules(max_words=35, max_questions=0))
    said = [s for s in ["I hear you.", "Why do you think that is?", "That is a lot to carry."] if gate.admit(s)]
    assert said == ["I hear you.", "That is a lot to carry."] and gate.trimmed and not gate.done


def test_the_gate_ends_on_the_last_sentence_that_fits():
    gate = ReplyGate(ReplyRules(max_words=12, max_questions=1))
    said = [s for s in ["You spent the whole day caring for everyone else.", "And there was nothing left for you."]
            if gate.admit(s)]
    assert said == ["You spent the whole day caring for everyone else."] and gate.done


# Their words, as Whisper writes them, and replies a small model gives: whether the reply names
# something the person said. A paraphrase does not count (the cost: a reply asked again).
@pytest.mark.parametrize("turn, reply, names", [
    ("probably bath time with my twins which sounds boring but it's the one time i'm not rushing",
     "Bath time with the twins is when you stop rushing.", True),
    ("probably bath time with my twins which sounds boring", "Thank you for sharing that moment.", False),
    ("um like the part that wants to text him back and the part that knows i shouldn't",
     "Part of you wants to reach him.", True),
    ("um like the part that wants to text him back and the part that knows i shouldn't",
     "They are trying to balance their desire to keep in touch.", False),
    ("i'm actually pretty good today? like light. lighter than i've been in weeks", "Oh!", False),
    ("i'm actually pretty good today? like light. lighter than i've been in weeks",
     "You sound good today, and lighter.", True),
    ("my friends are buying houses and having babies", "Everyone around you has a baby and a house.", True),
    ("we moved to a new city in march", "Moving is a lot.", True),
    ("my dad called me kiddo", "You really think about it, you know?", False),
])
def test_a_reflection_names_something_they_said(turn, reply, names):
    from voice_journal.companion.checker import names_their_words, their_words

    assert names_their_words(reply, their_words(turn)) is names


@pytest.mark.parametrize("turn", ["i dont know", "yeah", "um i guess so", "okay okay", "..."])
def test_a_turn_with_nothing_to_say_back_asks_for_no_reflection(turn):
    from voice_journal.companion.checker import their_words

    assert their_words(turn) == frozenset()


def test_the_gate_leaves_out_openers_that_name_nothing_of_theirs():
    from voice_journal.companion.checker import their_words

    rules = ReplyRules(max_words=60, max_questions=1, theirs=their_words("my sister skipped christmas again"))
    gate = ReplyGate(rules)
    said = [s for s in ["That must be hard.", "Your sister skipped Christmas again.", "That stings."]
            if gate.admit(s)]
    assert said == ["Your sister skipped Christmas again.", "That stings."]  # only openers must name theirs
    assert gate.trimmed and not gate.done and not gate.needs_asking_again
    gate = ReplyGate(rules)
    assert not gate.admit("Thank you for telling me.") and not gate.done
    assert not gate.admit("That sounds really hard.") and gate.done  # two: asked again rather than waited on
    assert gate.needs_asking_again
    off = ReplyGate(ReplyRules(max_words=60, max_questions=1))  # no words of theirs to name: no such rule
    assert off.admit("That sounds really hard.") and not off.needs_asking_again


def test_a_long_sentence_cut_at_a_comma_is_judged_whole():
    from voice_journal.companion.checker import their_words

    # The splitter hands the voice a long first sentence's first clause early; that clause alone
    # may name nothing of theirs while the sentence does.
    gate = ReplyGate(ReplyRules(60, 1, theirs=their_words("my sister skipped christmas again")))
    assert gate.spoken("Thinking about how this whole holiday went for you,") is None and not gate.trimmed
    assert gate.spoken("your sister skipping Christmas again still stings.") == (
        "Thinking about how this whole holiday went for you, your sister skipping Christmas again still stings.")
    gate = ReplyGate(ReplyRules(60, 1, theirs=their_words("my sister skipped christmas again")))
    assert gate.spoken("Thinking about how this whole holiday went for you,") is None
    assert gate.spoken("that must be a lot.") is None and gate.unreflected == 1 and gate.needs_asking_again
    all_advice = ReplyGate(ReplyRules(60, 1, theirs=their_words("my sister skipped christmas again")))
    assert all_advice.spoken("You should call your sister.") is None and all_advice.needs_asking_again


def test_a_first_sentence_cut_before_a_phrase_is_judged_whole_and_a_piece_never_finished_is_left_out():
    from voice_journal.companion.checker import their_words

    # With no comma to cut at, the splitter cuts before a word that begins a phrase; the piece
    # may name nothing of theirs while the sentence does, as a comma's clause may.
    theirs = their_words("my sister skipped christmas again")
    gate = ReplyGate(ReplyRules(60, 1, theirs=theirs))
    assert gate.spoken("It is hard to think about the holidays") is None and not gate.trimmed
    assert gate.spoken("when your sister skipped Christmas again.") == (
        "It is hard to think about the holidays when your sister skipped Christmas again.")
    # The reply ended (the model stopped, or was stopped) with the piece still held: never said.
    gate = ReplyGate(ReplyRules(60, 1, theirs=theirs))
    assert gate.spoken("It is hard to think about the holidays") is None
    gate.finish()
    assert gate.trimmed and gate.unreflected == 1 and gate.needs_asking_again
    # A piece that names them is spoken at once: the point of cutting it early.
    gate = ReplyGate(ReplyRules(60, 1, theirs=theirs))
    assert gate.spoken("Your sister skipped Christmas again") == "Your sister skipped Christmas again"
    assert gate.spoken("after she promised.") == "after she promised."


def test_a_first_clause_held_back_leaves_the_next_piece_cut_early_too(voice):
    from voice_journal import config
    from voice_journal.session import reply_options, speak_reply

    # "Looking back on your Saturday," names nothing of theirs, so the voice has not begun: the
    # rest of the sentence is cut early as well, not waited for to its end.
    reply = speak_reply(AskedTwice(
        "Looking back on your Saturday, where you sorted cans at the food bank with two old guys arguing "
        "about baseball, made you laugh.", ""), voice, [], None, 0.0,
        reply_options(config.load(), _rules_for("i helped at the food bank sorting cans")),
        rules=_rules_for("i helped at the food bank sorting cans"))
    assert [p for p, _ in reply.parts] == [
        "Looking back on your Saturday, where you sorted cans at the food bank",
        "with two old guys arguing about baseball, made you laugh."]
    assert reply.spoken_text == reply.text and not reply.timings.asked_again


def test_a_piece_still_held_when_the_reply_ends_is_not_kept_as_said(voice):
    from voice_journal import config
    from voice_journal.session import reply_options, speak_reply

    # "I'm here" may begin "I'm here for you": held, then the model stopped. It was never heard,
    # so the reply archived is what was spoken.
    rules = _rules_for("my sister skipped christmas again")
    llm = AskedTwice("Your sister skipped Christmas again. I'm here", "")
    reply = speak_reply(llm, voice, [], None, 0.0, reply_options(config.load(), rules), rules=rules)
    assert reply.spoken_text == reply.text == "Your sister skipped Christmas again."
    assert not reply.timings.asked_again


def test_a_held_first_piece_the_reply_never_finished_is_not_kept_as_said():
    from voice_journal import config
    from voice_journal.session import reply_options, speak_reply

    # The model stopped inside its first sentence, which named nothing of theirs: never heard,
    # it is not the reply; it is asked again, as when nothing named them.
    rules = _rules_for("my sister skipped christmas again")
    llm = AskedTwice("It is hard to think about the holidays when", "Your sister skipped Christmas again.")
    reply = speak_reply(llm, None, [], None, 0.0, reply_options(config.load(), rules), rules=rules)
    assert reply.timings.asked_again and reply.text == reply.spoken_text == "Your sister skipped Christmas again."
    assert reply.draft == "It is hard to think about the holidays when"


def test_the_rest_of_a_sentence_begun_aloud_is_judged_with_its_beginning():
    # Heard, the two pieces are one sentence: the rules judge that, not the rest alone.
    gate = ReplyGate(ReplyRules(60, 1, said=("Your week at work sounds so heavy.",)))
    assert gate.spoken("Your week at work") == "Your week at work"
    assert gate.spoken("sounds so heavy.") is None and gate.trimmed  # said before, word for word, whole
    assert gate.spoken("The dinner with your dad still stings.") == "The dinner with your dad still stings."
    # The first sentence always goes, all of it once begun: no fragment for its length.
    gate = ReplyGate(ReplyRules(8, 1))
    assert gate.spoken("Your brother called about your mother's care") is not None
    assert gate.spoken("after a long week of appointments and calls.") is not None and not gate.done
    assert gate.spoken("That is a lot.") is None and gate.done  # a second sentence past the length


def test_a_piece_left_out_takes_the_held_start_of_its_sentence_with_it():
    gate = ReplyGate(ReplyRules(60, 1, theirs=their_words("being kind with my kids")))
    assert gate.spoken("You're welcome, thank you") is None and gate.holding
    assert gate.spoken("for sharing that.") is None and not gate.holding  # a stock phrase, whole
    assert gate.spoken("Your kids still matter to you.") == "Your kids still matter to you."


def test_a_piece_that_ends_on_a_stock_phrase_s_start_waits_for_the_rest():
    # "thank you" names their words here, and would be spoken at once; its rest may make it
    # "thank you for sharing", and a fragment cannot be taken back.
    theirs = their_words("thank you for being kind with my kids")
    gate = ReplyGate(ReplyRules(60, 1, theirs=theirs))
    assert gate.spoken("You're welcome, thank you") is None and gate.holding
    assert gate.spoken("for sharing that.") is None and gate.trimmed
    gate = ReplyGate(ReplyRules(60, 1, theirs=theirs))
    assert gate.spoken("You're welcome, thank you") is None
    assert gate.spoken("for being kind with your kids.") == "You're welcome, thank you for being kind with your kids."
    reflected = ReplyGate(ReplyRules(60, 1))  # no words of theirs to name: held all the same
    assert reflected.spoken("Your week was long and I'm here") is None
    assert reflected.spoken("to listen.") == "Your week was long and I'm here to listen."


def test_no_fragment_of_a_sentence_left_out_is_spoken():
    # A long sentence reaches the gate in pieces; its first piece is unasked advice.
    gate = ReplyGate(ReplyRules(60, 1))
    pieces = ["Can we talk about what you need to do next regarding your recovery from the surgery on your body",
              "honestly.", "The surgery took a lot out of you."]
    assert [gate.spoken(p) for p in pieces] == [None, None, "The surgery took a lot out of you."]


def test_a_turn_that_names_nothing_is_said_back_through_the_turn_before():
    from voice_journal.companion.checker import names_their_words

    conv = Conversation("free")
    conv.turn("nobody at work likes me they all went to lunch without me")
    conv.replied("They went to lunch without you.")
    rules = conv.turn("i don't know").rules
    assert names_their_words("Lunch without you still stings.", rules.theirs)
    assert not names_their_words("That is hard to know.", rules.theirs)


def test_only_english_turns_carry_their_words():
    from voice_journal.companion.checker import names_their_words

    conv = Conversation("free")
    assert names_their_words("Your sister missed Christmas.", conv.turn("my sister skipped christmas again").rules.theirs)
    conv.language.code = "es"
    assert conv.turn("mi hermana no vino en navidad").rules.theirs == frozenset()


# A reply speaks to the person, not of them. ``others``: the third persons their turn spoke of.
@pytest.mark.parametrize("sentence, others, of_them", [
    ("The user is describing a rough week at the warehouse.", None, True),
    ("The person said her brother would stop calling.", frozenset({"he", "she", "they"}), True),
    ("This person clearly misses the old apartment.", frozenset(), True),
    ("She just mentioned the funeral is on Tuesday.", frozenset(), True),
    ("They opened up about the divorce and the kids.", frozenset({"he"}), True),
    ("They wanted the dog home more than anything.", frozenset(), True),
    ("He has been describing the night shift since it started.", frozenset({"she"}), True),
    # someone they spoke of, or said to them as "you": not of them
    ("She told you she was proud of you.", frozenset({"she"}), False),
    ("Your brothers said they'd visit, and they never came.", frozenset(), False),
    ("The person who hurt you never said sorry.", frozenset(), False),
    ("They cancelled the concert after you'd waited months.", frozenset({"they"}), False),
    ("They went ahead without asking anyone.", frozenset({"they"}), False),
    ("You said \"they never listen\" twice.", frozenset(), False),
    ("They kept the shop open late.", None, False),  # whom they spoke of is not known: no guess
    ("Being the person everyone leans on is exhausting.", frozenset(), False),
    ("Your mom was the person in your corner.", frozenset(), False),
    ("Small wins count, even when they feel tiny.", frozenset(), False),
    ("Some days are harder than they look.", frozenset(), False),
    ("She mentioned the funeral is on Tuesday.", frozenset({"he", "she", "they"}), False),  # "my aunt said..."
])
def test_a_reply_that_speaks_of_them_is_told_apart(sentence, others, of_them):
    from voice_journal.companion.checker import speaks_of_them

    assert speaks_of_them(sentence, others) is of_them


def test_the_gate_leaves_out_a_sentence_that_speaks_of_them():
    from voice_journal.companion.checker import third_persons

    assert third_persons("my sister was sure she'd visit but she didn't and they never do") == {"she", "they"}
    assert third_persons("i finally got the promotion") == frozenset()
    assert third_persons("theyre back tomorrow") == {"they"}  # as Whisper may write it
    assert third_persons("my parents are finally coming to visit") == {"they"}  # a group "they" may mean
    assert third_persons("my aunt told me the funeral is tuesday") == {"he", "she", "they"}  # she reported words
    conv = Conversation("gratitude")
    rules = conv.turn("my grandson visited on sunday just to hang out").rules
    assert rules.others == frozenset()
    gate = ReplyGate(rules)
    assert gate.spoken("They just mentioned a call from their grandson.") is None and gate.trimmed
    assert gate.spoken("Your grandson visited on Sunday just to hang out.") == (
        "Your grandson visited on Sunday just to hang out.")
    assert check("They shared how the grandson visited.", rules) == ["speaks of them, not to them"]
    closing = Conversation("free")
    closing.turn("my grandson visited on sunday")
    assert closing.turn("okay goodbye", closing=True).rules.others == frozenset()  # a goodbye is said to them too


def test_check_and_trim_agree():
    rules = ReplyRules(max_words=20, max_questions=1)
    two = "That sounds hard. What happened? And how do you feel now?"
    assert check(two, rules) == ["2 questions (at most 1)"]
    assert trim(two, rules) == "That sounds hard. What happened?" and check(trim(two, rules), rules) == []
    assert "markdown or a list" in check("Here are tips:\n- walk\n- sleep", rules)
    assert check(" ".join(["word"] * 30) + ".", rules) == ["30 words (at most 20)"]


# -- modes, turn by turn ---------------------------------------------------------


def _run(mode: str, lines: list[str], **kw):
    conv = Conversation(mode, locale="en-US", **kw)
    plans = []
    for line in lines:
        plan = conv.turn(line)
        plans.append(plan)
        conv.replied(plan.fixed or "I hear you.")
    return conv, plans


def test_a_check_in_asks_its_three_questions_and_keeps_the_answers():
    conv, plans = _run("check-in", ["Tired but okay.", "My sister called and we laughed a lot.",
                                    "Some quiet time tonight.", "Thanks, that helped."])
    assert conv.opening().endswith("how are you feeling right now?")
    assert [p.answers for p in plans[:3]] == [(("feeling", "Tired but okay.", None),),
                                             (("event", "My sister called and we laughed a lot.", None),),
                                             (("need", "Some quiet time tonight.", None),)]
    assert plans[0].then == "What's one thing that happened today that affected you?"
    assert plans[1].then == "And what do you need in this moment?"
    assert all(p.rules.max_questions == 0 for p in plans[:3])  # the app asks; the model only reflects
    assert plans[3].answers == () and plans[3].then is None and plans[3].rules.max_questions == 1
    assert all(p.mode == "check-in" for p in plans)
    assert "Ask no question." in plans[0].messages[-1].content  # the step's guide, for the model only
    assert conv.dialog.turns[0].content == "Tired but okay."  # the dialog keeps their words


def test_reframe_goes_through_its_four_steps_in_order():
    _, plans = _run("reframe", ["I always mess everything up.", "I missed a deadline, but I did finish the rest.",
                                "Maybe I was just overloaded.", "I make mistakes sometimes, like everyone.",
                                "It feels a bit lighter."])
    assert [p.answers[0][0] for p in plans[:4]] == ["thought", "evidence", "alternatives", "balanced"]
    assert "Step 1 of 4" in plans[0].messages[-1].content and "Step 4 of 4" in plans[3].messages[-1].content
    assert plans[3].rules.max_questions == 0 and plans[4].answers == ()


def test_hold_space_asks_nothing_unless_asked():
    _, plans = _run("hold-space", ["I just need to say how unfair today was.", "Do you think I overreacted?"])
    assert (plans[0].rules.max_words, plans[0].rules.max_questions, plans[0].rules.advice) == (35, 0, False)
    assert plans[1].rules.max_questions == 1  # they asked: the answer may ask back


def test_a_letter_holds_until_it_is_finished():
    _, plans = _run("letter", ["To my grandmother.", "Dear Nan, I miss your kitchen.",
                               "I never said thank you for the summers.", "That's the letter.",
                               "It felt sad but good."])
    assert [p.answers[0][0] for p in plans] == ["to", "letter", "letter", "letter", "reflection"]
    assert "middle of my letter" in plans[1].messages[-1].content
    assert "finished my letter" in plans[3].messages[-1].content
    assert plans[4].rules.max_questions == 1


@pytest.mark.parametrize("mode", ["values", "parts", "gratitude"])
def test_the_other_modes_walk_their_steps(mode):
    m = modes.load(mode)
    _, plans = _run(mode, [f"answer {i}." for i in range(len(m.steps) + 1)])
    assert [p.answers[0][0] for p in plans[:-1]] == [s.field for s in m.steps] and plans[-1].answers == ()


@pytest.mark.parametrize("said, mode", [
    ("Let's do a check-in.", "check-in"), ("Can we do some reframing?", "reframe"),
    ("I just want to vent.", "hold-space"), ("Could we do gratitude today?", "gratitude"),
    ("I'd like to write a letter.", "letter"), ("Let’s do a quick check in", "check-in"),
])
def test_asking_for_a_mode_by_voice_switches_to_it(said, mode):
    conv = Conversation("free")
    plan = conv.turn(said)
    assert plan.switched and plan.mode == mode and plan.fixed == modes.load(mode).opening
    assert conv.mode.name == mode and conv.dialog.system == modes.load(mode).prompt


@pytest.mark.parametrize("name", [n for n in modes.names()])
def test_the_example_each_mode_shows_is_understood(name):
    m = modes.load(name)
    other = "gratitude" if name == "free" else "free"
    assert m.ask and modes.requested(m.ask, other) == m


@pytest.mark.parametrize("said", [
    "I had a check-in with my manager today and it went badly, and I keep replaying what she said.",
    "My letter from the council arrived.", "I'm grateful, I guess.",
])
def test_journaling_that_mentions_a_mode_is_not_a_request(said):
    assert not Conversation("free").turn(said).switched


# -- the arc: mood before and after, safety first -----------------------------------


def test_a_mood_rating_opens_and_closes_the_session():
    conv = Conversation("free", ask_mood=True)
    assert conv.opening().endswith(MOOD_BEFORE)
    first = conv.turn("Pretty low, maybe three.")
    assert first.answers == (("before", "Pretty low, maybe three.", 3.0),) and first.mode == "mood"
    assert first.fixed.startswith("Thank you.") and first.fixed.endswith(modes.load("free").opening)
    conv.replied(first.fixed)
    middle = conv.turn("Work has been a lot this week.")
    assert middle.messages and not middle.ends
    conv.replied("That sounds heavy.")
    closing = conv.turn("Goodbye.", closing=True)
    assert closing.then == MOOD_AFTER and not closing.ends and closing.rules.max_questions == 0
    conv.replied("Take care. " + MOOD_AFTER)
    last = conv.turn("About a five.")
    assert last.answers == (("after", "About a five.", 5.0),) and last.ends and last.fixed


def test_someone_who_starts_talking_instead_of_rating_is_heard():
    conv = Conversation("free", ask_mood=True)
    plan = conv.turn("Honestly I don't know, the whole week has been a blur of meetings and I barely slept.")
    assert plan.messages and not plan.answers  # their words go to the companion, not into a number


def test_a_crisis_comes_before_the_mood_question_and_the_mode():
    conv = Conversation("check-in", ask_mood=True, locale="en-GB")
    plan = conv.turn("Maybe a two. I want to kill myself.")
    assert plan.crisis and "116 123" in plan.fixed and not plan.answers and not plan.messages
    conv.replied(plan.fixed)
    later = conv.turn("Goodbye.", closing=True)
    assert later.ends and later.then is None  # no rating question after a crisis
    assert safety.CONCERN_NOTE.strip("()") in later.messages[-1].content


def test_the_concern_note_comes_after_the_notes_read_ahead_of_the_turn():
    # Once a reply is spoken, the next turn's notes are read into the model's cache before they
    # talk (session.live); a concern raised by their words must not make all of it be read again.
    hopeless = "I feel so hopeless about everything, like it will never get better."
    conv = Conversation("free")
    conv.replied(conv.opening())
    ahead = conv.previewer()("")[-1].content
    paused = conv.previewer()(hopeless)  # the reply begun in the pause asks exactly what the turn will
    plan = conv.turn(hopeless)
    assert plan.check.concern and plan.messages[-1].content.startswith(ahead)
    assert paused[-1].content == plan.messages[-1].content
    notes, words, cue = plan.messages[-1].content.split("\n\n")
    assert notes.endswith(safety.CONCERN_NOTE) and words == hopeless
    # The check-in comes after the reflection, and is asked for where a small model heeds it most.
    assert cue == f"({CHECK_IN_CUE})"
    assert conv.turn("Work was fine, I mostly filed reports.").messages[-1].content.endswith(f"({REPLY_CUE})")


def test_a_concern_asks_no_question_where_none_may_be_asked():
    # In hold-space the gate cuts every question, so the check-in is not asked for there.
    plan = Conversation("hold-space").turn("I feel so hopeless about everything, like it will never get better.")
    assert plan.check.concern and not plan.rules.max_questions
    assert safety.CONCERN_NOTE in plan.messages[-1].content and plan.messages[-1].content.endswith(f"({REPLY_CUE})")


def test_after_a_crisis_every_turn_and_the_read_ahead_carry_the_concern_note():
    conv = Conversation("free")
    conv.replied(conv.turn("I want to kill myself.").fixed)
    assert safety.CONCERN_NOTE in conv.previewer()("")[-1].content  # what is read into the cache before they talk
    plan = conv.turn("I had some tea and sat by the window.")
    assert not plan.check.concern and plan.messages[-1].content.endswith(f"({CHECK_IN_CUE})")


def test_memory_is_offered_to_the_model_and_kept_with_the_plan():
    past = Recalled(3, 2, dt.datetime(2026, 11, 17, 20, 0), "I had a fight with my brother about the house.", 0.71)
    conv = Conversation("free", recall=lambda text: [past], now=lambda: dt.datetime(2026, 11, 24, 21, 0))
    plan = conv.turn("My brother called again and it turned into another argument.")
    note = plan.messages[-1].content
    assert plan.recalled == (past,) and "Last Tuesday I said" in note and "fight with my brother" in note
    assert conv.dialog.turns[-1].content == "My brother called again and it turned into another argument."
    assert not Conversation("free", recall=None).turn("My brother called.").recalled


@pytest.mark.parametrize("mode, said", [
    ("free", ["My manager yelled at me today.", "I keep replaying it."]),
    ("check-in", ["Tired but okay.", "My sister called and we laughed a lot.", "Some quiet time tonight."]),
    ("reframe", ["I always mess everything up.", "I missed a deadline, but I did finish the rest."]),
    ("letter", ["To my father.", "Dad, I wish you had listened.", "That's the letter."]),
    ("free", ["I feel like such a burden to everyone lately.", "Nobody would notice if I was gone."]),
    ("free", ["Let's do a check-in.", "Tired but okay.", "My sister called.", "Some quiet time tonight."]),
])
def test_the_preview_a_pause_warms_is_what_the_turn_sends(mode, said):
    # While the person pauses, the reply to the preview of the turn so far begins: when the
    # pause was the end of the turn, the reply's prompt must be exactly the preview, or the
    # reply begun is thrown away and the notes to the model are evaluated while they wait.
    # The last turn of the session (known before it is said), a goodbye and a turn at the
    # time limit close the session with notes of their own.
    conv = Conversation(mode)
    for i, text in enumerate([*said, "That's all for today, thank you."]):
        last, wrap_up = i == len(said) - 2, i == len(said) - 1 and mode == "free"
        preview = conv.previewer(closing=last or wrap_up, wrap_up=wrap_up)
        expected = preview(text)
        assert preview(text) == expected  # taking a preview changes nothing
        plan = conv.turn(text, closing=last or wrap_up or arc.is_goodbye(text), wrap_up=wrap_up)
        if plan.fixed is None:
            assert list(plan.messages) == expected
        else:  # the crisis message, a mode's opening: no reply begun, the model shown nothing
            assert expected is None
        conv.replied("I hear you." if plan.fixed is None else plan.fixed)


@pytest.mark.parametrize("mode", ["free", "hold-space", "reframe", "parts"])
def test_what_is_warmed_after_a_reply_begins_what_the_next_turn_sends(mode):
    # The live session warms the model with the next turn's beginning (the dialogue as kept and
    # the notes) as soon as a reply is over: their words are all it reads once the turn ends.
    conv = Conversation(mode)
    for text in ["I walked by the river after work.", "My sister called and we laughed about the garden."]:
        conv.turn(text)
        conv.replied("You walked by the river. What stayed with you?")
        warmed = conv.previewer()("")
        sent = conv.turn("And then I slept better than I have in weeks.").messages
        assert list(sent[:-1]) == warmed[:-1] and sent[-1].content.startswith(warmed[-1].content)
        assert len(warmed[-1].content) > 20  # the notes, not an empty message
        conv.replied("You slept better.")


def test_memory_comes_after_what_was_warmed():
    past = Recalled(3, 2, dt.datetime(2026, 11, 17, 20, 0), "I had a fight with my brother about the house.", 0.71)
    conv = Conversation("free", recall=lambda text: [past], now=lambda: dt.datetime(2026, 11, 24, 21, 0))
    text = "My brother called again and it turned into another argument."
    warmed = conv.previewer()(text)
    sent = conv.turn(text).messages
    assert list(sent[:-1]) == warmed[:-1] and sent[-1].content.startswith(warmed[-1].content)


# -- spoken sessions, real models -------------------------------------------------


def test_a_check_in_from_a_recording(tiny_stt, small_llm, voice, embedder, tmp_path):
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.audio.playback import WavSink
    from voice_journal.session import Engines, FileSession
    from voice_journal.store.archive import Archive

    from conftest import spoken

    rec = tmp_path / "check-in.wav"
    pcm.write_wav(rec, spoken(voice, ["I feel tired but calm.", "My sister called and we laughed a lot.",
                                      "I need an early night."]))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=48)
    with Archive.open(s.db) as a:
        sid = FileSession(Engines(tiny_stt, voice, small_llm, embedder), a, s, sink=WavSink(tmp_path / "r.wav"),
                          mode="check-in").run(rec).session_id
        answers = a.answers(sid)
        turns = a.turns(sid)
        assert a.session(sid).mode == "check-in"
    assert [(x.mode, x.field) for x in answers] == [("check-in", "feeling"), ("check-in", "event"),
                                                    ("check-in", "need")]
    assert "tired" in answers[0].text.lower() and "sister" in answers[1].text.lower()
    assert "early night" in answers[2].text.lower()
    replies = [t.text for t in turns if t.role == "assistant"]
    mode = modes.load("check-in")
    for reply, step in zip(replies, mode.steps):
        assert reply.endswith(step.then)  # the app asks the next question itself
        own = reply[: -len(step.then)]
        # The model only reflected, within the rules, its words counted as the gate counts them
        # (a stray '."' is no word: str.split() counted one and failed a reply of 40).
        assert "?" not in own and words(own) <= mode.max_words, reply


def test_a_live_session_with_a_mood_rating_and_a_mode_asked_for_by_voice(tiny_stt, small_llm, voice, embedder,
                                                                        tmp_path):
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.companion.conversation import GOODBYE_AFTER_MOOD, HELLO
    from voice_journal.session import Engines, LiveOptions, LiveSession, ModeChanged
    from voice_journal.store.archive import Archive

    from conftest import spoken

    rec = tmp_path / "talk.wav"
    # Ratings spoken in a few words, as people do: a bare "About a six." is short enough for tiny.en
    # to mishear now and then ("about a sex"), which is a test of the model, not of the flow.
    pcm.write_wav(rec, spoken(voice, ["I would say about a six out of ten.", "Let's do a check-in.",
                                      "A bit anxious about tomorrow.", "That's all for today.",
                                      "Maybe a seven out of ten."]))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=32, mood_check=True)
    events = []
    with Archive.open(s.db) as a:
        result = LiveSession(Engines(tiny_stt, voice, small_llm, embedder), a, s, *quick_talk(rec),
                             LiveOptions(max_turns=8), on_event=events.append).run()
        turns = a.turns(result.session_id)
        answers = a.answers(result.session_id)
        mode = a.session(result.session_id).mode
    heard = [t.text for t in turns if t.role == "user"]  # in every message: tiny.en's ears vary by CPU
    assert mode == "check-in", heard
    assert turns[0].text == f"{HELLO} {MOOD_BEFORE}"
    assert result.user_turns == 5 and turns[-1].text == GOODBYE_AFTER_MOOD, heard
    got = {(x.mode, x.field): x for x in answers}
    assert ("mood", "before") in got and ("mood", "after") in got, heard
    assert got[("mood", "before")].value == 6 and got[("mood", "after")].value == 7, heard
    assert "anxious" in got[("check-in", "feeling")].text.lower(), heard
    assert [e.mode for e in events if isinstance(e, ModeChanged)] == ["check-in"], heard
    opening = next(t for t in turns if t.role == "assistant" and t.idx > 2 and "check-in" in t.text.lower())
    assert opening.text == modes.load("check-in").opening
    assert any(t.text.endswith(MOOD_AFTER) for t in turns if t.role == "assistant")


def test_memory_brings_back_a_related_past_entry(tiny_stt, small_llm, voice, embedder, tmp_path):
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.session import Engines, FileSession, write_entry
    from voice_journal.store.archive import Archive

    from conftest import spoken

    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, ["My brother called again and we argued about selling the house."]))
    past = dt.datetime(2026, 11, 10, 19, 0)
    with Archive.open(tmp_path / "j.duckdb") as a:
        old = write_entry(a, embedder, "I had a huge fight with my brother about selling our parents' house.", at=past)
        write_entry(a, embedder, "The garden needs work before the frost comes.", at=past)
        for memory in (True, False):
            llm = RecordingLLM(small_llm)
            s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=24, memory=memory)
            sid = FileSession(Engines(tiny_stt, voice, llm, embedder), a, s).run(rec).session_id
            reply = [t for t in a.turns(sid) if t.role == "assistant"][0]
            if memory:
                assert [r["session"] for r in reply.recalled] == [old]
                assert "fight with my brother" in llm.shown[0][-1].content  # offered to the model...
                assert "fight" not in next(m for m in llm.shown[0] if m.role == "system").content
            else:
                assert reply.recalled == () and "earlier journal" not in llm.shown[0][-1].content


def test_a_live_reply_begun_in_the_pause_carries_what_memory_recalls(tiny_stt, small_llm, voice, embedder, tmp_path):
    # Memory is searched in the pause that ends the turn, so a reply begun there is the one the
    # turn asks for, recalled entry and all: one request to the model, none after. Whether it was
    # begun in the pause (the piece transcribed and the model free before the silence ran out)
    # depends on how busy the machine is, so that is not asserted here: the scripted test in
    # test_session_parts proves a reply begun in a pause asks for memory; this one the wiring.
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.session import Engines, LiveOptions, LiveSession, write_entry
    from voice_journal.store.archive import Archive

    from conftest import spoken

    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, ["My brother called again and we argued about selling the house.",
                                      "Thank you."], pause_s=3))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=24, memory=True)
    llm = RecordingLLM(small_llm)
    with Archive.open(s.db) as a:
        old = write_entry(a, embedder, "I had a huge fight with my brother about selling our parents' house.",
                          at=dt.datetime(2026, 11, 10, 19, 0))
        result = LiveSession(Engines(tiny_stt, voice, llm, embedder), a, s, *quick_talk(rec),
                             LiveOptions(max_turns=2)).run()
        turns = [t for t in a.turns(result.session_id) if t.idx > 0]
    user, reply = turns[0], turns[1]
    assert "brother" in user.text.lower()
    assert [r["session"] for r in reply.recalled] == [old], reply.recalled
    asked = [m[-1].content for m in llm.shown]
    first = [x for x in asked if their_words(x) == user.text]
    assert len(first) == 1 and "fight with my brother" in first[0], asked


@pytest.mark.parametrize("sentence", [
    "You should talk to your manager about it.", "Try to get some rest tonight.", "It might help to write it down.",
    "Have you tried going for a walk?", "Take a deep breath and be gentle with yourself.",
    "Reach out to someone you trust.", "I suggest making a list.", "It's important to set boundaries.",
    "You should ask if you can leave early on Fridays.",
])
def test_unasked_advice_is_left_out(sentence):
    gate = ReplyGate(ReplyRules(60, 1))
    assert gate.admit("That sounds really hard.") and not gate.admit(sentence) and gate.trimmed
    assert "advice, unasked" in check(f"That sounds really hard. {sentence}", ReplyRules(60, 1))
    assert ReplyGate(ReplyRules(60, 1, advice=True)).admit(sentence)


@pytest.mark.parametrize("sentence", [
    "You sound exhausted, and it makes sense after a week like that.", "What would feel supportive right now?",
    "You tried so hard to make it work.", "It's important to you that your sister feels heard.",
    "You're wondering whether you should quit the choir.", "You don't know what you should tell your dad.",
    "So you asked your boss if you should stay late, and he laughed.",
])
def test_reflection_is_not_mistaken_for_advice(sentence):
    assert ReplyGate(ReplyRules(60, 1)).admit(sentence)


def test_advice_is_allowed_when_they_ask_for_it():
    conv = Conversation("free")
    assert not conv.turn("Work was awful today.").rules.advice
    conv.replied("That sounds hard.")
    assert conv.turn("What should I do about my boss?").rules.advice
    held = Conversation("hold-space")
    assert held.turn('My sister said "why don\'t you just move?" and I froze.').rules.max_questions == 0


@pytest.mark.parametrize("sentence", [
    "How does that make you feel?", "It sounds like you're going through a lot right now.",
    "I’m here for you.", "Remember to be kind to yourself.", "As an AI, I don't have feelings, but that is hard.",
    "At least you got some sleep.",
])
def test_stock_phrases_are_left_out(sentence):
    gate = ReplyGate(ReplyRules(60, 1))
    assert gate.admit("The deadline moved again.") and not gate.admit(sentence) and gate.trimmed
    assert any(p.startswith("a stock phrase") for p in check(f"The deadline moved again. {sentence}",
                                                             ReplyRules(60, 1)))


@pytest.mark.parametrize("sentence, turned", [
    ("I left feeling like nobody listened to me.", "You left feeling like nobody listened to you."),
    ("My mother-in-law is coming for two weeks.", "Your mother-in-law is coming for two weeks."),
    ("So I'm tired and a bit foggy.", "So you're tired and a bit foggy."),
    ("I've been carrying this all week.", "You've been carrying this all week."),
    ("I was so angry at myself, and the day was mine to lose.",
     "You were so angry at yourself, and the day was yours to lose."),
    ("I wasn’t ready, and I am still not.", "You weren’t ready, and you are still not."),
    ("Am I the only one who cares?", "Are you the only one who cares?"),
])
def test_their_first_person_said_back_is_turned_to_you(sentence, turned):
    """A simple reflection the model wrote in their first person is spoken as a reflection."""
    gate = ReplyGate(ReplyRules(60, 1))
    assert gate.spoken(sentence) == turned and gate.trimmed
    assert not speaks_as_them(turned)
    assert "their words in the first person" in check(f"{sentence} What was that like?", ReplyRules(60, 1))
    assert trim(f"That was a lot. {sentence}", ReplyRules(60, 1)) == f"That was a lot. {turned}"


@pytest.mark.parametrize("sentence", [
    "I told you my sister never calls.",  # "you" as well: who is who cannot be turned safely
    "I wonder if my mother is coming.",  # the companion's own "I" beside theirs
])
def test_first_person_that_cannot_be_turned_safely_is_left_out(sentence):
    gate = ReplyGate(ReplyRules(60, 1))
    assert gate.spoken(sentence) is None and not gate.admit(sentence) and gate.trimmed
    assert gate.spoken("You left feeling nobody listened.") == "You left feeling nobody listened."


@pytest.mark.parametrize("sentence", [
    "I wonder what that was like for you.", "I'm glad you told me.", "I'm sorry that happened.",
    "I can see why that stung.", "My sense is that it mattered to you.", "Imagine carrying that all week.",
])
def test_the_companion_may_still_speak_for_itself(sentence):
    assert ReplyGate(ReplyRules(60, 1)).admit(sentence)
    assert "their words in the first person" not in check(sentence, ReplyRules(60, 1))


def test_the_question_asked_last_turn_is_not_asked_again():
    conv = Conversation("free")
    conv.turn("I finally finished the move but the new flat feels empty.")
    conv.replied("You finished the move, and the new flat feels empty. What do you miss most about the old place?")
    rules = conv.turn("i dont know the people i guess").rules
    assert rules.last_question == "What do you miss most about the old place?"
    gate = ReplyGate(rules)
    assert gate.admit("The people, the ones you saw every day.")
    assert not gate.admit("What do you miss most about the old place?")
    assert "the question of the last turn again" in check("You miss them. What do you miss the most about "
                                                          "the old place?", rules)
    assert ReplyGate(rules).admit("Which of the people do you think of first?")  # another question is fine


def test_an_earlier_reply_is_not_said_again_word_for_word():
    """Seen in the demo: the reply to "thank you for listening" was the session's first reply again."""
    conv = Conversation("free")
    conv.turn("Today was harder than I expected, I argued with my brother about our mother's care.")
    first = "The argument with your brother about your mother's care was hard. What stays with you most?"
    conv.replied(first)
    conv.turn("I keep replaying what I said.")
    conv.replied("You keep going back over your own words.")
    rules = conv.turn("Okay, I think that is enough for today. Thank you for listening.", closing=True).rules
    gate = ReplyGate(rules)
    assert not gate.admit("The argument with your brother about your mother's care was hard.")
    assert gate.admit("Thank you for talking tonight.")  # short and new: fine
    assert "said before in this session" in check(first, rules)


def test_the_grammar_holds_what_the_model_writes_to_one_paragraph_and_one_question(small_llm):
    """The real model, asked for exactly what the rules forbid: a numbered list of questions."""
    from voice_journal.companion.checker import REPLY_GRAMMAR
    from voice_journal.llm.base import GenerationOptions, Message

    ask = [Message("user", "Write a numbered list of five questions about my day, one per line, "
                           "with **bold** headings.")]
    for seed_words in ("", " Start with 1."):
        text = small_llm.stream([Message("user", ask[0].content + seed_words)],
                                GenerationOptions(max_tokens=80, temperature=0.0, grammar=REPLY_GRAMMAR)).text()
        assert text.strip(), "the grammar left the model nothing to say"
        assert "\n" not in text and text.count("?") <= 1 and "*" not in text and not text.lstrip()[0].isdigit()
        assert "a list" not in " ".join(check(text, ReplyRules(200, 1)))


def test_a_reply_is_generated_under_the_grammar_never_in_their_first_person_nor_after_an_opener():
    from voice_journal import config
    from voice_journal.companion.checker import FIRST_PERSON_TOKENS, OPENER_TOKENS, REPLY_GRAMMAR
    from voice_journal.session import reply_options

    options = reply_options(config.load())
    assert options.grammar == REPLY_GRAMMAR and options.avoid == FIRST_PERSON_TOKENS + OPENER_TOKENS


def test_the_model_cannot_open_with_a_canned_word_but_may_use_it_later(small_llm):
    from voice_journal.companion.checker import OPENER_TOKENS
    from voice_journal.llm.base import GenerationOptions, Message

    def said(text, avoid=()):
        ask = [Message("user", f"Repeat exactly, word for word: {text}")]
        return small_llm.stream(ask, GenerationOptions(max_tokens=30, temperature=0.0, seed=1, avoid=avoid)).text()

    assert said("Sure, that sounds hard.").startswith("Sure"), "the test asks for nothing the model would write anyway"
    assert not said("Sure, that sounds hard.", OPENER_TOKENS).lstrip().startswith(OPENER_TOKENS)
    assert "sure" in said("You are not sure about it.", OPENER_TOKENS)  # " sure", after a space, is another token


def test_the_model_cannot_open_by_naming_them_as_a_third_party(small_llm):
    from voice_journal.companion.checker import NOT_OPENINGS, REPLY_GRAMMAR, reply_grammar
    from voice_journal.llm.base import GenerationOptions, Message

    def said(text, grammar):
        ask = [Message("user", f"Repeat exactly, word for word: {text}")]
        return small_llm.stream(ask, GenerationOptions(max_tokens=30, temperature=0.0, seed=1, grammar=grammar)).text()

    free = "root ::= [^\\n]{1,120}"
    for text in ("The person is angry about the boss.", "The user is tired tonight."):
        assert said(text, free).startswith(NOT_OPENINGS), "the test asks for nothing the model would write anyway"
        assert not said(text, REPLY_GRAMMAR).startswith(NOT_OPENINGS)
        assert not said(text, reply_grammar(ReplyRules(35, 0))).startswith(NOT_OPENINGS)
    assert said("The party was loud.", REPLY_GRAMMAR).startswith("The party")  # other words after "The " go on
    assert said("Then it rained.", REPLY_GRAMMAR).startswith("Then it rained")


def test_the_model_cannot_say_their_first_person_back(small_llm):
    """The real model, asked to say a first-person sentence back word for word, turns to "you" or around it."""
    import re

    from voice_journal.companion.checker import FIRST_PERSON_TOKENS
    from voice_journal.llm.base import GenerationOptions, Message

    ask = [Message("user", "Repeat exactly, word for word: I think my dad is right, and I'm tired of myself.")]
    plain = small_llm.stream(ask, GenerationOptions(max_tokens=40, temperature=0.0, seed=1)).text()
    held = small_llm.stream(ask, GenerationOptions(max_tokens=40, temperature=0.0, seed=1,
                                                   avoid=FIRST_PERSON_TOKENS)).text()
    first_person = re.compile(r"\b(?:I|my|myself)\b", re.IGNORECASE)
    assert first_person.search(plain), "the test asks for nothing the model would write anyway"
    assert held.strip() and not first_person.search(held)


def test_the_companion_eval_is_frozen_and_large_enough():
    """The eval's turns were written apart from the prompts; a third is frozen: its hash is pinned."""
    import hashlib
    import tomllib
    from pathlib import Path

    data = Path(__file__).resolve().parent.parent / "benchmarks" / "companion_eval_data.toml"
    assert hashlib.sha256(data.read_bytes()).hexdigest() == EVAL_SHA256
    parsed = tomllib.loads(data.read_text(encoding="utf-8"))
    turns = [(x["mode"], x["split"]) for x in parsed["exchange"] for _ in x["turn"]]
    assert len(turns) >= 60 and {m for m, _ in turns} == set(modes.names())
    frozen = sum(split == "frozen" for _, split in turns)
    assert 0.25 <= frozen / len(turns) <= 0.42
    talks = parsed["conversation"]
    assert len(talks) >= 5 and all(len(c["turns"]) == 3 for c in talks)


EVAL_SHA256 = "62396c14bb1ce598150e2bc2f42025dfeb45c9367afd60ae697011b6f0f36716"


def test_the_models_echo_of_a_note_is_not_spoken():
    from voice_journal.speech.sentences import speakable

    echoed = "That took courage. (Step 3 of 4: they explored other interpretations.) What feels truer now?"
    assert speakable(echoed) == "That took courage. What feels truer now?"
    assert "a bracketed note" in check(echoed, ReplyRules(60, 1))
    assert speakable("I'm here (always).") == "I'm here (always)."


# The wiring is the same for every mode; what differs is the mode's words and rules. So the
# real models run the default mode, the one that asks no questions and the longest one
# (check-in has its own test above); every mode's steps are walked in the unit tier
# (test_the_other_modes_walk_their_steps and the tests around it), and every mode's prompt
# is judged on the quality model by benchmarks/companion_eval.py.
@pytest.mark.parametrize("mode", ["free", "hold-space", "reframe"])
def test_a_mode_works_from_a_recording(mode, tiny_stt, small_llm, voice, embedder, tmp_path):
    """Two spoken turns in a mode: their answers fill the mode's fields, every reply keeps its rules."""
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.companion.checker import is_advice, is_question
    from voice_journal.session import Engines, FileSession
    from voice_journal.speech.sentences import SentenceSplitter
    from voice_journal.store.archive import Archive

    from conftest import spoken

    lines = ["My week has been heavy because of work.", "I would like more time with my friends."]
    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, lines))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=64, memory=False)
    m = modes.load(mode)
    with Archive.open(s.db) as a:
        sid = FileSession(Engines(tiny_stt, voice, small_llm, embedder), a, s, mode=mode).run(rec).session_id
        answers, turns = a.answers(sid), a.turns(sid, with_audio=True)
    assert [x.field for x in answers] == [st.field for st in m.steps][:2]
    replies = [t for t in turns if t.role == "assistant"]
    assert len(replies) == 2 and all(t.text and t.audio_flac for t in replies)
    for reply, step in zip(replies, [*m.steps, None, None]):
        text = reply.text[: -len(step.then)] if step is not None and step.then else reply.text
        splitter = SentenceSplitter()
        sentences = [*splitter.feed(text + " "), *splitter.flush()]
        allowed = step.questions if step is not None and step.questions is not None else m.max_questions
        assert sum(map(is_question, sentences)) <= allowed, reply.text
        assert not any(map(is_advice, sentences)), reply.text


class ScriptedWords:
    """Stands in for the model's words only, to give the gate what a real model gives now and then
    (all advice, a bare "…"); the voice and the gate are real."""

    backend, model = "scripted", "scripted"

    def __init__(self, text: str):
        self._text = text

    def stream(self, messages, options=None):
        from voice_journal.llm.base import ReplyStream, Usage

        ws = self._text.split()
        words = iter(w + (" " if i < len(ws) - 1 else "") for i, w in enumerate(ws))  # as a model ends: no space
        return ReplyStream(words, lambda cancelled, first, total: Usage(completion_tokens=10, first_token_s=first,
                                                                          total_s=total, stopped="stop"))


class AskedTwice:
    """The model's words, twice: a first reply, and another if it is asked again (with the options it got)."""

    backend, model, grammars = "scripted", "scripted", True

    def __init__(self, first: str, second: str, *, grammars: bool = True):
        self.texts, self.grammars, self.options = [first, second], grammars, []

    def stream(self, messages, options=None):
        self.options.append(options)
        return ScriptedWords(self.texts[min(len(self.options), 2) - 1]).stream(messages, options)


def _rules_for(turn: str) -> ReplyRules:
    from voice_journal.companion.checker import their_words

    return ReplyRules(max_words=40, max_questions=1, theirs=their_words(turn))


def test_a_reply_that_names_nothing_they_said_is_asked_again_led_in(voice):
    from voice_journal.companion.checker import LEADS
    from voice_journal.session import reply_options, speak_reply
    from voice_journal import config

    rules = _rules_for("bath time with my twins is the one time i'm not rushing")
    options = reply_options(config.load(), rules)
    llm = AskedTwice("Thank you for sharing that moment. How did it make you feel?",
                     "You said bath time with the twins is when you stop rushing. What happens then?")
    reply = speak_reply(llm, voice, [], None, 0.0, options, rules=rules)
    assert len(llm.options) == 2 and reply.timings.asked_again
    assert llm.options[1].grammar.startswith("root ::= l") and all(x in llm.options[1].grammar for x in LEADS)
    assert reply.text == reply.spoken_text == llm.texts[1]
    assert reply.draft == llm.texts[0]  # what it wrote first is kept for the record, unspoken
    # Asked again at most once: a second reply that names nothing is spoken as the rules allow.
    llm = AskedTwice("That sounds hard.", "You said it is hard. What is that like?")
    reply = speak_reply(llm, voice, [], None, 0.0, options, rules=rules)
    assert len(llm.options) == 2 and reply.text == "You said it is hard. What is that like?"


def test_a_reply_that_names_them_first_is_not_asked_again(voice):
    from voice_journal.session import reply_options, speak_reply
    from voice_journal import config

    rules = _rules_for("bath time with my twins is the one time i'm not rushing")
    llm = AskedTwice("That's sweet. Bath time with the twins sounds like a pause.", "unused")
    reply = speak_reply(llm, voice, [], None, 0.0, reply_options(config.load(), rules), rules=rules)
    assert len(llm.options) == 1 and not reply.timings.asked_again
    assert reply.text == "Bath time with the twins sounds like a pause." and reply.draft == llm.texts[0]


def test_without_grammars_a_reply_is_never_asked_again(voice):
    from voice_journal.session import reply_options, speak_reply
    from voice_journal import config

    rules = _rules_for("bath time with my twins is the one time i'm not rushing")
    llm = AskedTwice("That sounds lovely. What do you enjoy most?", "unused", grammars=False)  # as Ollama
    reply = speak_reply(llm, voice, [], None, 0.0, reply_options(config.load(), rules), rules=rules)
    assert len(llm.options) == 1 and reply.text == llm.texts[0]  # it could not be led in: nothing is cut for it


def test_without_a_grammar_the_gate_leaves_out_a_sentence_in_another_script():
    """An Ollama model has no grammar: the gate is what keeps "your日常" from Piper."""
    from voice_journal.companion.checker import check

    english = ReplyRules(60, 1, latin=True)
    gate = ReplyGate(english)
    said = [gate.spoken(s) for s in ["Your sister skipped Christmas again.", "That stings in your日常.",
                                     "Café plans fell through too."]]
    assert said == ["Your sister skipped Christmas again.", None, "Café plans fell through too."]
    assert "letters of another script" in check("That stings in your日常.", english)
    assert check("That stings in your日常.", ReplyRules(60, 1)) == []  # another language's reply: its own script


@pytest.mark.slow  # loads a model of its own
def test_an_english_reply_is_written_in_latin_letters_only():
    """Qwen now and then wrote a Chinese word into an English reply ("your日常"); Piper reads it as noise."""
    import re

    from voice_journal import models
    from voice_journal.companion.checker import reply_grammar
    from voice_journal.llm.base import GenerationOptions, Message
    from voice_journal.llm.embedded import EmbeddedLLM

    asked = [Message("system", "You repeat what you are given, character for character."),
             Message("user", "Repeat: 你好你好你好 日常 其他")]
    # A model of its own, fresh: the shared one's cache, left by other tests, changes its numbers
    # and so what a seed samples. Fresh, at this seed, SmolLM writes Chinese (1 or 2 threads).
    llm = EmbeddedLLM(models.resolve("smollm2-135m", kind="llm"), n_ctx=1024, threads=THREADS)

    def written(latin: bool) -> str:
        llm.warm(asked[:1])  # the same cache before each: the system prompt only
        return llm.stream(asked, GenerationOptions(max_tokens=30, seed=1,
                                                   grammar=reply_grammar(ReplyRules(latin=latin)))).text()

    try:
        assert re.search(r"[\u4e00-\u9fff]", written(False))  # the model would
        english = written(True)
    finally:
        llm.close()
    assert english and not re.search(r"[^\x00-\u024f\u2000-\u206f]", english), english
    conv = Conversation("free")
    assert conv.turn("my sister skipped christmas again").rules.latin
    conv.language.code = "de"
    assert not conv.turn("meine schwester kam nicht").rules.latin


def test_a_led_grammar_makes_the_real_model_begin_with_their_words(small_llm):
    from voice_journal.companion.checker import LEADS, reply_grammar
    from voice_journal.llm.base import GenerationOptions, Message

    rules = ReplyRules(max_words=30, max_questions=1)
    for grammar in (reply_grammar(rules, led=True), reply_grammar(ReplyRules(15, 0), led=True)):
        text = small_llm.stream([Message("system", "You are a kind listener."),
                                 Message("user", "my sister skipped christmas again this year")],
                                GenerationOptions(max_tokens=40, grammar=grammar, seed=3)).text()
        assert text.startswith(LEADS), text


@pytest.mark.parametrize("said", [
    "Try finding ways to manage your stress. You should talk to a professional counselor.",  # advice, unasked
    "…",  # an empty reply copied from the dialog
])
def test_a_reply_the_gate_keeps_nothing_of_is_a_gentle_line_not_silence(said, voice):
    from voice_journal.session import FALLBACK_REPLY, speak_reply

    reply = speak_reply(ScriptedWords(said), voice, [], None, 0.0, rules=modes.load("hold-space").rules())
    assert reply.text == FALLBACK_REPLY and reply.spoken_text == FALLBACK_REPLY
    assert len(reply.audio) > voice.rate and reply.timings.fallback
    # A check-in's next question is enough on its own: no fallback before it.
    asked = speak_reply(ScriptedWords(said), voice, [], None, 0.0, rules=ReplyRules(40, 0),
                        then="What do I need in this moment?")
    assert asked.text == "What do I need in this moment?" and not asked.timings.fallback


def test_the_gentle_line_is_not_said_again_while_another_is_unused():
    from voice_journal.session import speak_reply
    from voice_journal.session.speaker import FALLBACK_REPLIES

    said: list[str] = []
    for _ in range(len(FALLBACK_REPLIES) + 1):
        rules = dataclasses.replace(modes.load("hold-space").rules(), said=tuple(said))
        said.append(speak_reply(ScriptedWords("…"), None, [], None, 0.0, rules=rules).text)
    assert said == [*FALLBACK_REPLIES, FALLBACK_REPLIES[0]]
    # The session's last reply is a goodbye, even when the rules kept nothing of the model's.
    goodbye = speak_reply(ScriptedWords("…"), None, [], None, 0.0, rules=ReplyRules(40, 0), closing=True)
    assert goodbye.text == arc.CLOSING_INTERRUPTED and goodbye.timings.fallback
