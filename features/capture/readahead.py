"""Read and decode a capture ahead of flow building: in a forked child process for big files, else on a thread.

Why a process: the classic-pcap record walk is a Python loop (one ``struct.unpack_from`` per record) that
holds the GIL for about 0.4 s per million records, so on a thread it stalls flow building instead of
overlapping it (measured here: 1M packets, decode 0.95 s + flows 1.8 s serial, 2.8 s with a thread, 2.1 s
with a child process). The child runs ``PacketSource.batches`` and sends each ``PacketBatch`` (numpy
columns, pickled) down a pipe; the pipe's small buffer keeps it at most one batch ahead, so memory stays
bounded. At the end it sends what the source learnt (records, bad-packet counts, warnings, sha256), which
the parent's ``PacketSource`` adopts; an exception in the child is re-raised in the parent unchanged.

Small files, and platforms without ``fork``, use ``features.capture.prefetch``'s thread: a fork costs more than
it saves there; small files (``PacketSource.is_small``) are decoded on the caller's thread. Nothing in the child touches the console: its progress calls are replayed by the parent.

The child never outlives the parent: it closes its inherited copy of the pipe's read end (so a send to a parent
that is gone fails instead of blocking forever), asks the kernel to SIGKILL it when the parent dies (Linux
``PR_SET_PDEATHSIG``; the parent's SIGKILL included) and puts SIGTERM back to its default action (the parent's
handler, inherited by the fork, turns it into an interruption). The parent terminates and joins it on every way
out of ``read_ahead``, exceptions and interruptions (Ctrl-C, SIGTERM) included.
"""

from __future__ import annotations

import contextlib
import ctypes
import multiprocessing as mp
import os
import signal
from collections.abc import Callable, Iterator
from multiprocessing.connection import Connection
from typing import Any, TypeVar

from features.capture import wire
from features.capture.packets import PacketBatch, coalesced
from features.capture.prefetch import prefetched
from features.capture.source import PacketSource
from features.capture.spawn import PROCESS_MIN_BYTES as PROCESS_MIN_BYTES  # re-exported: the readers' threshold
from features.capture.spawn import spawned
from features.common import ProgressFn

T = TypeVar("T")
# Batches sent on are at least this big (features.capture.packets.coalesced): the flow builder passes over its
# open flows once per batch, and a 32 MiB block of ordinary traffic is ~55,000 packets. 100,000: 3M packets'
# flows 6.4 -> 5.75 s with the other changes of that commit, for ~50 MB more peak memory (250,000: no faster).
COALESCE_PACKETS = 100_000


def read_ahead(
    src: PacketSource, progress: ProgressFn, *, process_min_bytes: int = PROCESS_MIN_BYTES, depth: int = 1
) -> Iterator[PacketBatch]:
    """``src.batches(progress)``'s batches, decoded up to ``depth`` batches ahead of the caller (same order,
    same errors). A deeper read-ahead lets the decoder run on while the caller does something else (``nta
    scan`` builds its network meanwhile); each batch waiting costs its memory (~25 MB per 262,144 packets)."""
    if src.is_small and src.size_bytes < process_min_bytes:
        yield from src.batches(progress)  # one small block: nothing to decode ahead of
        return
    if src.size_bytes < process_min_bytes or "fork" not in mp.get_all_start_methods():
        yield from prefetched(src.batches, progress, depth)
        return
    yield from _from_child(src, progress, depth)


def _from_child(src: PacketSource, progress: ProgressFn, depth: int = 1) -> Iterator[PacketBatch]:
    def make(prog: ProgressFn) -> Iterator[PacketBatch]:  # in the child: bigger batches for the flow builder
        return coalesced(src.batches(prog), COALESCE_PACKETS)

    yield from in_child(make, src.outcome, src.adopt, progress, depth, name=str(src.path), what="reader")


