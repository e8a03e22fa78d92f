"""Gentle notes for when journaling may be turning into going round in circles.

Writing things down usually helps. Sometimes, though, a person comes back
again and again on the same day, or late at night, or keeps circling one
worry while feeling worse each time. This module notices those patterns in
the recent sessions and offers a short, warm note at the start of the next
one. The notes never block anything, never diagnose and never tell the
person what they feel; they only make room for rest or for other support.

Three rules, each checked on its own:

* **many today**: two sessions already today, so this would be the third
  (or more);
* **late night**: this session starts between midnight and 5 am, local time;
* **one theme, falling mood**: one theme is in at least 3 of the last 4
  sessions that have themes, and across those sessions the mood fell: the
  last is at least 1.5 points (of 10) below the first.

>>> import datetime as dt
>>> tz = dt.timezone(dt.timedelta(hours=1))
>>> notes([], dt.datetime(2026, 11, 3, 2, 30, tzinfo=tz))   # doctest: +ELLIPSIS
["It's late. Journaling can help, and so can rest..."]
"""

from __future__ import annotations

import datetime as dt
from typing import Protocol

# The rules' thresholds, named so that they read as what the issue asked for.
SESSIONS_TODAY_BEFORE_NOTE = 2  # this many earlier sessions today: this one is the third
LATE_NIGHT_HOURS = range(0, 5)  # midnight to 5 am, local
THEME_WINDOW = 4  # the last sessions with themes that are looked at...
THEME_MIN_SESSIONS = 3  # ...and in how many of them one theme must be
MOOD_DROP = 1.5  # how far (on 1-10) the mood must fall across those sessions

LATE_NIGHT = ("It's late. Journaling can help, and so can rest: be gentle with yourself tonight, "
              "and know that whatever is here will still be here to explore tomorrow.")

MANY_TODAY = ("You've come back to your journal a few times today, so a lot may be on your mind. "
              "You're welcome here as often as you need, and a pause, some water or a little fresh air "
              "can help carry things too.")

RECURRING = ("“{theme}” has come up in several of your recent sessions, and it sounds as if things have felt "
             "heavier lately. You don't have to carry it on your own: if there's someone you trust, talking it over "
             "with them could help alongside this.")


class PastSession(Protocol):
    """What the rules need to know about one earlier session (the journal's
    :class:`~voice_journal.store.insights.SessionFacts` is one).

    ``started_at_local`` is an aware datetime in the person's own time zone;
    ``themes`` are the summary's lower-case phrases (empty if none yet);
    ``mood`` is 1-10 (their own rating, or one estimated from their words) or None.
    """

    started_at_local: dt.datetime
    themes: tuple[str, ...]
    mood: float | None


def notes(history: list[PastSession], now: dt.datetime) -> list[str]:
    """The gentle notes, if any, for a session starting at ``now``.

    ``history`` holds the earlier sessions (any order; :func:`voice_journal.store.insights.recent_history`
    gives the last two weeks). ``now`` is an aware datetime whose wall clock is the person's; a naive one
    is taken as UTC (how the journal keeps time) and shown in this machine's zone. At most one note per
    rule, late night first.
    """
    now = _local(now)
    found: list[str] = []
    if now.hour in LATE_NIGHT_HOURS:
        found.append(LATE_NIGHT)
    today = [h for h in history if _same_day(h.started_at_local, now) and h.started_at_local <= now]
    if len(today) >= SESSIONS_TODAY_BEFORE_NOTE:
        found.append(MANY_TODAY)
    theme = recurring_theme(history)
    if theme is not None:
        found.append(RECURRING.format(theme=theme))
    return found


def recurring_theme(history: list[PastSession]) -> str | None:
    """The theme that keeps returning while the mood falls, or None.

    Of the last :data:`THEME_WINDOW` sessions that have themes, a theme must
    be in at least :data:`THEME_MIN_SESSIONS`; the moods of the sessions
    holding it (at least two known) must end :data:`MOOD_DROP` or more below
    where they began. When two themes qualify, the one in more sessions wins,
    then the one seen most recently.
    """
    with_themes = sorted((h for h in history if h.themes), key=lambda h: h.started_at_local)[-THEME_WINDOW:]
    best: tuple[int, int, str] | None = None  # (sessions, last position, theme)
    for theme in {t for h in with_themes for t in h.themes}:
        holding = [(i, h) for i, h in enumerate(with_themes) if theme in h.themes]
        if len(holding) < THEME_MIN_SESSIONS:
            continue
        moods = [h.mood for _, h in holding if h.mood is not None]
        if len(moods) < 2 or moods[0] - moods[-1] < MOOD_DROP:
            continue
        key = (len(holding), holding[-1][0], theme)
        if best is None or key > best:
            best = key
    return best[2] if best else None


def _local(t: dt.datetime) -> dt.datetime:
    if t.tzinfo is None:
        return t.replace(tzinfo=dt.timezone.utc).astimezone()
    return t


def _same_day(t: dt.datetime, now: dt.datetime) -> bool:
    """Whether ``t`` falls on ``now``'s calendar day, in ``now``'s zone."""
    return t.astimezone(now.tzinfo).date() == now.date()
