"""Insights (mood, themes, consistency), their chart, the rumination notes and `voice-journal insights`."""

import datetime as dt
import json
import os

import pytest

from conftest import run_cli
from voice_journal.companion import rumination
from voice_journal.companion.rumination import notes
from voice_journal.store.insights import SessionFacts
from voice_journal.errors import InputError
from voice_journal.store import insights
from voice_journal.store.archive import Answer, Archive, Summary, TurnRecord
from voice_journal.store.chart import LABELS, chart, save_png

UTC = dt.timezone.utc
NOW = dt.datetime(2026, 11, 20, 18, 0)  # a Friday, ISO week 47; naive UTC like the journal
D = dt.date


def _session(a: Archive, at: dt.datetime, *, before=None, after=None, estimate=None, themes=(),
             user=True, status="complete") -> int:
    """One session: a user turn (unless ``user`` is False), mood ratings, a summary."""
    sid = a.begin_session(mode="free", started_at=at)
    a.add_turn(TurnRecord(sid, 0, "assistant", "Hi, I'm here and listening.", at=at))
    if user:
        a.add_turn(TurnRecord(sid, 1, "user", "Today was a lot.", at=at + dt.timedelta(minutes=1)))
    for field, value in (("before", before), ("after", after)):
        if value is not None:
            a.add_answer(Answer(sid, 1, "mood", field, str(value), value))
    if themes or estimate is not None:
        a.set_summary(Summary(sid, "They talked about their day.", tuple(themes), estimate, "test"))
    if status != "open":
        a.end_session(sid, status=status, ended_at=at + dt.timedelta(minutes=10))
    return sid


def _build(path) -> dict[str, int]:
    with Archive.open(path) as a:
        ids = {
            "s1": _session(a, dt.datetime(2026, 11, 2, 9), before=4, after=6, estimate=5, themes=("work", "sleep")),
            "s2": _session(a, dt.datetime(2026, 11, 3, 9), before=5, themes=("work", "sleep")),
            "s3": _session(a, dt.datetime(2026, 11, 4, 21), after=7, estimate=6, themes=(" Work ", "family")),
            # a gap of 13 days
            "s4": _session(a, dt.datetime(2026, 11, 18, 8), estimate=4, themes=("family",)),
            "s5": _session(a, dt.datetime(2026, 11, 19, 8), status="open"),  # never finished: still counts
            "s6": _session(a, dt.datetime(2026, 11, 20, 7), before=3, status="interrupted"),
            # Greeted, never answered: none of these count.
            "empty": _session(a, dt.datetime(2026, 11, 20, 10), user=False),
            "ghost": _session(a, dt.datetime(2026, 11, 19, 12), user=False, before=2, estimate=2, themes=("ghost",)),
        }
    return ids


@pytest.fixture
def journal(tmp_path):
    path = tmp_path / "j.duckdb"
    return path, _build(path)


@pytest.fixture
def found(journal):
    with Archive.open(journal[0], read_only=True) as a:
        return insights.compute(a, now=NOW, tz=UTC)


def test_mood_series_by_kind(found, journal):
    ids = journal[1]
    series = {k: [(p.session_id, p.date, p.value) for p in found.series(k)] for k in insights.KINDS}
    assert series["before"] == [(ids["s1"], D(2026, 11, 2), 4), (ids["s2"], D(2026, 11, 3), 5),
                                (ids["s6"], D(2026, 11, 20), 3)]
    assert series["after"] == [(ids["s1"], D(2026, 11, 2), 6), (ids["s3"], D(2026, 11, 4), 7)]
    assert series["estimate"] == [(ids["s1"], D(2026, 11, 2), 5), (ids["s3"], D(2026, 11, 4), 6),
                                  (ids["s4"], D(2026, 11, 18), 4)]
    assert [p.at for p in found.mood] == sorted(p.at for p in found.mood)
    assert ids["ghost"] not in {p.session_id for p in found.mood}


def test_themes_counted_once_per_session_with_dates(found):
    rows = [(t.name, t.count, t.first, t.last) for t in found.themes]
    # work: 3 sessions ("Work" is the same theme); family and sleep both 2, family more recent; no "ghost".
    assert rows == [("work", 3, D(2026, 11, 2), D(2026, 11, 4)),
                    ("family", 2, D(2026, 11, 4), D(2026, 11, 18)),
                    ("sleep", 2, D(2026, 11, 2), D(2026, 11, 3))]


