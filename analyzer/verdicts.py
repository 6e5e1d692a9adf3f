"""Per-flow verdicts: the ``verdicts.csv`` table, and the tallies the report is built from.

``verdicts.csv`` has one row per flow, columns in ``verdict_columns(classes)`` order: the flow identity
columns (``flow_id`` for this run, ``uid`` across runs, ``community_id``; taken from ``features.flows.schema.FLOW_FIELDS``), the NSL-KDD ``service``, the model's ``label``
(argmax class), ``confidence`` (its probability), ``p_attack`` (1 - p(normal)), one ``p_<class>`` column
per class, ``novel`` (true when ``nta scan --novelty``'s gate relabelled a flow the network called normal:
its label is then the most probable attack class and ``confidence`` that class's probability), ``unsupported``
(true when the model's support gate, ``model.support``, set a flow the network called an attack to normal: it was
far from every training row of that class and near normal ones; ``confidence`` is then p(normal) and ``p_attack``
still the network's), ``allowed``
(true when ``--allow`` lists the flow as known-good: it keeps its label but makes no incident and no
``--fail-on`` match), the ``incident_id`` the flow belongs to (empty when none) and the ``model_id``.
Timestamps are ISO 8601 UTC with microseconds and a ``Z``; quoting follows RFC 4180 (CRLF line ends,
fields with commas, quotes or line breaks quoted, quotes doubled).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, ClassVar

import numpy as np
import polars as pl

from features.common import own_strings
from features.flows.schema import FLOW_COLUMNS

NORMAL = "normal"

# Flow fields copied into verdicts.csv, in the order the CSV has them ("service" is inserted after proto).
_FLOW_HEAD = (
    "flow_id",
    "uid",
    "community_id",
    "source_file",
    "ts",
    "ts_end",
    "orig_h",
    "orig_p",
    "resp_h",
    "resp_p",
    "proto",
)
_FLOW_TAIL = ("conn_state", "orig_bytes", "resp_bytes")
_missing = [c for c in _FLOW_HEAD + _FLOW_TAIL if c not in FLOW_COLUMNS]
assert not _missing, f"verdict columns not in features.flows.schema.FLOW_FIELDS: {_missing}"

CSV_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S%.6fZ"


def prob_column(cls: str) -> str:
    """Name of the probability column for one class (``p_DoS``)."""
    return f"p_{cls}"


def verdict_columns(classes: Sequence[str]) -> list[str]:
    """The exact column order of ``verdicts.csv``."""
    return [
        *_FLOW_HEAD,
        "service",
        *_FLOW_TAIL,
        "label",
        "confidence",
        "p_attack",
        *(prob_column(c) for c in classes),
        "novel",
        "unsupported",
        "allowed",
        "incident_id",
        "model_id",
    ]


def build_verdicts(
    flows: pl.DataFrame,
    service: pl.Series,
    proba: np.ndarray,
    classes: Sequence[str],
    model_id: str,
    gated: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None,
) -> pl.DataFrame:
    """One verdict row per flow (same order as ``flows``); ``incident_id`` is null until incidents are found.

    Args:
        flows: the flow table (``FLOW_FIELDS`` columns), n rows.
        service: NSL-KDD service token per flow, n values.
        proba: (n, K) class probabilities, columns in ``classes`` order.
        classes: the model's class names; must include ``"normal"``.
        model_id: written on every row so a CSV can be traced to the model that made it.
        gated: (class index (n,), novel (n,) bool, unsupported (n,) bool) from the novelty or the support gate
            (``analyzer.scoring.predict``); None: argmax, nothing novel or unsupported.
    """
    n = flows.height
    if proba.shape != (n, len(classes)):
        raise ValueError(f"probabilities have shape {proba.shape}, expected ({n}, {len(classes)})")
    best = proba.argmax(axis=1) if n else np.zeros(0, np.int64)  # (n,)
    novel = np.zeros(n, bool)
    unsupported = np.zeros(n, bool)
    if gated is not None:
        best, novel = np.asarray(gated[0], np.int64), np.asarray(gated[1], bool)
        unsupported = np.asarray(gated[2], bool)
    labels = np.asarray(classes, dtype=object)[best]
    conf = proba[np.arange(n), best] if n else np.zeros(0, np.float32)
    p_normal = proba[:, list(classes).index(NORMAL)]
    df = flows.select(*_FLOW_HEAD, *_FLOW_TAIL).with_columns(
        service=service.cast(pl.String),
        label=pl.Series(labels.tolist(), dtype=pl.String),
        confidence=pl.Series(conf.astype(np.float64)),
        p_attack=pl.Series((1.0 - p_normal).astype(np.float64)),
        **{prob_column(c): pl.Series(proba[:, i].astype(np.float64)) for i, c in enumerate(classes)},
        novel=pl.Series(novel, dtype=pl.Boolean),
        unsupported=pl.Series(unsupported, dtype=pl.Boolean),
        allowed=pl.lit(False, dtype=pl.Boolean),
        incident_id=pl.lit(None, dtype=pl.Int64),
        model_id=pl.lit(model_id, dtype=pl.String),
    )
    return df.select(verdict_columns(classes))


def write_csv(verdicts: pl.DataFrame, path: Path | BinaryIO, header: bool = True) -> None:
    """Write ``verdicts.csv`` (RFC 4180) to ``path`` (the caller makes it atomic), or append rows to an open
    file (``header=False`` after the first chunk: rows are written alike whatever the chunking)."""
    with contextlib.ExitStack() as stack:
        # a file object: polars cannot encode a non-UTF-8 file name
        fh = path if not isinstance(path, Path) else stack.enter_context(open(path, "wb"))
        verdicts.write_csv(
            fh,
            include_header=header,
            line_terminator="\r\n",
            quote_style="necessary",
            float_precision=6,
            datetime_format=CSV_TIME_FORMAT,
        )


def is_attack() -> pl.Expr:
    return pl.col("label") != NORMAL


def where(frame: pl.DataFrame, predicate: pl.Expr) -> pl.DataFrame:
    """``frame.filter(predicate)``, but ``frame`` itself when every row passes: a filter copies every column it
    keeps, and the attack rows of a flood all pass (10M flows: a gigabyte copied to drop nothing)."""
    mask = frame.select(predicate.alias("_keep")).to_series()  # (rows,) bool; null = dropped, as filter does
    if mask.null_count() == 0 and mask.all():
        return frame
    return frame.filter(mask)


def in_start_order(frame: pl.DataFrame) -> bool:
    """Rows sorted by (``ts``, ``flow_id``)? A scan's attack rows come so, and a sort of a flood's millions would
    copy them: callers sort only when not."""
    if frame["flow_id"].is_sorted() and frame["ts"].is_sorted():  # the usual case, without a copy
        return True
    ts = frame["ts"].to_physical().to_numpy()
    fid = frame["flow_id"].to_numpy()
    dts, dfid = np.diff(ts), np.diff(fid)
    return bool(np.all((dts > 0) | ((dts == 0) & (dfid > 0))))


def suspicious(verdicts: pl.DataFrame) -> pl.DataFrame:
    """Attack-labelled flows that no ``--allow`` entry covers (frames without ``allowed``: every attack flow)."""
    return where(verdicts, is_attack() & ~pl.col("allowed") if "allowed" in verdicts.columns else is_attack())


# The columns of an attack row the report keeps for the end of a scan (incidents, timeline, talkers, the ranking of
# top flows): what those read, and nothing per flow that verdicts.csv already holds (uid, community_id, the
# per-class probabilities, model_id). A flood makes every flow an attack row, so each byte here is a byte per flow.
ATTACK_COLUMNS: tuple[str, ...] = (
    "flow_id", "ts", "ts_end", "orig_h", "resp_h", "resp_p", "proto", "service", "conn_state", "orig_bytes",
    "resp_bytes", "label", "confidence", "p_attack", "novel", "allowed", "incident_id",
)  # fmt: skip


class IpcSpill:
    """Frames appended, as they come, to an Arrow IPC stream at ``path`` (created on the first write): rows a scan
    needs again at its end, kept on disk instead of in memory while it reads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._sink: BinaryIO | None = None
        self._writer: Any = None

    def write(self, frame: pl.DataFrame) -> None:
        import pyarrow as pa

        table = frame.to_arrow()
        if self._writer is None:
            self._sink = open(self.path, "wb")  # noqa: SIM115  (pyarrow cannot encode non-UTF-8 names)
            self._writer = pa.ipc.new_stream(self._sink, table.schema)
        self._writer.write_table(table)

    def close(self) -> None:
        """Finish the stream (safe to call again, and after a failure). The file is closed even when finishing
        the stream fails (a full disk): a scan that failed must not keep a descriptor of its temporaries open."""
        writer, sink = self._writer, self._sink
        self._writer = self._sink = None
        try:
            if writer is not None:
                writer.close()
        finally:
            if sink is not None:
                sink.close()


