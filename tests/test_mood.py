"""The mood rating: what people answer to "On a scale of 1 to 10, how are you feeling?"

Each row is a transcript as Whisper might write it and the rating it holds,
or ``None`` where there is no rating to log.
"""

from __future__ import annotations

import pytest

from voice_journal.companion.mood import describe, parse_mood

POSITIVE = [
    # plain digits and words, with Whisper's punctuation
    ("6", 6),
    ("Six.", 6),
    ("6.", 6),
    ("ten", 10),
    ("a 10", 10),
    ("One.", 1),
    ("Um, five?", 5),
    # fillers around the number
    ("about a six", 6),
    ("pretty low, maybe three", 3),
    ("a solid eight", 8),
    ("I'd say seven.", 7),
    ("I\u2019d say seven.", 7),  # curly apostrophe
    ("honestly like a two today", 2),
    ("a four, I guess", 4),
    ("I'm at a 3 right now.", 3),
    ("Hmm, five-ish I think.", 5),
    ("Seven, seven.", 7),
    # out of ten
    ("6 out of 10", 6),
    ("six out of ten", 6),
    ("5/10", 5),
    ("maybe a 2 out of 10", 2),
    ("10/10, great day!", 10),
    ("ten out of ten", 10),
    ("I had 2 meetings, so maybe 4 out of 10", 4),
    ("Three kids screaming all morning, so a 5 out of 10.", 5),
    # halves
    ("Seven and a half", 7.5),
    ("4.5", 4.5),
    ("six point five", 6.5),
    ("7½", 7.5),
    ("seven and a half out of ten", 7.5),
    ("6.8", 7),  # rounded to the nearest half
    # ranges give their mean
    ("six or seven", 6.5),
    ("six, maybe seven", 6.5),
    ("between 6 and 7", 6.5),
    ("6-7", 6.5),
    ("6 to 7", 6.5),
    ("six or maybe a seven", 6.5),
    ("six or seven out of ten", 6.5),
    ("six out of ten, maybe seven", 6.5),
    ("five or six, five or six.", 5.5),
    # the question echoed back
    ("On a scale of one to ten, I'd say a six.", 6),
    ("From 1 to 10? Probably 8.", 8),
    # normalisation
    ("\uff16", 6),  # fullwidth digit
    ("I'm a \uff18 out of \uff11\uff10", 8),
    # "one" that is not a number
    ("No one asked me all day, so a four.", 4),
    ("Someone was rude and I'm done, three.", 3),
    ("I feel alone, like a two.", 2),
]

NEGATIVE = [
    "",
    "   ",
    "I don't know",
    "not great",
    "I don't want to rate it",
    "I have two kids and one of them is sick",
    "out of 10",
    "zero",
    "0",
    "11",
    "15",
    "100",
    "a hundred",
    "eleven out of ten",
    "12 out of 10, amazing",
    "Sex out of ten",  # a mishearing is not guessed at
    "Three, no, eight.",  # a correction, not a range
    "two, five, nine",
    "I slept five hours",
    "It's been three days since I slept well",
    "No one cares.",
    "I'm done.",
    "between 8 and 12",
    "It's the 2nd time this week.",
]


@pytest.mark.parametrize(("text", "expected"), POSITIVE)
def test_parses_a_rating(text: str, expected: float) -> None:
    assert parse_mood(text) == expected


@pytest.mark.parametrize("text", NEGATIVE)
def test_no_rating(text: str) -> None:
    assert parse_mood(text) is None


def test_result_is_a_float() -> None:
    assert isinstance(parse_mood("six"), float)


@pytest.mark.parametrize(("value", "spoken"), [(6.0, "6"), (7.5, "7.5"), (6.5, "6.5"), (10.0, "10"), (1, "1")])
def test_describe(value: float, spoken: str) -> None:
    assert describe(value) == spoken


def test_describe_round_trips() -> None:
    for text, expected in POSITIVE:
        assert parse_mood(describe(expected)) == expected