def test_weekly_counts_and_totals(found):
    assert [w.label for w in found.weeks] == [f"2026-W{n}" for n in range(40, 48)]
    assert [w.sessions for w in found.weeks] == [0, 0, 0, 0, 0, 3, 0, 3]
    assert found.weeks[-1].start == D(2026, 11, 16) and found.this_week == 3
    assert found.total_sessions == 6 and found.days_journaled == 6 and found.today == D(2026, 11, 20)


def test_streaks_with_a_gap(found):
    # 2, 3, 4 November, then a gap, then 18, 19, 20 November (today).
    assert (found.current_streak, found.longest_streak) == (3, 3)
    days = [D(2026, 11, d) for d in (1, 2, 3, 4, 10, 11)]
    assert insights.streaks(days, D(2026, 11, 11)) == (2, 4)
    assert insights.streaks(days, D(2026, 11, 12)) == (2, 4)  # nothing yet today: yesterday's run still counts
    assert insights.streaks(days, D(2026, 11, 13)) == (0, 4)  # a day missed: the run is over
    assert insights.streaks([], D(2026, 11, 13)) == (0, 0)


def test_since_filters_everything(journal):
    with Archive.open(journal[0], read_only=True) as a:
        later = insights.compute(a, since=dt.datetime(2026, 11, 10), now=NOW, tz=UTC)
    assert later.total_sessions == 3 and later.days_journaled == 3
    assert [(t.name, t.count) for t in later.themes] == [("family", 1)]
    assert [(p.kind, p.value) for p in later.mood] == [("estimate", 4), ("before", 3)]
    assert [w.sessions for w in later.weeks] == [0] * 7 + [3]
    assert later.to_dict()["since"] == "2026-11-10T00:00:00Z"


def test_days_are_local_calendar_days(tmp_path):
    with Archive.open(tmp_path / "j.duckdb") as a:
        _session(a, dt.datetime(2026, 11, 4, 23, 30))  # 01:30 on the 5th in UTC+2
        _session(a, dt.datetime(2026, 11, 5, 12, 0))
    with Archive.open(tmp_path / "j.duckdb", read_only=True) as a:
        utc = insights.compute(a, now=NOW, tz=UTC)
        east = insights.compute(a, now=NOW, tz=dt.timezone(dt.timedelta(hours=2)))
    assert (utc.days_journaled, utc.longest_streak) == (2, 2)
    assert (east.days_journaled, east.longest_streak) == (1, 1)


def test_empty_journal(tmp_path):
    with Archive.open(tmp_path / "j.duckdb") as a:
        _session(a, NOW, user=False)
        i = insights.compute(a, now=NOW)
    assert i.empty and i.mood == () and i.themes == () and [w.sessions for w in i.weeks] == [0] * 8
    assert (i.current_streak, i.longest_streak, i.days_journaled) == (0, 0, 0)


# -- the chart ------------------------------------------------------------------


def test_chart_has_the_series_and_panels(found):
    fig = chart(found)
    mood_ax, weeks_ax, themes_ax = fig.axes[:3]
    assert [line.get_label() for line in mood_ax.get_lines()] == [
        "your rating before", "your rating after", "estimated from your words"]
    assert [len(line.get_ydata()) for line in mood_ax.get_lines()] == [3, 2, 3]
    assert mood_ax.get_ylim()[0] <= 1 and mood_ax.get_ylim()[1] >= 10
    assert [p.get_height() for p in weeks_ax.patches] == [0, 0, 0, 0, 0, 3, 0, 3]
    assert [t.get_text() for t in themes_ax.get_yticklabels()] == ["sleep", "family", "work"]
    assert set(LABELS) == set(insights.KINDS)


def test_chart_leaves_out_kinds_with_no_points(journal):
    with Archive.open(journal[0], read_only=True) as a:
        later = insights.compute(a, since=dt.datetime(2026, 11, 19), now=NOW, tz=UTC)
    assert [line.get_label() for line in chart(later).axes[0].get_lines()] == ["your rating before"]


def test_png_is_a_user_only_png(found, tmp_path):
    path = tmp_path / "insights.png"
    path.write_bytes(b"old")
    os.chmod(path, 0o644)  # a file already there does not keep its wider mode
    assert save_png(found, path) == path
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 10_000
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    fresh = tmp_path / "fresh.png"
    save_png(found, fresh)
    assert oct(fresh.stat().st_mode & 0o777) == "0o600"
    with pytest.raises(InputError, match="is a folder"):
        save_png(found, tmp_path)
    with pytest.raises(InputError, match="does not exist"):
        save_png(found, tmp_path / "nowhere" / "x.png")


# -- rumination notes -------------------------------------------------------------

TZ = dt.timezone(dt.timedelta(hours=-5))


def _at(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=TZ)


