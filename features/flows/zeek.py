"""Zeek's log formats: field tables, typed frames, and the writers for TSV and JSON lines; conn.log from flows.

A Zeek log is a table whose columns (fields) have Zeek names (``id.orig_h``) and Zeek types (``addr``,
``port``, ``count``, ``time``, ...). Here a log is described once, as a ``ZeekLog``: its path and its
``ZeekField``s, each with its Zeek type, the nta column it comes from and what it means. A log's content
is a polars frame with one column per field, named as the field and typed by ``ZEEK_DTYPES`` (time:
Datetime[us, UTC], interval: Duration[us], count: UInt64, ...; null is Zeek's "unset"). The writers turn
such a frame into Zeek's formats; a reader of Zeek logs can share the same tables (a log's fields and
types, ``ZEEK_DTYPES`` and the text rules below) to parse them back into the same frames.

Zeek's TSV ("ASCII") format, as Zeek's ASCII writer produces it:

* Header lines: ``#separator \\x09``, ``#set_separator	,``, ``#empty_field	(empty)``,
  ``#unset_field	-``, ``#path	conn``, ``#open	<time>``, ``#fields`` and ``#types`` (tab-separated),
  then one line per record, then ``#close	<time>``. Times in ``#open``/``#close`` are
  ``YYYY-MM-DD-HH-MM-SS``; nta writes the capture's first and last packet times (UTC), not the wall clock,
  so the same capture gives the same log.
* Values: ``time`` and ``interval`` as seconds with six decimals (``1709287200.123456``), ``double`` with
  six decimals, ``count``/``port``/``int`` as integers, ``bool`` as ``T``/``F``, ``addr``/``string``/``enum``
  as text, ``set[...]`` as elements joined by the set separator. An unset field is ``-``; an empty string
  or empty set is ``(empty)``. In text, the separators, backslash and control characters are written as
  ``\\xHH``, and a value that reads exactly as ``-`` or ``(empty)`` has its first character escaped.
* JSON lines (Zeek's ``LogAscii::use_json``): one object per record with the same field names, unset
  fields left out, times and intervals as numbers (seconds since the epoch), sets as arrays, no header.

conn.log follows Zeek's ``Conn::Info`` (``base/protocols/conn/main.zeek``) plus the community-id policy
script's field: ``duration``, ``orig_bytes`` and ``resp_bytes`` are set only when the duration is above
zero, as Zeek sets them; ``service`` is unset (nta does no protocol detection; ``nta.log`` has NSL-KDD's
service); ``local_orig``/``local_resp`` are unset (no ``Site::local_nets``); ``missed_bytes`` is 0 (gaps
are not tracked); ICMP flows put the ICMP type and code in ``id.orig_p``/``id.resp_p``, as Zeek does, and
IP protocols other than TCP, UDP and ICMP have ports 0 and ``proto`` ``unknown_transport``.
``tunnel_parents`` holds the uid of the tunnel a decapsulated flow came out of (``tunnel_uid``: the same
tunnel text in the same file gives the same uid); Zeek would log that tunnel as a connection of its own,
nta keeps only the inner flow, so the uid refers to the tunnel as ``nta.log``'s ``tunnel`` field names it.
``uid`` is the flow table's ``uid`` (``features.flows.uid``: the capture's SHA-256, the flow key and start
time), the same in flows.parquet, verdicts.csv, report.json and alerts: ``C`` and 17 base-62 characters, like Zeek's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from features.common import atomic_path
from features.flows.uid import make_uid

SEPARATOR = "\t"
SET_SEPARATOR = ","
EMPTY_FIELD = "(empty)"
UNSET_FIELD = "-"
OPEN_TIME_FORMAT = "%Y-%m-%d-%H-%M-%S"

# Zeek type -> the polars dtype of a typed log frame's column (what a writer takes and a reader gives).
ZEEK_DTYPES: dict[str, pl.DataType] = {
    "time": pl.Datetime("us", "UTC"),
    "interval": pl.Duration("us"),
    "count": pl.UInt64(),
    "int": pl.Int64(),
    "port": pl.UInt16(),
    "double": pl.Float64(),
    "bool": pl.Boolean(),
    "addr": pl.String(),
    "subnet": pl.String(),
    "string": pl.String(),
    "enum": pl.String(),
    "set[string]": pl.List(pl.String()),
    "vector[string]": pl.List(pl.String()),
}


@dataclass(frozen=True)
class ZeekField:
    """One field of a Zeek log: Zeek's name and type, the nta column it is made from, its meaning."""

    name: str
    type: str  # a key of ZEEK_DTYPES
    source: str  # nta column (flow table or verdicts) it comes from; "" when computed
    doc: str


