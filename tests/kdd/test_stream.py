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
