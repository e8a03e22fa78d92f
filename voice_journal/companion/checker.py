"""Hold a reply to its mode's rules: how long it may be, and how many questions it may ask.

The prompt asks the model for a short reply with at most one question, and a
small model often writes two questions or runs on. Regenerating would make
the person wait twice, so the rules are applied to the reply as it streams:
a :class:`ReplyGate` sees each sentence before it is spoken and lets it
through, drops it, or ends the reply (the model is then stopped, which also
saves its time). One repair it makes rather than a cut: a reflection the
model wrote in the person's own first person ("I'm tired and a bit foggy")
is spoken turned to them ("You're tired and a bit foggy"), as a listener
would say it back. And a reply begins with what they said: an opener that
names none of their words ("Thank you for sharing that moment.") is left
out, and a reply of nothing else is asked for again, led in by their words
(:attr:`ReplyGate.needs_asking_again`, ``reply_grammar(led=True)``): the
one wait twice worth asking of someone who has just opened up.

>>> ReplyGate(ReplyRules()).spoken("So I'm tired and a bit foggy.")
"So you're tired and a bit foggy."

>>> gate = ReplyGate(ReplyRules(max_words=60, max_questions=1))
>>> gate.admit("That sounds like a long day.")
True
>>> gate.admit("What felt hardest about it?")
True
>>> gate.done  # one question asked: the reply ends on it
True

:func:`check` says what is wrong with a finished reply, for the evaluation.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

_WORD = re.compile(r"[\w'’-]+")
_ASIDE = re.compile(r"[(\[][^()\[\]]*?\S+(?:\s+\S+){3,}[^()\[\]]*?[)\]]")
_MARKUP = re.compile(r"(\*\*|__|^#+\s|^\s*[-•*]\s|^\s*\d+[.)]\s)", re.MULTILINE)


@dataclass(frozen=True)
class ReplyRules:
    """What a reply may be. ``max_questions`` 0: no questions at all (hold-space).

    ``advice``: whether the reply may advise (only when the person asked for it).
    ``last_question``: the question the companion asked last turn, not to be asked again.
    ``said``: the companion's earlier replies in this session, not to be said again word for word.
    ``theirs``: the stems of the turn's own words (:func:`their_words`); where there are any, the
    reply's first spoken sentence must name one of them (:func:`names_their_words`).
    ``others``: whom their turns may mean by "he", "she" or "they" (:func:`third_persons`), so that
    a pronoun with no one else to mean is heard as the person spoken of (:func:`speaks_of_them`).
    ``latin``: the reply is in English, so in Latin letters only (see :func:`reply_grammar`).
    """

    max_words: int = 60
    max_questions: int = 1
    advice: bool = False
    last_question: str | None = None
    said: tuple[str, ...] = ()
    theirs: frozenset[str] = frozenset()  # what they said, as word stems (see their_words): the reply names one first
    others: frozenset[str] | None = None  # of "he", "she", "they": those their turns may mean; None: not known
    latin: bool = False  # English: no letters of other scripts

    @property
    def sentences(self) -> int:
        """How many sentences the word limit holds, at about 17 spoken words each."""
        return max(1, self.max_words // 17)


# What a reply may look like, enforced while the embedded model writes it (a llama.cpp
# grammar): one paragraph of a few plain sentences (no line breaks, so no lists; no
# markdown, no bracketed stage directions), ending at its one question where a question
# is allowed, with none where none is. So no reply can hold a list or a second question.
# The gate below still keeps the length and the rest; for an Ollama model it is all there is.
_FIRST = r"[^?.!\n\r*#_`\[\]()<>{}|~0-9•\" -]"
_BODY = r"[^?.!\n\r*#_`\[\]()<>{}|~•]*"
# Beyond Latin letters and general punctuation: what an English reply has no use for. Qwen, a
# model trained on much Chinese, now and then wrote a word of it into an English reply ("facing
# in your日常", "each其他", a full-width "？"), about 1 reply in 100, and Piper read it out as noise.
_NOT_LATIN = r"\u0250-\u1fff\u2070-\uffff\U00010000-\U0010ffff"
# The same classes for an English reply; the escapes go right after "[^": after _FIRST's
# trailing "-" they would make a range.
_FIRST_LATIN, _BODY_LATIN = ("[^" + _NOT_LATIN + c[2:] for c in (_FIRST, _BODY[:-1]))


SENTENCE_CHARS = 160  # about 27 spoken words: a safety bound; the length note in the prompt asks for less


LEADS = ("You said ", "You mentioned ", "You're saying ")  # how a reply asked again begins: with their words


def reply_grammar(rules: ReplyRules, *, led: bool = False) -> str:
    """The GBNF grammar a reply under ``rules`` is written in (see above).

    Sentences of at most SENTENCE_CHARS, as many as the word limit holds at
    about 17 words each; where a question is allowed, it may take the last
    sentence's place (or be the whole reply). The bound is loose on purpose:
    one tight enough to hold the word limit (its share of it in characters)
    ended sentences mid-word ("watching Jeopard."); the gate keeps the limit.

    ``led``: the reply begins with one of :data:`LEADS`, a statement that
    goes on to say back what they said (a reply asked again, see
    :attr:`ReplyGate.needs_asking_again`).
    """
    most = rules.sentences
    more = ' (" " s)?' * (most - 2) if most > 1 else ""
    one = "l" if led else "o"
    if rules.max_questions:
        root = f'{one}{more} (" " (s | q))?' if most > 1 else one
        if not led:
            root += " | oq"  # a question may be the whole reply, but a reply asked again leads with their words
    else:
        root = f'{one}{more} (" " s)?' if most > 1 else one
    lead = " | ".join(f'"{x}"' for x in LEADS)
    first, body = (_FIRST_LATIN, _BODY_LATIN) if rules.latin else (_FIRST, _BODY[:-1])
    return (f"root ::= {root}\n"
            + (f'l ::= ({lead}) body [.!] ["\'”’)]?\n' if led else
               f'o ::= open body [.!] ["\'”’)]?\n'
               f'oq ::= open body "?" ["\'”’)]?\n'
               f"open ::= {_OPEN_LATIN if rules.latin else _OPEN}\n")
            + f's ::= first body [.!] ["\'”’)]?\n'
            f'q ::= first body "?" ["\'”’)]?\n'
            f"first ::= {first}\n"
            f"body ::= {body}{{0,{SENTENCE_CHARS}}}\n")


def _not_beginning(phrases: tuple[str, ...], first_class: str = _FIRST, body_class: str = _BODY[:-1]) -> str:
    """A grammar expression for a reply's first characters that never spell out one of ``phrases``.

    A trie, written out: at each character on the way to a phrase, either
    any other character (and the reply goes its own way), or that one and on.
    A whole phrase has no way on, not even into a longer word: let "The
    personal" through and the model writes "The personis angry", so a reply
    cannot begin "The personal" either.
    """
    def node(prefixes: list[str], first: bool) -> str:
        nexts = sorted({p[0] for p in prefixes if p})
        cls = "[^" + "".join(nexts) + (first_class if first else body_class)[2:]  # letters and spaces: no escapes
        ways = [cls]
        for c in nexts:
            rest = [p[1:] for p in prefixes if p[:1] == c]
            if "" not in rest:  # not yet the whole phrase
                ways.append(f'"{c}" ({node(rest, False)})')
        return " | ".join(ways)
    return node(list(phrases), True)


# Names only a third party would use for the person, not at a reply's start: "The person is
# expressing anger about their boss." is said about them, to someone else (see speaks_of_them).
NOT_OPENINGS = ("The person", "This person", "The user", "The speaker")
_OPEN = _not_beginning(NOT_OPENINGS)  # the same for every reply: written out once
_OPEN_LATIN = _not_beginning(NOT_OPENINGS, _FIRST_LATIN, _BODY_LATIN)


REPLY_GRAMMAR = reply_grammar(ReplyRules())  # the default rules' (60 words, one question)

# And never in the person's own first person: a small model copies "I fixed it by myself" or
# "my dad" instead of turning it to "you", and the person hears the companion claim their
# life. Where the backend allows it (llama.cpp), the tokens of "I" and "my" are never sampled
# (a grammar cannot do it: "I" begins "It", "If", "In", and a model held back from " I" writes
# "In" in its place). A reflection needs neither ("You fixed it yourself."), and what it must
# say of itself, that it is an AI, reads as well without ("You're talking with an AI
# companion."); the crisis message is fixed words. Elsewhere the gate turns them to "you".
FIRST_PERSON_TOKENS = ("I", " I", " i", "My", " My", " my", "my", " myself", "Myself", " Myself")

# Nor a canned opener before the reply: "Sure.", "Hey there!", "Oh that's lovely!", "Thank you
# for sharing". The person's words are what a reply begins with (the gate leaves out an opener
# that names none of them), so an opener only makes them wait for the reflection behind it.
# Without a space before them these tokens start the reply and nothing else (the grammar has
# no line breaks, and every later sentence's first word follows a space).
OPENER_TOKENS = ("Sure", "Hey", "Hello", "Hi", "Oh", "Okay", "Thank", "Thanks", "Wow", "Great", "Absolutely")


# Phrases that make a reply sound like a leaflet, not like someone who listened. The prompt
# asks for none; the gate leaves out a sentence that has one anyway.
STOCK_PHRASES = (
    "how does that make you feel", "how did that make you feel", "how do you feel about that",
    "it sounds like you're going through a lot", "it sounds like you are going through a lot",
    "i'm here for you", "i am here for you", "remember to be kind to yourself", "your feelings are valid",
    "it's okay to feel", "it is okay to feel", "it's important to acknowledge", "thank you for sharing",
    "i understand how you feel", "i can only imagine", "everything happens for a reason",
    "look on the bright side", "at least you", "you're not alone", "you are not alone",
    "as an ai", "as a language model", "i'm just an ai", "i'm sorry to hear that",
)
_STOCK = re.compile("|".join(re.escape(p).replace("'", "['’]?") for p in STOCK_PHRASES), re.IGNORECASE)


# The start of a stock phrase, as a piece of a sentence may end on it: its first three words or
# more, or two that begin nothing else a reflection says ("you are", "it is" and "your feelings"
# begin many; holding each would give back what the early cut gains).
_STOCK_PAIRS = ("thank you", "i'm here", "i'm sorry", "it's okay", "you're not", "as an", "i'm just")
_STOCK_STARTS = re.compile(
    r"\b(?:" + "|".join(re.escape(start).replace("'", "['’]?") for start in {
        *_STOCK_PAIRS, *(" ".join(p.split()[:k]) for p in STOCK_PHRASES for k in range(3, len(p.split())))})
    + r")\W*$", re.IGNORECASE)


def stock_start(piece: str) -> bool:
    """Whether ``piece`` ends on the start of a stock phrase ("..., thank you"), which its rest may finish."""
    return bool(_STOCK_STARTS.search(piece))


def other_script(sentence: str) -> bool:
    """Whether ``sentence`` has a letter beyond Latin ("your日常"): in an English reply, a slip of the model's."""
    return any(ord(c) >= 0x250 and unicodedata.category(c).startswith("L") for c in sentence)


