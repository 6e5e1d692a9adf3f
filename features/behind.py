"""Work done one item behind the caller, on a thread: Parquet row groups encoded while the next chunk is built.

pyarrow encodes and compresses a row group without the GIL, so on a thread it runs beside flow building instead
of after it: on the 3M-packet capture, writing was ~0.4 s of the flow builder's own time. One item waits at
most (a queue of one), so memory grows by one chunk, not by the output. The caller's thread still owns the
outcome: an exception on the thread is raised by the next ``put`` or by ``close``, and nothing is written after
it; ``close`` waits for the last item, so a file is complete before it is renamed into place.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")
_STOP = object()


class WriteBehind(Generic[T]):
    """``fn(item)`` for each ``put(item)``, in order, on one daemon thread; use as a context manager or call
    ``close`` (which waits and re-raises the thread's exception)."""

    def __init__(self, fn: Callable[[T], object], name: str = "nta-write") -> None:
        self._fn = fn
        self._q: queue.Queue[object] = queue.Queue(maxsize=1)
        self._err: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (item := self._q.get()) is not _STOP:
            if self._err is None:  # after a failure, items are taken (so put never blocks) but not written
                try:
                    self._fn(item)  # type: ignore[arg-type]
                except BaseException as e:  # raised in the caller's thread by put/close
                    self._err = e

    def put(self, item: T) -> None:
        self._raise()
        self._q.put(item)

    def close(self) -> None:
        """Wait for every item put so far; raise the thread's exception, if any."""
        self.stop()
        self._raise()

    def _raise(self) -> None:
        if self._err is not None:  # kept: later calls raise it too
            raise self._err

    def __enter__(self) -> WriteBehind[T]:
        return self

    def stop(self) -> None:
        """Wait for the thread to end without raising its error: for a caller already failing, who removes the
        file next (an error on the thread is secondary to the one leaving)."""
        if self._thread.is_alive():
            self._q.put(_STOP)
            self._thread.join()

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self.stop()
