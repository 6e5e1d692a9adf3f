"""Run a batch generator one step ahead on a worker thread, so reading/decoding overlaps flow building.

``prefetched(make, progress)`` yields exactly what ``make(progress)`` yields, in the same order, with
the same exceptions; the generator runs on a daemon thread (its numpy work and file reads release the
GIL, so the next batch is decoded while the caller builds flows from the previous one). Progress calls
the generator makes are replayed on the caller's thread, in order, just before the batch that followed
them, so progress callbacks (rich bars) never run on the worker. At most ``depth`` batches wait in the
queue: memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Generator, Iterator
from typing import TypeVar

from features.common import ProgressFn

T = TypeVar("T")
_END = object()


def prefetched(
    make: Callable[[ProgressFn], Iterator[T]], progress: ProgressFn, depth: int = 1
) -> Generator[T, None, None]:
    """Items of ``make(progress)``, produced on a worker thread at most ``depth`` items ahead."""
    q: queue.Queue[tuple[list[tuple[int, int]], object]] = queue.Queue(maxsize=depth)
    stop = threading.Event()
    calls: list[tuple[int, int]] = []  # progress calls since the last item (worker side only)

    def record(done: int, total: int) -> None:
        calls.append((done, total))

    def put(item: object) -> bool:
        nonlocal calls
        pending, calls = calls, []
        while not stop.is_set():
            try:
                q.put((pending, item), timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def run() -> None:
        it = make(record)
        try:
            for x in it:
                if not put(x):
                    return
            put(_END)
        except BaseException as e:  # re-raised on the caller's thread, unchanged
            put(e)
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()

    t = threading.Thread(target=run, name="nta-prefetch", daemon=True)
    t.start()
    try:
        while True:
            pending, item = q.get()
            for done, total in pending:
                progress(done, total)
            if item is _END:
                return
            if isinstance(item, BaseException):
                raise item
            yield item  # type: ignore[misc]
    finally:
        stop.set()
        t.join()
