"""Layer (a) of the crisis net: a deterministic list of what is unambiguous.

It costs nothing, answers the same every time, and cannot be talked out of
noticing. :func:`assess` reads one turn's words and says::

    >>> assess("Some days I think everyone would be better off without me.")
    Assessment(level='crisis', reasons=('better off without me',), category='ideation', layer='rules')
    >>> assess("This job is killing me.")
    Assessment(level='none', reasons=(), category='', layer='rules')

It stays quiet on idioms ("this job is killing me"), accidents ("I cut
myself chopping onions"), grief for someone else and the news. A list of
words cannot generalise to new wording: the semantic layer
(:mod:`.semantic`) is what catches the rest; this list is its floor.
"""

from __future__ import annotations

import re
import unicodedata
from .levels import Assessment

NONE_RULES = Assessment("none", layer="rules")

# Each reason's category (see levels.Assessment): C-SSRS steps for a crisis, the kind of worry for a concern.
CATEGORY = {
    "suicidal thoughts": "ideation", "better off without me": "ideation", "self-harm": "self_harm",
    "a plan": "plan", "an overdose": "attempt", "the means": "preparatory", "goodbye behaviour": "goodbye",
    "hopelessness": "hopelessness", "feeling a burden": "burden", "feeling worthless": "worthless",
    "wanting to disappear": "isolation", "nobody would care": "isolation", "trapped": "trapped",
    "not eating": "self_harm", "thinking about death": "ideation", "self-harm in the past": "past_self_harm",
}

# Words that put a self-harm verb in the past or in recovery: worth a gentle check-in, not an alarm.
_PAST = r"(?:used\s+to|when\s+i\s+was|years?\s+ago|as\s+a\s+(?:teen(?:ager)?|kid|child)|in\s+high\s+school|" \
        r"haven'?t|have\s+not|hadn'?t|stopped|(?:days|weeks|months|years)\s+(?:clean|free|since))"
# An accident, not an act: "I burned myself on the stove".
_ACCIDENT = r"(?:accident|by\s+mistake|shaving|cooking|chopping|cutting\s+(?:onions?|vegetables|bread)|" \
            r"on\s+the\s+(?:stove|oven|iron|stairs|pan|kettle)|at\s+the\s+gym|lifting|running|playing|" \
            r"gardening|slipped|tripped|fell|falling|paper\s+cut)"
_SELF_VERB = r"(?:cut|cutting|burn|burning|burned|burnt|hurt|hurting|harm|harming|hit|hitting)"
_KILL = r"(?:kill|killing|killed|hang|hanging|hanged|drown|drowning|shoot|shooting|shot|poison|poisoning|off)"
# "My therapist asked if I'd had thoughts of ending my life": a question put to them, not a disclosure
# (their answer, yes or no, is what the semantic layer reads).
_ASKED = re.compile(r"\b(?:asked|asks|asking|ask)\s+(?:me\s+|us\s+)?(?:if|whether)\b")
# The subject of the words just before a match: "he has a plan ... and has been saving pills" is not
# about the speaker, whatever the pattern's words.
_OTHERS = {"he", "she", "they", "he's", "she's", "they're", "they've", "his", "her", "their", "him", "them",
           "himself", "herself", "themselves"}
_SUBJECT = re.compile(r"\b(?:%s)\b" % "|".join(["i", "i'm", "i've", "i'd", "i'll", "me", "myself", *sorted(_OTHERS)]))
# "I would never kill myself", "I'm not going to hurt myself": said to reassure, not to disclose.
_NEGATED = re.compile(r"\b(?:never|not|\w+n't|cannot|dont|wouldnt|no\s+way\s+(?:i'?d|i\s+would))(?:\s+\w+){0,2}\s*$")