@dataclass(frozen=True)
class ZeekLog:
    """A Zeek log: its ``#path`` and its fields, in order."""

    path: str
    fields: tuple[ZeekField, ...]

    @property
    def names(self) -> list[str]:
        return [f.name for f in self.fields]

    def schema(self) -> pl.Schema:
        """The typed frame's schema: one column per field, named as the field."""
        return pl.Schema({f.name: ZEEK_DTYPES[f.type] for f in self.fields})


_ID = (
    ZeekField("id.orig_h", "addr", "orig_h", "Originator address."),
    ZeekField("id.orig_p", "port", "orig_p", "Originator port; ICMP type for ICMP; 0 for other IP protocols."),
    ZeekField("id.resp_h", "addr", "resp_h", "Responder address."),
    ZeekField("id.resp_p", "port", "resp_p", "Responder port; ICMP code for ICMP; 0 for other IP protocols."),
)

CONN_LOG = ZeekLog(
    "conn",
    (
        ZeekField("ts", "time", "ts", "Time of the first packet."),
        ZeekField("uid", "string", "", "Unique id of the connection (see the module docstring)."),
        *_ID,
        ZeekField("proto", "enum", "proto", "tcp, udp, icmp (ICMPv6 too) or unknown_transport."),
        ZeekField("service", "string", "", "Unset: nta does no protocol detection."),
        ZeekField("duration", "interval", "duration_s", "Last packet time minus first; unset when 0."),
        ZeekField("orig_bytes", "count", "orig_bytes", "Originator payload bytes; unset when the duration is 0."),
        ZeekField("resp_bytes", "count", "resp_bytes", "Responder payload bytes; unset when the duration is 0."),
        ZeekField("conn_state", "string", "conn_state", "Zeek's connection state (S0, SF, REJ, ...)."),
        ZeekField("local_orig", "bool", "", "Unset: nta knows no local networks."),
        ZeekField("local_resp", "bool", "", "Unset: nta knows no local networks."),
        ZeekField("missed_bytes", "count", "", "0: content gaps are not tracked."),
        ZeekField("history", "string", "history", "Zeek's history letters; unset when empty."),
        ZeekField("orig_pkts", "count", "orig_pkts", "Packets from the originator."),
        ZeekField("orig_ip_bytes", "count", "orig_ip_bytes", "IP bytes from the originator."),
        ZeekField("resp_pkts", "count", "resp_pkts", "Packets from the responder."),
        ZeekField("resp_ip_bytes", "count", "resp_ip_bytes", "IP bytes from the responder."),
        ZeekField("tunnel_parents", "set[string]", "tunnel", "uid of the tunnel the flow came out of; unset if none."),
        ZeekField("ip_proto", "count", "ip_proto", "IP protocol number (Zeek logs it too since 6.1)."),
        ZeekField("community_id", "string", "community_id", "Community ID v1 (seed 0)."),
    ),
)


def nta_log(classes: Sequence[str]) -> ZeekLog:
    """``nta.log``: one record per flow with nta's verdict, keyed by the conn.log ``uid``."""
    probs = tuple(ZeekField(f"p_{c}", "double", f"p_{c}", f"Probability of class {c}.") for c in classes)
    return ZeekLog(
        "nta",
        (
            ZeekField("ts", "time", "ts", "Time of the flow's first packet."),
            ZeekField("uid", "string", "", "The flow's uid in conn.log."),
            *_ID,
            ZeekField("flow_id", "count", "flow_id", "The flow's flow_id in flows.parquet and verdicts.csv."),
            ZeekField("service", "string", "service", "NSL-KDD service token."),
            ZeekField("label", "string", "label", "Most likely class."),
            ZeekField("confidence", "double", "confidence", "Probability of the label."),
            ZeekField("p_attack", "double", "p_attack", "1 - p_normal."),
            *probs,
            ZeekField("novel", "bool", "novel", "Relabelled by the novelty gate (--novelty)."),
            ZeekField("unsupported", "bool", "unsupported", "Attack call set to normal by the support gate."),
            ZeekField("incident_id", "count", "incident_id", "The incident the flow belongs to; unset if none."),
            ZeekField(
                "tunnel", "string", "tunnel", "Tunnel the flow came out of (kind, outer endpoints); unset if none."
            ),
            ZeekField("model_id", "string", "model_id", "The model that gave the verdict."),
        ),
    )


