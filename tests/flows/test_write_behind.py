"""features.behind.WriteBehind: items written in order on a thread; a failure there surfaces in the caller."""

from __future__ import annotations

import threading

import pytest

from features.behind import WriteBehind


def test_items_are_written_in_order_on_another_thread() -> None:
    seen: list[tuple[int, str]] = []

    def write(i: int) -> None:
        seen.append((i, threading.current_thread().name))

    with WriteBehind(write) as w:
        for i in range(50):
            w.put(i)
    assert [i for i, _ in seen] == list(range(50))
    assert {name for _, name in seen} == {"nta-write"}


def test_a_failure_on_the_thread_is_raised_by_the_next_put_or_close() -> None:
    def fail_on_3(i: int) -> None:
        if i == 3:
            raise OSError("disk full")

    w: WriteBehind[int] = WriteBehind(fail_on_3)
    with pytest.raises(OSError, match="disk full"):
        for i in range(100):
            w.put(i)
    with pytest.raises(OSError, match="disk full"):
        w.close()


def test_leaving_on_an_exception_stops_the_thread() -> None:
    w: WriteBehind[int] = WriteBehind(lambda i: None)
    with pytest.raises(KeyError), w:
        w.put(1)
        raise KeyError("interrupted")
    assert not w._thread.is_alive()