# (reason, pattern) pairs; each pattern names its own first-person subject, so that
# "my brother killed himself" or "a man took his own life" never matches.
_CRISIS: list[tuple[str, str]] = [
    ("suicidal thoughts", rf"\b{_KILL}\s+myself\b(?!\s+(?:laughing|with\s+laughter))"),
    ("suicidal thoughts", r"\b(?:kms|kys\s+myself|unalive\s+(?:myself|me)|unaliving\s+myself|sewer\s?slide|"
                          r"sui\s?slide)\b"),
    ("suicidal thoughts", r"\b(?:end|ending|take|taking)\s+my\s+(?:own\s+)?life\b(?!\s+(?:back|in(?:to)?\s+my))"),
    ("suicidal thoughts", r"\b(?:i'?m|i\s+am|i\s+feel|i\s+felt|i\s+was|i'?ve\s+been|i\s+have\s+been|feeling|having|"
                          r"i\s+get|i'?ve\s+had|i\s+have)\s+(?:\w+\s+){0,2}suicidal\b"),
    ("suicidal thoughts", r"\bi\s+(?:\w+\s+){0,3}(?:commit|attempt|attempted|tried|try)\s+(?:to\s+commit\s+)?suicide\b"),
    ("suicidal thoughts", r"\b(?:the|my)\s+suicidal\s+(?:thoughts|feelings|urges|ideation)\s+(?:are|is|have\s+been|"
                          r"came|come|keep|started|start)\s+(?:\w+\s+)?(?:back|again|coming|louder|worse|stronger)\b"),
    ("suicidal thoughts", r"\b(?:i|i'?m|i'?ll|i'?d|me)\b[^.!?]{0,30}\bend\s+it\s+all\b"),
    ("suicidal thoughts", r"\b(?:want|wanted|need)\s+(?:it\s+all|everything|the\s+pain|my\s+life)\s+to\s+(?:stop|end)\b"),
    ("suicidal thoughts", r"\b(?:thinking|thought|think)\s+(?:a\s+lot\s+)?about\s+(?:suicide|killing\s+myself|"
                          r"not\s+being\s+(?:here|alive|around)|ending\s+it|disappearing\s+for\s+good)\b"),
    ("suicidal thoughts", r"\b(?:i|i'?d)\s+(?:\w+\s+){0,2}(?:want|wanted|wanna|need|would\s+like|wish\s+i\s+could)"
                          r"\s+(?:to\s+)?die\b(?!\s+(?:of|from|laughing|a\s+little))"),
    ("suicidal thoughts", r"\b(?:don'?t|do\s+not|no\s+longer|not\s+sure\s+(?:if\s+)?i|never)\s+(?:\w+\s+)?"
                          r"want\s+to\s+(?:live|be\s+alive|be\s+here|exist|wake\s+up|go\s+on|keep\s+going)\b"),
    ("suicidal thoughts", r"\b(?:wish|wishing|hope|hoping)\s+(?:that\s+)?i\s+(?:was|were|could\s+be|'?d\s+be|would\s+be)"
                          r"\s+dead\b"),
    ("suicidal thoughts", r"\b(?:wish|wishing)\s+i\s+(?:had\s+never\s+been|was\s+never|were\s+never|'?d\s+never\s+been)"
                          r"\s+born\b"),
    ("suicidal thoughts", r"\b(?:go\s+to\s+sleep|fall\s+asleep|sleep)\s+and\s+(?:never|not)\s+wake\s+up\b"),
    ("suicidal thoughts", r"\b(?:hope|hoping|wish)\s+i\s+(?:don'?t|do\s+not|won'?t|never)\s+wake\s+up\b"),
    ("suicidal thoughts", r"\bno\s+(?:reason|point)\s+(?:to|in)\s+(?:live|living|being\s+alive|staying\s+alive|"
                          r"going\s+on|go\s+on\s+living|keep\s+living)\b"),
    ("suicidal thoughts", r"\b(?:i'?d|i\s+would|i\s+am|i'?m)\s+(?:\w+\s+)?better\s+off\s+dead\b"),
    ("better off without me", r"\b(?:better\s+off|happier|easier)\s+(?:\w+\s+){0,2}without\s+me\b"),
    ("suicidal thoughts", r"\b(?:can'?t|cannot)\s+(?:\w+\s+)?go\s+on\s+living\b"),
    ("self-harm", rf"\b(?:want|wanted|wanna|need|urge|urges|tempted|thinking\s+about|thought\s+about|going\s+to|"
                  rf"gonna|might|feel\s+like|felt\s+like|started|keep|kept|been|used)\s+(?:to\s+)?{_SELF_VERB}\s+myself\b"),
    ("self-harm", rf"\bi\s+(?:\w+\s+)?{_SELF_VERB}\s+myself\b"),
    ("self-harm", r"\bself[-\s]?harm(?:ing|ed)?\b"),
    ("self-harm", r"\b(?:been|started|start|keep|kept|went\s+back\s+to|i)\s+(?:cutting|cut)\s+again\b"),
    ("self-harm", r"\b(?:relapsed?|relapsing)\b[^.!?]{0,30}\b(?:cutting|self[-\s]?harm|hurting\s+myself)\b"),
    ("a plan", r"\b(?:i|i'?ve)\s+(?:\w+\s+){0,2}(?:a|the)\s+plan\s+(?:to|for\s+how\s+to)\s+(?:die|end|kill|do\s+it)\b"),
    ("a plan", r"\b(?:saving|saved|stockpiling|stockpiled|hoarding|hoarded|collecting|collected)\s+(?:up\s+)?"
               r"(?:my\s+|all\s+my\s+|the\s+)?(?:pills|tablets|meds|medication|sleeping\s+pills)\b"),
    ("a plan", r"\bhow\s+many\s+(?:pills|tablets|sleeping\s+pills)\b[^.!?]{0,40}\b(?:take|kill|die|enough|would\s+it)\b"),
    ("a plan", r"\b(?:looked|looking|look)\s+up\s+(?:how|ways)\s+to\s+(?:die|kill\s+myself|end\s+it|overdose)\b"),
    ("a plan", r"\b(?:researching|googled|googling|searched|searching)\s+(?:for\s+)?(?:how|ways)\s+to\s+"
               r"(?:die|kill\s+myself|end\s+it|overdose)\b"),
    ("a plan", r"\b(?:i|i'?m|i'?ll|i'?d)\s+(?:\w+\s+){0,3}(?:overdose|o\.?d\.?)\b(?!\s+on\s+(?:coffee|sugar|tv))"),
    ("a plan", r"\b(?:take|swallow|taking|swallowing)\s+(?:all|every\s+one)\s+(?:of\s+)?(?:my|the|those|these)\s+"
               r"(?:pills|tablets|meds)\b"),
    ("an overdose", r"\b(?:took|take|taken|taking|swallowed)\s+(?:too\s+many|way\s+too\s+many|a\s+(?:bunch|handful|lot)"
                    r"\s+of)\s+(?:my\s+|the\s+)?(?:pills|tablets|meds|painkillers|sleeping\s+pills)\b"),
    ("a plan", r"\b(?:jump|jumping|throw\s+myself)\s+(?:off|from)\s+(?:a|the|that)\s+(?:bridge|roof|building|"
               r"cliff|balcony|overpass)\b"),
    ("a plan", r"\b(?:step|stepping|walk|walking|throw\s+myself)\s+in\s+front\s+of\s+(?:a|the)\s+(?:train|bus|"
               r"car|truck)\b"),
    ("the means", r"\b(?:bought|got|buying|getting)\s+(?:a|some)\s+rope\b(?!\s+(?:for|to))"),
    ("a plan", r"\b(?:wrote|written|writing|write)\s+(?:a|my)\s+(?:suicide|goodbye)\s+(?:note|letter)s?\b"),
    ("goodbye behaviour", r"\b(?:giving|gave|give)\s+away\s+(?:all\s+)?(?:my|all\s+my)\s+(?:things|stuff|belongings|"
                          r"possessions)\b"),
    ("goodbye behaviour", r"\b(?:said|saying|say)\s+(?:my\s+)?goodbyes?\s+to\s+(?:everyone|everybody|my\s+family|"
                          r"the\s+people\s+i\s+love)\b(?!\s+(?:at|from|in)\s+(?:work|school|the\s+(?:office|party|"
                          r"station|airport|team|class)))"),
    ("goodbye behaviour", r"\b(?:won'?t|will\s+not)\s+be\s+(?:around|here)\s+(?:much\s+longer|for\s+much\s+longer|"
                          r"anymore|any\s+more)\b"),
    ("goodbye behaviour", r"\bthis\s+is\s+(?:my|the)\s+last\s+(?:entry|recording|journal|time\s+i'?ll)\b"),
    ("goodbye behaviour", r"\b(?:put|putting|getting|got)\s+my\s+affairs\s+in\s+order\b"),
]

