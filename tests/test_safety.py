"""The safety check on every transcript: a labelled set of what people say.

Every crisis must be caught; of the hard negatives (idioms, accidents, grief
for someone else, the news, reassurance), at most one may raise an alarm.
"""

from __future__ import annotations

import pytest

from conftest import RecordingLLM, quick_talk, their_words
from voice_journal.companion import safety
from voice_journal.companion.safety import assess

CRISIS = [
    "I want to kill myself.",
    "Some days I think everyone would be better off without me.",
    "I don't want to be alive anymore.",
    "I wish I could go to sleep and never wake up.",
    "I've been thinking about ending my life.",
    "I started cutting again last week.",
    "I cut myself last night because it was the only thing that helped.",
    "I've been saving up my sleeping pills.",
    "I looked up how to overdose yesterday.",
    "I've written a goodbye letter to my mum.",
    "I've been giving away my things to friends, I won't need them.",
    "I won't be around much longer, so it doesn't matter.",
    "There's no reason to go on living.",
    "I'm suicidal.",
    "Honestly, I just want to die.",
    "I have a plan to end it this weekend.",
    "I keep thinking about jumping off the bridge near my house.",
    "I'm not sure I want to live anymore.",
    "I feel like hurting myself right now.",
    "I'm going to take all my pills tonight.",
    "Everyone would be happier without me.",
    "I wish I was dead.",
    "I just want it all to end.",
    "Maybe I should just end it all.",
    "I don't know why, but I want to die.",
    "I've been having suicidal thoughts again.",
    "I took too many pills on purpose last month.",
    "Sometimes I think about not being here.",
    "I used to cut myself, but last night I hurt myself again.",
    # Odd Unicode and transcription quirks must not hide it.
    "I WANT TO KILL MYSELF",
    "I don\u2019t want to be alive anymore",
    "I want to k\u200bill myself",
]

CONCERN = [
    "Everything feels pointless and I can't do this anymore.",
    "I'm such a burden to my family.",
    "I used to cut myself when I was a teenager.",
    "What's the point of anything.",
    "I feel so hopeless lately.",
    "Nobody would even notice if I disappeared.",
    "I hate my life.",
    "I'm so done with everything.",
]

NEGATIVE = [
    "This job is killing me.",
    "I could kill for a cup of coffee right now.",
    "I nearly died laughing at his joke.",
    "I wanted to die of embarrassment when I tripped on stage.",
    "My grandmother died last spring and I still miss her every day.",
    "My uncle took his own life when I was twelve, and I think about him a lot.",
    "I read an article about suicide rates among farmers.",
    "The news said a man killed himself after the scandal.",
    "I cut myself chopping onions tonight.",
    "I burned myself on the stove making pancakes.",
    "I hurt myself at the gym lifting too much.",
    "I would never hurt myself, I'm just tired.",
    "I'm not suicidal, just exhausted and sad.",
    "I'm dying to see my sister next week.",
    "I'm dead tired after that presentation.",
    "My friend's brother died by suicide and I don't know how to support her.",
    "My feet are killing me after the hike.",
    "I killed it at the interview today!",
    "I don't want to die without seeing Japan.",
    "I'd kill to have her confidence.",
    "I'm going to kill my brother for eating my leftovers.",
    "We watched a documentary about the bridge and the people who jump from it.",
]


@pytest.mark.parametrize("text", CRISIS)
def test_every_crisis_is_caught(text):
    a = assess(text)
    assert a.level == "crisis" and a.reasons, (text, a)


@pytest.mark.parametrize("text", CONCERN)
def test_concern_is_not_an_alarm_but_is_noticed(text):
    assert assess(text).level == "concern", text


def test_hard_negatives_raise_at_most_one_false_alarm():
    alarms = [(t, assess(t)) for t in NEGATIVE if assess(t).level != "none"]
    assert len(NEGATIVE) >= 20
    assert len(alarms) <= 1, alarms
    assert not any(a.crisis for _, a in alarms), alarms  # and never a crisis


def test_the_labelled_set_is_big_enough():
    assert len(CRISIS) + len(CONCERN) + len(NEGATIVE) >= 40 and len(NEGATIVE) >= 20


@pytest.mark.parametrize("locale, expected", [
    ("en-US", "988"), ("en_US.UTF-8", "988"), ("en-GB", "116 123"), ("en_IE", "116 123"),
    ("de_DE.UTF-8", "findahelpline.com"), (None, "findahelpline.com"), ("C", "findahelpline.com"),
])
def test_the_crisis_message_names_who_can_help_where_they_are(locale, expected):
    message = safety.crisis_message(locale)
    assert expected in message and "AI" in message and "can't keep you safe" in message