def test_third_session_today_gets_a_note():
    two_today = [SessionFacts(_at(20, 8)), SessionFacts(_at(20, 12))]
    assert notes(two_today, _at(20, 19)) == [rumination.MANY_TODAY]
    assert notes(two_today + [SessionFacts(_at(20, 15))], _at(20, 19)) == [rumination.MANY_TODAY]
    # One today and one yesterday evening: this is only the second today.
    assert notes([SessionFacts(_at(19, 22)), SessionFacts(_at(20, 12))], _at(20, 19)) == []
    # "Today" is the day on now's clock (UTC-5): 02:00 UTC on the 20th was the evening of the 19th there.
    in_utc = [SessionFacts(dt.datetime(2026, 11, 20, 2, tzinfo=UTC)),
              SessionFacts(dt.datetime(2026, 11, 20, 13, tzinfo=UTC))]
    assert notes(in_utc, _at(20, 19)) == []
    assert notes(in_utc[1:] * 2, _at(20, 19)) == [rumination.MANY_TODAY]


def test_late_night_gets_a_note():
    assert notes([], _at(20, 0, 5)) == [rumination.LATE_NIGHT]
    assert notes([], _at(20, 4, 59)) == [rumination.LATE_NIGHT]
    assert notes([], _at(20, 5, 0)) == [] and notes([], _at(20, 23, 59)) == []
    assert "late" in rumination.LATE_NIGHT and "gentle" in rumination.LATE_NIGHT


def _theme_history(moods, themes=("money",) * 4):
    return [SessionFacts(_at(10 + i, 20), tuple(t) if isinstance(t, tuple) else (t,), m)
            for i, (t, m) in enumerate(zip(themes, moods))]


def test_recurring_theme_with_falling_mood_gets_a_note():
    history = _theme_history([6, 5.5, 5, 4.5])
    found = notes(history, _at(20, 19))
    assert len(found) == 1 and "“money”" in found[0] and found[0] == rumination.RECURRING.format(theme="money")
    # 3 of the last 4 is enough; an older, happier session outside the window does not matter.
    mixed = _theme_history([2, 7, 6, 4, 5], themes=["money", "money", "family", "money", "money"])
    assert rumination.recurring_theme(mixed) == "money"


@pytest.mark.parametrize("moods, themes", [
    ([6, 6, 5.5, 5.5], ["money"] * 4),                          # a small dip, not a fall
    ([4, 5, 6, 7], ["money"] * 4),                              # mood rising
    ([6, None, None, None], ["money"] * 4),                     # one mood known: no trend
    ([7, 6, 5, 4], ["money", "work", "family", "money"]),       # only 2 of the last 4
    ([7, 6, 5, 4, 4, 4], ["money", "money", "money", "work", "sleep", "family"]),  # not in the last 4
])
def test_recurring_theme_does_not_fire(moods, themes):
    history = _theme_history(moods, themes)
    assert rumination.recurring_theme(history) is None
    assert notes(history, _at(20, 19)) == []


def test_notes_are_gentle():
    for note in (rumination.LATE_NIGHT, rumination.MANY_TODAY, rumination.RECURRING.format(theme="money")):
        assert 1 <= note.count(". ") + 1 <= 2 and len(note) < 260
        for word in ("you should", "must", "disorder", "depress", "obsess", "stop", "too much"):
            assert word not in note.lower()


def test_recent_history_from_the_journal(journal):
    with Archive.open(journal[0], read_only=True) as a:
        two_weeks = insights.recent_history(a, NOW, tz=UTC)
        month = insights.recent_history(a, NOW, days=30, tz=UTC)
        before_s6 = insights.recent_history(a, dt.datetime(2026, 11, 20, 6), tz=UTC)
    assert [(f.started_at_local.date(), f.themes, f.mood) for f in two_weeks] == [
        (D(2026, 11, 18), ("family",), 4), (D(2026, 11, 19), (), None), (D(2026, 11, 20), (), 3)]
    # Their own rating first (before, then after), else the estimate; themes cleaned.
    assert [f.mood for f in month[:3]] == [4, 5, 7] and month[2].themes == ("work", "family")
    assert [f.started_at_local.date() for f in before_s6] == [D(2026, 11, 18), D(2026, 11, 19)]  # not after "now"
    assert two_weeks[0].started_at_local.tzinfo is not None


