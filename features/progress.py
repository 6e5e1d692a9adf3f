"""The progress callback type: stages report work done without knowing about terminals."""

from __future__ import annotations

from collections.abc import Callable

# progress(done, total): units are the stage's own (bytes read, rows encoded, ...); total may be 0 if unknown.
ProgressFn = Callable[[int, int], None]


def no_progress(done: int, total: int) -> None:
    """Default callback: report nothing."""