# Attack-row columns with a handful of distinct values whatever the capture (classes, protocols, services, states)
FEW_VALUES: frozenset[str] = frozenset({"label", "proto", "service", "conn_state"})


@dataclass
class Tally:
    """What the report needs from all verdict rows, kept as they stream past: counts, the time span, and the
    attack rows (``ATTACK_COLUMNS``: incidents, timeline, top flows and talkers need only those). With ``spill``
    the attack rows go to that file (an Arrow IPC stream) as they come and are read back once, at the end: the
    scan holds them only when it groups them, not while it reads."""

    fail_on: frozenset[str] = frozenset()
    min_confidence: float = 0.0
    spill: Path | None = None
    flows: int = 0
    novel: int = 0
    unsupported: int = 0  # attack calls the support gate set to normal
    allowed: int = 0  # flows an --allow entry covers
    matched: int = 0  # rows matching --fail-on at --min-confidence
    attack_rows: int = 0
    ts_min: Any = None  # earliest flow start
    ts_max: Any = None  # latest flow start
    ts_end_max: Any = None  # latest flow end
    services: pl.DataFrame = field(
        default_factory=lambda: pl.DataFrame(schema={"label": pl.String, "service": pl.String, "len": pl.UInt32})
    )
    _attacks: list[pl.DataFrame] = field(default_factory=list)
    _spilled: IpcSpill | None = None

    def add(self, v: pl.DataFrame) -> None:
        """Count one chunk of verdict rows (``verdict_columns`` order) and keep its attack rows."""
        if v.height == 0:
            return
        self.flows += v.height
        self.novel += int(v["novel"].sum())
        self.unsupported += int(v["unsupported"].sum()) if "unsupported" in v.columns else 0
        self.allowed += int(v["allowed"].sum()) if "allowed" in v.columns else 0
        self.matched += matches(v, self.fail_on, self.min_confidence)
        lo, hi, end = v["ts"].min(), v["ts"].max(), v["ts_end"].max()
        self.ts_min = lo if self.ts_min is None else min(self.ts_min, lo)
        self.ts_max = hi if self.ts_max is None else max(self.ts_max, hi)
        self.ts_end_max = end if self.ts_end_max is None else max(self.ts_end_max, end)
        counts = v.group_by("label", "service").len().cast({"service": pl.String, "len": pl.UInt32})
        both = pl.concat([self.services, counts.select(self.services.columns)])
        self.services = own_strings(both.group_by("label", "service").agg(pl.col("len").sum()))
        att = v.filter(is_attack()).select(c for c in ATTACK_COLUMNS if c in v.columns)
        if att.height == 0:
            return
        self.attack_rows += att.height
        if self.spill is None:
            self._attacks.append(own_strings(att))  # not the whole chunk's strings
            return
        if self._spilled is None:
            self._spilled = IpcSpill(self.spill)
        self._spilled.write(att)

    def close(self) -> None:
        """Close the spill (after a failure too)."""
        if self._spilled is not None:
            self._spilled.close()

    def attacks(self, skip: Sequence[str] = ()) -> pl.DataFrame | None:
        """The attack rows seen, in order, without the columns in ``skip`` (None when no row was added)."""
        if self.spill is not None and self.attack_rows:
            self.close()
            # polars reads the stream itself (through pyarrow, its pool kept the Arrow copy's pages after the
            # conversion), a column at a time, each made one chunk (a group-by of a chunked frame copies it whole)
            # before the next is read: the chunks a column is read in are freed while the next reuses their memory.
            # Read whole and then rechunked, the freed chunks stayed with the allocator: 1M flood rows held
            # 323 MiB instead of 186.
            spill = self.spill

            def column(name: str) -> pl.Series:
                with open(spill, "rb") as src:  # a file object: non-UTF-8 names
                    col = pl.read_ipc_stream(src, columns=[name]).to_series()
                # a handful of values each: a 4-byte code a row instead of a 16-byte string view
                return (col.cast(pl.Categorical) if name in FEW_VALUES else col).rechunk()

            with open(spill, "rb") as src:
                names = pl.read_ipc_stream(src, n_rows=0).columns
            return pl.DataFrame([column(c) for c in names if c not in skip])
        if not self._attacks:
            return None
        kept = pl.concat(self._attacks) if len(self._attacks) > 1 else self._attacks[0]
        return kept.drop(skip, strict=False)

    @staticmethod
    def of(verdicts: pl.DataFrame) -> Tally:
        t = Tally()
        t.add(verdicts)
        return t


