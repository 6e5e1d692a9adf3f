"""The scan's outputs written as the flows stream past: memory follows a chunk of flows, not the whole scan.

* ``FlowsWriter``: flows.parquet, one row group per chunk (flow columns + the 41 KDD features); the key-value
  metadata (sources with their sha256, bad packets, warnings, model id) is only known at the end, so it goes
  into the file's footer then (the Arrow schema is not stored: it is the Parquet one plus that metadata).
* ``VerdictRows``: the verdict rows, spilled chunk by chunk to an Arrow IPC stream beside the outputs, since
  ``incident_id`` is only known once every attack flow has been seen; ``write_csv`` then streams them into
  verdicts.csv with their incidents.
* ``ParquetRows``: the explanations' features (and the attack flows' rows) read back from flows.parquet for
  the rows they need.

Every file here is a temporary the pipeline renames into place (or removes) at the end.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from analyzer import verdicts
from features.behind import WriteBehind
from features.common import own_strings
from features.flows.schema import FLOW_COLUMNS, FLOW_SCHEMA, dictionary_columns
from features.kdd.columns import KDD_FEATURES, KDD_SCHEMA

# The KDD feature named like a flow field but meaning something else: NSL-KDD's ``duration`` is whole seconds,
# the flow's ``duration_s`` real ones. In flows.parquet it is ``kdd_duration``; only the KDD feature table
# (``nta features``) calls it ``duration``.
KDD_RENAMED = {"duration": "kdd_duration"}
VERDICT_COLUMNS = ("label", "confidence", "incident_id")  # each flow's verdict, the last columns of flows.parquet


def flows_table(flows: pl.DataFrame, kdd: pl.DataFrame) -> pa.Table:
    """One chunk of flows.parquet: the flow table as extracted (FLOW_SCHEMA types) plus the KDD features
    (``KDD_RENAMED``); ``with_verdicts`` adds each flow's verdict.

    ``land``, ``wrong_fragment`` and ``urgent`` are flow fields and KDD features with the same values; the flow
    field stays (so ``features.flows.table.read_flows`` reads this file) and is not repeated.
    """
    table = flows.to_arrow().cast(FLOW_SCHEMA)
    for name in KDD_FEATURES:
        if name not in table.column_names:
            table = table.append_column(KDD_RENAMED.get(name, name), kdd[name].to_arrow())
    return table


def with_verdicts(table: pa.Table, v: pl.DataFrame) -> pa.Table:
    """``flows_table``'s rows with their verdict rows' ``label``, ``confidence`` and ``incident_id`` (null until
    incidents are found: ``finish_flows`` fills it)."""
    for name in VERDICT_COLUMNS:
        table = table.append_column(name, v[name].to_arrow())
    return table


class Members:
    """Which incident each attack flow belongs to (``flow_id`` -> ``incident_id``), read by the outputs that are
    written after the incidents are known, each in one pass in ``flow_id`` order: ``cursor()`` starts a pass.
    This one holds the pairs as a frame sorted by ``flow_id``; ``analyzer.incident_sql`` reads them from a query,
    a batch at a time (a flood has as many pairs as flows)."""

    def __init__(self, frame: pl.DataFrame) -> None:
        self.frame = frame
        self._ids = frame["flow_id"].to_numpy()

    def cursor(self) -> Any:
        return self

    def between(self, lo: int, hi: int) -> pl.DataFrame:
        """The pairs with ``lo`` <= ``flow_id`` <= ``hi``."""
        a, b = np.searchsorted(self._ids, [lo, hi], side="left")
        b = b + int(b < len(self._ids) and self._ids[b] == hi)
        return self.frame.slice(int(a), int(b - a))


class BatchCursor:
    """``Members.between`` over pairs that come in batches sorted by ``flow_id``; calls ask for ranges in
    increasing order, and only the batches a range needs are held."""

    def __init__(self, batches: Iterator[pl.DataFrame]) -> None:
        self._batches = batches
        self._held = pl.DataFrame(schema={"flow_id": pl.Int64, "incident_id": pl.Int64})
        self._done = False

    def cursor(self) -> BatchCursor:
        """Itself: a pass already started (``as_members`` takes it as it is)."""
        return self

    def between(self, lo: int, hi: int) -> pl.DataFrame:
        held = self._held.filter(pl.col("flow_id") >= lo)
        parts = [held]
        while not self._done and (held.height == 0 or parts[-1]["flow_id"][-1] <= hi):
            batch = next(self._batches, None)
            if batch is None:
                self._done = True
                break
            if batch.height:
                parts.append(batch.select(pl.col("flow_id").cast(pl.Int64), pl.col("incident_id").cast(pl.Int64)))
                held = batch
        self._held = pl.concat(parts) if len(parts) > 1 else parts[0]
        return self._held.filter(pl.col("flow_id").is_between(lo, hi))


def as_members(members: Members | pl.DataFrame | Any) -> Any:
    """``Members`` of a frame; anything with ``cursor()`` as it is."""
    return Members(members) if isinstance(members, pl.DataFrame) else members


def finish_flows(
    part: Path, path: Path, members: Any, metadata: dict[bytes, bytes], stop: threading.Event | None = None
) -> None:
    """flows.parquet at ``path`` from the streamed ``part`` (one row group per chunk), each row group with its
    flows' ``incident_id`` from ``members`` (``Members``, a pass of one already started, or a frame flow_id ->
    incident_id of the attack flows sorted by flow_id), and the key-value metadata in the footer. One row group in
    memory at a time. ``stop`` set (the scan failed or was interrupted): ``Stopped`` before the next row group."""
    with open(part, "rb") as pin, open(path, "wb") as out:  # file objects: pyarrow cannot encode non-UTF-8 names
        src = pq.ParquetFile(pin)
        _copy_groups(src, out, as_members(members).cursor(), metadata, stop)


class Stopped(Exception):
    """``finish_flows`` was told to stop: the scan is failing or interrupted, and its outputs are being removed."""


def _copy_groups(
    src: Any, out: Any, members: Any, metadata: dict[bytes, bytes], stop: threading.Event | None = None
) -> None:
    writer: pq.ParquetWriter | None = None
    try:
        for i in range(src.metadata.num_row_groups):
            if stop is not None and stop.is_set():
                raise Stopped(str(out))
            t = src.read_row_group(i)
            if writer is None:
                writer = pq.ParquetWriter(
                    out, t.schema, compression="zstd", store_schema=False, use_dictionary=dictionary_columns(t.schema)
                )
            if t.num_rows:
                fid = t.column("flow_id").to_numpy()
                part_m = members.between(int(fid.min()), int(fid.max()))
                got = pl.DataFrame({"flow_id": fid}).join(part_m, on="flow_id", how="left", maintain_order="left")
                at = t.schema.get_field_index("incident_id")
                col = got["incident_id"].cast(pl.Int64).to_arrow().cast(t.schema.field(at).type)
                t = t.set_column(at, t.schema.field(at), col)
            writer.write_table(t)
        assert writer is not None
        writer.add_key_value_metadata(metadata)
    finally:
        if writer is not None:
            writer.close()


class FlowsWriter:
    """flows.parquet (zstd), written chunk by chunk to ``path``; ``close(metadata)`` finishes it."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._writer: pq.ParquetWriter | None = None
        self._fh: Any = None
        self._behind: WriteBehind[pa.Table] | None = None  # row groups are encoded on a thread (features.behind)
        self.rows = 0

    def write(self, table: pa.Table) -> None:
        if self._writer is None:
            self._fh = open(self.path, "wb")  # noqa: SIM115  a file object: pyarrow cannot encode non-UTF-8 names
            self._writer = pq.ParquetWriter(
                self._fh, table.schema, compression="zstd", store_schema=False,
                use_dictionary=dictionary_columns(table.schema),
            )  # fmt: skip
            self._behind = WriteBehind(self._writer.write_table)
        assert self._behind is not None
        self._behind.put(table)
        self.rows += table.num_rows

    def close(self, metadata: dict[bytes, bytes], empty: pa.Table) -> None:
        """Add the key-value metadata and close; ``empty`` gives the columns when no chunk was written."""
        if self._writer is None:
            self.write(empty)
        assert self._writer is not None and self._behind is not None
        self._behind.close()
        self._writer.add_key_value_metadata(metadata)
        self._writer.close()
        self._fh.close()

    def abort(self) -> None:
        """Close without finishing (the file is removed by its owner)."""
        if self._behind is not None:
            self._behind.stop()
        if self._writer is not None:
            with contextlib.suppress(Exception):
                self._writer.close()
            self._writer = None
        if self._fh is not None:
            self._fh.close()


