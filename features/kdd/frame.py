"""NSL-KDD's 41 features from the flow table: ``kdd_features(flows, payloads) -> identity + KDD_FEATURES``.

The result keeps the flow identity columns (``IDENTITY_COLUMNS``) beside the 41 features, in
``KDD_SCHEMA`` dtypes, one row per flow, in the flow table's row order.

Intrinsic features (1-9):

* ``duration``: ``duration_s`` truncated to whole seconds (floor). NSL-KDD holds only integers
  (0 fractional values in 125,973 KDDTrain+ rows; 92 % are 0); truncation is what a C conversion of
  Bro's float duration and the maintained extractor (AI-IDS) do. Rounding would turn every
  0.5-1 s exchange into 1 s, where NSL-KDD's normal http and domain_u rows are 0 in 99 % and 97 %.
* ``protocol_type``: ``tcp``, ``udp``, ``icmp`` (ICMPv6 is ``icmp``: NSL-KDD has no v6, and
  ``features.kdd.services`` maps v6 echo/unreachable/time-exceeded onto the same tokens). Other IP
  protocols (GRE, ESP, OSPF, SCTP, ...) keep their flow-table name (e.g. ``gre``): NSL-KDD has no
  value for them, so they are **outside the model's view** (``in_kdd_view``): they take no part in
  the window features (which are 0 for them), ``--format nsl-kdd`` leaves them out (counted), and
  the encoder counts them as unknown categories. Mapping them onto icmp or udp would invent
  records KDD never had (a GRE tunnel would look like a huge ``ecr_i``, i.e. smurf).
* ``service``: ``features.kdd.services`` (the 70-token table and the private/other rule).
* ``flag``: ``features.kdd.flags`` (conn_state restricted to 11 values; UDP/ICMP ``SF``).
* ``src_bytes``/``dst_bytes``: ``orig_bytes``/``resp_bytes`` (transport payload bytes, as KDD counts).
* ``land``: 1 when both endpoints (address and port) are equal; ``wrong_fragment``: bad fragments in the
  flow; ``urgent``: packets with URG. All three come straight from the flow table.

Content features (10-22): ``features.kdd.content``. Window features (23-41): ``features.kdd.windows``.
"""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl
import pyarrow as pa

from features.common import own_strings
from features.flows.records import empty_flows as empty_flows  # the flow level's, re-exported
from features.kdd.columns import KDD_FEATURES, KDD_SCHEMA, PROTOCOLS
from features.kdd.content import CONTENT_FEATURES, content_features
from features.kdd.flags import flag_expr
from features.kdd.services import service_expr
from features.kdd.windows import (
    HOST_WINDOW,
    TIME_WINDOW_NS,
    WINDOW_COLUMNS,
    WINDOW_FEATURES,
    Sessions,
    positions,
    window_features,
)

IDENTITY_COLUMNS: tuple[str, ...] = (
    "flow_id", "community_id", "source_file", "ts", "ts_end", "orig_h", "orig_p", "resp_h", "resp_p",
    "proto", "conn_state",
)  # fmt: skip

_NEEDED: tuple[str, ...] = (
    *IDENTITY_COLUMNS, "duration_s", "ip_proto", "icmp_type", "icmp_code", "orig_bytes", "resp_bytes",
    "land", "wrong_fragment", "urgent",
)  # fmt: skip


def in_kdd_view() -> pl.Expr:
    """True for rows whose ``protocol_type`` NSL-KDD has (tcp, udp, icmp): the rows a model may judge."""
    return pl.col("protocol_type").is_in(list(PROTOCOLS))


def _as_frame(flows: pa.Table | pl.DataFrame) -> pl.DataFrame:
    df = flows if isinstance(flows, pl.DataFrame) else pl.from_arrow(flows)
    assert isinstance(df, pl.DataFrame)
    missing = [c for c in _NEEDED if c not in df.columns]
    if missing:
        raise ValueError(f"flow table lacks column(s) {', '.join(missing)} (features.flows.schema.FLOW_SCHEMA)")
    return df


HINT_COLUMN = "_service_hint"  # Zeek's conn.log service beside the flows (features.kdd.services.service_expr)


