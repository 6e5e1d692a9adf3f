"""``FlowConfig.max_open_flows``: past the cap the longest-idle open flows end early (counted, and said), so a flood
of one-packet flows cannot make the open flows, and so memory, grow without bound."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest
from flows_build import build
from flows_pkts import (
    ACK,
    SYN,
    batch,
    pkt,
)

from features.flows.builder import FlowBuilder, FlowConfig


def syn(t: float, i: int) -> dict:
    return pkt(t, f"10.0.{i >> 8}.{i & 255}", "192.0.2.1", 1024 + i, 80, flags=SYN)


@pytest.mark.parametrize(
    ("cap", "packets", "flows", "ended_early"),
    [
        (100, 40, 40, 0),  # under the cap: nothing changes
        (10, 40, 40, 31),  # 40 one-packet flows, 10 kept open: each batch of 10 over the cap ends the longest-idle
    ],
)
def test_a_flood_stays_under_the_cap(cap: int, packets: int, flows: int, ended_early: int) -> None:
    fb = FlowBuilder("t.pcap", FlowConfig(max_open_flows=cap))
    out = []
    for a in range(0, packets, 10):
        out.append(fb.add(batch([syn(0.001 * i, i) for i in range(a, a + 10)], first_idx=a)))
        assert fb._state["ts1"].size <= cap
    out.append(fb.finish())
    table = pl.concat(out)
    assert table.height == flows and fb.ended_early == ended_early
    assert sorted(table["orig_p"].to_list()) == [1024 + i for i in range(packets)]  # every flow once


def test_the_longest_idle_end_first_and_a_later_packet_starts_a_new_flow() -> None:
    """When the cap is passed (12 open, cap 10: down to 9), the three longest idle end: A (10.0.0.0) and the first
    two flood flows. B, active last, stays open and keeps its later packet; A's later packet starts a new flow."""
    cap = FlowConfig(max_open_flows=10)
    a, b = syn(0.0, 0), syn(0.0001, 1)
    flood = [syn(0.1 + 0.001 * i, i) for i in range(2, 12)]
    b_again = pkt(0.2, "10.0.0.1", "192.0.2.1", 1025, 80, flags=ACK)
    late = [
        pkt(1.0, "10.0.0.0", "192.0.2.1", 1024, 80, flags=ACK),
        pkt(1.0, "10.0.0.1", "192.0.2.1", 1025, 80, flags=ACK),
    ]
    packets = [a, b, *flood, b_again, *late]
    got = build(packets, cuts=[2, 13], config=cap)
    assert got.filter(pl.col("orig_h") == "10.0.0.0")["orig_pkts"].to_list() == [1, 1]  # ended, then a new flow
    assert got.filter(pl.col("orig_h") == "10.0.0.1")["orig_pkts"].to_list() == [3]  # never ended early
    assert got.height == 13
    uncapped = build(packets, cuts=[2, 13])
    assert uncapped.filter(pl.col("orig_h") == "10.0.0.0")["orig_pkts"].to_list() == [2] and uncapped.height == 12


def test_the_scan_reports_flows_ended_early(tmp_path: Path) -> None:
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
    from bench_flood_memory import flood_pcap

    from features.flows.extract import extract_flows

    cap = tmp_path / "flood.pcap"
    flood_pcap(cap, 5000)
    ext = extract_flows([cap], FlowConfig(max_open_flows=1000))
    assert ext.flows.num_rows == 5000 and np.unique(ext.flows.column("orig_h").to_numpy()).size == 5000
    assert [w for w in ext.warnings if "ended before their idle timeout" in w] == [
        "4,100 flows ended before their idle timeout: more than 1,000 flows were open at once (a flood of "
        "one-packet flows?); a later packet of one of them started a new flow"
    ]
    assert not [w for w in extract_flows([cap]).warnings if "idle timeout" in w]
