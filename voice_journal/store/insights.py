"""Looking back over the journal: mood over time, recurring themes, how often.

Everything here is read from what the archive already holds, nothing is
sent anywhere:

* **mood**: the person's own ratings at the start and end of a session
  (answers with ``mode='mood'``, ``field='before'`` or ``'after'``) and the
  mood estimated from their words when the session was summarised;
* **themes**: the summaries' short phrases, counted once per session;
* **consistency**: sessions per ISO week, days journaled and streaks of
  consecutive days.

A session counts when the person said (or wrote) something in it: one with
no turns of theirs, such as a greeting that went unanswered, is left out.
A session that never finished (status ``open`` or ``interrupted``) still
counts: what was said was said.

The journal keeps time as naive UTC. People live by their own clock, so
days, weeks and streaks use local calendar days (this machine's zone, or
the ``tz`` given): a session at 00:30 local time belongs to that day, not
to the UTC day before.

>>> with Archive.open("journal.duckdb", read_only=True) as a:     # doctest: +SKIP
...     i = compute(a)
...     print(i.total_sessions, i.current_streak, [t.name for t in i.themes[:3]])
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from dataclasses import dataclass

from .archive import Archive, SessionRow

KINDS = ("before", "after", "estimate")  # the kinds of mood point, in the order they are shown
WEEKS = 8  # how many ISO weeks the consistency counts cover, this one included


@dataclass(frozen=True)
class MoodPoint:
    """One mood value (1-10) of one session.

    ``kind`` is ``'before'`` or ``'after'`` for the person's own rating and
    ``'estimate'`` for the one estimated from their words. ``at`` is the
    session's start in local time.
    """

    session_id: int
    at: dt.datetime
    kind: str
    value: float

    @property
    def date(self) -> dt.date:
        return self.at.date()


@dataclass(frozen=True)
class Theme:
    """A theme and how many sessions it came up in, with the first and last (local) day it did."""

    name: str
    count: int
    first: dt.date
    last: dt.date


@dataclass(frozen=True)
class Week:
    """One ISO week (Monday to Sunday, local) and how many sessions it held."""

    start: dt.date  # its Monday
    sessions: int

    @property
    def label(self) -> str:
        iso = self.start.isocalendar()
        return f"{iso.year}-W{iso.week:02d}"


@dataclass(frozen=True)
class Insights:
    """What :func:`compute` found. Dates are local calendar days.

    ``weeks`` are the last :data:`WEEKS` ISO weeks, oldest first, ending
    with the one holding ``today`` (weeks with no session included, as 0).
    ``current_streak`` counts consecutive days with a session up to today,
    or up to yesterday when today has none yet: the day is not over.
    """

    since: dt.datetime | None  # naive UTC, as given
    today: dt.date
    mood: tuple[MoodPoint, ...]  # oldest first
    themes: tuple[Theme, ...]  # most sessions first, then most recent
    weeks: tuple[Week, ...]
    total_sessions: int
    days_journaled: int
    current_streak: int
    longest_streak: int

    @property
    def empty(self) -> bool:
        return self.total_sessions == 0

    @property
    def this_week(self) -> int:
        return self.weeks[-1].sessions if self.weeks else 0

    def series(self, kind: str) -> tuple[MoodPoint, ...]:
        """The mood points of one kind, oldest first."""
        return tuple(p for p in self.mood if p.kind == kind)

    def to_dict(self) -> dict:
        """Plain JSON-ready values (dates as ISO strings)."""
        return {
            "since": self.since.isoformat() + "Z" if self.since else None,
            "today": self.today.isoformat(),
            "sessions": self.total_sessions,
            "days_journaled": self.days_journaled,
            "current_streak": self.current_streak,
            "longest_streak": self.longest_streak,
            "weeks": [{"week": w.label, "start": w.start.isoformat(), "sessions": w.sessions} for w in self.weeks],
            "mood": [{"session": p.session_id, "at": p.at.isoformat(timespec="minutes"), "date": p.date.isoformat(),
                      "kind": p.kind, "value": p.value} for p in self.mood],
            "themes": [{"theme": t.name, "count": t.count, "first": t.first.isoformat(), "last": t.last.isoformat()}
                       for t in self.themes],
        }


def compute(archive: Archive, since: dt.datetime | None = None, now: dt.datetime | None = None, *,
            tz: dt.tzinfo | None = None) -> Insights:
    """Mood, themes and consistency of the sessions started at or after ``since``.

    ``since`` and ``now`` are naive UTC (as the journal stores time) or
    aware; ``now`` (default: the current time) decides which day is today.
    ``tz`` is the person's zone, by default this machine's.
    """
    since = _utc(since) if since is not None else None
    today = _local(_utc(now) if now is not None else _utcnow(), tz).date()
    sessions = _counted(archive, since)
    starts = {s.id: _local(s.started_at, tz) for s in sessions}
    days = sorted({t.date() for t in starts.values()})
    current, longest = streaks(days, today)
    return Insights(
        since=since,
        today=today,
        mood=tuple(_mood_points(archive, since, starts)),
        themes=tuple(_themes(archive, since, starts)),
        weeks=tuple(_weeks(starts.values(), today)),
        total_sessions=len(sessions),
        days_journaled=len(days),
        current_streak=current,
        longest_streak=longest,
    )


def streaks(days: list[dt.date], today: dt.date) -> tuple[int, int]:
    """(current, longest) runs of consecutive days among ``days`` (sorted, distinct).

    The current run ends today, or yesterday if today has no session yet;
    otherwise it is 0.

    >>> d = dt.date
    >>> streaks([d(2026, 1, 1), d(2026, 1, 2), d(2026, 1, 4), d(2026, 1, 5)], d(2026, 1, 6))
    (2, 2)
    """
    longest = run = 0
    previous: dt.date | None = None
    for day in days:
        run = run + 1 if previous is not None and day - previous == dt.timedelta(days=1) else 1
        longest = max(longest, run)
        previous = day
    present = set(days)
    end = today if today in present else today - dt.timedelta(days=1)
    current = 0
    while end in present:
        current += 1
        end -= dt.timedelta(days=1)
    return current, longest


@dataclass(frozen=True)
class SessionFacts:
    """What the journal holds about one earlier session, for the companion's rumination notes.

    ``started_at_local`` is an aware datetime in the person's own time zone;
    ``themes`` are the summary's lower-case phrases (empty if none yet);
    ``mood`` is 1-10 (their own rating, or one estimated from their words) or None.
    """

    started_at_local: dt.datetime
    themes: tuple[str, ...] = ()
    mood: float | None = None


def recent_history(archive: Archive, now: dt.datetime | None = None, days: int = 14, *,
                   tz: dt.tzinfo | None = None) -> list[SessionFacts]:
    """The sessions of the last ``days`` days before ``now``, oldest first, for the rumination notes.

    Each session's mood is the person's own rating from its start
    (``before``: how the day found them, untouched by the session itself),
    else their ``after`` rating, else the mood estimated from their words.
    """
    now = _utc(now) if now is not None else _utcnow()
    cutoff = now - dt.timedelta(days=days)
    sessions = [s for s in _counted(archive, cutoff) if s.started_at <= now]
    ids = {s.id for s in sessions}
    ratings: dict[int, dict[str, float]] = defaultdict(dict)
    for a in archive.answers(since=cutoff):
        if a.session_id in ids and a.mode == "mood" and a.value is not None:
            ratings[a.session_id][a.field] = a.value
    summaries = {m.session_id: m for m in archive.summaries(since=cutoff) if m.session_id in ids}
    facts = []
    for s in sorted(sessions, key=lambda s: (s.started_at, s.id)):
        summary = summaries.get(s.id)
        own = ratings.get(s.id, {})
        mood = own.get("before", own.get("after", summary.mood if summary else None))
        facts.append(SessionFacts(_local(s.started_at, tz), _clean(summary.themes) if summary else (), mood))
    return facts


# -- the parts ------------------------------------------------------------------


def _counted(archive: Archive, since: dt.datetime | None) -> list[SessionRow]:
    """Sessions (since a time) in which the person said something, whatever their status."""
    return [s for s in archive.sessions() if s.user_turns > 0 and (since is None or s.started_at >= since)]


def _mood_points(archive: Archive, since: dt.datetime | None, starts: dict[int, dt.datetime]) -> list[MoodPoint]:
    points = [MoodPoint(a.session_id, starts[a.session_id], a.field, float(a.value))
              for a in archive.answers(since=since)
              if a.mode == "mood" and a.field in ("before", "after") and a.value is not None and a.session_id in starts]
    points += [MoodPoint(m.session_id, starts[m.session_id], "estimate", float(m.mood))
               for m in archive.summaries(since=since) if m.mood is not None and m.session_id in starts]
    return sorted(points, key=lambda p: (p.at, p.session_id, KINDS.index(p.kind)))


def _themes(archive: Archive, since: dt.datetime | None, starts: dict[int, dt.datetime]) -> list[Theme]:
    seen: dict[str, list[dt.date]] = defaultdict(list)
    for m in archive.summaries(since=since):
        if m.session_id in starts:
            for name in _clean(m.themes):
                seen[name].append(starts[m.session_id].date())
    themes = [Theme(name, len(d), min(d), max(d)) for name, d in seen.items()]
    # Most sessions first; among equals the most recent, then alphabetical (stable output).
    themes.sort(key=lambda t: t.name)
    themes.sort(key=lambda t: (t.count, t.last), reverse=True)
    return themes


def _weeks(starts, today: dt.date) -> list[Week]:
    monday = today - dt.timedelta(days=today.weekday())
    mondays = [monday - dt.timedelta(weeks=n) for n in range(WEEKS - 1, -1, -1)]
    counts = dict.fromkeys(mondays, 0)
    for t in starts:
        week = t.date() - dt.timedelta(days=t.weekday())
        if week in counts:
            counts[week] += 1
    return [Week(m, counts[m]) for m in mondays]


def _clean(themes) -> tuple[str, ...]:
    """Each theme once, trimmed and in lower case, in its first order."""
    return tuple(dict.fromkeys(t.strip().lower() for t in themes if t and t.strip()))


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)


def _utc(t: dt.datetime) -> dt.datetime:
    """Naive UTC (the journal's time); a naive input already is."""
    return t.astimezone(dt.timezone.utc).replace(tzinfo=None) if t.tzinfo is not None else t


def _local(t: dt.datetime, tz: dt.tzinfo | None = None) -> dt.datetime:
    """A naive UTC time on the person's clock (``tz``, or this machine's zone)."""
    return t.replace(tzinfo=dt.timezone.utc).astimezone(tz)