def stock_phrase(sentence: str) -> str | None:
    """The stock phrase in a sentence, if it has one."""
    m = _STOCK.search(sentence)
    return m.group(0) if m else None


# A reflection said back in the person's own first person ("My mother-in-law is coming for two
# weeks", "I'm tired and a bit foggy"): a small model copies their words without turning them to
# "you", and the person hears the companion claim their life. The gate turns it to "you" where
# that is safe (:func:`turned_to_you`). What a companion says of itself in the first person
# ("I wonder", "I'm glad you told me", "my sense is") is left alone.
_OWN_VOICE = (r"(?:wonder|guess|suggest|recommend|say|mean|hope|know|understand|believe|feel\s+for|notice|noticed|"
              r"hear|heard|can|could|may|might|will|would|want\s+to\s+(?:ask|know|understand|check|stay|name)|imagine|"
              r"appreciate|admire|respect|see|sense|get\s+the\s+sense|think|love\s+that|just\s+want|"
              r"really\s+(?:hear|admire|appreciate)|"
              r"(?:'m|am)\s+(?:(?:just\s+|right\s+|still\s+|not\s+)?here|not\s+(?:sure|a)|an?\s+ai|"
              r"(?:so\s+|really\s+)?(?:glad|sorry)|struck|curious|listening|wondering|noticing|hearing|moved)|"
              r"'d\s+(?:suggest|say|encourage|gently|like|love)|'ll\s+(?:be|stay|listen))")
