"""Captures to flows, streamed: files read as packet streams in time order, finished flows released in their final
order (with their ``flow_id``) as soon as no later packet can change that order.

``FlowStream`` yields ``FlowChunk``s; ``extract_flows`` gathers them into one table (``Extraction``).

Order and release. The flow table is sorted by (start time, stream, flow key): ``flow_id`` is the row number in
that order. A finished flow can be numbered once no flow that sorts before it can still appear: every flow
not yet finished starts at or after the *floor*, the earliest of the open flows' starts (and held-back
fragments), the next packet of every file being read, and the first packet of every file not yet opened.
Flows starting before the floor (to the microsecond the table holds) are released, sorted and numbered; the
rest wait. Files are read in time order: the file whose next packet is earliest goes first, so files that
overlap in time are read side by side and the floor moves with all of them. Memory is set by the open flows
and the finished flows waiting for the floor, not by the capture's length. A capture whose timestamps step
back by more than a batch (262,144 records) can break the order at that step; ordinary captures never do.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import polars as pl
import pyarrow as pa

from features.capture.filter import PacketFilter
from features.capture.packets import PacketBatch
from features.capture.pcap import clock_warning
from features.capture.readahead import PROCESS_MIN_BYTES, child_body, in_child, read_ahead
from features.capture.source import PacketSource
from features.capture.stream import DEFAULT_LIMITS, ReadLimits
from features.capture.streams import Stream, StreamJoiner, merge_by_time, tag_batch
from features.common import InputError, ProgressFn, file_sha256, no_progress, path_text
from features.flows.builder import DEFAULT_CONFIG, FlowBuilder, FlowConfig
from features.flows.records import PAYLOAD_SCHEMA, empty_payloads
from features.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA
from features.flows.uid import uids_by_source

# Sort order of the final table: time first, then the flow key, so flow_id is stable per input. ``_file`` is the
# stream's place (its first file's index in the given order), ``_uid`` the flow's number in its builder.
SORT_KEYS = (
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
_ORDER = SORT_KEYS
CHUNK_FLOWS = 16_384  # flows released at a time (at least; the last chunk may be smaller)
CHILD_AHEAD = 4  # chunks a flow-building child may run ahead of the process that consumes them
PENDING_FRAMES = 32  # finished-flow frames kept apart before they are concatenated (FlowStream._add)
_NEVER = np.iinfo(np.int64).max


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
    # Files read as one stream: {"files": [...] in reading order, "how": "single" | "joined" | "merged"}.
    streams: list[dict] = field(default_factory=list)
    kind: str = "capture"  # "capture", or "zeek" for flows read from Zeek conn logs (features.zeeklog)
    service_hints: pl.Series | None = None  # per flow row: the protocol Zeek confirmed (its conn.log "service")
    # flows read from Zeek conn logs: (flow_id, uid) of the flows whose uid is not their log's uid (a connection
    # the logs give twice: an ICMP connection made a request and a reply record, each with a uid of nta's)
    uids: pl.DataFrame | None = None
    unavailable: tuple[str, ...] = ()  # KDD features the input cannot give (taken as 0): see features.zeeklog.conn
    # per flow row: its stream (Int64, the stream's first file's index), for the window features' sessions
    # (features.kdd.windows.Sessions); None: one stream
    stream_ids: pl.Series | None = None
    sessions: int = 1  # sessions the window features were computed in (set by the scan once its features are)

    @property
    def joined(self) -> list[dict]:
        """The streams of more than one file (what the reports name)."""
        return [s for s in self.streams if len(s["files"]) > 1]


@dataclass
class FlowChunk:
    """Finished flows in table order (``FLOW_SCHEMA``, ``flow_id`` final) and their payload snippets."""

    flows: pl.DataFrame
    payloads: pl.DataFrame  # flow_id, ts_ns, from_orig, payload; sorted by flow_id, ts_ns
    service_hints: pl.Series | None = None  # per flow: Zeek's service (flows read from conn logs), or None
    stream_ids: pl.Series | None = None  # per flow: its stream (``Extraction.stream_ids``); None: one stream
    # streams of which no later chunk holds a flow (their ids as in ``stream_ids``): the window features stop
    # carrying their records (``features.kdd.frame.KddStream``)
    closed: tuple[int, ...] = ()


class ChunkSource(Protocol):
    """Flows that arrive chunk by chunk in table order: built from packets (``FlowStream``) or read from Zeek conn
    logs (``features.zeeklog.stream.ConnStream``). ``extraction`` after the chunks; ``flows``: how many went out."""

    flows: int

    def chunks(self, forked: bool | None = None) -> Iterator[FlowChunk]: ...

    def extraction(self) -> Extraction: ...


@dataclass
class _Reading:
    """A file (or, merged, all files) being read: its batch iterator with the next batch fetched ahead."""

    it: Iterator[PacketBatch]
    stream: Stream
    builder: FlowBuilder
    key: int  # the stream's place in the sort order (its first file's index in the given order)
    files: list[int]  # the files it reads (one, or all when merged)
    file_no: int = 0  # the file's number in its stream (tags pkt_idx); merged batches are tagged already
    nxt: PacketBatch | None = None

    def fetch(self) -> None:
        self.nxt = next(self.it, None)

    def next_ts(self) -> int:
        """Timestamp of the next packet to read (a batch of damage counts only goes first)."""
        b = self.nxt
        if b is None:
            return _NEVER
        return int(b.cols["ts_ns"].min()) if len(b) else np.iinfo(np.int64).min


class FlowStream:
    """Flows of ``paths`` as ``FlowChunk``s (see the module docstring); what was read in ``extraction()``.

    Each path is opened first, so a non-capture fails before any work (``InputError``). Files are read as
    streams (``features.capture.streams``): rotated files of one session are joined in time order, so flows
    continue across their boundaries; files overlapping in time are kept apart, or with ``merge`` read as one
    stream ordered by time. ``progress`` gets (bytes read, total bytes) over all files. With
    ``payloads=False`` no payload snippets are kept. Files are decoded up to ``ahead`` batches ahead;
    ``on_start`` is called once the first file's decoding has started, before any flow is built: work done
    there (``nta scan`` builds its network) overlaps with the decoding. ``decap=False`` keeps tunnel packets as
    the outer flows they make; ``packet_filter`` narrows the read to a time window, hosts and ports
    (``features.capture.filter``).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        config: FlowConfig = DEFAULT_CONFIG,
        progress: ProgressFn = no_progress,
        *,
        payloads: bool = True,
        merge: bool = False,
        decap: bool = True,
        packet_filter: PacketFilter | None = None,
        chunk_flows: int = CHUNK_FLOWS,
        ahead: int = 1,
        on_start: Callable[[], None] | None = None,
        limits: ReadLimits = DEFAULT_LIMITS,
    ) -> None:
        self.limits = limits  # how much each capture may give (features.capture.stream.ReadLimits)
        self.sources = [
            PacketSource(Path(p), payloads=payloads, decap=decap, packet_filter=packet_filter, limits=limits)
            for p in paths
        ]
        self.starts = [s.peek() for s in self.sources]
        self._pipes = [s for s in self.sources if s._stream is not None]  # read once, hashed as they are read
        self.config = config
        self.progress = progress
        self.payloads = payloads
        self.merge = merge
        self.decap = decap
        self.packet_filter = packet_filter
        self.chunk_flows = max(1, chunk_flows)
        self.ahead = max(1, ahead)
        self._on_start = on_start
        self._total = sum(s.size_bytes for s in self.sources)
        self._done: dict[int, int] = {}
        self._done_sum = 0  # sum(self._done.values()), kept as it changes: progress comes after every block
        self._joiner = StreamJoiner(config.longest_idle_ns)
        self._pending: list[pl.DataFrame] = []  # finished flows not yet released (with _file, _uid)
        self._pending_min: list[int] = []  # each pending frame's earliest start (us), taken once per frame
        self._pending_pay: list[pl.DataFrame] = []  # their payload snippets (with _file, _uid)
        self._finished: list[int] = []  # streams (_Reading.key) whose builder is done, not yet said to be closed
        self._next_id = 0
        self.flows = 0  # released so far
        self.ended_early = 0  # flows ended before their timeout: too many open at once (FlowConfig.max_open_flows)
        self._shas: dict[str, str] = {}  # source_file -> the file's SHA-256 (for uids), once known
        self._hashing: threading.Thread | None = None  # hashing the files up front (_hash_files)
        self._hash_error: InputError | None = None
        self._stat: dict[str, tuple[int, int, int]] = {}  # source_file -> (size, mtime ns, inode) when hashed

    def _hash_files(self) -> None:
        """The SHA-256 of every regular file, for uids: a flow's uid names its capture's hash, and flows are
        released long before their file is read to the end. The digest is report.json's too: reading does not
        hash the file again (``_settle_digests``). The files are hashed on a thread while reading starts
        (hashlib releases the GIL; the first flows are released seconds later, and ``_sha_of`` waits for the
        digests): hashed before reading, a 600 MB file held reading back by 0.4 s. Each file is opened here
        first, so one that cannot be read still fails before any work. A pipe can be hashed only by reading
        it: its flows wait until it ends (``_floor``)."""
        todo: list[Path] = []
        for src in self.sources:
            if src._stream is None and path_text(src.path) not in self._shas:
                # a plain file past --max-bytes is refused before it is hashed, as reading it would be
                if not src._gz and (why := self.limits.check(src.size_bytes, src.size_bytes, False)):
                    raise InputError(f"{src.path}: {why}")
                try:
                    src.path.open("rb").close()
                    st = src.path.stat()
                except OSError as e:
                    raise InputError(f"{src.path}: cannot read ({e.strerror or e})") from e
                self._stat[path_text(src.path)] = (st.st_size, st.st_mtime_ns, st.st_ino)
                src.hash_bytes = False  # hashed once, here: reading does not hash it again (_settle_digests)
                todo.append(src.path)
        if todo:
            self._hashing = threading.Thread(target=self._hash_all, args=(todo,), name="nta-hash", daemon=True)
            self._hashing.start()

    def _hash_all(self, paths: list[Path]) -> None:
        """Thread: the files' digests into ``_shas`` (a failure kept for ``_sha_of`` to raise)."""
        for path in paths:
            try:
                self._shas[path_text(path)] = file_sha256(path)
            except OSError as e:
                self._hash_error = InputError(f"{path}: cannot read ({e.strerror or e})")
                return

    def _settle_digests(self) -> None:
        """Once every file is read: a file hashed up front gets that digest as its ``sha256`` (report.json's);
        one whose size, modification time or inode changed since is named in a warning (its digest is of the
        file before it changed, and what was read may differ)."""
        self._sha_of("")  # waits for the digests; raises what stopped them
        for src in self.sources:
            name = path_text(src.path)
            if src.hash_bytes or name not in self._shas:
                continue
            src.sha256 = self._shas[name]
            try:
                st = src.path.stat()
                now: tuple[int, int, int] | None = (st.st_size, st.st_mtime_ns, st.st_ino)
            except OSError:
                now = None
            if now != self._stat.get(name):
                src.warnings.append(f"{name}: the file changed while it was read; its sha256 is of the file before")

    def _sha_of(self, name: str) -> str:
        if self._hashing is not None:  # the up-front digests first
            self._hashing.join()
            self._hashing = None
        if self._hash_error is not None:
            raise self._hash_error
        if name not in self._shas:
            self._shas.update((path_text(s.path), s.sha256) for s in self.sources if s.sha256)
        return self._shas.get(name, "")

    # ------------------------------------------------------------------ reading
    def _reader(self, i: int) -> Iterator[PacketBatch]:
        def prog(d: int, _total: int) -> None:
            self._done_sum += d - self._done.get(i, 0)
            self._done[i] = d
            self.progress(self._done_sum, self._total)

        if self.ahead > 1:
            return read_ahead(self.sources[i], prog, depth=self.ahead)
        return read_ahead(self.sources[i], prog)  # decode the next batch while this one builds flows

    def __iter__(self) -> Iterator[FlowChunk]:
        self._hash_files()
        builders: list[FlowBuilder] = []
        reading: list[_Reading] = []
        order = StreamJoiner.order(self.starts)
        if self.merge and order:
            fb = FlowBuilder([path_text(self.sources[i].path) for i in order], self.config, payloads=self.payloads)
            tagged = [_tagged(self._reader(i), n) for n, i in enumerate(order)]
            merged = merge_by_time([self.starts[i][0] for i in order], tagged)
            self._joiner.streams = [Stream(0, files=list(order), busy=True)]  # read until the merged reader ends
            r = _Reading(merged, self._joiner.streams[0], fb, order[0], list(order))
            r.fetch()
            builders.append(fb)
            reading.append(r)
            order = []
            self._started()
        # Files without a record in their first megabyte (header-only captures) first, then by time.
        queue = [i for i in order if self.starts[i][0] is None] + [i for i in order if self.starts[i][0] is not None]
        by_stream: dict[int, FlowBuilder] = {}
        live = {0: builders[0]} if builders else {}  # stream id -> builder of a stream a later file may continue
        while queue or reading:
            nxt = min((r.next_ts() for r in reading), default=_NEVER)
            if queue and (self.starts[queue[0]][0] or np.iinfo(np.int64).min) <= nxt:
                i = queue.pop(0)
                s = self._joiner.assign(i, self.sources[i].path, *self.starts[i])
                if s.sid in by_stream:
                    n = by_stream[s.sid].add_source(path_text(self.sources[i].path))
                else:
                    by_stream[s.sid] = FlowBuilder(path_text(self.sources[i].path), self.config, payloads=self.payloads)
                    builders.append(by_stream[s.sid])
                    live[s.sid] = by_stream[s.sid]
                    n = 0
                s.busy = True
                r = _Reading(self._reader(i), s, by_stream[s.sid], s.files[0], [i], n)
                r.fetch()
                reading.append(r)
                self._started()
            else:
                r = min(reading, key=lambda r: r.next_ts())
                batch = r.nxt
                assert batch is not None
                r.fetch()  # the next batch's first packet bounds what this file can still deliver
                self._add(r.builder.add(tag_batch(batch, r.file_no) if r.file_no else batch), r)
            for r in [r for r in reading if r.nxt is None]:  # read to the end
                reading.remove(r)
                r.stream.busy = False
                StreamJoiner.read(r.stream, self.sources[r.files[0]].ts_last)
            # A stream no later file can continue is finished now, not at the end: its open flows go out with the
            # next chunks, and thousands of unrelated files do not each keep a builder that every batch asks for
            # its floor. (finish() now gives what it would give at the end: no packet would reach it again.)
            upcoming = self.starts[queue[0]][0] if queue else _NEVER
            for sid in [sid for sid in live if self._joiner.ended(self._joiner.streams[sid], upcoming)]:
                s, fb = self._joiner.streams[sid], live.pop(sid)
                self._add(fb.finish(), _Reading(iter(()), s, fb, s.files[0], s.files))
                self._finished.append(s.files[0])
            floor = self._floor(list(live.values()), reading, queue)
            while (chunk := self._release(floor, final=False)) is not None:
                yield chunk
        self._settle_digests()
        for sid, fb in live.items():
            s = self._joiner.streams[sid]
            self._add(fb.finish(), _Reading(iter(()), s, fb, s.files[0], s.files))
            self._finished.append(s.files[0])
        self.ended_early = sum(fb.ended_early for fb in builders)
        while (chunk := self._release(_NEVER, final=True)) is not None:
            yield chunk

    def chunks(self, forked: bool | None = None) -> Iterator[FlowChunk]:
        """The chunks, built in a child process when ``forked`` (default: captures of at least
        ``PROCESS_MIN_BYTES``), else here. In the child, flows are built while this process does other work:
        ``on_start`` runs here as soon as the child is running, and the child runs up to ``CHILD_AHEAD``
        chunks ahead. The child is a fresh interpreter (spawned, not forked: flow building uses polars, whose
        thread pool does not survive a fork); it reads the captures itself."""
        if forked is None:
            forked = self._total >= PROCESS_MIN_BYTES
        if not forked:
            yield from self
            return

        def adopt(got: tuple[list[Any], list[Stream], int, int]) -> None:
            for src, out in zip(self.sources, got[0], strict=True):
                src.adopt(out)
            self._joiner.streams, self.flows, self.ended_early = got[1], got[2], got[3]

        spec = _ChildSpec(
            [s.path for s in self.sources],
            self.config,
            self.payloads,
            self.merge,
            self.chunk_flows,
            self.decap,
            self.packet_filter,
            self.limits,
        )
        name = path_text(self.sources[0].path) if self.sources else "captures"
        hook, self._on_start = self._on_start, None
        yield from in_child(
            lambda _p: iter(()), lambda: None, adopt, self.progress, CHILD_AHEAD, name=name, what="flow",
            on_started=hook, daemon=False, spawn=spec,
        )  # fmt: skip

    def outcome(self) -> tuple[list[Any], list[Stream], int, int]:
        """What reading learnt, to hand to another process's ``FlowStream`` (``chunks(forked=True)``)."""
        return [s.outcome() for s in self.sources], self._joiner.streams, self.flows, self.ended_early

    def _started(self) -> None:
        if self._on_start is not None:
            hook, self._on_start = self._on_start, None
            hook()

    def _add(self, frame: pl.DataFrame, r: _Reading) -> None:
        if frame.height:
            self._pending.append(frame.with_columns(pl.lit(r.key, pl.Int64).alias("_file")))
            self._pending_min.append(_min_us(frame))
        pay = r.builder.take_payloads()
        if pay.height:
            self._pending_pay.append(
                pay.rename({"flow_id": "_uid"}).with_columns(pl.lit(r.key, pl.Int64).alias("_file"))
            )
        # Many small frames (thousands of small files, each finished on its own) are put together now and then:
        # every _release looks at each pending frame.
        if len(self._pending) > PENDING_FRAMES:
            self._pending, self._pending_min = [pl.concat(self._pending, how="vertical")], [min(self._pending_min)]
        if len(self._pending_pay) > PENDING_FRAMES:
            self._pending_pay = [pl.concat(self._pending_pay, how="vertical")]

    def _floor(self, builders: list[FlowBuilder], reading: list[_Reading], queue: list[int]) -> int:
        """The earliest start a flow not yet finished can have (ns)."""
        # Called after every batch: nothing here may walk every file of the scan (10,000 rotated files spent a
        # third of their time in this function when it did). The queue holds the files without a record first,
        # then the rest by start time, so its earliest start is its first known one.
        lows = [f for f in (fb.floor() for fb in builders) if f is not None]
        lows += [r.next_ts() for r in reading]
        first = next((t for t in (self.starts[i][0] for i in queue) if t is not None), None)
        if first is not None:
            lows.append(first)
        if any(not s.sha256 for s in self._pipes):
            return np.iinfo(np.int64).min  # a pipe not yet read to its end: its uids need its hash (_hash_files)
        return min(lows, default=_NEVER)

    def _release(self, floor: int, final: bool) -> FlowChunk | None:
        """The first ``chunk_flows`` pending flows that start before ``floor``, numbered, when there are that many
        (or, ``final``, whatever is left)."""
        if not self._pending:
            return None
        if not final:  # cheap test first: could chunk_flows rows start before the floor?
            cut = floor // 1000
            # each frame's minimum is kept, not taken again: this runs after every batch (3,000 small files an hour
            # apart spent 40% of their time taking it)
            could = [f.height for f, low in zip(self._pending, self._pending_min, strict=True) if low < cut]
            if sum(could) < self.chunk_flows:
                return None
        pend = pl.concat(self._pending, how="vertical") if len(self._pending) > 1 else self._pending[0]
        if floor == _NEVER:
            ready = pend
            rest = pend.clear()
        else:
            early = pl.col("ts").dt.epoch("us") < floor // 1000
            ready, rest = pend.filter(early), pend.filter(~early)
        if ready.height < self.chunk_flows and not (final and ready.height):
            self._pending, self._pending_min = [pend], [min(self._pending_min)]
            return None
        ready = ready.rename({"flow_id": "_uid"}).sort(list(_ORDER), nulls_last=False)
        if ready.height > self.chunk_flows:  # the rest waits for the next call
            rest = pl.concat([ready.slice(self.chunk_flows).rename({"_uid": "flow_id"}), rest])
            ready = ready.head(self.chunk_flows)
        self._pending, self._pending_min = ([rest], [_min_us(rest)]) if rest.height else ([], [])
        ready = ready.with_columns(
            pl.int_range(self._next_id, self._next_id + ready.height, dtype=pl.Int64).alias("flow_id")
        )
        self._next_id += ready.height
        self.flows += ready.height
        pays = empty_payloads()
        if self._pending_pay:
            pp = pl.concat(self._pending_pay) if len(self._pending_pay) > 1 else self._pending_pay[0]
            ids = ready.select("_file", "_uid", "flow_id")
            pays = (
                pp.join(ids, on=["_file", "_uid"], how="inner")
                .select("flow_id", "ts_ns", "from_orig", "payload")
                .sort("flow_id", "ts_ns")
            )
            left = pp.join(ids, on=["_file", "_uid"], how="anti")
            self._pending_pay = [left] if left.height else []
        ready = ready.with_columns(uids_by_source(ready, self._sha_of))
        flows = pl.from_arrow(ready.select(FLOW_COLUMNS).to_arrow().cast(FLOW_SCHEMA))
        assert isinstance(flows, pl.DataFrame)
        streams = ready.get_column("_file").cast(pl.Int64).alias("stream")  # _Reading.key: the stream's first file
        closed = self._closed(rest)
        return FlowChunk(flows, pays.cast(PAYLOAD_SCHEMA), stream_ids=streams, closed=closed)  # type: ignore[arg-type]

    def _closed(self, rest: pl.DataFrame) -> tuple[int, ...]:
        """The finished streams of which no flow is still pending (``rest``): no later chunk holds one."""
        if not self._finished:
            return ()
        waiting = set(rest.get_column("_file").unique().to_list()) if rest.height else set()
        closed = tuple(k for k in self._finished if k not in waiting)
        self._finished = [k for k in self._finished if k in waiting]
        return closed

    # ------------------------------------------------------------------ what was read
    def extraction(self, flows: pa.Table | None = None, payloads: pl.DataFrame | None = None) -> Extraction:
        """What the reading learnt (complete once the chunks are exhausted), with ``flows``/``payloads`` if given."""
        bad: Counter[str] = Counter()
        warnings: list[str] = []
        info: list[dict] = []
        now = time.time_ns()
        for src in self.sources:
            bad.update(src.bad)
            warnings.extend(src.warnings)
            if clock := clock_warning(path_text(src.path), src.ts_first, src.ts_last, now):
                warnings.append(clock)
            info.append(src.info())
        if self.ended_early:
            warnings.append(
                f"{self.ended_early:,} flows ended before their idle timeout: more than "
                f"{self.config.max_open_flows:,} flows were open at once (a flood of one-packet flows?); "
                "a later packet of one of them started a new flow"
            )
        return Extraction(
            flows=flows if flows is not None else FLOW_SCHEMA.empty_table(),
            payloads=payloads if payloads is not None else empty_payloads(),
            sources=info,
            bad_packets=dict(sorted(bad.items())),
            warnings=warnings,
            packets=sum(s.records for s in self.sources),
            filtered=sum(s.filtered for s in self.sources),
            streams=[
                {"files": [path_text(self.sources[i].path) for i in st.files], "how": _how(len(st.files), self.merge)}
                for st in sorted(self._joiner.streams, key=lambda st: st.files[0])
            ],
        )


