"""Progress bars for long work (rich), silent when disabled or not on a terminal in CI."""

from __future__ import annotations

import os
from collections.abc import Iterable, Iterator
from typing import TypeVar

T = TypeVar("T")


def progress_enabled(requested: bool = True) -> bool:
    return requested and os.environ.get("RADSTORE_PROGRESS", "1") != "0"


def track(items: Iterable[T], description: str, total: int | None = None,
          enabled: bool = True) -> Iterator[T]:
    """Yield ``items`` while showing a rich progress bar with count, rate and ETA."""
    if not progress_enabled(enabled):
        yield from items
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )

    with Progress(TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), TimeRemainingColumn(), transient=False) as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)