_MIRRORED = re.compile(rf"\b(?:i(?!\s*{_OWN_VOICE}\b)(?:'m|'ve|'d|'ll)?\b|my\b(?!\s+(?:guess|sense|hope|question|"
                       rf"pleasure|thought|view)\b))", re.IGNORECASE)
_QUOTED = re.compile(r'"[^"]*"|\u201c[^\u201d]*\u201d')  # their words in quotation marks are a quotation, not a claim


def speaks_as_them(sentence: str) -> bool:
    """Whether a sentence of the companion's is the person's own first person said back unturned."""
    return bool(_MIRRORED.search(_QUOTED.sub("", sentence).replace("’", "'")))


# The person spoken of instead of to: "The person said that if they say no to their sister...",
# "They just mentioned how long they have been sober." A small model that reads the app's notes
# about them ("they named something...") takes the person for someone else in the room, and the
# person hears themselves discussed. Three plain signs, each held back where it could mean
# someone in their story, since a good reflection wrongly left out costs more than a miss:
# - a name only a third party would use, as the subject: "the person is...", "the user's";
# - a third person reporting what was just said ("they mentioned", "she shared") where their
#   turns neither used that pronoun nor reported anyone's words ("mom told me...");
# - a sentence that begins "They" and never says "you", where their turns had no "they" and no
#   group ("my parents", "everyone at work") for it to mean.
_OF_THE_PERSON = re.compile(
    r"\b(?:the|this)\s+(?:person|user|speaker|writer|journaler|individual)(?:'s\b|\s+(?:\w+ly\s+)?"
    r"(?:is|was|has|had|can|could|will|would|might|may|must|should|does|did|said|told|felt|thought|knew|went|"
    r"got|made|took|kept|spent|lost|left|found|came|saw|heard|began|\w+ed|\w+s)\b)", re.IGNORECASE)
