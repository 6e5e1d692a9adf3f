"""features.flows.shard: flows built per host-pair shard, numbered together, are exactly the flows of one builder."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest

from features.capture.source import PacketSource
from features.flows.extract import FLOW_COLUMNS, extract_flows, number_flows
from features.flows.shard import build_shard, split_batch
from features.flows.uid import uids_by_source

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def by_shards(paths: list[Path], shards: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    files: list[list[list]] = [[[] for _ in paths] for _ in range(shards)]  # shard -> file -> batches
    sha: dict[str, str] = {}
    for n, p in enumerate(paths):
        src = PacketSource(p, chunk_records=64)
        for b in src.batches():
            for s, part in enumerate(split_batch(b, shards)):
                files[s][n].append(part)
        sha[str(p)] = src.sha256
    flows, pays = [], []
    for s in range(shards):
        f, pay = build_shard(files[s], [str(p) for p in paths])
        f = f.with_columns(uids_by_source(f, sha.__getitem__))  # as analyzer.ray_engine's flow tasks do
        uid = pl.col("flow_id") * shards + s
        flows.append(f.with_columns(uid.alias("_uid"), pl.lit(0, pl.Int64).alias("_file")))
        pays.append(pay.with_columns(uid.alias("_uid"), pl.lit(0, pl.Int64).alias("_file")))
    every = pl.concat(flows)
    ids = number_flows(every)
    table = every.drop("flow_id").join(ids, on=["_file", "_uid"]).sort("flow_id").select(FLOW_COLUMNS)
    payloads = (
        pl.concat(pays)
        .drop("flow_id")
        .join(ids, on=["_file", "_uid"])
        .select("flow_id", "ts_ns", "from_orig", "payload")
    )
    return table, payloads.sort("flow_id", "ts_ns")


@pytest.mark.parametrize(
    "names",
    [["demo-mixed.pcap"], ["teardrop.pcap"], ["ftp-bruteforce.pcap"], ["syn-flood.pcap"], ["fmt-vlan-qinq.pcap"]],
)
@pytest.mark.parametrize("shards", [1, 3])
def test_shards_build_the_same_flows(names: list[str], shards: int) -> None:
    paths = [SAMPLES / n for n in names]
    whole = extract_flows(paths)
    table, payloads = by_shards(paths, shards)
    assert table.equals(pl.from_arrow(whole.flows))  # type: ignore[arg-type]
    assert payloads.equals(whole.payloads)