def class_summary(
    verdicts: pl.DataFrame | Tally, classes: Sequence[str], top_services: int = 3
) -> list[dict[str, Any]]:
    """Flows, share and top services per class, every class listed (zero rows included), in class order."""
    tally = verdicts if isinstance(verdicts, Tally) else Tally.of(verdicts)
    n = max(tally.flows, 1)
    counts = dict(tally.services.group_by("label").agg(pl.col("len").sum()).iter_rows())
    svc = (
        tally.services.sort(["label", "len", "service"], descending=[False, True, False])
        .group_by("label", maintain_order=True)
        .head(top_services)
    )
    out = []
    for c in classes:
        rows = svc.filter(pl.col("label") == c)
        out.append(
            {
                "label": c,
                "flows": int(counts.get(c, 0)),
                "share": counts.get(c, 0) / n,
                "top_services": [[s, int(k)] for s, k in zip(rows["service"], rows["len"], strict=True)],
            }
        )
    return out


def timeline(
    verdicts: pl.DataFrame, classes: Sequence[str], bins: int = 60, span: tuple[Any, Any] | None = None
) -> dict[str, Any]:
    """Attack flows per class per time bin (by flow start), over the capture's span: the earliest and latest
    flow start of ``verdicts``, or ``span`` when ``verdicts`` holds only some rows (the attacks)."""
    if span is None:
        if verdicts.height == 0:
            return dict(Timeline.EMPTY)
        span = (verdicts["ts"].min(), verdicts["ts"].max())
    line = Timeline(classes, span, verdicts.schema["ts"], (bins,))
    line.add(verdicts)
    return line.line(bins)


