"""Zeek conn logs of any size as flow chunks in table order: ``ConnStream(paths).chunks()``, then ``.extraction()``.

A conn log is not in the flow table's order: Zeek writes a connection when it is removed (its end, or its
inactivity timeout), while nta numbers flows and computes the window features in start order, across the rotated
logs of one stream (``features.zeeklog.conn``). Read whole, a log's records, their flow records and the sort held
every connection at once (one million connections: 1.2 GiB). Here:

1. Each log is read block by block (``features.zeeklog.read.log_frames``); each block's records become flow
   records (``conn._flows``) appended to a Parquet spool, while each log's first start, last end and counts are
   noted (the logs' time order and streams need no more).
2. DuckDB sorts the spool in the table's order (``conn.ORDER``, the logs ranked by their first connection) with a
   sort that spills to the spool's folder past ``MEMORY_LIMIT_MB``, and hands the rows back in batches; each chunk of
   ``chunk_flows`` rows gets its flow ids and uids as the whole table would give them.

Memory is set by the block, the chunk and DuckDB's limit, not by the logs' size. The spool (the flow records,
compressed) and DuckDB's spill lie in a private folder inside ``spool_dir`` (the scan's output folder, where the
outputs go anyway), removed when the chunks end or are closed.
"""

from __future__ import annotations

import contextlib
import itertools
import tempfile
from collections import Counter
from collections.abc import Generator, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from features.capture.filter import PacketFilter
from features.capture.stream import DEFAULT_LIMITS, ReadLimits
from features.common import InputError, ProgressFn, file_sha256, more_memory, no_progress, path_text, spilling_duckdb
from features.flows.extract import CHUNK_FLOWS, Extraction, FlowChunk
from features.flows.records import empty_payloads
from features.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA
from features.flows.uid import flow_uids
from features.zeeklog.conn import (
    ORDER,
    UNAVAILABLE_FEATURES,
    WANTED,
    _filter_mask,
    _flows,
    check_conn_log,
    log_streams,
)
from features.zeeklog.read import ReadLog, empty_frame, log_frames

MEMORY_LIMIT_MB = 128  # DuckDB's buffers for the sort; it spills past this
THREADS = 2
_TIMES = ("ts", "ts_end")  # spooled as microseconds since the epoch: DuckDB gives zoned times back in its own zone


@dataclass
class _Log:
    """What reading one log learnt (its records are in the spool)."""

    path: Path
    name: str  # the name outputs give it (a pipe's, for a log spooled from one)
    format: str
    read: ReadLog
    first: Any = None  # its records' earliest start (read order's key), None without records
    start_ns: int | None = None  # its flow records' earliest start and latest end (the streams' keys)
    end_ns: int | None = None
    flows: int = 0  # flow records before the filter
    packets: int = 0
    sha: str = ""  # the file's SHA-256 (its flows' uids hash it), once asked for

    @property
    def sha256(self) -> str:
        if not self.sha:
            self.sha = file_sha256(self.path)
        return self.sha


