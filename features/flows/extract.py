"""Captures to one flow table: read each stream of files batch by batch, build its flows, number them all at once."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from features.capture.packets import PacketBatch
from features.capture.readahead import read_ahead
from features.capture.streams import Stream, StreamJoiner, merge_by_time, tag_batch
from features.common import ProgressFn, no_progress
from features.flows.builder import DEFAULT_CONFIG, FlowBuilder, FlowConfig
from features.flows.records import empty_payloads
from features.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA

# Sort order of the final table: time first, then the flow key, so flow_id is stable per input.
_ORDER = ("ts", "_file", "ip_proto", "orig_h", "orig_p", "resp_h", "resp_p", "icmp_type", "icmp_code", "vlan", "_uid")


@dataclass
class Extraction:
    """Flows of all captures (``FLOW_SCHEMA``), payload snippets for content features, and what was read."""

    flows: pa.Table
    payloads: pl.DataFrame  # flow_id: int64, ts_ns: int64, from_orig: bool, payload: binary
    sources: list[dict] = field(default_factory=list)  # {"file", "sha256", "format", "packets", "bytes"}
    bad_packets: dict[str, int] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)
    packets: int = 0
    # Files read as one stream: {"files": [...] in reading order, "how": "single" | "joined" | "merged"}.
    streams: list[dict] = field(default_factory=list)

    @property
    def joined(self) -> list[dict]:
        """The streams of more than one file (what the reports name)."""
        return [s for s in self.streams if len(s["files"]) > 1]


def extract_flows(
    paths: Sequence[Path],
    config: FlowConfig = DEFAULT_CONFIG,
    progress: ProgressFn = no_progress,
    *,
    payloads: bool = True,
    merge: bool = False,
) -> Extraction:
    """Flow records of ``paths`` (each opened first, so a non-capture fails before any work: ``InputError``).

    ``progress`` gets (bytes read, total bytes) over all files. Files are read as streams
    (``features.capture.streams``): rotated files of one session are joined in time order, so flows
    continue across their boundaries; files overlapping in time are kept apart, or with ``merge`` read as
    one stream ordered by time. ``Extraction.streams`` says which files were read together. With
    ``payloads=False`` no payload snippets are kept (``Extraction.payloads`` is empty): less memory when
    only the flow table is wanted.
    """
    from features.capture.source import PacketSource

    sources = [PacketSource(Path(p), payloads=payloads) for p in paths]
    starts = [s.peek() for s in sources]
    total = sum(s.size_bytes for s in sources)
    done: dict[int, int] = {}
    frames: list[pl.DataFrame] = []
    pays: list[pl.DataFrame] = []
    streams: list[Stream] = []

    def reader(i: int) -> Iterator[PacketBatch]:
        def prog(d: int, _total: int) -> None:
            done[i] = d
            progress(sum(done.values()), total)

        return read_ahead(sources[i], prog)  # decode the next batch while this one builds flows

    def collect(fb: FlowBuilder, key: int) -> None:
        frames.append(fb.finish().with_columns(pl.lit(key).alias("_file")))
        pays.append(fb.take_payloads().with_columns(pl.lit(key).alias("_file")))

    if merge and sources:
        order = StreamJoiner.order(starts)
        fb = FlowBuilder([str(sources[i].path) for i in order], config, payloads=payloads)
        tagged = [_tagged(reader(i), n) for n, i in enumerate(order)]
        key = min(order)
        for b in merge_by_time([starts[i][0] for i in order], tagged):
            frames.append(fb.add(b).with_columns(pl.lit(key).alias("_file")))
        collect(fb, key)
        streams = [Stream(0, files=order)]
    else:
        joiner = StreamJoiner()
        builders: dict[int, FlowBuilder] = {}
        for i in joiner.order(starts):
            s = joiner.assign(i, sources[i].path, *starts[i])
            key = s.files[0]  # streams sort like their first file in the given order
            if s.sid not in builders:
                builders[s.sid] = FlowBuilder(str(sources[i].path), config, payloads=payloads)
                n = 0
            else:
                n = builders[s.sid].add_source(str(sources[i].path))
            fb = builders[s.sid]
            for b in reader(i):
                frames.append(fb.add(tag_batch(b, n)).with_columns(pl.lit(key).alias("_file")))
            joiner.read(s, sources[i].ts_last)
        for s in joiner.streams:
            collect(builders[s.sid], s.files[0])
        streams = joiner.streams
    bad: Counter[str] = Counter()
    warnings: list[str] = []
    info: list[dict] = []
    for src in sources:
        bad.update(src.bad)
        warnings.extend(src.warnings)
        info.append(
            {
                "file": str(src.path),
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
    table = flows.with_columns(pl.col("flow_id").cast(pl.Int64)).select(FLOW_COLUMNS).to_arrow()
    table = table.cast(FLOW_SCHEMA)
    return Extraction(
        flows=table,
        payloads=linked,
        sources=info,
        bad_packets=dict(sorted(bad.items())),
        warnings=warnings,
        packets=sum(s.records for s in sources),
        streams=[
            {"files": [str(sources[i].path) for i in st.files], "how": _how(len(st.files), merge)}
            for st in sorted(streams, key=lambda st: st.files[0])
        ],
    )


def _tagged(batches: Iterator[PacketBatch], file_no: int) -> Iterator[PacketBatch]:
    for b in batches:
        yield tag_batch(b, file_no)


def _how(files: int, merge: bool) -> str:
    """``single`` (one file), ``joined`` (rotated files in time order) or ``merged`` (by time, ``--merge``)."""
    return "single" if files == 1 else "merged" if merge else "joined"