class VerdictRows(verdicts.IpcSpill):
    """Verdict rows (``verdict_columns`` order, ``incident_id`` still null) spilled to an Arrow IPC stream."""

    def joined(self, members: Any, columns: list[str]) -> Iterator[pl.DataFrame]:
        """The spilled rows in order, chunk by chunk, each with its ``incident_id`` from ``members`` (``Members``, or
        a frame flow_id -> incident_id of the attack flows sorted by flow_id), as ``columns``."""
        self.close()
        if not self.path.exists():
            return
        cursor = as_members(members).cursor()
        with open(self.path, "rb") as src:
            for batch in pa.ipc.open_stream(src):
                v = pl.from_arrow(batch)
                assert isinstance(v, pl.DataFrame)
                if v.height == 0:
                    continue
                part = cursor.between(int(v["flow_id"][0]), int(v["flow_id"][-1]))
                v = v.drop("incident_id").join(part, on="flow_id", how="left", maintain_order="left")
                yield v.select(columns)

    def write_csv(self, path: Path, members: Any, columns: list[str]) -> None:
        """verdicts.csv at ``path``: ``joined``'s rows (the header alone when there is none)."""
        self.finish(members, columns, csv=path)

    def finish(
        self,
        members: Any,
        columns: list[str],
        *,
        csv: Path | None = None,
        alerts: Any = None,
        icmp: Any = None,
        keep: np.ndarray | None = None,
        stop: threading.Event | None = None,
    ) -> pl.DataFrame | None:
        """One pass over the spilled rows (``joined``), chunk by chunk: verdicts.csv at ``csv``, each chunk's flow
        alerts to ``alerts`` (``analyzer.alerts.AlertWriter``; ``icmp(flow_ids)``: their ICMP type and code),
        and the rows whose ``flow_id`` is in ``keep`` returned whole (the report's top flows; None when none
        was asked for or found). Nothing here
        grows with the capture but what ``keep`` asks for. ``stop`` set (the scan is failing): ``Stopped`` before
        the next chunk."""
        kept = []
        want = pl.Series(np.asarray(keep if keep is not None else [], np.int64))
        with csv.open("wb") if csv is not None else contextlib.nullcontext() as f:
            first = True
            for v in self.joined(members, columns):
                if stop is not None and stop.is_set():
                    raise Stopped(str(self.path))
                if f is not None:
                    verdicts.write_csv(v, f, header=first)
                first = False
                if want.len():
                    kept.append(own_strings(v.filter(pl.col("flow_id").is_in(want.implode()))))
                if alerts is not None:
                    sure = alerts.sure(v)
                    if sure.height and icmp is not None:
                        sure = _with_icmp(sure, icmp)
                    alerts.add(sure)
            if f is not None and first:  # no row at all: the header alone
                verdicts.write_csv(pl.DataFrame(schema=dict.fromkeys(columns, pl.String)), f)
        return pl.concat(kept) if kept else None