_CONCERN: list[tuple[str, str]] = [
    ("hopelessness", r"\b(?:hopeless|no\s+hope|lost\s+all\s+hope|nothing\s+to\s+look\s+forward\s+to)\b"),
    ("hopelessness", r"\b(?:what'?s|what\s+is)\s+the\s+point\b|\bno\s+point\s+(?:in|to)\s+(?:anything|trying|"
                     r"any\s+of\s+(?:it|this))\b"),
    ("hopelessness", r"\b(?:everything|life|my\s+life)\s+(?:is|feels|seems)\s+(?:so\s+)?(?:pointless|meaningless)\b"),
    ("hopelessness", r"\b(?:can'?t|cannot)\s+(?:go\s+on|do\s+this\s+any\s*more|take\s+(?:it|this)\s+any\s*more|"
                     r"keep\s+going)\b"),
    ("feeling a burden", r"\b(?:i'?m|i\s+am|i\s+feel\s+like|i\s+feel)\s+(?:such\s+|just\s+)?a\s+burden\b"),
    ("feeling worthless", r"\b(?:i'?m|i\s+am|i\s+feel)\s+(?:so\s+|completely\s+|totally\s+)?worthless\b"),
    ("feeling worthless", r"\bi\s+hate\s+(?:myself|my\s+life)\b|\bmy\s+life\s+is\s+(?:over|a\s+waste|worthless)\b"),
    ("hopelessness", r"\b(?:so\s+)?done\s+with\s+(?:everything|life|it\s+all|living)\b"),
    ("wanting to disappear", r"\b(?:want|wanted|wish\s+i\s+could)\s+to\s+disappear\b|\bdisappear\s+forever\b"),
    ("nobody would care", r"\b(?:no\s*one|nobody)\s+would\s+(?:\w+\s+)?(?:care|notice|miss\s+me)\b"),
    ("trapped", r"\b(?:i\s+feel|i'?m|i\s+am)\s+(?:so\s+)?trapped\b|\bno\s+way\s+out\b"),
    ("not eating", r"\b(?:starve|starving|starved)\s+myself\b"),
    ("thinking about death", r"\b(?:i|i'?ve|i'?m)\s+(?:\w+\s+){0,2}(?:thinking|thought)\s+(?:a\s+lot\s+)?about\s+"
                             r"(?:death|dying|being\s+dead)\b"),
]