class Timeline:
    """``timeline`` for several bin counts at once, the rows added in batches (any order): the attack rows of a
    flood are read back in batches, and the terminal's width picks the bin count only when the report prints."""

    EMPTY: ClassVar[dict[str, Any]] = {"start": None, "bin_s": 0.0, "bins": 0, "counts": {}}

    def __init__(self, classes: Sequence[str], span: tuple[Any, Any], ts_type: Any, bins: Sequence[int]) -> None:
        self.classes = [c for c in classes if c != NORMAL]
        self.start = span[0]
        self.counts: dict[int, np.ndarray] = {}  # bins -> (classes, bins) flows
        if span[0] is None:
            return
        edges = pl.Series([span[0], span[1]], dtype=ts_type).dt.epoch("us").to_numpy() / 1e6
        self.t0, t1 = float(edges[0]), float(edges[1])
        self.bin_s = {b: max((t1 - self.t0) / b, 1e-6) for b in bins}
        self.counts = {b: np.zeros((len(self.classes), b), np.int64) for b in bins}

    def add(self, rows: pl.DataFrame) -> None:
        """Rows with ``ts`` and ``label``."""
        if not self.counts or rows.height == 0:
            return
        ts = rows["ts"].dt.epoch("us").to_numpy().astype(np.float64) / 1e6  # (n,) seconds
        label = rows["label"]
        for k, c in enumerate(self.classes):
            is_c = (label == c).to_numpy()  # (n,) bool: no Python string per row
            if not is_c.any():
                continue
            t = ts[is_c]
            for b, counts in self.counts.items():
                idx = np.minimum(((t - self.t0) / self.bin_s[b]).astype(np.int64), b - 1)
                counts[k] += np.bincount(idx, minlength=b)

    def line(self, bins: int) -> dict[str, Any]:
        """``timeline``'s answer for ``bins`` (one of those asked for)."""
        if not self.counts:
            return dict(self.EMPTY)
        counts = self.counts[bins]
        return {
            "start": self.start,
            "bin_s": self.bin_s[bins],
            "bins": bins,
            "counts": {c: counts[k].tolist() for k, c in enumerate(self.classes) if counts[k].any()},
        }


