"""Objects down a pipe with their numpy arrays' bytes copied once each way, not four times.

``Connection.send`` pickles an object whole: a packet batch's arrays (~7.7 MB per 55,000 packets) are copied into
the pickle, through the pipe in 64 KiB reads gathered in a ``BytesIO``, and out again when unpickled: on the 3M
packet capture the flow builder's process spent 0.3-0.4 CPU s more that way, work the reader child exists to
take off it. Here the pickle is made with protocol 5 and out-of-band buffers: the small pickle goes as one
message, then each array's bytes are written straight from the array (``os.write``) and read straight into one
buffer of the receiver (``os.readv``), where the unpickled arrays are views (each at a 64-byte aligned offset).
The pipe still holds at most what its buffer holds, so a sender stays at most one object ahead, as before.

Polars frames and series go the same way: polars pickles a frame as one IPC blob inside the pickle (the flow
builder's chunks: every flow and payload snippet copied into the pickle, gathered from 64 KiB reads, copied out
again), so ``send`` hands them over as Arrow (each string or binary column as one buffer of its own bytes, each
sliced column copied to its own rows), whose buffers are out-of-band like an array's, and the receiver's frame is
built on them.

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
from typing import Any, ClassVar

import numpy as np
import polars as pl
import pyarrow as pa

# Arrow's oldest form: strings and binaries as one contiguous buffer of only their own bytes. The newest (views)
# would send whole: a payload column filtered from a bigger frame still points into all of its buffers (a 16,384-flow
# chunk's 6 MB of snippets went as 30 MB).
_ARROW = pl.CompatLevel.oldest()
ALIGN = 64  # each out-of-band buffer starts at a multiple of this in the receiver's buffer


def _padded(n: int) -> int:
    return -(-n // ALIGN) * ALIGN


def _frame(table: pa.Table, schema: pl.Schema) -> pl.DataFrame:
    frame = pl.from_arrow(table, rechunk=False)
    assert isinstance(frame, pl.DataFrame)
    return frame if frame.schema == schema else frame.cast(schema)  # e.g. Enum, which Arrow holds as dictionary


def _series(array: pa.Array, name: str, dtype: pl.DataType) -> pl.Series:
    series = pl.Series(name, array)
    return series if series.dtype == dtype else series.cast(dtype)


def _own_rows(array: pa.Array) -> pa.Array:
    """``array`` on buffers of its own rows: Arrow pickles a slice (offset > 0) with its buffers from their start
    (the last 200 rows of a 200,000-row frame went as 3.2 MB)."""
    return pa.concat_arrays([array]) if array.offset else array


def _reduce_frame(frame: pl.DataFrame) -> Any:
    if any(dt == pl.Object for dt in frame.dtypes):  # no Arrow form: polars' own pickle
        return frame.__reduce_ex__(5)
    table = frame.to_arrow(compat_level=_ARROW)
    columns = [pa.chunked_array([_own_rows(c) for c in col.chunks], col.type) for col in table.columns]
    return _frame, (pa.Table.from_arrays(columns, schema=table.schema), frame.schema)


def _reduce_series(series: pl.Series) -> Any:
    if series.dtype == pl.Object:
        return series.__reduce_ex__(5)
    return _series, (_own_rows(series.to_arrow(compat_level=_ARROW)), series.name, series.dtype)


class _Pickler(ForkingPickler):
    # ForkingPickler.__init__ adds these to its dispatch table, which pickle consults before an object's own reduce
    _extra_reducers: ClassVar[dict[type, Any]] = {
        **ForkingPickler._extra_reducers,  # type: ignore[attr-defined]  # multiprocessing's own (register)
        pl.DataFrame: _reduce_frame,
        pl.Series: _reduce_series,
    }


def dumps(obj: Any) -> tuple[memoryview, list[memoryview]]:
    """``obj``'s protocol-5 pickle and its out-of-band buffers (each array's or Arrow buffer's bytes), as ``send``
    sends them."""
    buffers: list[Any] = []  # pickle.PickleBuffer of each contiguous array
    out = io.BytesIO()
    _Pickler(out, 5, True, buffers.append).dump(obj)  # (file, protocol, fix_imports, buffer_callback)
    return out.getbuffer(), [b.raw() for b in buffers]


def send(conn: Connection, obj: Any) -> None:
    """Send ``obj``: a header (number and sizes of the buffers), the protocol-5 pickle, then the buffers' raw bytes."""
    data, raws = dumps(obj)
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