_FAMILIES = {"they": ("they", "them", "their", "theirs", "themselves", "themself", "theyre", "theyve", "theyd",
                      "theyll"),
             "he": ("he", "him", "his", "himself", "hes", "hed", "hell"),
             "she": ("she", "her", "hers", "herself", "shes", "shed", "shell")}
_FAMILY = {w: head for head, family in _FAMILIES.items() for w in family}
_REPORTS = re.compile(
    r"\b(they|he|she)(?:'s|'re|'ve)?(?:\s+(?:has|have|had|are|is|was|were|been)){0,2}\s+(?:just\s+|also\s+|already\s+)?"
    r"(?:mention(?:ed|s|ing)?|shar(?:ed|es|ing)|(?:told|tells?|telling)\s+(?:you|me|us)|talk(?:ed|s|ing)\s+about|"
    r"describ(?:ed|es|ing)|express(?:ed|es|ing)|(?:said|says|saying)\s+that|opened\s+up|journal(?:ed|led|ing))\b",
    re.IGNORECASE)
_SPOKE = re.compile(r"\b(?:said|says|say|told|tells|asked|asks|mentioned|mentions|texted|called|wrote|shared|yelled|"
                    r"goes|went\s+like)\b", re.IGNORECASE)  # someone in their story said something
_GROUP = re.compile(r"\b(?:(?:my|our|the|these|those|all|both|two|three|some|his|her|their|your)\s+(?:\w+\s+)?\w{3,}s|"
                    r"everyone|everybody|people|folks|family|team|kids|guys|parents|friends)\b", re.IGNORECASE)
_BEGINS_THEY = re.compile(r"^\W*(?:they|their|them)\b", re.IGNORECASE)


def third_persons(text: str) -> frozenset[str]:
    """Whom ``text`` may mean by "he", "she" or "they": some of the three.

    A pronoun they used; "they" for a group they named ("my parents"); all
    three where they reported someone's words ("my aunt said...").
    """
    said = (w.lower().replace("’", "'").replace("'", "") for w in _WORD.findall(text))
    found = {_FAMILY[w] for w in said if w in _FAMILY}
    if _GROUP.search(text):
        found.add("they")
    if _SPOKE.search(text):
        found |= set(_FAMILIES)
    return frozenset(found)


def speaks_of_them(sentence: str, others: frozenset[str] | None = None) -> bool:
    """Whether a sentence speaks of the person in the third person instead of to them.

    ``others``: whom their own turns may mean by a third person (:func:`third_persons`);
    None where that is not known, and then only "the person" and its like count.
    """
    plain = _QUOTED.sub("", sentence).replace("’", "'")
    if _OF_THE_PERSON.search(plain):
        return True
    if others is None:
        return False
    if any(_FAMILY[m.group(1).lower()] not in others for m in _REPORTS.finditer(plain)):
        return True
    return "they" not in others and bool(_BEGINS_THEY.search(plain)) and not _SECOND_PERSON.search(plain)


