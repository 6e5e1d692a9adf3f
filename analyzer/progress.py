"""Stage progress for ``nta scan``: rich bars on a terminal, plain lines otherwise, nothing with ``--quiet``.

The pipeline never prints: it asks a ``Stages`` object for one ``ProgressFn`` per stage
(``with stages.stage("reading") as progress: ...``) and stages call ``progress(done, total)``.
Everything goes to stderr so that ``--format json`` keeps stdout clean for piping.
"""

from __future__ import annotations

import contextlib
import sys
import time
from collections.abc import Iterator
from typing import IO, Protocol

from features.common import ProgressFn, no_progress


class Stages(Protocol):
    """Hands out one progress callback per pipeline stage."""

    def stage(self, name: str) -> contextlib.AbstractContextManager[ProgressFn]: ...


class QuietStages:
    """No output at all (``--quiet``, tests)."""

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[ProgressFn]:
        yield no_progress


class PlainStages:
    """One line when a stage starts and one when it ends: readable in CI logs, no control characters."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[ProgressFn]:
        print(f"nta: {name} ...", file=self.stream, flush=True)
        t0 = time.perf_counter()
        yield no_progress
        print(f"nta: {name} done in {time.perf_counter() - t0:.1f} s", file=self.stream, flush=True)


class RichStages:
    """A rich progress bar per stage on the terminal's stderr; bars stay on screen as a log of the run."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

        self._progress = Progress(
            TextColumn("{task.description:<12}"),
            BarColumn(),
            TaskProgressColumn(),
            TimeElapsedColumn(),
            console=Console(stderr=True),
            transient=False,
        )

    def __enter__(self) -> RichStages:
        self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._progress.stop()

    @contextlib.contextmanager
    def stage(self, name: str) -> Iterator[ProgressFn]:
        task = self._progress.add_task(name, total=None)

        def report(done: int, total: int) -> None:
            # total 0 means "unknown": keep the bar indeterminate rather than showing 100 %.
            self._progress.update(task, completed=done, total=total or None)

        yield report
        t = self._progress.tasks[task]
        self._progress.update(task, total=t.total or 1, completed=t.total or 1)


@contextlib.contextmanager
def make_stages(quiet: bool, stream: IO[str] | None = None) -> Iterator[Stages]:
    """The right ``Stages`` for where stderr goes: nothing, rich bars (a terminal) or plain lines."""
    err = stream if stream is not None else sys.stderr
    if quiet:
        yield QuietStages()
    elif err.isatty():
        with RichStages() as stages:
            yield stages
    else:
        yield PlainStages(err)
