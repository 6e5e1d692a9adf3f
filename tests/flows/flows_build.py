"""``build``: flows from hand-made packets fed in one or several batches (shared by the flow tests).

Its own module name (not ``conftest``): ``from conftest import ...`` resolves to whichever test folder's
conftest was imported first when several folders run in one pytest invocation.
"""

from __future__ import annotations

import itertools

import polars as pl
from flows_pkts import batch

from features.flows.builder import FlowBuilder, FlowConfig


def build(packets: list[dict], cuts: list[int] | None = None, config: FlowConfig | None = None) -> pl.DataFrame:
    """Flows of ``packets`` fed in batches cut at ``cuts`` (indices), sorted by (ts, flow_id)."""
    fb = FlowBuilder("t.pcap", config or FlowConfig())
    bounds = [0, *(cuts or []), len(packets)]
    parts = [fb.add(batch(packets[a:b], first_idx=a)) for a, b in itertools.pairwise(bounds)]
    parts.append(fb.finish())
    return pl.concat(parts).sort("ts", "flow_id")