_FIRST_PERSON = re.compile(r"\b(?:i(?:'m|'ve|'d|'ll)?|my)\b", re.IGNORECASE)
_SECOND_PERSON = re.compile(r"\b(?:you|your|yours|yourself|you're|you've|you'd|you'll)\b", re.IGNORECASE)
# The person's first person as the companion says it back. Longest forms first: "I am" before "I".
_TURNS = [(re.compile(rf"\b{a}\b", re.IGNORECASE), b) for a, b in [
    (r"am\s+i", "are you"), (r"was\s+i", "were you"), (r"i\s+am", "you are"), (r"i\s+was", "you were"),
    (r"i\s+wasn'?t", "you weren't"), (r"i'm", "you're"), (r"i've", "you've"), (r"i'd", "you'd"), (r"i'll", "you'll"),
    (r"i", "you"), (r"me", "you"), (r"myself", "yourself"), (r"mine", "yours"), (r"my", "your"),
]]


def turned_to_you(sentence: str) -> str | None:
    """Their first person said back turned to "you" (a simple reflection), or None where that is unsafe.

    "So I'm tired and a bit foggy." becomes "So you're tired and a bit foggy.".
    A sentence that also says "you", or holds the companion's own "I" ("I
    wonder if my mother..."), cannot be turned without guessing who is who.
    """
    plain = _QUOTED.sub("", sentence)
    straight = plain.replace("’", "'")
    if _SECOND_PERSON.search(straight) or len(_FIRST_PERSON.findall(straight)) != len(_MIRRORED.findall(straight)):
        return None
    curly = "’" in plain
    out = sentence.replace("’", "'") if curly else sentence
    for pattern, turn in _TURNS:
        out = pattern.sub(lambda m: _cased(m, turn, out), out)
    out = out.replace("'", "’") if curly else out
    return None if speaks_as_them(out) else out


def _cased(m: re.Match, turn: str, text: str) -> str:
    """The turned words with a capital where the first person had one ("My" -> "Your", "I" first -> "You")."""
    said = m.group(0)
    pronoun_first = said[:1] in "Ii" and (len(said) == 1 or not said[1].isalpha())  # "I", "I'm", "I am"
    capital = not text[: m.start()].strip(" \"“(") if pronoun_first else said[0].isupper()
    return turn[0].upper() + turn[1:] if capital else turn


_CONTENT = re.compile(r"[a-z']{3,}")
_SMALL = {"what", "how", "you", "your", "that", "this", "the", "and", "about", "was", "were", "are", "did",
          "does", "for", "with", "can", "could", "would", "there", "have", "has", "any", "some", "most"}


def _plain(text: str) -> str:
    return " ".join(re.findall(r"[a-z0-9']+", text.lower().replace("’", "'")))


def said_before(sentence: str, said: tuple[str, ...]) -> bool:
    """Whether a sentence of five words or more was already said, word for word, in ``said``."""
    plain = _plain(sentence)
    return len(plain.split()) >= 5 and any(plain in _plain(earlier) for earlier in said)


def same_question(a: str, b: str | None) -> bool:
    """Whether question ``a`` asks again what ``b`` asked (most of its words are the same)."""
    if not b:
        return False
    wa = {w for w in _CONTENT.findall(a.lower()) if w not in _SMALL}
    wb = {w for w in _CONTENT.findall(b.lower()) if w not in _SMALL}
    if not wa or not wb:
        return a.strip().lower() == b.strip().lower()
    return len(wa & wb) / min(len(wa), len(wb)) >= 0.75


