"""The insights as the page shows them: JSON for the numbers, the same chart as ``insights --png`` as SVG.

The chart is drawn on the server by :mod:`voice_journal.store.chart`
(matplotlib), so the page needs no charting script and the picture is the
one the terminal command saves.
"""

from __future__ import annotations

import io
from typing import Any

from ..store.insights import Insights


def insights_dict(found: Insights) -> dict[str, Any]:
    return {
        "sessions": found.total_sessions, "days": found.days_journaled, "this_week": found.this_week,
        "streak": found.current_streak, "longest_streak": found.longest_streak,
        "mood": [{"session": m.session_id, "at": m.at.isoformat(), "kind": m.kind, "value": m.value}
                 for m in found.mood],
        "themes": [{"name": t.name, "sessions": t.count, "first": t.first.isoformat(), "last": t.last.isoformat()}
                   for t in found.themes],
        "weeks": [{"week": w.label, "sessions": w.sessions} for w in found.weeks],
    }


def mood_svg(found: Insights) -> bytes:
    import matplotlib

    from ..store.chart import chart

    out = io.BytesIO()
    with matplotlib.rc_context({"svg.fonttype": "path"}):  # text as shapes: no font to fetch
        chart(found).savefig(out, format="svg")
    return out.getvalue()