def intrinsic_features(df: pl.DataFrame) -> pl.DataFrame:
    """Intrinsic features 1-9 (protocol_type, service, flag as strings; the rest Float64) plus the flow columns.

    A ``HINT_COLUMN`` column in ``df`` (Zeek's service per flow) names the service where the port does not.
    """
    proto = pl.col("ip_proto").cast(pl.Int64)
    protocol_type = (
        pl.when(proto == 6)
        .then(pl.lit("tcp"))
        .when(proto == 17)
        .then(pl.lit("udp"))
        .when(proto.is_in([1, 58]))
        .then(pl.lit("icmp"))
        .otherwise(pl.col("proto").fill_null("unknown"))
    )
    return df.with_columns(
        pl.col("duration_s").fill_null(0.0).clip(lower_bound=0.0).floor().alias("duration"),
        protocol_type.alias("protocol_type"),
        service_expr(HINT_COLUMN if HINT_COLUMN in df.columns else None),
        flag_expr(),
        pl.col("orig_bytes").fill_null(0).cast(pl.Float64).alias("src_bytes"),
        pl.col("resp_bytes").fill_null(0).cast(pl.Float64).alias("dst_bytes"),
        pl.col("land").fill_null(False).cast(pl.Float64).alias("land_f"),
        pl.col("wrong_fragment").fill_null(0).cast(pl.Float64).alias("wrong_fragment_f"),
        pl.col("urgent").fill_null(0).cast(pl.Float64).alias("urgent_f"),
    )


def kdd_features(
    flows: pa.Table | pl.DataFrame,
    payloads: pl.DataFrame | None = None,
    service_hints: pl.Series | None = None,
    stream_ids: pl.Series | None = None,
) -> pl.DataFrame:
    """IDENTITY_COLUMNS + the 41 KDD_FEATURES (KDD_SCHEMA dtypes), one row per flow, in the flows' row order.

    Args:
        flows: the flow table (FLOW_SCHEMA columns; extra columns are ignored).
        payloads: flow_id, ts_ns, from_orig, payload (binary) for content features; None: content
            features from the payload-free rules only (see ``features.kdd.content``).
        service_hints: per flow row, Zeek's conn.log ``service`` (``Extraction.service_hints``), or None.
        stream_ids: per flow row, its packet stream (``Extraction.stream_ids``: windows never look across
            streams, ``features.kdd.windows.Sessions``), or None (one stream).
    """
    return KddStream().add(flows, payloads, service_hints, stream_ids)


_WINDOW_INPUT = ("t_ns", "resp_h", "service", "resp_p", "flag", "orig_p", "stream")


class KddStream:
    """``kdd_features`` for a flow table that arrives in chunks, in table order (``features.flows.extract``'s
    ``FlowChunk``s): each chunk's features are those the whole table would give its rows.

    Intrinsic and content features are per flow. A window feature of a record depends only on the records of its
    session (its packet stream, ``features.kdd.windows.Sessions``) before it in window order that started at most
    2 s earlier (``TIME_WINDOW_NS``) or are among the session's ``HOST_WINDOW - 1`` before it: those are carried
    from chunk to chunk (a few columns each) and computed again with the next chunk's records, whose own results
    alone are kept. A stream the chunk says is closed (no later chunk holds a flow of it) is carried no further,
    so thousands of files do not each leave their last records in every later chunk's windows. Payload snippets
    are not kept.
    """

    def __init__(self) -> None:
        self._carry: pl.DataFrame | None = None  # window inputs of the records the next chunk may need
        self.sessions = Sessions()
        self._next: dict[int, int] = {}  # session -> records of it so far (the next record's ``pos``)

    @property
    def carried(self) -> int:
        """Records carried to the next chunk: each chunk's window sums are computed over them again."""
        return 0 if self._carry is None else self._carry.height

    def add(
        self,
        flows: pa.Table | pl.DataFrame,
        payloads: pl.DataFrame | None = None,
        service_hints: pl.Series | None = None,
        stream_ids: pl.Series | None = None,
        closed: Sequence[int] = (),
    ) -> pl.DataFrame:
        """The features of one chunk (see ``kdd_features``; ``service_hints`` and ``stream_ids`` per row of this
        chunk); chunks must come in table order. ``closed``: streams no later chunk holds a flow of."""
        feats = flow_features(flows, payloads, service_hints)
        view = window_input(feats, stream_ids)
        session = self.sessions.number(view.get_column("stream").to_numpy())
        inputs = view.select(*WINDOW_COLUMNS).with_columns(
            pl.Series("session", session, dtype=pl.Int64),
            pl.Series("pos", positions(session, self._next), dtype=pl.Int64),
        )
        carried = 0
        if self._carry is not None and self._carry.height:
            carried = self._carry.height
            inputs = pl.concat([self._carry, inputs.cast(self._carry.schema)])  # type: ignore[arg-type]
        win = window_features(inputs).slice(carried)
        self._carry = own_strings(self._tail(inputs, closed))  # not the strings of every chunk before
        return with_windows(feats, win.with_columns(view.get_column("flow_id")))

    def _tail(self, inputs: pl.DataFrame, closed: Sequence[int]) -> pl.DataFrame:
        """The records a later record's windows can reach: of each session still open, its last HOST_WINDOW - 1,
        and all within TIME_WINDOW_NS of the last start (later records start no earlier)."""
        for stream in closed:
            if (s := self.sessions.session_of(stream)) is not None:
                self._next.pop(s, None)
        if inputs.height == 0:
            return inputs
        last = inputs.get_column("t_ns")[-1]
        open_ = pl.DataFrame(
            {"session": list(self._next), "_from": [n - (HOST_WINDOW - 1) for n in self._next.values()]},
            schema={"session": pl.Int64, "_from": pl.Int64},
        )
        recent = inputs.join(open_, on="session", how="inner", maintain_order="left").filter(
            (pl.col("pos") >= pl.col("_from")) | (pl.col("t_ns") >= last - TIME_WINDOW_NS)
        )
        return recent.drop("_from")