# Advice, as small models give it unasked: "you should", "try to", "it might help to", and
# sentences that open with an instruction ("Take a deep breath.", "Reach out to a friend.").
_ADVICE = re.compile(
    r"\b(?:you\s+(?:should|ought\s+to|need\s+to|must|could\s+try|might\s+try|may\s+want\s+to|might\s+want\s+to)|"
    r"try\s+to|i\s+(?:would\s+)?(?:suggest|recommend|encourage\s+you)|"
    r"it\s+(?:might|may|could|would|can)\s+(?:help\s+to|be\s+(?:helpful|useful|worth|a\s+good\s+idea))|it\s+helps\s+to|"
    r"it(?:'?s|\s+is)\s+(?:important|helpful|a\s+good\s+idea)\s+to\s+(?!you\b|me\b|him\b|her\b|them\b|us\b)|"
    r"(?:^|\b(?:just|please|and|so)\s+)make\s+sure\s+(?:you|to)|remember\s+to|don'?t\s+forget\s+to|have\s+you\s+(?:tried|considered)|"
    r"consider\s+\w+ing|one\s+thing\s+you\s+(?:can|could|might))\b"
    r"|^(?:try|consider|reach\s+out|focus\s+on|practi[cs]e|take\s+(?:a|some)\s+(?:moment|time|deep|break|walk)|"
    r"make\s+time|set\s+aside|write\s+down|talk\s+to)\b",
    re.IGNORECASE,
)


# Their own question, said back, is not advice: "you're wondering whether you should quit".
_REPORTED = re.compile(
    r"\b(?:ask(?:ed|ing)?|wonder(?:ed|ing)?|not\s+sure|unsure|(?:don'?t|didn'?t|do\s+not)\s+know|"
    r"decid(?:e|ed|ing)|torn\s+(?:about|between))(?:\s+\w+){0,2}?\s+(?:if|whether|what|when|how)\s+"
    r"you\s+(?:should|ought\s+to|need\s+to|must)\b",
    re.IGNORECASE,
)


def is_advice(sentence: str) -> bool:
    return bool(_ADVICE.search(_REPORTED.sub("", sentence.strip().replace("’", "'"))))


def words(text: str) -> int:
    return len(_WORD.findall(text))


def is_question(sentence: str) -> bool:
    return sentence.rstrip(" \"'”’)").endswith("?")


# A reflection names something of what the person said: "your twins' bath time", "moving back
# home". An opener that names nothing of theirs ("Thank you for sharing that moment.", "Oh!",
# "They are trying to balance their desire...") is what a person hears as not listened to. The
# test is deliberately plain, their content words by stem, so that it can run on every
# sentence as it streams: a paraphrase ("your father" for "dad") does not count, and the cost of
# that miss is a reply asked again (see session.speaker), not a reply lost.
_NOT_THEIRS = frozenset("""
a about above after again against all also am an and any are aren't as at be because been before
being below between both but by can can't cannot could couldn't did didn't do does doesn't doing
don't dont down during each few for from further had hadn't has hasn't have haven't having he he'd
he'll he's her here here's hers herself him himself his how how's i i'd i'll i'm i've if in into is
isn't it it's its itself let's me more most mustn't my myself no nor not of off on once only or
other ought our ours ourselves out over own same shan't she she'd she'll she's should shouldn't so
some such than that that's the their theirs them themselves then there there's these they they'd
they'll they're they've this those through to too under until up very was wasn't we we'd we'll
we're we've were weren't what what's when when's where where's which while who who's whom why
why's will with won't would wouldn't you you'd you'll you're you've your yours yourself yourselves
im ive id ill youre theyre thats whats its cant wont didnt doesnt isnt wasnt
um uh uhm hmm mm er erm ah oh okay ok yeah yes yep nope like just really actually basically
literally kinda sorta gonna wanna gotta guess mean know think feel feels felt feeling thing things
stuff something anything everything nothing lot lots bit kind sort way much many get got getting
go going goes went make made say said tell told want wanted need right well even still maybe
probably pretty quite sure today now day time one two back new seem seems look looks sound sounds
""".split())
_STEM = re.compile(r"(?:ies|ing|ers|er|ed|es|ly|s)$")


def _stem(word: str) -> str:
    word = word.lower().replace("’", "'").removesuffix("'s").replace("'", "")
    if word.endswith("ies") and len(word) > 4:
        return word[:-3] + "y"  # babies: baby
    stem = _STEM.sub("", word)
    return stem if len(stem) >= 3 else word


def _content(word: str) -> str | None:
    """The stem of a content word; None for a function word, a filler or a number ("knows" is "know")."""
    if word.isdigit() or word.lower().replace("’", "'") in _NOT_THEIRS:
        return None
    stem = _stem(word)
    return None if stem in _NOT_THEIRS else stem


def their_words(text: str, *, least: int = 2) -> frozenset[str]:
    """The stems of the content words in ``text``; none where it has fewer than ``least``.

    "i dont know" or "yeah" names nothing a reply could say back, so it asks
    for nothing (an empty set: the reflection rule is off for that turn).
    """
    stems = frozenset(s for w in _WORD.findall(text) if (s := _content(w)))
    return stems if len(stems) >= least else frozenset()