# ---------------------------------------------------------------------------------------------- from nta


def uids(flows: pl.DataFrame) -> pl.Series:
    """Zeek-style uid of each flow: the flow table's ``uid`` (``features.flows.uid``); for tables of schema version 2
    or older, which have none, a hash of (file name, flow_id, Community ID, ts) as nta made it then."""
    if "uid" in flows.columns and flows.height and flows["uid"].null_count() == 0:
        return flows["uid"].alias("uid")
    names = [Path(s).name for s in flows["source_file"].to_list()] if flows.height else []
    us = flows["ts"].dt.epoch("us").to_list() if flows.height else []
    keys = zip(names, flows["flow_id"].to_list(), flows["community_id"].to_list(), us, strict=True)
    return pl.Series("uid", [make_uid("\0".join(map(str, k))) for k in keys], pl.String)


def tunnel_uid(source_file: str, tunnel: str) -> str:
    """The uid nta gives a tunnel (``tunnel_parents``): from the capture's file name and the tunnel's text."""
    return make_uid(f"{Path(source_file).name}\0{tunnel}")


_ZEEK_PROTO = {"tcp": "tcp", "udp": "udp", "icmp": "icmp", "icmp6": "icmp"}  # anything else: unknown_transport


def _ids(flows: pl.DataFrame) -> list[pl.Expr]:
    icmp = pl.col("icmp_type").is_not_null()
    orig_p = pl.when(icmp).then(pl.col("icmp_type")).otherwise(pl.col("orig_p"))
    resp_p = pl.when(icmp).then(pl.col("icmp_code")).otherwise(pl.col("resp_p"))
    return [
        pl.col("orig_h").alias("id.orig_h"),
        orig_p.fill_null(0).cast(pl.UInt16).alias("id.orig_p"),
        pl.col("resp_h").alias("id.resp_h"),
        resp_p.fill_null(0).cast(pl.UInt16).alias("id.resp_p"),
    ]


def _uids(flows: pl.DataFrame, given: pl.Series | None) -> pl.Series:
    """The uids given (a Zeek log's own, for flows read from one), nta's (``uids``) where none is given."""
    made = uids(flows)
    return made if given is None else given.cast(pl.String).fill_null(made).rename("uid")


def conn_frame(flows: pl.DataFrame, uid: pl.Series | None = None) -> pl.DataFrame:
    """conn.log's typed frame (``CONN_LOG.schema()``) of a flow table (``features.flows.schema`` columns).

    ``uid``: per flow, the uid to log (a Zeek conn.log's own, so nta's logs join with the team's Zeek logs);
    None or null: nta's uid (``uids``).
    """
    dur_us = (pl.col("ts_end").dt.epoch("us") - pl.col("ts").dt.epoch("us")).alias("_dur")
    some = pl.col("_dur") > 0
    tunnels = flows.select("source_file", "tunnel").unique().drop_nulls()
    tmap = {(s, t): tunnel_uid(s, t) for s, t in tunnels.iter_rows()}
    parents = [
        None if t is None else [tmap[(s, t)]]
        for s, t in zip(flows["source_file"].to_list(), flows["tunnel"].to_list(), strict=True)
    ]
    out = flows.with_columns(
        dur_us, uid=_uids(flows, uid), _parents=pl.Series(parents, dtype=pl.List(pl.String))
    ).select(
        pl.col("ts"),
        pl.col("uid"),
        *_ids(flows),
        pl.col("proto").replace_strict(_ZEEK_PROTO, default="unknown_transport").alias("proto"),
        pl.lit(None, pl.String).alias("service"),
        pl.when(some).then(pl.duration(microseconds=pl.col("_dur"))).alias("duration"),
        pl.when(some).then(pl.col("orig_bytes")).alias("orig_bytes"),
        pl.when(some).then(pl.col("resp_bytes")).alias("resp_bytes"),
        pl.col("conn_state"),
        pl.lit(None, pl.Boolean).alias("local_orig"),
        pl.lit(None, pl.Boolean).alias("local_resp"),
        pl.lit(0).alias("missed_bytes"),
        pl.when(pl.col("history") != "").then(pl.col("history")).alias("history"),
        "orig_pkts",
        "orig_ip_bytes",
        "resp_pkts",
        "resp_ip_bytes",
        pl.col("_parents").alias("tunnel_parents"),
        "ip_proto",
        "community_id",
    )
    return out.cast(dict(CONN_LOG.schema()))  # type: ignore[arg-type]


