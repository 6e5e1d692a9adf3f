"""Carving: the packets of chosen flows, written out again as captures (one file per group, e.g. an incident).

The captures are streamed again, batch by batch, and nothing but the packets being written is held: each
decoded packet's flow key (``features.flows.state.packet_keys``, the key flows were built with: VLAN,
tunnel, protocol, endpoints) is looked up among the chosen flows' keys, and a packet whose key matches and
whose time lies in the flow's [ts, ts_end] belongs to it (flows of one key follow each other in time).
A non-first IP fragment, which has no ports, goes with the first fragment of its datagram when that one was
carved before it. The frames are written as captured (link header included, original length and time),
in capture order, file by file (``features.capture.write``; rotated files of one stream in their time order,
their flows followed across the files): as classic pcap when every capture a group's
flows came from is classic pcap of one link type (nanoseconds if any of them had them), else as pcapng
with a comment naming the group (and one interface per link type).

Packets must be decoded as they were for the flows (same ``decap``); a time or host filter the flows were
built under needs no repeating, since the flows' keys and time spans already lie inside it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from features.capture.source import PacketSource
from features.capture.tunnels import tunnel_id_of
from features.capture.write import FrameWriter, PcapngWriter, PcapWriter
from features.common import InputError, ProgressFn, no_progress, path_text, text_path
from features.flows.state import packet_keys

MAX_OPEN = 64  # writers with an open file handle at once; the others are parked


@dataclass(frozen=True)
class CarveJob:
    """One output capture: where it goes, and the comment a pcapng file carries."""

    group: int  # e.g. the incident id
    stem: Path  # the output file without its suffix: .pcap or .pcapng is added by the format chosen
    comment: str


def _split(addr: str) -> tuple[int, int]:
    ip = ipaddress.ip_address(addr)
    v = (0xFFFF << 32 | int(ip)) if ip.version == 4 else int(ip)
    return v >> 64, v & (2**64 - 1)


def flow_keys(flows: pl.DataFrame) -> dict[str, np.ndarray]:
    """``packet_keys`` of flow records (the originator as the sender): the keys their packets have."""
    hosts = pl.concat([flows["orig_h"], flows["resp_h"]]).unique().to_list()
    split = {h: _split(h) for h in hosts}
    tunnels = {t: tunnel_id_of(t) for t in flows["tunnel"].drop_nulls().unique().to_list()}

    def addr(col: str, i: int) -> np.ndarray:
        return np.array([split[h][i] for h in flows[col].to_list()], np.uint64)

    cols = {
        "src_hi": addr("orig_h", 0),
        "src_lo": addr("orig_h", 1),
        "dst_hi": addr("resp_h", 0),
        "dst_lo": addr("resp_h", 1),
        "sport": flows["orig_p"].fill_null(-1).to_numpy().astype(np.int32),
        "dport": flows["resp_p"].fill_null(-1).to_numpy().astype(np.int32),
        "icmp_type": flows["icmp_type"].fill_null(-1).to_numpy().astype(np.int16),
        "icmp_code": flows["icmp_code"].fill_null(-1).to_numpy().astype(np.int16),
        "proto": flows["ip_proto"].to_numpy().astype(np.uint8),
        "ip_version": flows["ip_version"].to_numpy().astype(np.uint8),
        "vlan": flows["vlan"].fill_null(-1).to_numpy().astype(np.int32),
        "tunnel": np.array([tunnels.get(t, 0) if t else 0 for t in flows["tunnel"].to_list()], np.uint64),
    }
    return packet_keys(cols)


def carve(
    captures: Sequence[Path],
    flows: pl.DataFrame,
    jobs: dict[int, CarveJob],
    *,
    decap: bool = True,
    progress: ProgressFn = no_progress,
    expect_sha256: dict[str, str] | None = None,
    streams: Sequence[Sequence[str]] | None = None,
    spans: Mapping[str, tuple[int, int]] | None = None,
) -> dict[int, tuple[Path, int]]:
    """Write the packets of ``flows`` (flow-table columns plus ``group``) to their group's job; returns
    {group: (path, packets)} for every job (a group whose packets are all gone gets a header-only file).

    ``captures``: the files the flows were read from (``source_file`` names them as they were given).
    ``expect_sha256``: {capture: sha256} the captures must still have (``InputError`` otherwise, nothing written).
    ``streams``: the files read as one stream (``Extraction.streams``, in reading order): a flow that began in
    one file of a stream (its ``source_file``) may go on in the next ones, so each file is searched for the
    flows of its whole stream, and files are read in stream order. None: every file is a stream of its own.
    ``spans``: {capture: (earliest, latest record time, ns)} as the scan read them (report.json's
    ``first_packet``/``last_packet``): a file is searched only for the flows whose time meets its span, and not
    read at all when none does, so carving one incident of a week of rotated files reads the files of its hours,
    not the week. A file without a span is searched for every flow of its stream. Only the files read must still
    be there (``InputError`` naming the first one missing, before any is read).
    """
    names = [path_text(p) for p in captures]
    if streams:  # reading order: stream by stream, then any file no stream names
        ordered = [f for st in streams for f in st if f in names]
        names = ordered + [f for f in names if f not in ordered]
    stream_of = {f: list(st) for st in streams or () for f in st}
    # What each file is searched for is known before any is opened: a file that holds none of the chosen flows is
    # not read, and need not be there any more (older rotated files deleted, or overwritten by a ring buffer).
    # A flow's own file always meets its span, so every file the writers take their format from is read.
    todo: dict[str, pl.DataFrame] = {}
    for name in names:
        mine = flows.filter(pl.col("source_file").is_in(stream_of.get(name, [name])))
        if spans and name in spans and mine.height:
            first, last = spans[name]
            # flow times are whole microseconds: a flow's last packet may lie up to 999 ns after ts_end
            mine = mine.filter((pl.col("ts").dt.epoch("ns") <= last) & (pl.col("ts_end").dt.epoch("ns") + 999 >= first))
        if mine.height:
            todo[name] = mine
    for name in todo:
        if not Path(text_path(name)).is_file():
            raise InputError(f"{name}: the scanned capture is gone (its incident flows are read from it)")
    sources = {name: PacketSource(Path(text_path(name)), payloads=False, decap=decap) for name in todo}
    writers = _writers(flows, jobs, sources)
    total = sum(s.size_bytes for s in sources.values())
    done = 0
    open_order: list[int] = []
    try:
        for name, src in sources.items():

            def step(d: int, _total: int, base: int = done) -> None:
                progress(base + d, total)

            _carve_one(src, todo[name], writers, open_order, step)
            want = (expect_sha256 or {}).get(name)
            if want and src.sha256 != want:
                raise InputError(f"{name}: changed since the scan (sha256 {src.sha256[:12]}..., was {want[:12]}...)")
            done += src.size_bytes
            progress(done, total)
        return {g: (w.commit(), w.frames) for g, w in writers.items()}
    except BaseException:
        for w in writers.values():
            w.discard()
        raise


def _writers(
    flows: pl.DataFrame, jobs: dict[int, CarveJob], sources: dict[str, PacketSource]
) -> dict[int, FrameWriter]:
    out: dict[int, FrameWriter] = {}
    for g, job in jobs.items():
        files = flows.filter(pl.col("group") == g)["source_file"].unique().to_list()
        headers = [sources[f].pcap_header for f in files if f in sources]
        pcap = headers and all(h is not None for h in headers) and len({h[0] for h in headers if h}) == 1
        if pcap:
            linktype = next(h[0] for h in headers if h)
            out[g] = PcapWriter(
                job.stem.with_name(job.stem.name + ".pcap"), linktype, nano=any(h[1] for h in headers if h)
            )
        else:
            out[g] = PcapngWriter(job.stem.with_name(job.stem.name + ".pcapng"), job.comment)
    return out


def _carve_one(
    src: PacketSource,
    flows: pl.DataFrame,
    writers: dict[int, FrameWriter],
    open_order: list[int],
    progress: ProgressFn,
) -> None:
    k = flow_keys(flows)
    table = pl.DataFrame(
        {
            "h": k["h"],
            "t0": flows["ts"].dt.epoch("ns"),
            "t1": flows["ts_end"].dt.epoch("ns"),
            "group": flows["group"].cast(pl.Int64),
        }
    )
    wanted = np.unique(k["h"])
    datagrams: dict[tuple[int, ...], int] = {}  # first fragments carved: (vlan, tunnel, src, dst, proto, id) -> group
    pending = _Pending()  # non-first fragments seen before their first fragment (out of order), kept a while
    src.keep_records = True
    for batch in src.batches(progress):
        if not len(batch) or batch.chunk is None:
            continue
        c, chunk = batch.cols, batch.chunk
        keys = packet_keys(c)
        cand = np.flatnonzero(np.isin(keys["h"], wanted))
        rows, groups = np.zeros(0, np.int64), np.zeros(0, np.int64)
        if cand.size:
            hit = (
                pl.DataFrame({"row": cand, "h": keys["h"][cand], "t": c["ts_ns"][cand]})
                .join(table, on="h")
                .filter((pl.col("t") >= pl.col("t0")) & (pl.col("t") <= pl.col("t1")))
                .unique("row", keep="first")
                .sort("row")
            )
            rows, groups = hit["row"].to_numpy(), hit["group"].to_numpy()
            first = c["is_frag"][rows] & (c["frag_off"][rows] == 0)
            for r, g in zip(rows[first].tolist(), groups[first].tolist(), strict=True):
                key = _datagram(c, r)
                datagrams[key] = g
                for frame in pending.take(key):  # earlier in the capture than this batch: written first
                    _emit(writers, open_order, g, frame)
        tails = np.flatnonzero(c["is_frag"] & (c["frag_off"] > 0))
        tails = tails[~np.isin(tails, rows)]  # port-less protocols' fragments match by key already
        extra: list[tuple[int, int]] = []
        for r in tails.tolist():
            key = _datagram(c, r)
            g = datagrams.get(key)
            if g is not None:
                extra.append((r, g))
            else:
                pending.add(key, _frame(chunk, int(c["pkt_idx"][r])))
        if extra:
            rows = np.concatenate([rows, np.array([r for r, _ in extra], np.int64)])
            groups = np.concatenate([groups, np.array([g for _, g in extra], np.int64)])
            order = np.argsort(rows, kind="stable")
            rows, groups = rows[order], groups[order]
        for r, g in zip(c["pkt_idx"][rows].tolist(), groups.tolist(), strict=True):
            _emit(writers, open_order, g, _frame(chunk, r))
        if c["ts_ns"].size:
            pending.expire(int(c["ts_ns"].max()))


Frame = tuple[int, bytes, int, int]  # ts_ns, captured bytes, original length, link type


class _Pending:
    """Non-first fragments whose first fragment has not been seen: kept ``FRAG_WINDOW_S`` seconds (and at most
    ``MAX_PENDING_BYTES``), as the flow builder waits for out-of-order fragments."""

    FRAG_WINDOW_NS = 30 * 1_000_000_000
    MAX_PENDING_BYTES = 64 << 20

    def __init__(self) -> None:
        self.frames: dict[tuple[int, ...], list[Frame]] = {}
        self.size = 0

    def add(self, key: tuple[int, ...], frame: Frame) -> None:
        self.frames.setdefault(key, []).append(frame)
        self.size += len(frame[1])
        while self.size > self.MAX_PENDING_BYTES and self.frames:
            oldest = min(self.frames, key=lambda k: self.frames[k][0][0])
            self.size -= sum(len(f[1]) for f in self.frames.pop(oldest))

    def take(self, key: tuple[int, ...]) -> list[Frame]:
        got = self.frames.pop(key, [])
        self.size -= sum(len(f[1]) for f in got)
        return got

    def expire(self, now_ns: int) -> None:
        for key in [k for k, v in self.frames.items() if now_ns - v[-1][0] > self.FRAG_WINDOW_NS]:
            self.take(key)


def _frame(chunk: object, pkt_idx: int) -> Frame:
    from features.capture.pcap import RecordChunk

    assert isinstance(chunk, RecordChunk)
    j = pkt_idx - chunk.first_idx  # the chunk is the reader's own (consecutive records)
    off, cap = int(chunk.data_off[j]), int(chunk.caplen[j])
    return int(chunk.ts_ns[j]), bytes(chunk.buf.data[off : off + cap]), int(chunk.wirelen[j]), int(chunk.linktype[j])


def _emit(writers: dict[int, FrameWriter], open_order: list[int], group: int, frame: Frame) -> None:
    if group not in open_order:
        open_order.append(group)
        if len(open_order) > MAX_OPEN:
            writers[open_order.pop(0)].park()
    writers[group].write(*frame)


def _datagram(c: dict[str, np.ndarray], r: int) -> tuple[int, ...]:
    return tuple(int(c[k][r]) for k in ("vlan", "tunnel", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "ip_id"))
