"""A picture of the insights: mood over time, sessions per week, top themes.

matplotlib is imported only when a chart is drawn (it takes a moment to
load, and no other command needs it), with the Agg backend: a PNG is drawn
in memory, never in a window, so it works without a display. The figure is
a plain :class:`matplotlib.figure.Figure` (not pyplot's), so nothing is left
behind in global state and the caller (or a test) can look inside it.

>>> save_png(compute(archive), Path("insights.png"))          # doctest: +SKIP
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import InputError
from ..private_files import open_private
from .insights import Insights

if TYPE_CHECKING:
    from matplotlib.figure import Figure

# What each kind of mood point is called on the chart, and how it is drawn.
LABELS = {"before": "your rating before", "after": "your rating after", "estimate": "estimated from your words"}
_STYLE = {"before": dict(marker="o", linestyle="-", color="#4C78A8"),
          "after": dict(marker="s", linestyle="-", color="#54A24B"),
          "estimate": dict(marker="^", linestyle="--", color="#B279A2")}
TOP_THEMES = 8


def chart(insights: Insights) -> "Figure":
    """Three panels, top to bottom: mood over time, sessions per week, top themes."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9, 10), layout="constrained")
    mood_ax, weeks_ax, themes_ax = fig.subplots(3, 1, height_ratios=[3, 2, 2])
    title = "Your journal" + (f" since {insights.since:%Y-%m-%d}" if insights.since else "")
    fig.suptitle(title)

    mood_ax.set_title("Mood over time")
    drawn = False
    for kind in ("before", "after", "estimate"):
        points = insights.series(kind)
        if points:
            mood_ax.plot([p.at.replace(tzinfo=None) for p in points], [p.value for p in points],
                         label=LABELS[kind], **_STYLE[kind])
            drawn = True
    mood_ax.set_ylim(0.5, 10.5)
    mood_ax.set_yticks(range(1, 11))
    mood_ax.set_ylabel("mood (1-10)")
    if drawn:
        mood_ax.legend(loc="best", fontsize="small")
        from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

        locator = AutoDateLocator()
        mood_ax.xaxis.set_major_locator(locator)
        mood_ax.xaxis.set_major_formatter(ConciseDateFormatter(locator))
    else:
        _nothing(mood_ax, "no mood ratings yet")

    weeks_ax.set_title("Sessions per week")
    labels = [w.label.split("-")[1] for w in insights.weeks]
    weeks_ax.bar(labels, [w.sessions for w in insights.weeks], color="#4C78A8")
    weeks_ax.set_ylabel("sessions")
    weeks_ax.yaxis.get_major_locator().set_params(integer=True)

    themes_ax.set_title("Recurring themes")
    top = insights.themes[:TOP_THEMES]
    if top:
        themes_ax.barh([t.name for t in reversed(top)], [t.count for t in reversed(top)], color="#B279A2")
        themes_ax.set_xlabel("sessions")
        themes_ax.xaxis.get_major_locator().set_params(integer=True)
    else:
        _nothing(themes_ax, "no themes yet")
    return fig


def save_png(insights: Insights, path: Path | str) -> Path:
    """Draw the chart into ``path`` as a PNG readable only by its owner (0600); return the path."""
    path = Path(path).expanduser()
    if path.is_dir():
        raise InputError(f"{path} is a folder: give a file name such as {path / 'insights.png'}")
    if not path.parent.is_dir():
        raise InputError(f"cannot write {path}: the folder {path.parent} does not exist")
    fig = chart(insights)
    try:
        # User-only from the first byte, and a file that was already there keeps no wider mode.
        f = open_private(path)
    except OSError as e:
        raise InputError(f"cannot write {path}: {e.strerror}") from None
    with f:
        fig.savefig(f, format="png", dpi=100)
    return path


def _nothing(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
