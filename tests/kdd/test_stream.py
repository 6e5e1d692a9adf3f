"""features.kdd.frame.KddStream: features of a flow table fed in chunks equal those of the whole table."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.flows.extract import extract_flows
from features.kdd.columns import KDD_FEATURES
from features.kdd.frame import KddStream, kdd_features

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


@pytest.mark.parametrize("names", [["demo-mixed.pcap"], ["syn-flood.pcap", "ftp-bruteforce.pcap", "ping-sweep.pcap"]])
@pytest.mark.parametrize("size", [1, 7, 300])
def test_chunks_give_the_whole_tables_features(names: list[str], size: int) -> None:
    ext = extract_flows([SAMPLES / n for n in names])
    flows = pl.from_arrow(ext.flows)
    assert isinstance(flows, pl.DataFrame)
    if size == 1:
        # One-row chunks cost a polars pass each (about 0.05-0.08 s on CI's machine), so they run on the first 400
        # flows: enough for a flood to fill the 2 s window and the 100-connection host ring past any one chunk.
        flows = flows.head(400)
    whole = kdd_features(flows, ext.payloads)
    stream = KddStream()
    parts = []
    for start in range(0, flows.height, size):
        chunk = flows.slice(start, size)
        pays = ext.payloads.filter(pl.col("flow_id").is_in(chunk["flow_id"].implode()))
        parts.append(stream.add(chunk, pays))
    got = pl.concat(parts)
    assert got.equals(whole)
    top = whole["count"].max()
    assert isinstance(top, int | float) and top > 100  # the floods fill the windows past any one chunk


@pytest.mark.parametrize("size", [7, 300])
def test_sessions_never_share_a_window_in_any_chunking(size: int) -> None:
    """Three captures a day apart, three streams and so three sessions (``features.kdd.windows.Sessions``): fed in
    chunks that cut across the sessions' edges, each capture's 41 features are those it has alone; as one stream
    (one session) the later captures' first flows count the earlier ones' in their windows."""
    day = 86_400_000_000  # microseconds
    frames: list[pl.DataFrame] = []
    pays: list[pl.DataFrame] = []
    alone: list[pl.DataFrame] = []
    for k, name in enumerate(["syn-flood.pcap", "ftp-bruteforce.pcap", "demo-mixed.pcap"]):
        ext = extract_flows([SAMPLES / name])
        flows = pl.from_arrow(ext.flows)
        assert isinstance(flows, pl.DataFrame)
        alone.append(kdd_features(flows, ext.payloads).select(KDD_FEATURES))
        offset = sum(f.height for f in frames)
        moved = flows.with_columns(
            (pl.col("ts").dt.epoch("us") + k * day).cast(flows.schema["ts"]).alias("ts"),
            (pl.col("ts_end").dt.epoch("us") + k * day).cast(flows.schema["ts_end"]).alias("ts_end"),
            pl.col("flow_id") + offset,
        )
        frames.append(moved)
        pays.append(ext.payloads.with_columns(pl.col("flow_id") + offset))
    flows, payloads = pl.concat(frames), pl.concat(pays)
    streams = pl.Series("stream", [k for k, f in enumerate(frames) for _ in range(f.height)], dtype=pl.Int64)
    stream = KddStream()
    parts = []
    for start in range(0, flows.height, size):
        chunk = flows.slice(start, size)
        p = payloads.filter(pl.col("flow_id").is_in(chunk["flow_id"].implode()))
        parts.append(stream.add(chunk, p, stream_ids=streams.slice(start, size)))
    got = pl.concat(parts).select(KDD_FEATURES)
    assert got.equals(pl.concat(alone)) and stream.sessions.count == 3
    assert not kdd_features(flows, payloads).select(KDD_FEATURES).equals(got)


@pytest.mark.parametrize("size", [7, 300])
def test_overlapping_streams_keep_their_own_windows_and_closed_ones_are_dropped(size: int) -> None:
    """Two captures at the same time (two sensors kept apart: their records interleave in window order) and a
    third after them: fed in chunks, each capture's 41 features are those it has alone (its positional host window
    counts its own records only), and a stream said to be closed is carried no further."""
    frames: list[pl.DataFrame] = []
    pays: list[pl.DataFrame] = []
    alone: list[pl.DataFrame] = []
    base: int | None = None
    for k, name in enumerate(["syn-flood.pcap", "demo-mixed.pcap", "ftp-bruteforce.pcap"]):
        ext = extract_flows([SAMPLES / name])
        flows = pl.from_arrow(ext.flows)
        assert isinstance(flows, pl.DataFrame)
        alone.append(kdd_features(flows, ext.payloads).select("ts", *KDD_FEATURES).with_columns(pl.lit(k).alias("k")))
        first = int(flows["ts"].dt.epoch("us").min())  # type: ignore[arg-type]
        base = first if base is None else base
        shift = base - first + (86_400_000_000 if k == 2 else 0)  # the first two start together, the third a day on
        offset = sum(f.height for f in frames)
        frames.append(
            flows.with_columns(
                (pl.col("ts").dt.epoch("us") + shift).cast(flows.schema["ts"]).alias("ts"),
                (pl.col("ts_end").dt.epoch("us") + shift).cast(flows.schema["ts_end"]).alias("ts_end"),
                pl.col("flow_id") + offset,
                pl.lit(10 * k + 3, pl.Int64).alias("stream"),
            )
        )
        pays.append(ext.payloads.with_columns(pl.col("flow_id") + offset))
    # the table in window order (start time), as the flow extractor releases it, numbered again
    flows = pl.concat(frames).with_row_index("_in").sort("ts", "_in")
    order = flows.get_column("flow_id")
    flows = flows.with_columns(pl.int_range(0, flows.height, dtype=pl.Int64).alias("flow_id"))
    payloads = (
        pl.concat(pays)
        .join(pl.DataFrame({"old": order, "flow_id_new": flows["flow_id"]}), left_on="flow_id", right_on="old")
        .with_columns(pl.col("flow_id_new").alias("flow_id"))
        .drop("flow_id_new")
        .sort("flow_id", "ts_ns")
    )
    streams = flows.get_column("stream")
    last_of = {int(s): int(i) for s, i in flows.group_by("stream").agg(pl.col("flow_id").max()).iter_rows()}
    table = flows.drop("_in", "stream")
    stream = KddStream()
    parts, carried = [], []
    for start in range(0, table.height, size):
        chunk = table.slice(start, size)
        ids = chunk["flow_id"]
        closed = [s for s, last in last_of.items() if last <= int(ids.max())]  # type: ignore[arg-type]
        p = payloads.filter(pl.col("flow_id").is_in(ids.implode()))
        parts.append(stream.add(chunk, p, stream_ids=streams.slice(start, size), closed=closed))
        carried.append(stream.carried)
    got = pl.concat(parts).select("ts", *KDD_FEATURES).with_columns(streams.alias("k") // 10)
    want = pl.concat(alone).select("k", *KDD_FEATURES)
    for k in range(3):
        assert (
            got.filter(pl.col("k") == k)
            .select(KDD_FEATURES)
            .sort(list(KDD_FEATURES))
            .equals(want.filter(pl.col("k") == k).select(KDD_FEATURES).sort(list(KDD_FEATURES)))
        )
    assert stream.sessions.count == 3 and carried[-1] == 0  # every stream closed: nothing carried
    assert not kdd_features(table, payloads).select(KDD_FEATURES).equals(got.select(KDD_FEATURES))