def in_child(
    make: Callable[[ProgressFn], Iterator[T]],
    outcome: Callable[[], Any],
    adopt: Callable[[Any], None],
    progress: ProgressFn,
    depth: int = 1,
    *,
    name: str,
    what: str = "reader",
    on_started: Callable[[], None] | None = None,
    daemon: bool = True,
    spawn: Callable[[Connection], None] | None = None,
) -> Iterator[T]:
    """``make(progress)``'s items, produced in a forked child process and sent down a pipe (pickled).

    When the items are exhausted the child sends ``outcome()`` (what it learnt on the way), which the parent
    hands to ``adopt``; an exception in the child is raised in the parent unchanged (as its text when it
    cannot be pickled); a child that dies is a ``RuntimeError`` naming ``name`` and the exit code. Progress
    calls are replayed in the parent. ``depth`` > 1: a parent thread drains the pipe up to ``depth`` items
    ahead, so the child keeps working while the parent is busy. ``on_started`` runs in the parent once the
    child is running, before the first item is awaited. Closing the iterator ends the child. A child that
    starts children of its own (``daemon=False``) is not a daemon: multiprocessing forbids that.

    ``spawn``: start a fresh interpreter instead of forking (``features.capture.child``), running
    ``spawn(conn)`` (a picklable callable that calls ``child_body`` with its own ``make`` and ``outcome``). A
    forked child may use only what is safe after a fork (numpy, files): polars' and pyarrow's thread pools are
    not, and a forked child using them can hang on a lock held by a thread that did not survive the fork.
    """
    proc: Any
    if spawn is not None:
        proc = spawned(spawn)  # the one prespawn_for started, when there is one
        recv_end = proc.recv_end
    else:
        ctx: Any = mp.get_context("fork")
        recv_end, send_end = ctx.Pipe(duplex=False)
        args = (make, outcome, send_end, name, recv_end, os.getpid())
        proc = ctx.Process(target=child_body, args=args, name=f"nta-{what}", daemon=daemon)
        proc.start()
        send_end.close()  # the child holds the only writer: its exit ends our recv with EOFError

    def receive(prog: ProgressFn) -> Iterator[T]:
        while True:
            try:
                kind, calls, item = wire.recv(recv_end)
            except EOFError:
                proc.join()
                raise RuntimeError(f"{name}: the {what} process ended early (exit code {proc.exitcode})") from None
            for done, total in calls:
                prog(done, total)
            if kind == "item":
                yield item
            elif kind == "end":
                adopt(item)
                return
            else:
                raise item

    try:
        if on_started is not None:
            on_started()
        # Deeper than one item: a thread drains the pipe, so the child keeps working while we are busy.
        yield from prefetched(receive, progress, depth - 1) if depth > 1 else receive(progress)
    finally:
        if proc.is_alive():
            proc.terminate()
        proc.join()
        recv_end.close()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(parent: int) -> bool:
    """Have the kernel SIGKILL this process when ``parent`` (the forking thread's process) dies; False where
    prctl is missing (not Linux). Exits at once if the parent died before the call."""
    armed = False
    with contextlib.suppress(OSError, AttributeError):
        armed = ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) == 0
    if os.getppid() != parent:  # the parent was gone before the request took effect
        os._exit(0)
    return armed


def child_body(
    make: Callable[[ProgressFn], Iterator[Any]],
    outcome: Callable[[], Any],
    conn: Connection,
    name: str,
    parent_end: Connection | None = None,
    parent: int | None = None,
) -> None:
    """Child process body: every item, then the outcome (or the exception) down ``conn``.

    A forked child gets ``parent_end`` (its inherited copy of the pipe's read end, closed here: with it open, a
    send to a dead parent blocks forever) and ``parent`` (the parent's pid, to die with it); a spawned one
    (``features.capture.child``) arms that itself.
    """
    if parent_end is not None:
        parent_end.close()
        with contextlib.suppress(ValueError):  # not the main thread: keep what there is
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if parent is not None:
        die_with_parent(parent)
    calls: list[tuple[int, int]] = []

    def record(done: int, total: int) -> None:
        calls.append((done, total))

    try:
        for item in make(record):
            wire.send(conn, ("item", calls[:], item))
            calls.clear()
        wire.send(conn, ("end", calls[:], outcome()))
    except (KeyboardInterrupt, BrokenPipeError):  # Ctrl-C reaches the whole group / the parent is gone: it reports
        pass
    except BaseException as e:  # handed to the parent, which raises it
        with contextlib.suppress(OSError):
            try:
                wire.send(conn, ("error", calls[:], e))
            except OSError:
                raise
            except Exception:  # an exception that cannot be pickled: send its text instead
                wire.send(conn, ("error", calls[:], RuntimeError(f"{name}: {type(e).__name__}: {e}")))
    finally:
        conn.close()
