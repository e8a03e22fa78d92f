"""Cut a streaming reply into speakable sentences.

The first sentence goes to the voice while the model is still writing the
second, so the cut must happen as soon as a sentence is certainly over, and
long sentences are cut again at a comma or a space: Piper's time to first
audio grows with the sentence (0.26 s for a short one, 1.6 s for a long one).

>>> s = SentenceSplitter()
>>> s.feed("That sounds hard. What ")
['That sounds hard.']
>>> s.feed("happened next?")
[]
>>> s.flush()
['What happened next?']
"""

from __future__ import annotations

import re
import unicodedata

FIRST_CHARS = 16  # the first piece is cut at a clause break past this (see SentenceSplitter)
PHRASE_CHARS = 24  # or, with no clause break by then, before a word that begins a phrase past this
_ABBREVIATIONS = {"mr", "mrs", "ms", "dr", "st", "vs", "etc", "e.g", "i.e", "jr", "sr", "prof", "no"}
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s)")
_SOFT_BREAK = re.compile(r"[,;:—–](?=\s)")
# Words that begin a phrase (conjunctions, relative and question words, prepositions that start a
# phrase of their own). "to", "of", "like" and "so" are not among them: "kind | of foggy",
# "having | to work", "your younger self is | like you" and "has been | so draining" break what
# belongs together. Whole words only: the space after one shows it is over.
_PHRASE_START = re.compile(
    r"\s(?=(?:and|but|or|because|since|though|although|while|when|whenever|where|if|unless|until|"
    r"after|before|that|which|who|whom|whose|what|how|why|about|with|without|for|from|in|at)\s)",
    re.IGNORECASE)
# Nor after a word that needs what follows ("all of | that weight", "you were | in the car").
_BINDING = frozenset("of to like all be been being is are was were am very than a an the and but or so too "
                     "more most some any this these those my your his her our their its".split())
# Nor between a verb of saying or thinking and what was said: "You mentioned | that you need to
# speak at her wedding", "Your mom kept telling you | that" split the reflection from its content,
# which the reply's rules judge. The verb is looked for among the last three words.
_TELLING = frozenset(
    "say says said saying mention mentions mentioned mentioning tell tells told telling share shares shared "
    "sharing write writes wrote written writing explain explained explaining describe described describing "
    "admit admitted admitting ask asked asking wonder wondered wondering think thought thinking know knew "
    "feel felt feeling realize realized realise realised notice noticed noticing hope hoped wish wished "
    "worry worried believe believed remember remembered remind reminded hear heard hearing".split())
_WORD = re.compile(r"[\w'’]+")
_OPEN_QUOTE = re.compile(r"(?:^|(?<=\s))['‘]")  # a single quote after a space opens; "can't" does not
_CLOSE_QUOTE = re.compile(r"(?<=[\w.,!?])['’](?!\w)")
_MARKDOWN = re.compile(r"(\*\*|__|\*|`|^#+\s*|^\s*[-•]\s+)", re.MULTILINE)


_BOLD = re.compile(r"(?:\*\*|__)(.+?)(?:\*\*|__)")
_STAGE_DIRECTION = re.compile(r"\*[^*\n]{1,80}\*")
# A bracketed aside of four words or more: a small model echoing the app's notes to it
# ("(Step 3 of 4: they explore other interpretations.)"). A voice must not read those out.
_ASIDE = re.compile(r"[(\[][^()\[\]]*?\S+(?:\s+\S+){3,}[^()\[\]]*?[)\]]")


def _held_together(before: str) -> bool:
    """Whether text ending in ``before`` must not be cut from what follows (``_BINDING``, ``_TELLING``, quotes)."""
    if _in_quote(before):
        return True
    last = [w.strip("'’").lower() for w in _WORD.findall(before[-60:])[-3:]]
    return bool(last) and (last[-1] in _BINDING or any(w in _TELLING for w in last))


def _in_quote(text: str) -> bool:
    """Whether ``text`` ends inside a quotation: "...", “...”, ‘...’ or '...' (not an apostrophe)."""
    opens = len(_OPEN_QUOTE.findall(text)) + text.count("“")
    closes = len(_CLOSE_QUOTE.findall(text)) + text.count("”")
    return text.count('"') % 2 == 1 or opens > closes


def has_words(sentence: str) -> bool:
    """False for a "sentence" of punctuation alone ("…", "—"): nothing to say."""
    return any(c.isalnum() for c in sentence)