def test_recent_history_feeds_the_notes(tmp_path):
    with Archive.open(tmp_path / "j.duckdb") as a:
        for day, mood in ((14, 7), (16, 6), (18, 5), (19, 4.5)):
            _session(a, dt.datetime(2026, 11, day, 20), before=mood, themes=("the move", "money"))
        _session(a, dt.datetime(2026, 11, 20, 8))
        _session(a, dt.datetime(2026, 11, 20, 12))
        history = insights.recent_history(a, dt.datetime(2026, 11, 20, 16), tz=UTC)
    found = notes(history, dt.datetime(2026, 11, 20, 16, tzinfo=UTC))
    assert found[0] == rumination.MANY_TODAY and len(found) == 2
    assert "“the move”" in found[1] or "“money”" in found[1]


def test_no_gentle_note_when_they_are_turned_off(tmp_path):
    from voice_journal import app, config

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with Archive.open(tmp_path / "j.duckdb") as a:
        for minutes in (50, 20, 5):
            _session(a, max(now - dt.timedelta(minutes=minutes), now.replace(hour=0, minute=0, second=1)))
        assert rumination.MANY_TODAY in app.gentle_notes(config.load(db=a.path, gentle_notes=True), a)
        assert app.gentle_notes(config.load(db=a.path, gentle_notes=False), a) == []


# -- the command ------------------------------------------------------------------

CLI_ENV = {"TZ": "UTC"}


@pytest.fixture
def cli_journal(tmp_path):
    """A journal dated from today, so that the week and the streak are this week's and today's."""
    today = dt.datetime.now(UTC).replace(tzinfo=None, hour=12, minute=0, second=0, microsecond=0)
    db = tmp_path / "journal" / "j.duckdb"
    with Archive.open(db) as a:
        _session(a, today - dt.timedelta(days=5), before=4, after=6, estimate=5, themes=("work",))
        _session(a, today - dt.timedelta(days=1), before=3, estimate=4, themes=("work", "sleep"))
        _session(a, today, after=7, themes=("[bold]markup[/bold]",))
    return db, today


def test_cli_prints_tables_and_writes_the_chart(cli_journal, tmp_path):
    db, today = cli_journal
    png = tmp_path / "out.png"
    r = run_cli("insights", "--db", str(db), "--png", str(png), env=CLI_ENV)
    assert r.returncode == 0, r.stderr
    for text in ("Mood", "before", "estimate", "Recurring themes", "work", "[bold]markup[/bold]",
                 "This week:", "Per week:", "Current streak: 2 days", "Longest streak: 2 days",
                 "In all: 3 sessions on 3 days", f"Chart written to {png}", today.strftime("%Y-%m-%d")):
        assert text in r.stdout, (text, r.stdout)
    assert any(ch in r.stdout for ch in "▁▂▃▄▅▆▇█")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and oct(png.stat().st_mode & 0o777) == "0o600"


def test_cli_json_and_since(cli_journal):
    db, today = cli_journal
    data = json.loads(run_cli("insights", "--db", str(db), "--json", env=CLI_ENV).stdout)
    assert data["sessions"] == 3 and data["current_streak"] == 2 and len(data["weeks"]) == 8
    days_ago = [(today - dt.timedelta(days=n)).date().isoformat() for n in (5, 1)]
    assert data["themes"][0] == {"theme": "work", "count": 2, "first": days_ago[0], "last": days_ago[1]}
    since = (today - dt.timedelta(days=2)).date().isoformat()
    data = json.loads(run_cli("insights", "--db", str(db), "--json", "--since", since, env=CLI_ENV).stdout)
    assert data["sessions"] == 2 and {t["theme"] for t in data["themes"]} == {"work", "sleep", "[bold]markup[/bold]"}
    assert [m["kind"] for m in data["mood"]] == ["before", "estimate", "after"]


def test_cli_bad_input_and_empty_journal(tmp_path):
    db = tmp_path / "j.duckdb"
    with Archive.open(db) as a:
        _session(a, NOW, user=False)
    r = run_cli("insights", "--db", str(db), "--since", "last tuesday", env=CLI_ENV)
    assert r.returncode == 2 and "not a date" in r.stderr and r.stderr.count("\n") == 1
    r = run_cli("insights", "--db", str(db), "--png", str(tmp_path), env=CLI_ENV)
    assert r.returncode == 2 and "is a folder" in r.stderr
    r = run_cli("insights", "--db", str(db), "--png", str(tmp_path / "x.png"), env=CLI_ENV)
    assert r.returncode == 0 and r.stdout.startswith("Nothing to look back on yet") and r.stdout.count("\n") == 1
    assert not (tmp_path / "x.png").exists()
    r = run_cli("insights", "--db", str(tmp_path / "none.duckdb"), env=CLI_ENV)
    assert r.returncode == 6 and "record a session first" in r.stderr