@dataclass(frozen=True)
class _ChildSpec:
    """The body of a flow-building child: its own ``FlowStream`` over the same captures."""

    paths: list[Path]
    config: FlowConfig
    payloads: bool
    merge: bool
    chunk_flows: int
    decap: bool = True
    packet_filter: PacketFilter | None = None
    limits: ReadLimits = DEFAULT_LIMITS

    def __call__(self, conn: Connection) -> None:
        fs = FlowStream(
            self.paths,
            self.config,
            payloads=self.payloads,
            merge=self.merge,
            decap=self.decap,
            packet_filter=self.packet_filter,
            chunk_flows=self.chunk_flows,
            limits=self.limits,
        )

        def make(progress: ProgressFn) -> Iterator[FlowChunk]:
            fs.progress = progress
            return iter(fs)

        child_body(make, fs.outcome, conn, str(self.paths[0]) if self.paths else "captures")


def extract_flows(
    paths: Sequence[Path],
    config: FlowConfig = DEFAULT_CONFIG,
    progress: ProgressFn = no_progress,
    *,
    payloads: bool = True,
    merge: bool = False,
    decap: bool = True,
    packet_filter: PacketFilter | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
) -> Extraction:
    """All flows of ``paths`` as one table (``FlowStream``'s chunks gathered); ``Extraction.streams`` says which
    files were read together. With ``payloads=False`` no payload snippets are kept (less memory when only the
    flow table is wanted). ``decap=False`` keeps tunnel packets as the outer flows they make; ``packet_filter``
    narrows the read to a time window, hosts and ports (``features.capture.filter``); ``limits`` bounds what each
    capture may give (``features.capture.stream.ReadLimits``)."""
    fs = FlowStream(
        paths, config, progress, payloads=payloads, merge=merge, decap=decap, packet_filter=packet_filter, limits=limits
    )
    return gather(fs)


