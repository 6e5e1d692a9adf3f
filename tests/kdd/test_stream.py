"""features.kdd.frame.KddStream: features of a flow table fed in chunks equal those of the whole table."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.flows.extract import extract_flows
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