def flow_features(
    flows: pa.Table | pl.DataFrame,
    payloads: pl.DataFrame | None = None,
    service_hints: pl.Series | None = None,
) -> pl.DataFrame:
    """IDENTITY_COLUMNS and the 22 features that depend on the flow alone (intrinsic, content), one row per flow
    in the flows' order; the window features are added by ``with_windows``."""
    df = _as_frame(flows)
    if service_hints is not None:
        df = df.with_columns(pl.Series(HINT_COLUMN, service_hints, dtype=pl.String))
    df = intrinsic_features(df)
    content = content_features(df, payloads)
    feats = df.select(
        *IDENTITY_COLUMNS,
        "duration",
        "protocol_type",
        "service",
        "flag",
        "src_bytes",
        "dst_bytes",
        pl.col("land_f").alias("land"),
        pl.col("wrong_fragment_f").alias("wrong_fragment"),
        pl.col("urgent_f").alias("urgent"),
    ).hstack(content.select(CONTENT_FEATURES))
    return feats.with_columns(pl.col(c).cast(KDD_SCHEMA[c]) for c in KDD_FEATURES if c in feats.columns)


def window_input(feats: pl.DataFrame, stream_ids: pl.Series | None = None) -> pl.DataFrame:
    """The records that take part in the window features (``in_kdd_view``) with what the windows read, and
    their stream (which numbers their sessions): ``flow_id`` and ``_WINDOW_INPUT``, in window order (start time,
    then table order). ``stream_ids``: per row of ``feats``, its packet stream (None: all one)."""
    stream = pl.lit(0, pl.Int64) if stream_ids is None else pl.Series("stream", stream_ids, dtype=pl.Int64)
    return (
        feats.with_row_index("_row")
        .with_columns(stream.alias("stream"))
        .filter(in_kdd_view())
        .select(
            "_row",
            "flow_id",
            pl.col("ts").cast(pl.Datetime("ns", "UTC")).dt.epoch("ns").alias("t_ns"),
            "resp_h",
            "service",
            "resp_p",
            "flag",
            "orig_p",
            "stream",
        )
        .sort("t_ns", "_row", nulls_last=False)
        .drop("_row")
    )


def with_windows(feats: pl.DataFrame, win: pl.DataFrame) -> pl.DataFrame:
    """``flow_features`` rows with the 19 window features of ``win`` (flow_id + WINDOW_FEATURES) joined on
    flow_id; 0 for flows outside the model's view: IDENTITY_COLUMNS + KDD_FEATURES, in ``feats``' order."""
    out = feats.join(win.select("flow_id", *WINDOW_FEATURES), on="flow_id", how="left", maintain_order="left")
    out = out.with_columns(pl.col(c).fill_null(0.0) for c in WINDOW_FEATURES)
    return out.select(*IDENTITY_COLUMNS, *(pl.col(c).cast(KDD_SCHEMA[c]) for c in KDD_FEATURES))
