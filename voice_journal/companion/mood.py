"""Read a spoken 1-10 mood rating out of a transcript.

The companion asks "On a scale of 1 to 10, how are you feeling right now?"
and :func:`parse_mood` turns Whisper's transcript of the answer into a
number, or ``None`` when the answer holds no rating::

    >>> parse_mood("Pretty low, maybe three.")
    3.0
    >>> parse_mood("Six or seven")
    6.5
    >>> parse_mood("I had 2 meetings, so maybe 4 out of 10")
    4.0
    >>> parse_mood("I have two kids and one of them is sick") is None
    True

What it accepts:

* digits and number words, with fillers around them: "6", "six", "a solid
  eight", "I'd say seven.", "Um, five?", "honestly like a two today";
* halves: "4.5", "seven and a half", "six point five", "7½" (other decimals
  are rounded to the nearest half);
* "out of 10", "out of ten", "/10": the number right before it is the rating
  and wins over any other number in the answer;
* a range of two numbers, joined by "or", "to", "and", "-", "between ... and",
  ", maybe": "six or seven", "6-7", "six, maybe seven" give the mean, 6.5;
* the question echoed back ("on a scale of one to ten, a six") is ignored.

What gives ``None``: no number at all; a number outside 1-10 (0, 11, 100,
"eleven out of ten"); two different numbers that are not a range ("three,
no, eight"); an answer that counts things ("two kids", "five hours") unless
it also says "out of 10"; "out of 10" with nothing before it. Mishearings
("Sex out of ten") are not guessed at: asking again beats logging a wrong
mood. "one" as a pronoun ("no one", "the one", "someone") is not a number.
"""

from __future__ import annotations

import math
import re
import unicodedata

__all__ = ["parse_mood", "describe"]

LOW, HIGH = 1.0, 10.0

# Words up to twenty, and "hundred", so that out-of-range answers ("eleven",
# "a hundred") are recognised as numbers and refused, not skipped over.
_WORDS = {
    "zero": 0, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5,
    "six": 6, "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11,
    "twelve": 12, "thirteen": 13, "fourteen": 14, "fifteen": 15,
    "sixteen": 16, "seventeen": 17, "eighteen": 18, "nineteen": 19,
    "twenty": 20, "hundred": 100,
}

# One number: digits (not part of "2nd", "4k" or "1,5") or a whole word
# (\b keeps "one" out of "someone", "ten" out of "often"), an optional half,
# an optional "-ish".
_NUMBER = re.compile(
    r"(?:(?<![\w.,])(?P<digits>\d+(?:\.\d+)?)|\b(?P<word>" + "|".join(_WORDS) + r"))"
    r"(?P<half>\s+and\s+a\s+half|\s+point\s+five)?"
    r"(?:-?ish)?(?![\w]|,\d)"
)

# "out of 10" after a number marks that number as the rating.
_OUT_OF_TEN = re.compile(r"\s*(?:out\s+of|outta|/)\s*(?:10|ten)\b(?!\.\d)")

# The question said back: "on a scale of 1 to 10", "from one to ten", "1-10".
# Nobody means 5.5 by it, so it is blanked before numbers are read.
_SCALE_ECHO = re.compile(
    r"(?:(?:on\s+)?(?:a\s+)?scale\s+(?:of\s+|from\s+)?|from\s+)?"
    r"\b(?:1|one|0|zero)\s*(?:to|-|–)\s*(?:10|ten)\b(?!\s*(?:out\s+of|outta|/))"
)

# What may stand between the two ends of a range: "6 or 7", "6 to 7",
# "between 6 and 7", "6-7", "six, maybe seven", "six or maybe a seven".
_JOIN = re.compile(
    r"\s*,?\s*(?:or(?:\s+maybe)?|to|and|maybe|-|–|—)\s*,?\s*(?:(?:a|an|like)\s+)?",
)

