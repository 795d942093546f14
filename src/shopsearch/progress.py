"""Progress reporting for long work (ingest, encoding, evaluation).

Library code takes a :class:`Progress` and calls
``with progress.stage("Encoding", total) as advance``; the CLI passes a
:class:`RichProgress` (bars on stderr with an ETA), tests pass nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Protocol

Advance = Callable[[int], None]


class Progress(Protocol):
    def stage(
        self, description: str, total: int | None = None
    ) -> AbstractContextManager[Advance]: ...


class NullProgress:
    """Reports nothing."""

    @contextmanager
    def stage(self, description: str, total: int | None = None) -> Iterator[Advance]:
        yield lambda n=1: None


class RichProgress:
    """A rich progress bar per stage, on stderr, with elapsed time and ETA."""

    def __init__(self, *, console: object | None = None, transient: bool = False) -> None:
        from rich.console import Console

        self._console = console or Console(stderr=True)
        self._transient = transient

    @contextmanager
    def stage(self, description: str, total: int | None = None) -> Iterator[Advance]:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            TextColumn,
            TimeElapsedColumn,
            TimeRemainingColumn,
        )
        from rich.progress import Progress as _Bar

        with _Bar(
            TextColumn("{task.description:<22}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("eta"),
            TimeRemainingColumn(),
            console=self._console,
            transient=self._transient,
        ) as bar:
            task = bar.add_task(description, total=total)
            yield lambda n=1: bar.advance(task, n)


NULL_PROGRESS = NullProgress()