def names_their_words(sentence: str, theirs: frozenset[str]) -> bool:
    """Whether ``sentence`` names one of ``theirs`` (a stem, or one stem the start of the other)."""
    for w in _WORD.findall(sentence):
        if not (stem := _content(w)):
            continue
        if stem in theirs or (len(stem) >= 4 and any(len(t) >= 4 and (t.startswith(stem) or stem.startswith(t))
                                                      for t in theirs)):
            return True
    return False


def _ends_sentence(piece: str) -> bool:
    return piece.rstrip(" \"'”’)]").endswith((".", "!", "?", "…"))


class ReplyGate:
    """Decides, sentence by sentence, what of a streaming reply is spoken."""

    def __init__(self, rules: ReplyRules):
        self.rules = rules
        self.words = 0
        self.questions = 0
        self.kept = 0
        self.trimmed = False  # something the model wrote was not spoken
        self.done = False  # nothing more will be admitted: stop the model
        self.reflected = False  # a sentence that names their words was spoken
        self.unreflected = 0  # openers left out for naming nothing of theirs
        self._held = ""  # a sentence's first piece, until the rest says whether it names them (or is stock)
        self._skipping = False  # a piece of a sentence was left out: so is the rest of that sentence
        self._begun = ""  # the pieces of a sentence already spoken, until its end
        self._kept_back = False  # the piece just judged was held back, not left out
        self._first_said = False  # the reply's first sentence was spoken to its end (or cut short, once begun)

    def admit(self, sentence: str) -> bool:
        """Whether ``sentence`` is spoken (perhaps turned, see :meth:`spoken`)."""
        return self.spoken(sentence) is not None

    def spoken(self, sentence: str) -> str | None:
        """What is spoken of ``sentence``: itself, their first person turned to "you", or None.

        The splitter may hand over a long sentence in pieces (for the voice's
        sake); once one piece is left out, so is the rest of its sentence, so
        that no fragment ("honestly.") is spoken on its own.
        """
        ends = _ends_sentence(sentence)
        if self._skipping:
            self._skipping = not ends
            if ends:  # a sentence begun aloud and then cut short was still said
                self._first_said = self._first_said or bool(self._begun)
                self._begun = ""
            self.trimmed = True
            return None
        self._kept_back = False
        said = self._judged(sentence)
        if said is None and not self._kept_back:
            self._held = ""  # a piece left out takes the start of its sentence, held back, with it
            self._skipping = not ends
        if said is not None:
            self._begun = "" if ends else f"{self._begun} {said}".strip()
            self._first_said = self._first_said or ends
        elif ends:
            self._begun = ""
        return said

    def _judged(self, sentence: str) -> str | None:
        if self.done:
            self.trimmed = True
            return None
        if speaks_as_them(sentence):
            turned = turned_to_you(sentence)
            self.trimmed = True  # their "I" in the companion's mouth: turned to "you", or left out
            if turned is None:
                return None
            sentence = turned
        n = words(sentence)
        # A piece is judged with its sentence so far, as it is heard.
        so_far = " ".join(x for x in (self._begun, self._held, sentence) if x)
        if self._unfit(sentence, so_far):
            self.trimmed = True  # left out; what else the reply says may stand
            return None
        if not _ends_sentence(sentence) and stock_start(so_far):
            # "You're welcome, thank you" may go on "for sharing": held until its sentence says.
            self._held, self._kept_back = f"{self._held} {sentence}".strip(), True
            return None
        if self.rules.theirs and not self.reflected:
            whole, self._held = f"{self._held} {sentence}".strip(), ""
            if not names_their_words(whole, self.rules.theirs):
                if not _ends_sentence(sentence):
                    self._held, self._kept_back = whole, True  # a first piece: its rest may name them
                    return None
                # A reply begins with what they said. An opener that names none of it is left
                # out; after two, the reply is over, to be asked again (see needs_asking_again).
                self.trimmed = True
                self.unreflected += 1
                self.done = self.unreflected >= 2
                return None
            self.reflected = True
            sentence, n = whole, words(whole)
        elif self._held:
            sentence, self._held = f"{self._held} {sentence}", ""
            n = words(sentence)
        if self.kept and not (self._begun and not self._first_said) and self.words + n > self.rules.max_words:
            # The first sentence always goes, all of it once begun (a reply must say something);
            # after it, the reply ends on the last whole sentence that fits.
            self.trimmed = self.done = True
            return None
        if is_question(sentence):
            asked = f"{self._begun} {sentence}".strip()
            if self.questions >= self.rules.max_questions or same_question(asked, self.rules.last_question):
                self.trimmed = True
                # With questions allowed, a second one ends the reply (it belongs at the end);
                # where none are allowed, a statement may still follow.
                self.done = self.rules.max_questions > 0
                return None
            self.questions += 1
            if self.questions >= self.rules.max_questions:
                self.done = True  # the question closes the reply
        self.words += n
        self.kept += 1
        return sentence

    def _unfit(self, piece: str, so_far: str) -> bool:
        """Whether ``piece`` says what no reply may, judged by ``so_far``, its sentence up to it.

        "that you need to speak at her wedding" is advice alone, and need not
        be after "So your sister mentioned"; "sounds so heavy." is said before
        only after "Your week at work".
        """
        return ((not self.rules.advice and is_advice(so_far))  # unasked advice
                or stock_phrase(so_far)  # a leaflet's line
                or (self.rules.latin and other_script(piece))  # Ollama has no grammar to keep one script
                or said_before(so_far, self.rules.said)  # a small model may say an earlier reply again
                or speaks_of_them(so_far, self.rules.others))  # "The person said...": discussed, not spoken to

    @property
    def holding(self) -> bool:
        """A piece is held until the rest of its sentence says whether it names their words, or is stock."""
        return bool(self._held)

    def said_first(self, text: str) -> None:
        """``text`` was said before the model's words (a fixed answer): it is the reply's first sentence."""
        self.words, self.kept, self._first_said = words(text), 1, True

    def finish(self) -> None:
        """The model is done: a piece still held never found the rest of its sentence, and is not said."""
        if self._held:
            self._held = ""
            self.trimmed = True
            self.unreflected += bool(self.rules.theirs) and not self.reflected

    @property
    def needs_asking_again(self) -> bool:
        """Nothing was spoken, and there is something of theirs to say back: worth one more try, led in.

        Whatever left the reply empty (openers that name nothing of theirs, a
        reply all advice), a reply that begins with their words is better
        than a fixed line.
        """
        return not self.kept and bool(self.rules.theirs)