def top_flows(verdicts: pl.DataFrame, n: int = 10, per_incident: int = 2) -> pl.DataFrame:
    """The most confidently malicious flows, at most ``per_incident`` from one incident so the list shows breadth:
    an incident's first ``per_incident`` by ``p_attack`` (ties in row order), and every flow of no incident, ranked
    by ``p_attack`` (higher first), then ``ts``, then ``flow_id``."""
    att = suspicious(verdicts)
    if att["p_attack"].null_count():  # never from a scan; the incidents' first flows are undefined on nulls
        raise ValueError("top_flows: p_attack has nulls")
    # Which rows are an incident's first per_incident: a stable sort of (incident, -p_attack) codes, not a window
    # over the rows (a flood has millions, and a window rank with its sort copied them several times).
    if per_incident < 1:
        raise ValueError(f"top_flows: per_incident {per_incident} < 1")
    inc = att["incident_id"].fill_null(-1).to_numpy()
    order = np.lexsort((-att["p_attack"].to_numpy(), inc))  # (rows,) by incident, then p_attack descending
    by = inc[order]
    head = np.ones(by.size, bool)  # within its incident's first per_incident in that order
    head[per_incident:] = by[per_incident:] != by[:-per_incident]
    keep = att["incident_id"].is_null().to_numpy()  # (rows,) flows of no incident all take part
    keep[order[head]] = True
    del order, by, head, inc
    return att.filter(pl.Series(keep)).sort(["p_attack", "ts", "flow_id"], descending=[True, False, False]).head(n)


def _allowed_column(verdicts: pl.DataFrame) -> list[str]:
    """``["allowed"]`` when ``verdicts`` has that column (``suspicious`` reads it)."""
    return ["allowed"] if "allowed" in verdicts.columns else []


def top_talkers(verdicts: pl.DataFrame, n: int = 5) -> pl.DataFrame:
    """Originators of the most attack flows: flows, classes seen, distinct targets and ports, peak p_attack."""
    att = suspicious(verdicts.select("orig_h", "resp_h", "resp_p", "label", "p_attack", *_allowed_column(verdicts)))
    # The top n first, by a count of dense codes (in the addresses' sort order): a spoofed flood has as many
    # originators as flows, and a string group-by, or the list aggregates below, would cost a group each.
    codes = att["orig_h"].rank("dense").to_numpy().astype(np.int64) - 1 if att.height else np.zeros(0, np.int64)
    counts = np.bincount(codes)  # (originators,)
    best = np.lexsort((np.arange(counts.size), -counts))[:n]  # flows descending, then address ascending
    keep = np.isin(codes, best)
    return (
        att.filter(pl.Series(keep))
        .group_by("orig_h")
        .agg(
            flows=pl.len(),
            classes=pl.col("label").unique().sort().str.join("/"),
            targets=pl.col("resp_h").n_unique(),
            ports=pl.col("resp_p").drop_nulls().n_unique(),
            max_p_attack=pl.col("p_attack").max(),
        )
        .sort(["flows", "orig_h"], descending=[True, False])
    )


def matches(verdicts: pl.DataFrame, fail_on: frozenset[str], min_confidence: float) -> int:
    """How many flows carry a label in ``fail_on`` with at least ``min_confidence``."""
    if not fail_on:
        return 0
    hit = verdicts.filter(pl.col("label").is_in(list(fail_on)) & (pl.col("confidence") >= min_confidence))
    return hit.filter(~pl.col("allowed")).height if "allowed" in hit.columns else hit.height
