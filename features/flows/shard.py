"""Packets split into shards that build their flows independently: by host pair.

A flow is keyed by (VLAN, tunnel, IP protocol, the two endpoints); its packets, and the fragments that join it
(keyed by VLAN, source, destination, protocol and IP id), all travel between the same two addresses (the inner
ones for a decapsulated tunnel). So every packet of a
host pair goes to one shard (a hash of VLAN and the two addresses, in either order), and a ``FlowBuilder`` per
shard, fed that shard's packets in capture order, builds exactly the flows a single builder would. Timeouts
act on capture time, so a shard that sees fewer packets ends its flows no differently: expiry only decides
when a finished flow leaves the builder's state, not what it holds. ``analyzer.ray_engine`` builds the shards
on separate workers.
"""

from __future__ import annotations

import numpy as np
import polars as pl

from features.capture.packets import PacketBatch
from features.capture.streams import merge_by_time, tag_batch
from features.flows.builder import DEFAULT_CONFIG, FlowBuilder, FlowConfig
from features.flows.schema import FLOW_SCHEMA
from features.flows.state import _mix


def host_pair_shard(cols: dict[str, np.ndarray], shards: int) -> np.ndarray:
    """The shard (0..shards-1) of each packet: a hash of its VLAN and its two addresses, order-free."""
    sh, sl, dh, dl = cols["src_hi"], cols["src_lo"], cols["dst_hi"], cols["dst_lo"]
    src_first = (sh < dh) | ((sh == dh) & (sl <= dl))
    a_hi, a_lo = np.where(src_first, sh, dh), np.where(src_first, sl, dl)
    b_hi, b_lo = np.where(src_first, dh, sh), np.where(src_first, dl, sl)
    h = np.zeros(sh.shape, np.uint64)
    with np.errstate(over="ignore"):
        for part in (cols["vlan"].astype(np.int64).view(np.uint64), a_hi, a_lo, b_hi, b_lo):
            h = _mix(h, part)
    return (h % np.uint64(max(shards, 1))).astype(np.int64)


def split_batch(batch: PacketBatch, shards: int) -> list[PacketBatch]:
    """``batch`` as ``shards`` batches (packet order kept in each); damage counts and records go with shard 0."""
    which = host_pair_shard(batch.cols, shards)
    pay_idx = np.asarray(batch.payload_idx, np.int64)
    pay_shard = np.full(pay_idx.size, -1, np.int64)
    if pay_idx.size:
        order = np.argsort(batch.cols["pkt_idx"], kind="stable")
        pos = np.searchsorted(batch.cols["pkt_idx"], pay_idx, sorter=order)
        pos = np.minimum(pos, max(order.size - 1, 0))
        found = order.size > 0
        if found:
            hit = batch.cols["pkt_idx"][order[pos]] == pay_idx
            pay_shard[hit] = which[order[pos[hit]]]
    out = []
    for s in range(shards):
        sel = which == s
        keep = pay_shard == s
        part = PacketBatch(
            {k: v[sel] for k, v in batch.cols.items()},
            pay_idx[keep],
            [p for p, k in zip(batch.payloads, keep.tolist(), strict=True) if k],
            tunnels=batch.tunnels,
        )
        if s == 0:
            part.bad, part.records, part.filtered = batch.bad, batch.records, batch.filtered
        out.append(part)
    return out


def build_shard(
    files: list[list[PacketBatch]],
    sources: list[str],
    config: FlowConfig = DEFAULT_CONFIG,
    *,
    payloads: bool = True,
    merge: bool = False,
    starts: list[int | None] | None = None,
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The flows of one shard of one stream: ``files[i]`` is the shard's packets from the stream's i-th file
    (``sources[i]``), in capture order. Returns (flow records with builder-local ``flow_id``, payload snippets);
    ``merge``: the files are merged by time (``features.capture.streams.merge_by_time``, ``starts`` their first
    timestamps) instead of read one after another."""
    fb = FlowBuilder(sources[0] if sources else "", config, payloads=payloads)
    for name in sources[1:]:
        fb.add_source(name)
    frames: list[pl.DataFrame] = []
    if merge:
        tagged = [[tag_batch(b, n) for b in bs] for n, bs in enumerate(files)]
        for b in merge_by_time(starts or [None] * len(files), [iter(t) for t in tagged]):
            frames.append(fb.add(b))
    else:
        for n, bs in enumerate(files):
            for b in bs:
                frames.append(fb.add(tag_batch(b, n)))
    frames.append(fb.finish())
    flows = pl.concat(frames) if frames else pl.from_arrow(FLOW_SCHEMA.empty_table())
    assert isinstance(flows, pl.DataFrame)
    return flows, fb.take_payloads()
