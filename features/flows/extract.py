"""Captures to one flow table: read each file batch by batch, build its flows, number them all at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from features.capture.filter import PacketFilter
from features.capture.readahead import read_ahead
from features.capture.stream import DEFAULT_LIMITS, ReadLimits
from features.common import ProgressFn, no_progress, path_text
from features.flows.builder import DEFAULT_CONFIG, FlowBuilder, FlowConfig
from features.flows.records import empty_payloads
from features.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA
from features.flows.uid import flow_uids

# Sort order of the final table: time first, then the flow key, so flow_id is stable per input.
_ORDER = (
    "ts",
    "_file",
    "ip_proto",
    "orig_h",
    "orig_p",
    "resp_h",
    "resp_p",
    "icmp_type",
    "icmp_code",
    "vlan",
    "tunnel",
    "_uid",
)


@dataclass
class Extraction:
    """Flows of all captures (``FLOW_SCHEMA``), payload snippets for content features, and what was read."""

    flows: pa.Table
    payloads: pl.DataFrame  # flow_id: int64, ts_ns: int64, from_orig: bool, payload: binary
    sources: list[dict] = field(default_factory=list)  # {"file", "sha256", "format", "packets", "bytes"}
    bad_packets: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    packets: int = 0
    filtered: int = 0  # packets the packet filter left out (features.capture.filter)
    kind: str = "capture"  # "capture", or "zeek" for flows read from Zeek conn logs (features.zeeklog)
    service_hints: pl.Series | None = None  # per flow row: the protocol Zeek confirmed (its conn.log "service")
    uids: pl.Series | None = None  # per flow row: the Zeek log's uid of the connection (null where it had none)
    unavailable: tuple[str, ...] = ()  # KDD features the input cannot give (taken as 0): see features.zeeklog.conn


def extract_flows(
    paths: Sequence[Path],
    config: FlowConfig = DEFAULT_CONFIG,
    progress: ProgressFn = no_progress,
    *,
    payloads: bool = True,
    decap: bool = True,
    packet_filter: PacketFilter | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Extraction:
    """Flow records of ``paths`` (each opened first, so a non-capture fails before any work: ``InputError``).

    ``progress`` gets (bytes read, total bytes) over all files. Flows never span two files. With
    ``payloads=False`` no payload snippets are kept (``Extraction.payloads`` is empty): less memory when
    only the flow table is wanted. ``decap=False`` keeps tunnel packets as the outer flows they make.
    ``packet_filter`` narrows the read to a time window, hosts and ports (``features.capture.filter``).
    ``limits`` bounds what each capture may give (``features.capture.stream.ReadLimits``).
    """
    from features.capture.source import PacketSource

    sources = [
        PacketSource(Path(p), payloads=payloads, decap=decap, packet_filter=packet_filter, limits=limits) for p in paths
    ]
    total = sum(s.size_bytes for s in sources)
    done_before = 0
    frames: list[pl.DataFrame] = []
    pays: list[pl.DataFrame] = []
    bad: Counter[str] = Counter()
    warnings: list[str] = []
    info: list[dict] = []
    for i, src in enumerate(sources):
        fb = FlowBuilder(path_text(src.path), config, payloads=payloads)

        def prog(done: int, _total: int, base: int = done_before) -> None:
            progress(base + done, total)

        for b in read_ahead(src, prog):  # decode the next batch while this one builds flows
            frames.append(fb.add(b).with_columns(pl.lit(i).alias("_file")))
        frames.append(fb.finish().with_columns(pl.lit(i).alias("_file")))
        pays.append(fb.take_payloads().with_columns(pl.lit(i).alias("_file")))
        done_before += src.size_bytes
        bad.update(src.bad)
        warnings.extend(src.warnings)
        info.append(
            {
                "file": path_text(src.path),
                "sha256": src.sha256,
                "format": src.format,
                "packets": src.records,
                "bytes": src.size_bytes,
            }
        )
    if not frames:
        empty = pl.from_arrow(FLOW_SCHEMA.empty_table())
        assert isinstance(empty, pl.DataFrame)
        frames = [empty]
    flows = pl.concat(frames)
    if "_file" not in flows.columns:
        flows = flows.with_columns(pl.lit(0).alias("_file"))
    flows = flows.rename({"flow_id": "_uid"}).sort(list(_ORDER), nulls_last=False).with_row_index("flow_id")
    ids = flows.select("_file", "_uid", pl.col("flow_id").cast(pl.Int64))
    linked = empty_payloads()
    if pays:
        p = pl.concat(pays).rename({"flow_id": "_uid"})
        linked = p.join(ids, on=["_file", "_uid"], how="inner").select("flow_id", "ts_ns", "from_orig", "payload")
        linked = linked.sort("flow_id", "ts_ns")
    flows = flows.with_columns(flow_uids(flows, [s["sha256"] for s in info]))
    table = flows.with_columns(pl.col("flow_id").cast(pl.Int64)).select(FLOW_COLUMNS).to_arrow()
    table = table.cast(FLOW_SCHEMA)
    return Extraction(
        flows=table,
        payloads=linked,
        sources=info,
        bad_packets=dict(sorted(bad.items())),
        warnings=warnings,
        packets=sum(s.records for s in sources),
        filtered=sum(s.filtered for s in sources),
    )