class ConnStream:
    """The flows of Zeek conn logs, in table order, chunk by chunk (``chunks``), and what was read
    (``extraction``, once the chunks have ended): ``read_conn_logs``' table, in memory set by a chunk.

    ``names``: what outputs call each log (default: its path); ``spool_dir``: where the spool's private folder
    goes (default: the system's temporary folder).
    """

    def __init__(
        self,
        paths: Sequence[Path],
        progress: ProgressFn = no_progress,
        *,
        packet_filter: PacketFilter | None = None,
        limits: ReadLimits = DEFAULT_LIMITS,
        chunk_flows: int = CHUNK_FLOWS,
        names: Sequence[str] | None = None,
        spool_dir: Path | None = None,
    ) -> None:
        self.paths = [Path(p) for p in paths]
        self.names = list(names) if names is not None else [path_text(p) for p in self.paths]
        with self._named():
            self.formats = [check_conn_log(p) for p in self.paths]  # every file checked before any is read
        self.progress = progress
        self.packet_filter = packet_filter if packet_filter is not None and packet_filter.active else None
        self.limits = limits
        self.chunk_flows = max(1, chunk_flows)
        self.spool_dir = spool_dir
        self.bad: Counter[str] = Counter()
        self.filtered = 0
        self.logs: list[_Log] = []  # in time order once read
        self.flows = 0
        # flow_id -> the log's uid, for the flows whose uid is not the log's own (see ``extraction``)
        self._log_uids: list[pl.DataFrame] = []
        self._rank = np.zeros(0, np.int64)  # a log's place in time order, by its place in the arguments
        self._streams: list[int] = []  # each log's stream, logs in time order (conn.log_streams)
        self._bytes = 0  # the logs' size, and the rows spooled (for progress)
        self._spooled = 0
        self._done = False

    def chunks(self, forked: bool | None = None) -> Generator[FlowChunk, None, None]:
        """The flows in table order, ``chunk_flows`` at a time (the last chunk may be smaller). ``forked`` is
        ``FlowStream.chunks``' (a flow-building child): logs are read here, so it changes nothing."""
        with tempfile.TemporaryDirectory(prefix="nta-zeek-", dir=self.spool_dir) as tmp:
            spool = Path(tmp) / "flows.parquet"
            with self._named():
                spooled = self._spool(spool)
            if spooled:
                yield from self._sorted(spool, Path(tmp))
        self._done = True

    @contextlib.contextmanager
    def _named(self) -> Iterator[None]:
        """Errors name each log as the outputs do (a log copied from a pipe: the pipe, not the copy)."""
        try:
            yield
        except InputError as e:
            text = str(e)
            for path, name in zip(self.paths, self.names, strict=True):
                text = text.replace(str(path), name)
            raise InputError(text) from None

    def extraction(self) -> Extraction:
        """What was read: sources (in time order), bad records by name, warnings, packets; no flow rows (they went
        out as chunks). ``uids``: (flow_id, uid) of the flows whose uid is not their log's own: a connection the
        logs give twice (an ICMP connection becomes a request and a reply record, each with a uid of nta's)."""
        assert self._done, "extraction() after the chunks"
        info = [
            {
                "file": log.name,
                "sha256": log.sha256,
                "format": log.format,
                "records": log.read.records,
                "packets": log.packets,
                "bytes": log.path.stat().st_size,
            }
            for log in self.logs
        ]
        warnings = [w for log in self.logs for w in self._warnings(log)]
        uids = (
            pl.concat(self._log_uids)
            if self._log_uids
            else pl.DataFrame(schema={"flow_id": pl.Int64, "uid": pl.String})
        )
        return Extraction(
            flows=FLOW_SCHEMA.empty_table(),
            payloads=empty_payloads(),
            sources=info,
            bad_packets=dict(sorted(self.bad.items())),
            warnings=warnings,
            packets=sum(log.packets for log in self.logs),
            filtered=self.filtered,
            kind="zeek",
            uids=uids,
            unavailable=UNAVAILABLE_FEATURES,
        )

    def _warnings(self, log: _Log) -> list[str]:
        out = [w.replace(path_text(log.path), log.name) for w in log.read.warnings]
        if log.read.records and not log.flows:
            out.append(f"{log.name}: no usable conn record in {log.read.records:,} record lines")
        return out

    # ------------------------------------------------------------------------------------------ pass 1: the spool

    def _spool(self, spool: Path) -> bool:
        """Every log's flow records into ``spool`` (the ones the filter keeps); the logs put in time order.
        Returns whether the spool holds a row."""
        sizes = [p.stat().st_size for p in self.paths]
        total, done = sum(sizes), 0
        self._bytes = total
        writer: pq.ParquetWriter | None = None
        schema: pa.Schema | None = None
        try:
            for i, (path, fmt, name, size) in enumerate(zip(self.paths, self.formats, self.names, sizes, strict=True)):

                def prog(d: int, _t: int, base: int = done) -> None:
                    self.progress(base + d, 2 * total)  # the sort's chunks are the other half (_chunk)

                log = _Log(path, name, fmt, ReadLog(empty_frame(WANTED)))
                rows = (0, 0)  # the log's records and split ICMP replies so far (conn._flows numbers them)
                for frame in log_frames(path, WANTED, log.read, prog, self.limits):
                    first = frame["ts"].min()
                    if first is not None and (log.first is None or first < log.first):
                        log.first = first
                    flows = _flows(frame, i, name, self.bad, rows)
                    replies = int(flows["_reply"].sum())
                    rows = (rows[0] + flows.height - replies, rows[1] + replies)
                    self._note(log, flows)
                    if self.packet_filter is not None:
                        keep = _filter_mask(flows, self.packet_filter)
                        self.filtered += int((~keep).sum())
                        flows = flows.filter(pl.Series(keep))
                    if not flows.height:
                        continue
                    table = flows.with_columns(pl.col(c).dt.epoch("us") for c in _TIMES).to_arrow()
                    if writer is None:
                        schema = table.schema
                        writer = pq.ParquetWriter(spool, schema, compression="lz4")
                    writer.write_table(table.cast(schema))
                    self._spooled += table.num_rows
                self.bad.update(log.read.bad)
                self.logs.append(log)
                done += size
        finally:
            if writer is not None:
                writer.close()
        if not any(log.flows for log in self.logs) and any(log.read.records for log in self.logs):
            where = ", ".join(str(p) for p in self.paths[:3]) + (" ..." if len(self.paths) > 3 else "")
            why = ", ".join(f"{k} {v:,}" for k, v in sorted(self.bad.items())) or "no records"
            raise InputError(f"{where}: no usable Zeek conn record ({why})")
        # Files in time order (a rotated set given in any order), as read_conn_logs has always ranked them.
        order = sorted(
            range(len(self.logs)),
            key=lambda k: (self.logs[k].first is None, self.logs[k].first or 0, str(self.logs[k].path)),
        )
        self.logs = [self.logs[k] for k in order]
        self._rank = np.empty(len(order), np.int64)
        self._rank[order] = np.arange(len(order))
        self._streams = log_streams([(log.start_ns, log.end_ns) for log in self.logs])
        return writer is not None

    @staticmethod
    def _note(log: _Log, flows: pl.DataFrame) -> None:
        if not flows.height:
            return
        start = int(flows["ts"].dt.epoch("ns").min())  # type: ignore[arg-type]
        end = int(flows.select(pl.col("ts_end").fill_null(pl.col("ts")).dt.epoch("ns").max()).item())
        log.start_ns = start if log.start_ns is None else min(log.start_ns, start)
        log.end_ns = end if log.end_ns is None else max(log.end_ns, end)
        log.flows += flows.height
        log.packets += int(flows.select(pl.col("orig_pkts").sum() + pl.col("resp_pkts").sum()).item() or 0)

    # ------------------------------------------------------------------------------------------ pass 2: the sort

    def _sorted(self, spool: Path, tmp: Path) -> Iterator[FlowChunk]:
        import duckdb

        limit_mb = MEMORY_LIMIT_MB
        con = spilling_duckdb(tmp, limit_mb, THREADS)
        try:
            ranks = pa.table(
                {
                    "_arg": pa.array(np.arange(len(self._rank)), pa.int64()),
                    "_rank": pa.array(self._rank, pa.int64()),
                    "_stream": pa.array(np.asarray(self._streams, np.int64)[self._rank], pa.int64()),
                }
            )
            con.register("ranks", ranks)
            src = f"read_parquet('{_sql_text(spool)}')"
            keys = ", ".join(f"{'r._rank' if k == '_file' else 's.' + k} ASC NULLS FIRST" for k in ORDER)
            # A uid the logs give more than once (an ICMP connection's request and reply records, a connection two
            # sensors logged) names no one flow: those flows take uids of nta's (features.flows.uid). Found first,
            # in a statement of its own: the sort then joins a small table.
            steps = [
                f"CREATE OR REPLACE TABLE dup AS SELECT _uid FROM {src} WHERE _uid IS NOT NULL GROUP BY _uid HAVING count(*) > 1",
                f"""SELECT s.* EXCLUDE (_file), r._rank AS _file, r._stream AS _stream, d._uid IS NULL AS _once
                    FROM {src} s JOIN ranks r ON s._file = r._arg LEFT JOIN dup d ON s._uid = d._uid
                    ORDER BY {keys}""",
            ]
            while True:
                # The sort is done before its first rows come back: a sort that runs out of DuckDB's memory is done
                # again with twice the limit (some of its memory grows with the rows), up to DUCKDB_MAX_SHARE of the machine.
                try:
                    con.execute(steps[0])
                    reader = con.sql(steps[1]).to_arrow_reader(self.chunk_flows)
                    first = reader.read_next_batch()
                    break
                except StopIteration:
                    return
                except duckdb.OutOfMemoryException:
                    if (grown := more_memory(con, limit_mb)) is None:
                        raise
                    limit_mb = grown
            shas = [log.sha256 for log in self.logs]
            pending: list[pl.DataFrame] = []
            held = 0
            for batch in itertools.chain([first], reader):
                frame = pl.from_arrow(pa.Table.from_batches([batch]))
                assert isinstance(frame, pl.DataFrame)
                pending.append(frame)
                held += frame.height
                while held >= self.chunk_flows:
                    whole = pl.concat(pending)
                    yield self._chunk(whole.head(self.chunk_flows), shas)
                    rest = whole.slice(self.chunk_flows)
                    pending, held = ([rest] if rest.height else []), rest.height
            if held:
                yield self._chunk(pl.concat(pending), shas)
        finally:
            con.close()

    def _chunk(self, part: pl.DataFrame, shas: list[str]) -> FlowChunk:
        """A chunk of sorted spool rows as the table's: flow ids in order, times back, uids."""
        part = part.with_columns(
            flow_id=pl.int_range(self.flows, self.flows + part.height, dtype=pl.Int64),
            **{c: pl.col(c).cast(pl.Datetime("us", "UTC")) for c in _TIMES},
        )
        self.flows += part.height
        self.progress(self._bytes + self._bytes * self.flows // max(1, self._spooled), 2 * self._bytes)
        made = flow_uids(part, shas)
        own = pl.col("_once") & pl.col("_uid").is_not_null()
        part = part.with_columns(uid=pl.when(own).then(pl.col("_uid")).otherwise(pl.lit(made)))
        differs = part.filter(~own & pl.col("_uid").is_not_null())
        if differs.height:
            self._log_uids.append(differs.select("flow_id", pl.col("_uid").alias("uid")))
        flows = pl.from_arrow(part.select(FLOW_COLUMNS).to_arrow().cast(FLOW_SCHEMA))
        assert isinstance(flows, pl.DataFrame)
        return FlowChunk(flows, empty_payloads(), part["_service"], part["_stream"].alias("stream"))


def _sql_text(path: Path) -> str:
    """A path inside a single-quoted SQL string."""
    return str(path).replace("'", "''")


def read_conn_logs(
    paths: Sequence[Path],
    progress: ProgressFn = no_progress,
    *,
    packet_filter: PacketFilter | None = None,
    limits: ReadLimits = DEFAULT_LIMITS,
    names: Sequence[str] | None = None,
) -> Extraction:
    """The flow table of Zeek conn logs (see the module docstring), as ``extract_flows`` gives it for captures: the
    chunks of ``features.zeeklog.stream.ConnStream`` gathered into one table (a scan takes them one at a time).

    ``Extraction.sources`` lists each log (format ``zeek-tsv``/``zeek-json``, ``records``, sha256 of the file as
    stored); ``bad_packets`` counts the records left out by name (``features.zeeklog.read.BAD_NAMES`` and
    ``zeek_missing_field``). ``packet_filter`` keeps the records that start in its time window and have a host and
    a port asked for; ``limits`` bounds each log as captures are bounded; ``names``: what the outputs call each log
    (default: its path). InputError when a log is not a conn log, or when there are records and none is usable
    (logs without any record, such as an hour without traffic, give an empty table, as an empty capture does).
    """
    return gather_conn(ConnStream(paths, progress, packet_filter=packet_filter, limits=limits, names=names))


def gather_conn(stream: ConnStream) -> Extraction:
    """All of ``stream``'s chunks as one table, with what was read (``read_conn_logs``)."""
    chunks = list(stream.chunks())
    ext = stream.extraction()
    if chunks:
        ext.flows = pl.concat([c.flows for c in chunks]).to_arrow().cast(FLOW_SCHEMA)
        ext.service_hints = pl.concat([c.service_hints for c in chunks if c.service_hints is not None])
        ext.stream_ids = pl.concat([c.stream_ids for c in chunks if c.stream_ids is not None])
    else:
        ext.service_hints = pl.Series("_service", [], pl.String)
        ext.stream_ids = pl.Series("stream", [], pl.Int64)
    return ext