def _with_icmp(rows: pl.DataFrame, icmp: Any) -> pl.DataFrame:
    """``rows`` with ``icmp_type``/``icmp_code`` (read for their ICMP rows only: the others carry none)."""
    is_icmp = pl.col("proto").is_in(["icmp", "icmp6"])
    ids = rows.filter(is_icmp)["flow_id"].to_numpy()
    if ids.size == 0:
        return rows.with_columns(icmp_type=pl.lit(None, pl.Int32), icmp_code=pl.lit(None, pl.Int32))
    return rows.join(icmp(ids), on="flow_id", how="left", maintain_order="left")


class ParquetRows:
    """``analyzer.explain.Rows`` read back from a finished flows.parquet: row number = flow_id."""

    def __init__(self, path: Path, spec: Any) -> None:
        self.path = path
        self.spec = spec  # features.encode.spec.FeatureSpec
        self._fh: Any = None
        self._file: Any = None
        self._groups: list[tuple[int, int]] | None = None  # flow_id range of each row group

    def __enter__(self) -> ParquetRows:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the file (opened on the first read): a scan called from a long-lived process (a test, a Ray
        driver) must not keep a descriptor of flows.parquet, or of its deleted temporary after a failure."""
        if self._fh is not None:
            self._fh.close()
        self._fh = self._file = self._groups = None

    def _read(self, rows: np.ndarray, columns: list[str]) -> pl.DataFrame:
        """The rows (any order, as given) with ``columns``; only the row groups holding them are read, one at a
        time (each row group is one chunk of consecutive flow ids)."""
        want = np.asarray(rows, np.int64)
        ids = np.unique(want)
        parts = []
        for kept in self._pieces(ids, columns):
            part = pl.from_arrow(kept)
            assert isinstance(part, pl.DataFrame)
            parts.append(part)
        got = pl.concat(parts) if parts else pl.DataFrame(schema={"flow_id": pl.Int64})
        if np.array_equal(ids, want) and got.height == want.size:
            # asked in flow_id order, each once, all found: the row groups gave them so (an explanation reads
            # a feature of every member of a flood's incident, and a join of millions of ids copies them twice)
            return got
        order = pl.DataFrame({"flow_id": want})
        return order.join(got, on="flow_id", how="left", maintain_order="left")

    def _pieces(self, ids: np.ndarray, columns: list[str]) -> Iterator[pa.Table]:
        """``flow_id`` and ``columns`` of the flows ``ids`` (sorted, each once), a row group at a time in file order;
        only the row groups holding them are read (each row group is one chunk of consecutive flow ids)."""
        if self._groups is None:
            self._fh = open(self.path, "rb")  # noqa: SIM115  (pyarrow cannot encode non-UTF-8 names)
            self._file = pq.ParquetFile(self._fh)
            self._groups = [self._id_range(i) for i in range(self._file.metadata.num_row_groups)]
        for i, (lo, hi) in enumerate(self._groups):
            a, b = np.searchsorted(ids, [lo, hi], side="left")
            b += int(b < ids.size and ids[b] == hi)
            if a == b:
                continue
            group = self._file.read_row_group(i, columns=["flow_id", *columns])
            # filtered in Arrow, which copies the rows kept: a polars frame filtered from the whole group would
            # share (and keep alive) every string buffer of it, the whole table's strings by the last group
            # (10M packets: +109 MiB at the end of a scan, growing with the capture)
            yield group.filter(pc.is_in(group.column("flow_id"), value_set=pa.array(ids[a:b], pa.int64())))

    def _id_range(self, i: int) -> tuple[int, int]:
        stats = self._file.metadata.row_group(i).column(self._file.schema_arrow.get_field_index("flow_id")).statistics
        return int(stats.min), int(stats.max)

    def read(self, rows: np.ndarray, columns: list[str]) -> pl.DataFrame:
        """``flow_id`` and ``columns`` (as stored) of the flows ``rows``, in that order."""
        return self._read(rows, [c for c in columns if c != "flow_id"])

    def flows(self, rows: np.ndarray) -> pl.DataFrame:
        """The flow-table columns (``FLOW_SCHEMA``) of the flows ``rows``, in that order."""
        if len(rows) == 0:
            empty = pl.from_arrow(FLOW_SCHEMA.empty_table())
            assert isinstance(empty, pl.DataFrame)
            return empty
        got = self._read(rows, [c for c in FLOW_COLUMNS if c != "flow_id"]).select(FLOW_COLUMNS)
        out = pl.from_arrow(got.to_arrow().cast(FLOW_SCHEMA))
        assert isinstance(out, pl.DataFrame)
        return out

    def encoded(self, rows: np.ndarray) -> np.ndarray:
        got = self._read(rows, [KDD_RENAMED.get(c, c) for c in KDD_FEATURES])
        kdd = got.select(pl.col(KDD_RENAMED.get(c, c)).cast(KDD_SCHEMA[c]).alias(c) for c in KDD_FEATURES)
        x, _ = self.spec.transform(kdd)
        return np.asarray(x)

    def columns_reader(self, names: list[str], rows: np.ndarray) -> pa.RecordBatchReader:
        """``flow_id`` and the KDD features ``names`` (each typed as ``column`` types it) of the flows ``rows``
        (sorted flow ids), a row group at a time (what a query over a flood's millions of flows reads); row groups
        without one of them are not read. Read when the reader is consumed, on this object's file."""
        stored = [KDD_RENAMED.get(n, n) for n in names]
        want = np.asarray(rows, np.int64)

        def arrow_type(name: str) -> pa.DataType:
            kind = pl.Series([], dtype=KDD_SCHEMA[name]).to_arrow().type
            return pa.large_string() if kind == pa.string_view() else kind

        schema = pa.schema([("flow_id", pa.int64()), *((n, arrow_type(n)) for n in names)])

        def batches() -> Iterator[pa.RecordBatch]:
            for kept in self._pieces(want, list(dict.fromkeys(stored))):
                t = pl.from_arrow(kept)
                assert isinstance(t, pl.DataFrame)
                t = t.select(
                    pl.col("flow_id").cast(pl.Int64),
                    *(pl.col(s).cast(KDD_SCHEMA[n]).alias(n) for n, s in zip(names, stored, strict=True)),
                )
                yield from t.to_arrow().cast(schema).to_batches()

        return pa.RecordBatchReader.from_batches(schema, batches())

    def column(self, name: str, rows: np.ndarray) -> pl.Series:
        stored = KDD_RENAMED.get(name, name)
        return self._read(rows, [stored]).get_column(stored).cast(KDD_SCHEMA[name]).alias(name)