def nta_frame(
    flows: pl.DataFrame, verdicts: pl.DataFrame, classes: Sequence[str], uid: pl.Series | None = None
) -> pl.DataFrame:
    """nta.log's typed frame: the verdict columns of each flow beside its conn.log uid (``conn_frame``) and id."""
    log = nta_log(classes)
    own = log.fields[2 + len(_ID) :]  # the fields after ts, uid and the id: flow_id and the verdict columns
    base = flows.select("flow_id", "ts", "orig_h", "orig_p", "resp_h", "resp_p", "icmp_type", "icmp_code", "tunnel")
    base = base.with_columns(uid=_uids(flows, uid))
    # the log's own field list names the verdict columns it takes (the tunnel is the flow table's)
    v = verdicts.select(f.source for f in own if f.source != "tunnel")
    joined = base.join(v, on="flow_id", how="left", maintain_order="left")
    out = joined.select("ts", "uid", *_ids(joined), *[f.name for f in own])
    return out.cast(dict(log.schema()))  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------------- writers


def _text_escape(e: pl.Expr, in_set: bool = False) -> pl.Expr:
    """Zeek's escaping of text: backslash, separators and control characters as \\xHH."""
    e = e.str.replace_all("\\", "\\x5c", literal=True)
    for ch in ["\t", "\n", "\r", *([SET_SEPARATOR] if in_set else [])]:
        e = e.str.replace_all(ch, f"\\x{ord(ch):02x}", literal=True)
    return e


def _reserved(e: pl.Expr) -> pl.Expr:
    """Text values that would read as unset or empty get their first character escaped; "" is (empty)."""
    return (
        pl.when(e == "")
        .then(pl.lit(EMPTY_FIELD))
        .when(e == UNSET_FIELD)
        .then(pl.lit("\\x2d"))
        .when(e == EMPTY_FIELD)
        .then(pl.lit("\\x28empty)"))
        .otherwise(e)
    )