# A number followed by one of these counts things rather than rates a mood:
# "two kids", "five hours", "2 meetings", "one of them", "7 am".
_COUNTED = re.compile(
    r"[\s-]+(?:more\s+|other\s+|whole\s+|extra\s+|little\s+)?"
    r"(?:kids?|children|child|sons?|daughters?|bab(?:y|ies)|dogs?|cats?"
    r"|people|persons?|guys|friends?|things?|times?|meetings?|calls?|e-?mails?"
    r"|seconds?|minutes?|mins?|hours?|hrs?|days?|nights?|weeks?|months?|years?"
    r"|cups?|coffees?|drinks?|beers?|glasses|pills?|miles?|steps?"
    r"|dollars?|bucks|pounds?|percent|am|pm|a\.m\.|p\.m\.|o'?clock|of)\b"
)

# "one" used as a pronoun, not a count: "no one", "the one", "that one",
# "one another".
_PRONOUN_BEFORE = re.compile(
    r"\b(?:no|the|this|that|which|every|any|each|only|another|other|last|next"
    r"|right|wrong|same|little|big|good|bad)\s+$"
)
_PRONOUN_AFTER = re.compile(r"^\s+(?:another|way|more|by|after)\b")


def _normalise(text: str) -> str:
    # "½" becomes "1⁄2" under NFKC, so spell it out first; NFKC then turns
    # fullwidth "６" into "6"; curly apostrophes become straight ones.
    text = text.replace("½", " and a half")
    text = unicodedata.normalize("NFKC", text)
    text = text.replace("\u2019", "'").replace("\u2018", "'")
    return text.lower()


def _value(m: re.Match) -> float:
    n = float(m["digits"]) if m["digits"] else float(_WORDS[m["word"]])
    return n + 0.5 if m["half"] else n


def _to_half(x: float) -> float:
    # Halves are the finest step a spoken rating has; round half up.
    return math.floor(x * 2 + 0.5) / 2


def parse_mood(text: str) -> float | None:
    """The rating (1-10, halves allowed) in a spoken answer, or None when there is none."""
    if not text or not text.strip():
        return None
    t = _SCALE_ECHO.sub(" ", _normalise(text))

    numbers = [
        m for m in _NUMBER.finditer(t)
        if not (m["word"] == "one" and (_PRONOUN_BEFORE.search(t[: m.start()])
                                        or _PRONOUN_AFTER.match(t[m.end():])))
    ]

    # "N out of 10": N is anchored, and the 10 itself is not a candidate.
    suffixes = list(_OUT_OF_TEN.finditer(t))
    numbers = [m for m in numbers if not any(s.start() <= m.start() < s.end() for s in suffixes)]
    ends = {s.start() for s in suffixes}
    anchored = {i for i, m in enumerate(numbers) if m.end() in ends}

    def joined(i: int) -> bool:
        # True when numbers i and i+1 are the two ends of a range; an "out of
        # 10" between them is skipped ("six out of ten, maybe seven").
        gap = _OUT_OF_TEN.sub("", t[numbers[i].end(): numbers[i + 1].start()], count=1)
        return _JOIN.fullmatch(gap) is not None

    if anchored:
        # The anchored number wins; a range partner right next to it stays
        # ("six or seven out of ten"), every other number is dropped
        # ("I had 2 meetings, so maybe 4 out of 10").
        keep = set(anchored)
        for i in anchored:
            if i > 0 and joined(i - 1):
                keep.add(i - 1)
            if i + 1 < len(numbers) and joined(i):
                keep.add(i + 1)
        picked = sorted(keep)
    else:
        # Without "out of 10", an answer that counts things ("two kids",
        # "five hours") is telling a story, not giving a rating: refuse it
        # rather than log the wrong number.
        if any(_COUNTED.match(t[m.end():]) for m in numbers):
            return None
        picked = list(range(len(numbers)))

    values = [_value(numbers[i]) for i in picked]
    if not values or any(not LOW <= v <= HIGH for v in values):
        return None
    distinct = sorted(set(values))
    if len(distinct) == 1:
        return _to_half(distinct[0])
    # Two different numbers count only as a range ("six or seven"); anything
    # else ("three, no, eight", three or more numbers) is ambiguous.
    if len(distinct) == 2 and any(
        i + 1 in picked and values[k] != values[k + 1] and joined(i)
        for k, i in enumerate(picked[:-1])
    ):
        return _to_half(sum(distinct) / 2)
    return None


def describe(value: float) -> str:
    """A rating as said or shown: 6.0 -> "6", 7.5 -> "7.5"."""
    return f"{value:g}"
