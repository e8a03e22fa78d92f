"""Progress bars for long work (assembling models, reading long files).

Library code calls :func:`track_bytes`/:func:`bar` instead of printing: the
bar goes to stderr, disappears when done, and stays silent when stderr is not
a terminal (CI logs, pipes), so that stdout stays clean for ``--json``.
"""

from __future__ import annotations

import contextlib
from typing import Iterator, Protocol

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

_console = Console(stderr=True)


class Advance(Protocol):
    def __call__(self, amount: float) -> None: ...


@contextlib.contextmanager
def bar(description: str, total: float | None, *, unit_bytes: bool = False) -> Iterator[Advance]:
    """Show one progress bar while the block runs; yield a function to advance it."""
    if not _console.is_terminal:
        yield lambda amount: None
        return
    columns = [TextColumn("{task.description}"), BarColumn()]
    columns.append(DownloadColumn() if unit_bytes else TextColumn("{task.percentage:>3.0f}%"))
    columns.append(TimeRemainingColumn())
    with Progress(*columns, console=_console, transient=True) as progress:
        task = progress.add_task(description, total=total)
        yield lambda amount: progress.advance(task, amount)
