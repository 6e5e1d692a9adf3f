"""Shared helpers for flow tests: build flows from hand-made packets in one or several batches."""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).parent))

import itertools

from pkts import batch

from features.flows import FlowBuilder, FlowConfig


def build(packets: list[dict], cuts: list[int] | None = None, config: FlowConfig | None = None) -> pl.DataFrame:
    """Flows of ``packets`` fed in batches cut at ``cuts`` (indices), sorted by (ts, flow_id)."""
    fb = FlowBuilder("t.pcap", config or FlowConfig())
    bounds = [0, *(cuts or []), len(packets)]
    parts = [fb.add(batch(packets[a:b], first_idx=a)) for a, b in itertools.pairwise(bounds)]
    parts.append(fb.finish())
    return pl.concat(parts).sort("ts", "flow_id")
