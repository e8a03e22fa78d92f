"""Where the pause that ends a turn goes: a timeline of the reply begun in it, turn by turn.

    .venv/bin/python benchmarks/pause_trace.py          # one live.py run (quality models), traced

Runs ``benchmarks/live.py`` once and marks, on the session's clock, when
each piece of the turn went to Whisper, when its words came back, when
the reply was begun in the pause (memory searched, the model asked), when
that reply wrote its first token, and when the turn was declared over.
Printed per turn, in ms before the end-of-turn decision; then the median
of each mark. The marks wrap the session's own methods: nothing in the
session changes, but the run is one run, not a measurement of spread.
"""

from __future__ import annotations

import statistics
import sys
import time

from voice_journal.llm import speculative as stream_module
from voice_journal.session import speculative as reply_module

MARKS: list[tuple[float, str]] = []
END = "turn over"


def mark(what: str) -> None:
    MARKS.append((time.perf_counter(), what))


def wrap(cls, name: str, label) -> None:
    """Mark ``label(self, *args)`` (None: no mark) each time ``cls.name`` is called."""
    original = getattr(cls, name)

    def wrapped(self, *args, **kwargs):
        what = label(self, *args)
        if what:
            mark(what)
        return original(self, *args, **kwargs)

    setattr(cls, name, wrapped)


class _FirstToken(list):
    def append(self, delta) -> None:
        if not self:
            mark("its first token")
        super().append(delta)


def trace() -> None:
    reply = reply_module.SpeculativeReply
    wrap(reply, "piece_sent", lambda self, *a: "piece sent to Whisper")
    wrap(reply, "ready", lambda self, *a: "its words back" if self._pending and self._pending.pieces[-1].done() else None)
    wrap(reply, "_prepare", lambda self, *a: "reply begun" if self.pausing and self.begin else "model warmed")
    wrap(reply, "talking_again", lambda self, *a: "they went on")
    wrap(reply, "take", lambda self, *a: END)
    original_init = stream_module.SpeculativeStream.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        self._deltas = _FirstToken()  # before its thread writes the first one: it starts writing after a prefill

    stream_module.SpeculativeStream.__init__ = init


def report() -> None:
    turns, current = [], []
    for t, what in MARKS:
        if what == "its first token" and not current and turns:
            turns[-1].append((t, what + " (after the turn)"))  # the reply begun in the last pause, taken over
            continue
        current.append((t, what))
        if what == END:
            turns.append(current)
            current = []
    since: dict[str, list[float]] = {}
    for n, turn in enumerate(turns, 1):
        end = next(t for t, w in turn if w == END)
        print(f"turn {n}")
        last_piece = max((i for i, (_, w) in enumerate(turn) if w == "piece sent to Whisper"), default=0)
        for i, (t, what) in enumerate(turn):
            print(f"  {(t - end) * 1000:8.0f} ms  {what}")
            if i >= last_piece and what != END:
                since.setdefault(what, []).append((t - end) * 1000)
    print("medians, from the last piece on (ms before the end of the turn):")
    for what, xs in since.items():
        print(f"  {what:<24} {statistics.median(xs):8.0f} ms  ({len(xs)} turns)")


def main() -> None:
    trace()
    import live

    sys.argv = [sys.argv[0]]
    try:
        live.main()
    finally:
        report()


if __name__ == "__main__":
    main()
