"""What the companion says when the net finds a crisis, and what it tells the model on a concern."""

from __future__ import annotations

import os

# Who can help right now, by locale ("en-US" style; the language alone as a fallback).
HELPLINES: dict[str, str] = {
    "en-US": "In the US you can call or text 988, the Suicide and Crisis Lifeline, any time, day or night. "
             "If you are in danger right now, call 911.",
    "en-GB": "In the UK you can call Samaritans free on 116 123, any time, day or night. "
             "If you are in danger right now, call 999.",
    "en-IE": "In Ireland you can call Samaritans free on 116 123, any time, day or night. "
             "If you are in danger right now, call 112 or 999.",
}
ELSEWHERE = ("You can find a free helpline in your country at findahelpline.com. "
             "If you are in danger right now, call your local emergency number.")

CRISIS_OPENING = ("I'm really glad you told me, and I can hear how much pain you're in right now. "
                  "I'm an AI, and I can't keep you safe, but people can help you right now.")
CRISIS_CLOSING = "Would you be willing to reach out to one of them, or to someone you trust, now?"

# Told to the model (never shown as the person's words) when a turn gives cause for concern,
# and for the rest of a session in which a crisis message was spoken.
CONCERN_NOTE = ("(Note for the companion, not from the person: what they said may mean they are struggling a lot. "
                "Before anything else, gently check in on how they are doing and whether they feel safe. "
                "Stay warm and brief; do not diagnose, do not lecture, and do not suggest they keep this to "
                "themselves. If they mention wanting to die or hurt themselves, encourage them to contact a "
                "crisis line or someone they trust now.)")


def helpline(locale: str | None) -> str:
    """The helpline sentence for a locale such as "en-US", "en_GB.UTF-8" or None."""
    if locale:
        tag = locale.split(".")[0].split("@")[0].replace("_", "-")
        parts = tag.split("-")
        if len(parts) >= 2:
            key = f"{parts[0].lower()}-{parts[1].upper()}"
            if key in HELPLINES:
                return HELPLINES[key]
    return ELSEWHERE


def crisis_message(locale: str | None) -> str:
    """The fixed words spoken (and printed) when :func:`assess` says "crisis"."""
    return f"{CRISIS_OPENING} {helpline(locale)} {CRISIS_CLOSING}"


def system_locale() -> str | None:
    """The person's locale from the environment (LC_ALL, LC_MESSAGES, LANG), if it names a country."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value and value not in ("C", "POSIX") and not value.startswith("C."):
            return value
    return None