_COMPILED_CRISIS = [(r, re.compile(p)) for r, p in _CRISIS]
_COMPILED_CONCERN = [(r, re.compile(p)) for r, p in _CONCERN]
_SELF_HARM_ACT = re.compile(rf"\b{_SELF_VERB}\s+myself\b|\b{_KILL}\s+myself\b|\bmy\s+(?:own\s+)?life\b|"
                            r"\bsuicid|\bdie\b|\bdead\b|\bself[-\s]?harm")


def normalise(text: str) -> str:
    """Lower case, one kind of apostrophe and space, no formatting characters."""
    text = unicodedata.normalize("NFKC", text)
    text = "".join(ch for ch in text if unicodedata.category(ch) not in ("Cf", "Cc") or ch in "\n\t")
    text = re.sub(r"[\u2018\u2019\u02bc\u0060\u00b4]", "'", text)
    return re.sub(r"\s+", " ", text).strip().lower()


def _clauses(text: str) -> list[str]:
    # Negation and past tense belong to a clause: "I used to cut myself, but last night I did again".
    return [c for c in re.split(r"[.!?;]+|,\s*(?:but|and\s+now|yet)\b|\bbut\b", text) if c.strip()]


def assess(text: str) -> Assessment:
    """How worried to be about what someone just said; see the module docstring."""
    text = normalise(text)
    crisis: list[str] = []
    concern: list[str] = []
    for clause in _clauses(text):
        clause = clause.strip()
        for reason, pattern in _COMPILED_CRISIS:
            m = pattern.search(clause)
            if m is None:
                continue
            if _discounted(clause, m, reason):
                if reason == "self-harm" and re.search(_PAST, clause):
                    concern.append("self-harm in the past")
                continue
            crisis.append(reason)
        for reason, pattern in _COMPILED_CONCERN:
            if pattern.search(clause):
                concern.append(reason)
    if crisis:
        reasons = tuple(dict.fromkeys(crisis))
        return Assessment("crisis", reasons, CATEGORY[reasons[0]], "rules")
    if concern:
        reasons = tuple(dict.fromkeys(concern))
        return Assessment("concern", reasons, CATEGORY[reasons[0]], "rules")
    return NONE_RULES


def _discounted(clause: str, m: re.Match, reason: str) -> bool:
    """A match said in the negative, in the past, or about an accident."""
    act = _SELF_HARM_ACT.search(clause, m.start())
    before = clause[: act.start() if act else m.start()]
    if _NEGATED.search(before) and reason in ("suicidal thoughts", "self-harm"):
        return True
    if _ASKED.search(clause[: m.start()]):
        return True
    if not _SUBJECT.match(m.group(0)):  # the pattern names no subject of its own
        subjects = _SUBJECT.findall(clause[: m.start()])
        if subjects and subjects[-1] in _OTHERS:
            return True
    if reason == "self-harm" and re.search(_PAST, clause):
        return True
    if reason == "self-harm" or "killed" in m.group(0):
        if re.search(_ACCIDENT, clause) and not re.search(r"\b(?:on\s+purpose|deliberately|meant\s+to)\b", clause):
            return True
    return False
