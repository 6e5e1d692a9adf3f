"""Worker interpreters (``python -m features.capture.child``), and one started before it is needed.

A spawned worker spends its first ~0.3 s starting Python and importing what its body needs (unpickling the flow
builder's body imports polars and pyarrow) before it reads a packet. ``nta scan`` used to start it once its own
imports were done, so the two ran one after the other: on the 1M-packet capture the decoder's first batch came
1.0 s after the command started, 0.5 s of it this chain. ``prespawn_for`` starts the worker as soon as the
command knows its captures will be read in a child, and the worker imports its modules (``preload``) while the
command imports its own, on the other core; the first ``spawned`` call takes it. Stdlib imports only here: the
point is to start before numpy, polars and pyarrow are imported.
"""

from __future__ import annotations

import contextlib
import os
import stat
import struct
import subprocess
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator
from multiprocessing.connection import Connection, Pipe
from pathlib import Path

PROCESS_MIN_BYTES = 16 << 20  # captures at least this big (on disk) are read in a child process
FLOW_BUILDER = "features.flows.extract"  # what the flow builder's body needs: imported while the command starts
# First four bytes (read little-endian) of the captures a worker reads: features.capture.pcap's PCAP_MAGICS and
# PCAPNG_MAGIC, written out here because that module imports numpy (tests/flows/test_prespawn.py holds them equal).
CAPTURE_MAGICS = frozenset({0xA1B2C3D4, 0xD4C3B2A1, 0xA1B23C4D, 0x4D3CB2A1, 0xA1B2CD34, 0x34CDB2A1, 0x0A0D0D0A})


class Spawned:
    """A fresh interpreter running ``features.capture.child``, waiting for its body (``begin``); what it sends
    arrives on ``recv_end``. ``preload``: modules it imports before it waits."""

    def __init__(self, preload: Iterable[str] = ()) -> None:
        self.recv_end, send_end = Pipe(duplex=False)
        inbox_r, inbox_w = os.pipe()
        self._inbox: int | None = inbox_w
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))  # find nta as this process does
        try:
            self._proc = subprocess.Popen(
                [
                    sys.executable, "-m", "features.capture.child", str(inbox_r), str(send_end.fileno()),
                    str(os.getpid()), *preload,
                ],
                pass_fds=(inbox_r, send_end.fileno()),
                env=env,
                stdin=subprocess.DEVNULL,
            )  # fmt: skip
        except BaseException:
            os.close(self._inbox)
            self.recv_end.close()
            raise
        finally:
            os.close(inbox_r)
            send_end.close()  # the child holds the only writer: its exit ends our recv with EOFError

    def begin(self, body: Callable[[Connection], None]) -> None:
        """Hand the worker its body (pickled); it runs ``body(conn)``."""
        if self._inbox is None:
            raise RuntimeError("this worker has its body already")
        with Connection(self._inbox, readable=False) as inbox:
            self._inbox = None
            inbox.send(body)

    def discard(self) -> None:
        """End a worker that got no body: it is stopped and waited for, its pipes closed."""
        if self._inbox is not None:
            os.close(self._inbox)
            self._inbox = None
        with contextlib.suppress(ProcessLookupError):
            self._proc.terminate()
        self._proc.wait()
        self.recv_end.close()

    @property
    def exitcode(self) -> int | None:
        return self._proc.poll()

    def is_alive(self) -> bool:
        return self._proc.poll() is None

    def terminate(self) -> None:
        self._proc.terminate()

    def join(self) -> None:
        self._proc.wait()


_early: Spawned | None = None  # started by prespawn_for, taken by the first spawned()


def looks_like_capture(path: Path) -> bool:
    """Whether ``path`` starts like a pcap or pcapng capture, gzip-compressed or not (its first bytes only; False
    when it cannot be read). Zeek conn logs, read by the command itself, do not."""
    try:
        with open(path, "rb") as f:
            head = f.read(4096)
    except OSError:
        return False
    if head[:2] == b"\x1f\x8b":
        with contextlib.suppress(zlib.error):
            head = zlib.decompressobj(16 + zlib.MAX_WBITS).decompress(head, 4)  # gzip framing; 4 bytes at most
    return len(head) >= 4 and struct.unpack_from("<I", head)[0] in CAPTURE_MAGICS


def prespawn_for(paths: Iterable[Path], preload: Iterable[str] = (FLOW_BUILDER,), min_bytes: int | None = None) -> bool:
    """Start a worker now when ``paths`` will be read in a child process: regular files of ``min_bytes``
    (default ``PROCESS_MIN_BYTES``) or more in all, as ``features.flows.extract.FlowStream.chunks`` decides
    (folders and pipes are left to it), each starting like a capture (a big Zeek conn log is read without one).
    A guess, cheap to get wrong: a worker nothing takes is ended by ``discard_prespawned``. True when one was
    started."""
    global _early
    if _early is not None:
        return False
    min_bytes = PROCESS_MIN_BYTES if min_bytes is None else min_bytes
    paths = list(paths)
    total = 0
    for p in paths:
        try:
            st = os.stat(p)
        except OSError:
            return False  # the scan reports it
        if not stat.S_ISREG(st.st_mode):
            return False
        total += st.st_size
    if total < min_bytes or not all(looks_like_capture(Path(p)) for p in paths):
        return False
    _early = Spawned(preload)
    return True


def spawned(body: Callable[[Connection], None]) -> Spawned:
    """A worker running ``body``: the one ``prespawn_for`` started, if it is still there, else a new one."""
    global _early
    proc, _early = _early, None
    if proc is None or not proc.is_alive():
        if proc is not None:
            proc.discard()
        proc = Spawned()
    proc.begin(body)
    return proc


@contextlib.contextmanager
def prespawned(paths: Iterable[Path], min_bytes: int | None = None) -> Iterator[None]:
    """``prespawn_for(paths)`` for the block; its worker ended at the end if the block did not take it."""
    prespawn_for(paths, min_bytes=min_bytes)
    try:
        yield
    finally:
        discard_prespawned()


def discard_prespawned() -> None:
    """End the worker ``prespawn_for`` started if nothing took it (the captures were read another way)."""
    global _early
    proc, _early = _early, None
    if proc is not None:
        proc.discard()