def gather(fs: FlowStream, forked: bool | None = False) -> Extraction:
    """Every chunk of ``fs`` in one table, with what the reading learnt. Built here by default: a child process
    (``FlowStream.chunks``) only pays when this process has other work meanwhile."""
    chunks = list(fs.chunks(forked))
    if chunks:
        table = pa.concat_tables([c.flows.to_arrow() for c in chunks]).cast(FLOW_SCHEMA)
        pays = pl.concat([c.payloads for c in chunks])
    else:
        table, pays = FLOW_SCHEMA.empty_table(), empty_payloads()
    ext = fs.extraction(table, pays)
    ext.stream_ids = stream_ids_of(chunks)
    return ext


def stream_ids_of(chunks: Sequence[FlowChunk]) -> pl.Series | None:
    """The chunks' ``stream_ids`` as one series; None unless every chunk has them (chunks of one source either
    all have them or none does)."""
    ids = [c.stream_ids for c in chunks if c.stream_ids is not None]
    if not ids or len(ids) < len(chunks):
        return None
    return pl.concat(ids).alias("stream")


def _min_us(frame: pl.DataFrame) -> int:
    """The earliest flow start of a frame, in microseconds since the epoch."""
    value = frame.get_column("ts").dt.epoch("us").min()
    return int(value) if value is not None else _NEVER  # type: ignore[arg-type]


def number_flows(keys: pl.DataFrame) -> pl.DataFrame:
    """``flow_id`` for flows built apart (streams, shards): ``keys`` holds ``SORT_KEYS`` (``_uid`` unique per
    ``_file``); returns ``_file``, ``_uid``, ``flow_id`` in table order."""
    ordered = keys.select(SORT_KEYS).sort(list(SORT_KEYS), nulls_last=False)
    return ordered.select("_file", "_uid", pl.int_range(0, ordered.height, dtype=pl.Int64).alias("flow_id"))


def _tagged(batches: Iterator[PacketBatch], file_no: int) -> Iterator[PacketBatch]:
    for b in batches:
        yield tag_batch(b, file_no)


def _how(files: int, merge: bool) -> str:
    """``single`` (one file), ``joined`` (rotated files in time order) or ``merged`` (by time, ``--merge``)."""
    return "single" if files == 1 else "merged" if merge else "joined"
