"""Objects down a pipe with their numpy arrays' bytes copied once each way, not four times.

``Connection.send`` pickles an object whole: a packet batch's arrays (~7.7 MB per 55,000 packets) are copied into
the pickle, through the pipe in 64 KiB reads gathered in a ``BytesIO``, and out again when unpickled: on the 3M
packet capture the flow builder's process spent 0.3-0.4 CPU s more that way, work the reader child exists to
take off it. Here the pickle is made with protocol 5 and out-of-band buffers: the small pickle goes as one
message, then each array's bytes are written straight from the array (``os.write``) and read straight into one
buffer of the receiver (``os.readv``), where the unpickled arrays are views (each at a 64-byte aligned offset).
The pipe still holds at most what its buffer holds, so a sender stays at most one object ahead, as before.

Both ends must use this module: the frames are a header (buffer sizes), the pickle, then the raw bytes. It pickles
with multiprocessing's own pickler, as ``Connection.send`` does, and only between nta and the child it started
on a pipe only they hold: the same trust as before, and no file or other input is ever unpickled.
"""

from __future__ import annotations

import io
import os
import struct
from multiprocessing.connection import Connection
from multiprocessing.reduction import ForkingPickler
from typing import Any

import numpy as np

ALIGN = 64  # each out-of-band buffer starts at a multiple of this in the receiver's buffer


def _padded(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def send(conn: Connection, obj: Any) -> None:
    """Send ``obj``: a header (number and sizes of the buffers), the protocol-5 pickle, then the buffers' raw bytes."""
    buffers: list[Any] = []  # pickle.PickleBuffer of each contiguous array
    out = io.BytesIO()
    ForkingPickler(out, 5, True, buffers.append).dump(obj)  # (file, protocol, fix_imports, buffer_callback)
    data = out.getbuffer()
    raws = [b.raw() for b in buffers]
    sizes = [m.nbytes for m in raws]
    conn.send_bytes(struct.pack(f"<Q{len(sizes)}Q", len(sizes), *sizes))
    conn.send_bytes(data)
    views: list[memoryview | bytes] = []
    for m, n in zip(raws, sizes, strict=True):
        views.append(m)
        if pad := _padded(n) - n:
            views.append(bytes(pad))
    _write_all(conn.fileno(), views)


def recv(conn: Connection) -> Any:
    """The next object ``send`` sent (``EOFError`` when the sender is gone)."""
    header = conn.recv_bytes()
    (count,) = struct.unpack_from("<Q", header)
    sizes = struct.unpack_from(f"<{count}Q", header, 8)
    data = conn.recv_bytes()
    total = sum(_padded(n) for n in sizes)
    raw = np.empty(total + ALIGN, np.uint8)
    skip = -raw.ctypes.data % ALIGN  # numpy aligns to 16 bytes only
    buf = raw[skip : skip + total].data
    _read_into(conn.fileno(), buf)
    parts, off = [], 0
    for n in sizes:
        parts.append(buf[off : off + n])
        off += _padded(n)
    return ForkingPickler.loads(data, buffers=parts)


def _write_all(fd: int, views: list[memoryview | bytes]) -> None:
    """Write every byte of ``views`` in order (a write may take part of a buffer when a signal interrupts it)."""
    for v in views:
        mv = memoryview(v).cast("B")
        while mv.nbytes:
            mv = mv[os.write(fd, mv) :]


def _read_into(fd: int, buf: memoryview) -> None:
    """Fill ``buf`` from ``fd``; ``EOFError`` if the writer ends first."""
    pos = 0
    while pos < buf.nbytes:
        n = os.readv(fd, [buf[pos:]])
        if n == 0:
            raise EOFError
        pos += n
