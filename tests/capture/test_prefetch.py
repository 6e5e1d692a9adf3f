"""features.capture.prefetch: same items, same order, progress replayed on the caller's thread, errors re-raised."""

from __future__ import annotations

import threading
from collections.abc import Iterator

import pytest

from features.capture.prefetch import prefetched
from features.common import InputError, ProgressFn


def _gen(n: int, progress: ProgressFn, fail_at: int | None = None) -> Iterator[int]:
    for i in range(n):
        progress(i, n)
        if i == fail_at:
            raise InputError(f"cap.pcap: broken at {i}")
        yield i * 10
    progress(n, n)


def test_items_and_progress_arrive_in_order_on_the_callers_thread() -> None:
    events: list[tuple[str, int]] = []
    threads: set[int] = set()

    def progress(done: int, total: int) -> None:
        threads.add(threading.get_ident())
        events.append(("p", done))

    for x in prefetched(lambda p: _gen(5, p), progress):
        events.append(("x", x))
    want = [("p", 0), ("x", 0), ("p", 1), ("x", 10), ("p", 2), ("x", 20), ("p", 3), ("x", 30), ("p", 4)]
    assert events == [*want, ("x", 40), ("p", 5)]
    assert threads == {threading.get_ident()}


def test_errors_are_reraised_unchanged_after_the_items_before_them() -> None:
    got: list[int] = []
    with pytest.raises(InputError, match="broken at 2"):
        for x in prefetched(lambda p: _gen(5, p, fail_at=2), lambda d, t: None):
            got.append(x)
    assert got == [0, 10]


def test_leaving_early_stops_and_closes_the_generator() -> None:
    closed = threading.Event()

    def endless(progress: ProgressFn) -> Iterator[int]:
        try:
            i = 0
            while True:
                yield i
                i += 1
        finally:
            closed.set()

    it = prefetched(endless, lambda d, t: None, depth=2)
    assert [next(it) for _ in range(3)] == [0, 1, 2]
    it.close()
    assert closed.wait(5)
    assert not any(t.name == "nta-prefetch" and t.is_alive() for t in threading.enumerate())