def speakable(text: str) -> str:
    """Text as it should be spoken: no markdown, stage directions, emoji or control characters."""
    text = _BOLD.sub(r"\1", text)
    text = _STAGE_DIRECTION.sub("", text)  # "*nods gently*": small models act; a voice should not
    text = _ASIDE.sub("", text)
    text = _MARKDOWN.sub("", text)
    kept = []
    for ch in text:
        cat = unicodedata.category(ch)
        if cat.startswith("C") and ch not in "\n\t":
            continue
        if cat == "So":  # emoji and pictographs: Piper would mangle them
            continue
        kept.append(ch)
    text = re.sub(r"\s+", " ", "".join(kept))
    return re.sub(r"\s+([,.!?;:])", r"\1", text).strip()


class SentenceSplitter:
    """Feed text as it streams; get back sentences as soon as they are over.

    The first piece is what the person waits for, so the first sentence is
    cut at its first clause break past ``first_chars`` characters: the voice
    starts on "The argument left you unheard," while the model writes on.
    (RealtimeTTS's fast first fragment does the same.) Each character the
    model must write first costs about 25 ms on two cores, and Piper's time
    to first audio grows with the piece too; a cut before ``first_chars``
    would speak a lone "Oh," or "You,". A first sentence with no clause
    break by ``phrase_chars`` is cut before the next word that begins a
    phrase ("Your boss took credit for your project | in all hands"), where
    a speaker may pause too.

    >>> s = SentenceSplitter()
    >>> s.feed("The argument left you unheard, and that hurts ")
    ['The argument left you unheard,']
    >>> SentenceSplitter().feed("Your boss took credit for your project in all ")
    ['Your boss took credit for your project']
    """

    def __init__(self, max_chars: int = 120, first_chars: int | None = None, phrase_chars: int | None = None):
        self.max_chars = max_chars
        self.first_chars = FIRST_CHARS if first_chars is None else first_chars
        self.phrase_chars = max(self.first_chars, PHRASE_CHARS if phrase_chars is None else phrase_chars)
        self._buf = ""
        self._emitted = False

    def feed(self, text: str) -> list[str]:
        self._buf += text
        out: list[str] = []
        while True:
            cut = self._find_cut()
            if cut is None:
                break
            sentence, self._buf = self._buf[:cut], self._buf[cut:]
            sentence = speakable(sentence)
            if sentence:
                out.append(sentence)
                self._emitted = True
        return out

    def unheard(self) -> None:
        """The piece just given was held back, not spoken: the next is still the first the person hears.

        So it too is cut early. A reply's first clause may name nothing the
        person said ("The moment you mentioned,") and wait for the rest of its
        sentence to; cut at the next break, the rest comes sooner.
        """
        self._emitted = False

    def flush(self) -> list[str]:
        rest, self._buf = self._buf, ""
        out = []
        # A reply may end with one long sentence and no trailing space.
        while len(rest) > self.max_chars:
            cut = self._long_cut(rest)
            out.append(rest[:cut])
            rest = rest[cut:]
        out.append(rest)
        return [s for s in (speakable(x) for x in out) if s]

    def _find_cut(self) -> int | None:
        buf = self._buf
        for m in _END.finditer(buf):
            if m.group().startswith(".") and self._is_abbreviation_or_number(buf, m.start()):
                continue
            if m.end() > self.max_chars:
                break
            return m.end()
        if not self._emitted and len(buf) > self.first_chars:
            # Never inside a quotation (its words are theirs, judged whole), nor where the words
            # before need what follows.
            for m in _SOFT_BREAK.finditer(buf):
                if m.end() >= self.first_chars and not _held_together(buf[: m.start()]):
                    return m.end()
            for m in _PHRASE_START.finditer(buf, self.phrase_chars):
                if not _held_together(buf[: m.start()]):
                    return m.start()
        if len(buf) > self.max_chars:
            return self._long_cut(buf)
        return None

    def _long_cut(self, buf: str) -> int:
        window = buf[: self.max_chars]
        soft = [m.end() for m in _SOFT_BREAK.finditer(window) if m.end() >= self.max_chars // 3]
        if soft:
            return soft[-1]
        space = window.rfind(" ")
        return space if space > self.max_chars // 3 else self.max_chars

    @staticmethod
    def _is_abbreviation_or_number(buf: str, dot: int) -> bool:
        word = re.search(r"([\w.]+)$", buf[:dot])
        if word is None:
            return False
        w = word.group(1).lower()
        if w in _ABBREVIATIONS:
            return True
        # "3." followed by "5" is a decimal; but the lookahead needs space, so
        # only single capital initials ("J. K.") remain to guard against.
        return len(w) == 1 and w.isalpha() and buf[dot - 1].isupper()
