"""Property: any typed record nta's Zeek writers can write, the reader parses back to the same values.

Text may hold the separators, backslashes, ``\\x`` sequences, newlines, non-ASCII characters and the markers
themselves (``-``, ``(empty)``); sets may be empty or unset. (A set holding one empty string is written as Zeek
writes an empty set, ``(empty)``, so set elements are non-empty here.)
"""

from __future__ import annotations

import datetime as dt
import tempfile
from pathlib import Path

import polars as pl
from hypothesis import given, settings
from hypothesis import strategies as st
from zeek_testlib import ROWS, conn_log

from features.common import InputError
from features.flows.zeek import ZeekField, ZeekLog, json_lines, tsv_lines
from features.zeeklog.read import read_log
from features.zeeklog.stream import read_conn_logs

LOG = ZeekLog(
    "conn",
    tuple(
        ZeekField(n, t, "", "")
        for n, t in [
            ("ts", "time"), ("dur", "interval"), ("s", "string"), ("tags", "set[string]"), ("c", "count"),
            ("i", "int"), ("p", "port"), ("b", "bool"), ("x", "double"), ("a", "addr"),
        ]
    ),
)  # fmt: skip
WANTED = {f.name: f.type for f in LOG.fields}

text = st.text(st.characters(blacklist_categories=["Cs"]), max_size=12) | st.sampled_from(
    ["-", "(empty)", "\\x41", "a\tb", "a,b", "\\", "é\n", ""]
)
micros = st.integers(0, 4_000_000_000 * 1_000_000)
record = st.fixed_dictionaries(
    {
        "ts": micros.map(lambda us: dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)),
        "dur": st.none() | st.integers(-(10**12), 10**12).map(lambda us: dt.timedelta(microseconds=us)),
        "s": st.none() | text,
        "tags": st.none() | st.lists(text.filter(bool), max_size=3),
        "c": st.none() | st.integers(0, 2**64 - 1),
        "i": st.none() | st.integers(-(2**63), 2**63 - 1),
        "p": st.none() | st.integers(0, 65535),
        "b": st.none() | st.booleans(),
        "x": st.none() | st.integers(-(10**12), 10**12).map(lambda n: n / 1_000_000),
        "a": st.none() | st.sampled_from(["10.0.0.1", "::1", "fe80::1%eth0"]),
    }
)


def _frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=LOG.schema(), orient="row") if rows else pl.DataFrame(schema=LOG.schema())


@settings(max_examples=150, deadline=None)
@given(st.lists(record, max_size=6))
def test_tsv_and_json_read_back(rows: list[dict]) -> None:
    frame = _frame(rows)
    with tempfile.TemporaryDirectory() as d:
        tsv = Path(d) / "t.log"
        tsv.write_text("".join(tsv_lines(LOG, frame, None, None)), encoding="utf-8")
        got = read_log(tsv, WANTED)
        assert got.bad == {} and got.records == len(rows)
        assert got.frame.equals(frame), (got.frame.to_dicts(), rows)
        if rows:
            js = Path(d) / "t.json"
            js.write_text("".join(json_lines(LOG, frame)), encoding="utf-8")
            back = read_log(js, WANTED)
            assert back.bad == {} and back.frame.equals(frame)


@settings(max_examples=80, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 10**6), st.binary(min_size=0, max_size=6)), min_size=1, max_size=8),
    st.booleans(),
)
def test_damaged_logs_never_crash(edits: list[tuple[int, bytes]], as_json: bool) -> None:
    """Any bytes spliced into a conn.log: records are used or counted as bad, or the file is refused (InputError)."""
    data = bytearray(conn_log().encode())
    if as_json:
        data = bytearray(
            b"".join(
                b'{"ts":%d.5,"id.orig_h":"10.0.0.%d","id.orig_p":%d,"id.resp_h":"10.0.0.2","id.resp_p":80,'
                b'"proto":"tcp","conn_state":"S0","orig_pkts":1}\n' % (1709287200 + i, i, 1000 + i)
                for i in range(len(ROWS))
            )
        )
    for pos, blob in edits:
        at = pos % (len(data) + 1)
        data[at : at + len(blob)] = blob
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "conn.log"
        p.write_bytes(bytes(data))
        try:
            ext = read_conn_logs([p])
        except InputError:
            return
        assert ext.flows.num_rows + sum(ext.bad_packets.values()) >= 1
