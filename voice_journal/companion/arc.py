"""The companion's fixed words at the edges of a session, and how a person says goodbye.

These lines are spoken without the model: the greeting has to be heard at
once, and a closing after Ctrl-C or at the time limit must not depend on a
model that may be slow or gone.
"""

from __future__ import annotations

import re

GREETING = "Hi, I'm here and listening. What would you like to explore today?"

# Appended, for the model only, to the person's last message of a session.
CLOSING_NOTE = ("(The session is ending now. Reply with a brief, warm goodbye of one or two sentences "
                "that says back one thing I shared. Ask no question.)")

WRAP_UP_NOTE = ("(The session's time is nearly up. Reply briefly and warmly, say back one thing I "
                "shared, and gently close the session. Ask no question.)")

CLOSING_INTERRUPTED = "Thank you for talking with me today. Take good care of yourself."

CLOSING_TIME = ("We've come to the end of our time for today. Thank you for sharing this with me. "
                "Take good care of yourself.")

# "goodbye", "bye for now", "that's all for today", "that's it for today", "I'm done for today",
# "let's stop here", "end the session"; said on its own or closing the turn.
_GOODBYE = re.compile(
    r"(?:^|[.!?,]\s*|\b(?:ok(?:ay)?|well|so|alright|right|i\s+think)\W+)"
    r"(?:good\s*-?\s*bye|bye(?:\s*-?\s*bye)?(?:\s+for\s+now)?|"
    r"that'?s\s+(?:all|it|enough)\s+for\s+(?:today|now|tonight)|"
    r"i'?m\s+(?:done|finished)\s+for\s+(?:today|now|tonight)|"
    r"let'?s\s+(?:stop|end|finish)\s+(?:here|there|for\s+(?:today|now|tonight))|"
    r"end\s+(?:the|this)\s+session)"
    r"(?:\W+(?:for\s+now|thank\s+you|thanks|see\s+you(?:\s+tomorrow)?))*\W*$",
    re.IGNORECASE,
)


def is_goodbye(text: str) -> bool:
    """Did the person end the session with this turn? Only at its end, so a story about
    saying goodbye to someone ("I said goodbye to my dad at the station") does not."""
    return bool(_GOODBYE.search(text.strip().replace("’", "'")))
