"""features.capture.wire: objects with numpy arrays through a real pipe, whole and unchanged, arrays aligned."""

from __future__ import annotations

import struct
import threading
from collections import Counter
from multiprocessing import Pipe
from typing import Any

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from features.capture import wire
from features.capture.packets import PacketBatch


def _through(obj: Any) -> Any:
    """``obj`` sent on one thread and received on this one (a pipe holds 64 KiB: big objects need both ends)."""
    r, w = Pipe(duplex=False)

    def send() -> None:
        try:
            wire.send(w, obj)
        finally:
            w.close()  # a send that fails ends the receive with EOFError instead of a wait forever

    t = threading.Thread(target=send)
    t.start()
    try:
        return wire.recv(r)
    finally:
        t.join()
        r.close()


def test_a_packet_batch_comes_back_equal_with_aligned_writable_arrays() -> None:
    n = 300_000  # several MB: far more than the pipe holds at once
    rng = np.random.default_rng(1)
    b = PacketBatch.empty()
    b.cols = {k: rng.integers(0, 200, n).astype(v.dtype) for k, v in b.cols.items()}
    b.payload_idx = np.arange(3, dtype=np.int64)
    b.payloads = [b"GET /", b"", b"\x00\xff"]
    b.bad = Counter({"truncated_ip": 2})
    b.records, b.tunnels = n + 2, {7: "vxlan 10.0.0.1 10.0.0.2"}
    got = _through(b)
    assert set(got.cols) == set(b.cols)
    for k, v in b.cols.items():
        assert got.cols[k].dtype == v.dtype and np.array_equal(got.cols[k], v), k
        assert got.cols[k].ctypes.data % wire.ALIGN == 0 and got.cols[k].flags.writeable
    assert got.payloads == b.payloads and got.bad == b.bad and got.records == b.records and got.tunnels == b.tunnels


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        hnp.arrays(
            st.sampled_from([np.uint8, np.int16, np.int32, np.uint64, np.float64, np.bool_]),
            hnp.array_shapes(min_dims=1, max_dims=2, min_side=0, max_side=300),
        ),
        max_size=6,
    ),
    st.booleans(),
)
def test_any_arrays_come_back_equal(arrays: list[np.ndarray], strided: bool) -> None:
    if strided:  # views that are not contiguous go in the pickle itself
        arrays = [a[::2] for a in arrays]
    got = _through(("item", [(1, 2)], arrays))
    assert got[:2] == ("item", [(1, 2)])
    assert len(got[2]) == len(arrays)
    for a, g in zip(arrays, got[2], strict=True):
        assert g.dtype == a.dtype and g.shape == a.shape
        assert np.array_equal(g, a, equal_nan=a.dtype.kind == "f")


def test_an_exception_comes_back_as_itself() -> None:
    got = _through(("error", [], ValueError("bad block at 12")))
    assert isinstance(got[2], ValueError) and str(got[2]) == "bad block at 12"


def test_a_writer_gone_mid_object_is_eof() -> None:
    r, w = Pipe(duplex=False)
    w.send_bytes(struct.pack("<QQ", 1, 1000))  # a header promising 1000 bytes ...
    w.send_bytes(b"\x80\x05N.")
    w.close()  # ... that never come
    with pytest.raises(EOFError):
        wire.recv(r)
    r.close()


def _frame_of_every_kind() -> pl.DataFrame:
    n = 5
    return pl.DataFrame(
        {
            "i8": pl.Series([1, None, -3, 4, 5], dtype=pl.Int8),
            "u64": pl.Series([2**64 - 1, 0, 1, None, 7], dtype=pl.UInt64),
            "f32": pl.Series([1.5, float("nan"), None, -0.0, 3.0], dtype=pl.Float32),
            "flag": [True, False, None, True, False],
            "text": ["a", "", None, "ünï", "x" * 40],
            "raw": [b"\x00\xff", b"", None, b"GET / HTTP/1.1", b"y" * 40],
            "ts": pl.Series([0, 1, None, 3, 4]).cast(pl.Datetime("us", "UTC")),
            "day": pl.Series([0, 1, 2, None, 4]).cast(pl.Date),
            "span": pl.Series([0, 1, 2, 3, None]).cast(pl.Duration("ns")),
            "list": [[1, 2], [], None, [3], [4, 5, 6]],
            "rec": [{"a": 1, "b": "x"}, None, {"a": 2, "b": None}, {"a": 3, "b": "z"}, {"a": None, "b": "w"}],
            "cat": pl.Series(["s0", "rej", None, "s0", "sf"], dtype=pl.Categorical),
            "enum": pl.Series(["DoS", "normal", "Probe", None, "DoS"], dtype=pl.Enum(["normal", "DoS", "Probe"])),
            "dec": pl.Series(["1.25", "-3.50", None, "0.00", "9.99"], dtype=pl.Decimal(10, 2)),
            "none": pl.Series([None] * n, dtype=pl.Null),
        }
    )


def test_polars_frames_and_series_come_back_equal_with_their_dtypes() -> None:
    df = _frame_of_every_kind()
    empty = df.clear()
    two_chunks = pl.concat([df, df], rechunk=False)
    got = _through(("item", [], {"df": df, "empty": empty, "chunks": two_chunks, "col": df["enum"], "raw": df["raw"]}))
    for name, want in (("df", df), ("empty", empty), ("chunks", two_chunks)):
        g = got[2][name]
        assert g.schema == want.schema, name
        assert g.equals(want, null_equal=True), name
    for name, column in (("col", "enum"), ("raw", "raw")):
        series, sent = got[2][name], df[column]
        assert series.name == sent.name and series.dtype == sent.dtype and series.equals(sent, null_equal=True)


def test_a_frame_goes_out_of_band_and_a_filtered_one_as_its_own_bytes_only() -> None:
    big = pl.DataFrame({"flow_id": np.arange(200_000), "payload": [b"p" * 100] * 200_000})
    data, raws = wire.dumps(big)
    assert len(data) < 10_000  # the pickle holds no column: the ~22 MB go as buffers
    assert sum(r.nbytes for r in raws) >= 200_000 * 108
    few = big.filter(pl.col("flow_id") % 1000 == 0)  # 200 rows whose binary values point into big's buffers
    last = big.tail(200)  # a slice: its columns start 199,800 rows into big's
    chunked = pl.concat([big.slice(1000, 100), big.tail(100)], rechunk=False)
    for part in (few, last, chunked, last["flow_id"], last["payload"]):
        data, raws = wire.dumps(part)
        assert sum(r.nbytes for r in raws) + len(data) < 60_000
        got = _through(part)
        assert got.equals(part)
        assert got.schema == part.schema if isinstance(part, pl.DataFrame) else got.dtype == part.dtype
