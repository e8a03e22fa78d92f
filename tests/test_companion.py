"""The companion's conversation: modes as state machines, the reply checker, mood, memory, voice requests.

The first half scripts transcripts through :class:`Conversation` (no audio,
no model: the plans are what is checked). The second half holds spoken
sessions with the real models: a check-in from a recording, and a live
session that asks for a mood rating, switches mode by voice, and recalls a
past entry.
"""

from __future__ import annotations

import datetime as dt

import pytest

from voice_journal.companion import modes, safety
from voice_journal.companion.checker import ReplyGate, ReplyRules, check, trim
from voice_journal.companion.conversation import MOOD_AFTER, MOOD_BEFORE, Conversation, Recalled
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
    assert plans[0].rules == ReplyRules(35, 0)
    assert plans[1].rules.max_questions == 1  # they asked: the answer may ask back


def test_a_letter_holds_until_it_is_finished():
    _, plans = _run("letter", ["To my grandmother.", "Dear Nan, I miss your kitchen.",
                               "I never said thank you for the summers.", "That's the letter.",
                               "It felt sad but good."])
    assert [p.answers[0][0] for p in plans] == ["to", "letter", "letter", "letter", "reflection"]
    assert "middle of their letter" in plans[1].messages[-1].content
    assert "finished their letter" in plans[3].messages[-1].content
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


def test_memory_is_offered_to_the_model_and_kept_with_the_plan():
    past = Recalled(3, 2, dt.datetime(2026, 11, 17, 20, 0), "I had a fight with my brother about the house.", 0.71)
    conv = Conversation("free", recall=lambda text: [past], now=lambda: dt.datetime(2026, 11, 24, 21, 0))
    plan = conv.turn("My brother called again and it turned into another argument.")
    note = plan.messages[-1].content
    assert plan.recalled == (past,) and "Last Tuesday they said" in note and "fight with my brother" in note
    assert conv.dialog.turns[-1].content == "My brother called again and it turned into another argument."
    assert not Conversation("free", recall=None).turn("My brother called.").recalled
