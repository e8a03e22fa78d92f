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
# and for the rest of a session in which a crisis message was spoken. In the person's voice, as
# the turn's other notes are (conversation._with_notes), and the reflection first, then the
# check-in: the reply gate leaves out a first sentence that names nothing they said, and
# "before anything else, gently check in" had the check-in cut or the reply asked again
# (2 of 50 spoken replies checked in on the tune split of `companion_eval.py --concern`).
CONCERN_NOTE = ("(Check in on me gently: say back what I said, then ask how I am doing and whether "
                "I feel safe. Stay warm and brief: no diagnosis, no lecture, and never suggest I keep this to "
                "myself. If I mention wanting to die or hurting myself, encourage me to contact a crisis line or "
                "someone I trust now.)")


# The same message in the languages the project has words for, spoken when the person speaks
# that language (companion/language.py). Helplines here are by country, in that language; a
# country without one in the person's language gets that language's pointer to the directory.
IN_LANGUAGE: dict[str, dict[str, str]] = {
    "de": {
        "opening": "Ich bin wirklich froh, dass du mir das gesagt hast, und ich höre, wie sehr du gerade leidest. "
                   "Ich bin eine KI und kann dich nicht beschützen, aber Menschen können dir jetzt sofort helfen.",
        "DE": "In Deutschland erreichst du die TelefonSeelsorge kostenlos und rund um die Uhr unter "
              "0800 111 0 111 oder 0800 111 0 222. Wenn du gerade in Gefahr bist, ruf die 112 an.",
        "AT": "In Österreich erreichst du die TelefonSeelsorge kostenlos und rund um die Uhr unter 142. "
              "Wenn du gerade in Gefahr bist, ruf die 112 an.",
        "CH": "In der Schweiz erreichst du Die Dargebotene Hand rund um die Uhr unter 143. "
              "Wenn du gerade in Gefahr bist, ruf die 144 oder die 112 an.",
        "elsewhere": "Eine kostenlose Hilfe-Hotline in deinem Land findest du auf findahelpline.com. "
                     "Wenn du gerade in Gefahr bist, ruf die örtliche Notrufnummer an.",
        "closing": "Wärst du bereit, dich jetzt an eine von ihnen zu wenden, oder an jemanden, dem du vertraust?",
    },
    "es": {
        "opening": "Me alegra de verdad que me lo hayas contado, y noto cuánto estás sufriendo ahora mismo. "
                   "Soy una IA y no puedo protegerte, pero hay personas que pueden ayudarte ahora mismo.",
        "ES": "En España puedes llamar gratis al 024, la línea de atención a la conducta suicida, "
              "a cualquier hora. Si estás en peligro ahora mismo, llama al 112.",
        "MX": "En México puedes llamar a la Línea de la Vida al 800 911 2000, a cualquier hora. "
              "Si estás en peligro ahora mismo, llama al 911.",
        "US": "En Estados Unidos puedes llamar o escribir al 988, la Línea de Prevención del Suicidio y Crisis, "
              "con atención en español, a cualquier hora. Si estás en peligro ahora mismo, llama al 911.",
        "elsewhere": "Puedes encontrar una línea de ayuda gratuita en tu país en findahelpline.com. "
                     "Si estás en peligro ahora mismo, llama al número de emergencias de tu zona.",
        "closing": "¿Estarías dispuesto a ponerte en contacto con alguna de ellas, o con alguien de confianza, ahora?",
    },
}


def _country(locale: str | None) -> tuple[str, str] | None:
    """("en", "US") for "en-US", "en_US.UTF-8" and the like; None without a country."""
    if locale:
        parts = locale.split(".")[0].split("@")[0].replace("_", "-").split("-")
        if len(parts) >= 2:
            return parts[0].lower(), parts[1].upper()
    return None


def helpline(locale: str | None, language: str = "en") -> str:
    """The helpline sentence for a locale such as "en-US", "en_GB.UTF-8" or None, in ``language`` if it can be."""
    country = _country(locale)
    words = IN_LANGUAGE.get(language)
    if words is not None:
        return words.get(country[1] if country else "", words["elsewhere"])
    if country is not None and f"{country[0]}-{country[1]}" in HELPLINES:
        return HELPLINES[f"{country[0]}-{country[1]}"]
    if country is not None and f"en-{country[1]}" in HELPLINES:  # a US locale set to another language
        return HELPLINES[f"en-{country[1]}"]
    return ELSEWHERE


def crisis_message(locale: str | None, language: str = "en") -> str:
    """The fixed words spoken (and printed) when :func:`assess` says "crisis".

    In the person's ``language`` where the project has its words
    (:data:`IN_LANGUAGE`), else in English.
    """
    words = IN_LANGUAGE.get(language)
    if words is None:
        return f"{CRISIS_OPENING} {helpline(locale)} {CRISIS_CLOSING}"
    return f"{words['opening']} {helpline(locale, language)} {words['closing']}"


def system_locale() -> str | None:
    """The person's locale from the environment (LC_ALL, LC_MESSAGES, LANG), if it names a country."""
    for name in ("LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name, "")
        if value and value not in ("C", "POSIX") and not value.startswith("C."):
            return value
    return None