def test_bad_input_is_not_a_crash():
    for text in ("", " ", "\x00\x01", "🙂" * 1000, "a" * 100_000, "'; DROP TABLE turns; --"):
        assert assess(text).level == "none"


# -- in a session: the check runs before the model, and a crisis stops the normal flow ----------


LINES = ["Work was long today and I feel drained.", "Honestly, I don't want to be alive anymore.",
         "Thank you for listening to me."]


def _check_crisis_turns(turns, llm, locale_number: str) -> None:
    users = [t for t in turns if t.role == "user"]
    assert len(users) == 3 and "alive" in users[1].text.lower()
    assert users[0].safety is None and users[1].safety == "crisis" and users[1].safety_reasons
    answer = next(t for t in turns if t.idx == users[1].idx + 1)
    assert answer.role == "assistant" and answer.model == "safety" and answer.safety == "crisis"
    assert locale_number in answer.text and "AI" in answer.text and answer.audio_flac
    # The model never wrote an answer to the crisis turn, nor began one while the person paused
    # (a live session begins replies in pauses): it was asked about the first and the third (a
    # live session may also have begun one on part of a turn), and with the third it had a note
    # to check in gently.
    asked = [shown[-1].content for shown in llm.shown]
    assert not any("alive anymore" in a for a in asked), asked
    assert their_words(asked[0]).startswith(users[0].text.split()[0]) and not any("alive anymore" in m.content for m in llm.shown[0])
    assert their_words(asked[-1]) == users[2].text and safety.CONCERN_NOTE in asked[-1]
    assert any(m.role == "assistant" and m.content == answer.text for m in llm.shown[-1])  # it knows what was said


def test_a_spoken_crisis_gets_the_fixed_message_not_the_model(tiny_stt, small_llm, voice, tmp_path):
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.audio.playback import WavSink
    from voice_journal.session import Engines, FileSession, SafetyAlert
    from voice_journal.store.archive import Archive

    from conftest import spoken

    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, LINES))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=24, locale="en-US")
    llm = RecordingLLM(small_llm)
    alerts = []
    with Archive.open(s.db) as a:
        result = FileSession(Engines(tiny_stt, voice, llm), a, s, sink=WavSink(tmp_path / "r.wav"),
                             on_event=lambda e: alerts.append(e) if isinstance(e, SafetyAlert) else None).run(rec)
        turns = a.turns(result.session_id, with_audio=True)
    _check_crisis_turns(turns, llm, "988")
    [alert] = alerts
    assert alert.level == "crisis" and "988" in alert.message


def test_a_crisis_in_a_live_session(tiny_stt, small_llm, voice, tmp_path):
    from voice_journal import config
    from voice_journal.audio import pcm
    from voice_journal.session import Engines, LiveOptions, LiveSession
    from voice_journal.store.archive import Archive

    from conftest import spoken

    rec = tmp_path / "talk.wav"
    pcm.write_wav(rec, spoken(voice, LINES))
    s = config.load(profile="fast", db=tmp_path / "j.duckdb", reply_tokens=24, locale="en_GB.UTF-8")
    llm = RecordingLLM(small_llm)
    with Archive.open(s.db) as a:
        result = LiveSession(Engines(tiny_stt, voice, llm), a, s, *quick_talk(rec),
                             LiveOptions(max_turns=3)).run()
        turns = [t for t in a.turns(result.session_id, with_audio=True) if t.idx > 0]  # after the greeting
    _check_crisis_turns(turns, llm, "116 123")


def test_flags_are_shown_exported_and_deleted_with_their_turn(tmp_path):
    import json

    from voice_journal.store.archive import Archive, TurnRecord

    from conftest import run_cli

    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        sid = a.begin_session(source="test", models={})
        a.add_turn(TurnRecord(sid, 0, "user", "I want to die.", safety="crisis", safety_reasons=("suicidal thoughts",)))
        a.add_turn(TurnRecord(sid, 1, "assistant", safety.crisis_message("en-US"), model="safety", safety="crisis",
                              safety_reasons=("crisis message",)))
        a.end_session(sid)
    r = run_cli("show", str(sid), "--db", str(db))
    assert r.returncode == 0 and "⚑ crisis" in r.stdout and "suicidal thoughts" in r.stdout
    shown = json.loads(run_cli("show", str(sid), "--db", str(db), "--json").stdout)
    assert shown["turns"][0]["safety"] == "crisis" and shown["turns"][0]["safety_reasons"] == ["suicidal thoughts"]
    with Archive.open(db) as a:
        a.delete(sid, 0)
        assert a.execute("SELECT count(*) FROM turn_flags WHERE idx = 0").fetchone()[0] == 0
        a.delete(sid)
        assert a.execute("SELECT count(*) FROM turn_flags").fetchone()[0] == 0