def check(text: str, rules: ReplyRules) -> list[str]:
    """What a finished reply breaks of ``rules``: an empty list when it keeps them."""
    from ..speech.sentences import SentenceSplitter

    problems = []
    n = words(text)
    if n > rules.max_words:
        problems.append(f"{n} words (at most {rules.max_words})")
    if n == 0:
        problems.append("empty")
    splitter = SentenceSplitter(max_chars=10_000, first_chars=10_000)
    sentences = [*splitter.feed(text + " "), *splitter.flush()]
    q = sum(is_question(s) for s in sentences)
    if q > rules.max_questions:
        problems.append(f"{q} questions (at most {rules.max_questions})")
    if not rules.advice and any(is_advice(s) for s in sentences):
        problems.append("advice, unasked")
    stock = [p for s in sentences if (p := stock_phrase(s))]
    if stock:
        problems.append(f"a stock phrase ({stock[0].lower()})")
    if rules.latin and other_script(text):
        problems.append("letters of another script")
    if any(is_question(s) and same_question(s, rules.last_question) for s in sentences):
        problems.append("the question of the last turn again")
    if any(said_before(s, rules.said) for s in sentences):
        problems.append("said before in this session")
    if any(speaks_as_them(s) for s in sentences):
        problems.append("their words in the first person")
    if any(speaks_of_them(s, rules.others) for s in sentences):
        problems.append("speaks of them, not to them")
    if _ASIDE.search(text):
        problems.append("a bracketed note")
    if _MARKUP.search(text):
        problems.append("markdown or a list")
    return problems


def trim(text: str, rules: ReplyRules) -> str:
    """A finished reply cut to the rules, as the gate would have spoken it."""
    from ..speech.sentences import SentenceSplitter

    splitter = SentenceSplitter(max_chars=10_000, first_chars=10_000)
    gate = ReplyGate(rules)
    return " ".join(t for s in [*splitter.feed(text + " "), *splitter.flush()] if (t := gate.spoken(s)) is not None)