def _seconds(us: pl.Expr) -> pl.Expr:
    """Integer microseconds as seconds with exactly six decimals (exact, no float rounding)."""
    a = us.abs()
    sign = pl.when(us < 0).then(pl.lit("-")).otherwise(pl.lit(""))
    return pl.format("{}{}.{}", sign, a // 1_000_000, (a % 1_000_000).cast(pl.String).str.zfill(6))


def _tsv_value(f: ZeekField) -> pl.Expr:
    c = pl.col(f.name)
    match f.type:
        case "time":
            e = _seconds(c.dt.epoch("us"))
        case "interval":
            e = _seconds(c.dt.total_microseconds())
        case "double":
            e = _seconds((c * 1_000_000).round(0).cast(pl.Int64))
        case "bool":
            e = pl.when(c).then(pl.lit("T")).when(~c).then(pl.lit("F"))
        case "count" | "int" | "port":
            e = c.cast(pl.String)
        case "set[string]" | "vector[string]":
            joined = c.list.eval(_reserved(_text_escape(pl.element(), in_set=True))).list.join(SET_SEPARATOR)
            e = pl.when(c.list.len() == 0).then(pl.lit(EMPTY_FIELD)).otherwise(joined)
        case _:
            e = _reserved(_text_escape(c))
    return e.fill_null(UNSET_FIELD).alias(f.name)


def _json_value(f: ZeekField) -> pl.Expr:
    """``"name":value`` of one field, or "" when unset (Zeek's JSON leaves unset fields out)."""
    c = pl.col(f.name)
    key = f'"{f.name}":'
    match f.type:
        case "time":
            raw = _seconds(c.dt.epoch("us"))
        case "interval":
            raw = _seconds(c.dt.total_microseconds())
        case "double":
            raw = _seconds((c * 1_000_000).round(0).cast(pl.Int64))
        case "bool":
            raw = pl.when(c).then(pl.lit("true")).otherwise(pl.lit("false"))
        case "count" | "int" | "port":
            raw = c.cast(pl.String)
        case _:  # text and sets: JSON-encoded by polars (quotes, escapes, arrays)
            enc = pl.struct(c.alias("v")).struct.json_encode()
            raw = enc.str.slice(5, enc.str.len_chars() - 6)
    return pl.when(c.is_null()).then(pl.lit("")).otherwise(pl.lit(key) + raw).alias(f.name)


def _stamp(t: dt.datetime | None) -> str:
    return (t or dt.datetime(1970, 1, 1, tzinfo=dt.UTC)).astimezone(dt.UTC).strftime(OPEN_TIME_FORMAT)


def _tsv_header(log: ZeekLog, opened: dt.datetime | None) -> Iterator[str]:
    yield f"#separator \\x{ord(SEPARATOR):02x}\n"
    yield f"#set_separator{SEPARATOR}{SET_SEPARATOR}\n"
    yield f"#empty_field{SEPARATOR}{EMPTY_FIELD}\n"
    yield f"#unset_field{SEPARATOR}{UNSET_FIELD}\n"
    yield f"#path{SEPARATOR}{log.path}\n"
    yield f"#open{SEPARATOR}{_stamp(opened)}\n"
    yield "#fields" + SEPARATOR + SEPARATOR.join(log.names) + "\n"
    yield "#types" + SEPARATOR + SEPARATOR.join(f.type for f in log.fields) + "\n"


def _tsv_records(log: ZeekLog, frame: pl.DataFrame) -> Iterator[str]:
    if frame.height:
        text = frame.select(pl.concat_str([_tsv_value(f) for f in log.fields], separator=SEPARATOR))
        yield "\n".join(text.to_series().to_list()) + "\n"


def tsv_lines(
    log: ZeekLog, frame: pl.DataFrame, opened: dt.datetime | None, closed: dt.datetime | None
) -> Iterator[str]:
    """The TSV log, line by line (each ending in a newline): header, records, ``#close``."""
    yield from _tsv_header(log, opened)
    yield from _tsv_records(log, frame)
    yield f"#close{SEPARATOR}{_stamp(closed)}\n"


def json_lines(log: ZeekLog, frame: pl.DataFrame) -> Iterator[str]:
    """The JSON-lines log: one object per record, unset fields left out."""
    if not frame.height:
        return
    parts = frame.select([_json_value(f) for f in log.fields])
    body = parts.select(pl.concat_list(pl.all()).list.eval(pl.element().filter(pl.element() != "")).list.join(","))
    yield "\n".join("{" + s + "}" for s in body.to_series().to_list()) + "\n"


def _span(frame: pl.DataFrame) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(first record's start, last record's end: ``ts`` + ``duration``) of a typed frame; None when unknown."""
    if not frame.height or "ts" not in frame.columns:
        return None, None
    ends = frame["ts"] + frame["duration"].fill_null(dt.timedelta(0)) if "duration" in frame.columns else frame["ts"]
    return frame["ts"].min(), ends.max()  # type: ignore[return-value]


def write_log(log: ZeekLog, frame: pl.DataFrame, path: Path, *, json: bool = False) -> None:
    """Write a typed frame to ``path`` as a Zeek log (TSV, or JSON lines with ``json``); see ``save_log``.

    ``#open``/``#close`` are the first record's start and the last record's end (``ts`` + ``duration``).
    """
    with LogWriter(log, path, json=json, opened=_span(frame)[0]) as w:
        w.write(frame)


class LogWriter:
    """A Zeek log written frame by frame, the frames in record order (a scan's chunks): the same bytes as
    ``write_log`` on the frames concatenated. ``opened`` (``#open``) must be known before the first record:
    the earliest record start (a scan knows it from its verdicts); ``#close`` is found as the frames pass."""

    def __init__(self, log: ZeekLog, path: Path, *, json: bool = False, opened: dt.datetime | None = None) -> None:
        self.log = log
        self.json = json
        self.closed: dt.datetime | None = None
        self._fh = open(path, "w", encoding="utf-8", newline="\n")  # noqa: SIM115 (closed by close())
        if not json:
            self._fh.writelines(_tsv_header(log, opened))

    def write(self, frame: pl.DataFrame) -> None:
        end = _span(frame)[1]
        if end is not None:
            self.closed = end if self.closed is None else max(self.closed, end)
        self._fh.writelines(json_lines(self.log, frame) if self.json else _tsv_records(self.log, frame))

    def close(self) -> None:
        if not self.json:
            self._fh.write(f"#close{SEPARATOR}{_stamp(self.closed)}\n")
        self._fh.close()

    def __enter__(self) -> LogWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        if exc[0] is None:
            self.close()
        else:
            self._fh.close()


def save_log(log: ZeekLog, frame: pl.DataFrame, path: Path, *, json: bool = False) -> None:
    """``write_log`` atomically: a temporary file renamed into place when complete."""
    with atomic_path(Path(path)) as tmp:
        write_log(log, frame, tmp, json=json)
