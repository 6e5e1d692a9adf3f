"""Incidents: attack flows of one class from one source, grouped over time, so a scan or a flood is one line.

Rules:

* Only flows the model labels as an attack class take part.
* The grouping key is (class, originator), except for flows from *minor* originators (fewer than
  ``minor_flows`` flows of that class) toward a target that receives that class from ``spread_sources``
  or more minor originators: those are keyed by (class, target). So a flood from 5,000 spoofed
  addresses, or the echo replies of a ping sweep, is one incident, while a scanner's own thousand flows
  to the same target stay its own incident. Minor flows still unmerged are keyed by (class, protocol,
  responder port) when that port receives the class from ``spread_sources`` or more minor originators
  (a DHCP flood from spoofed clients to many servers is one incident). ``grouped_by`` says which key.
* Within a key, flows sorted by start time form sessions: a flow starting more than ``gap_s`` seconds
  after the latest end of the flows before it opens a new incident (gap-based sessionisation, as
  Zeek's and RITA's scan detectors group by time).
* Incident ids are 1, 2, ... in order of severity, so the report reads top down and #1 is the first to
  look at: class (``SEVERITY``), then confidence as shown (two decimals, higher first), then flows (more
  first), then first flow, then key; stable for a given input.

Everything is polars expressions: no Python loop over flows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from analyzer.verdicts import NORMAL, in_start_order, where

# Most severe first. U2R (a user became root) and R2L (remote access to an account or service) mean a host is,
# or is being, compromised: the costliest to miss and the rarest, so each deserves a look. DoS hurts
# availability now but takes nothing; Probe is reconnaissance, the most frequent and the one benign traffic
# (late replies, closed ports) most often imitates.
SEVERITY: tuple[str, ...] = ("U2R", "R2L", "DoS", "Probe")

# NSL-KDD services of ICMP error messages: a host *answers* someone else's packet with them (port or host
# unreachable, time exceeded, redirect), so their originator is the party that received traffic, not a prober.
ICMP_ERRORS: frozenset[str] = frozenset({"urp_i", "urh_i", "tim_i", "red_i"})


@dataclass(frozen=True)
class IncidentConfig:
    """Knobs of the grouping (defaults suit scans and floods in triage)."""

    gap_s: float = 60.0  # a quiet spell this long ends an incident
    minor_flows: int = 5  # an originator with fewer flows of a class than this is "minor"
    spread_sources: int = 5  # this many minor originators toward one target: key their flows by target


_NEEDED = (
    "flow_id", "ts", "ts_end", "orig_h", "resp_h", "resp_p", "proto", "conn_state", "service", "label", "confidence",
)  # fmt: skip


def find_incidents(
    verdicts: pl.DataFrame, config: IncidentConfig = IncidentConfig()
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Group attack flows into incidents.

    Args:
        verdicts: one row per flow with at least the columns in ``_NEEDED`` (``ts``/``ts_end`` datetimes).

    Returns:
        ``(incidents, membership)``: ``incidents`` has one row per incident (see ``_aggregate`` for columns),
        sorted by ``incident_id``; ``membership`` maps ``flow_id`` -> ``incident_id`` for every attack flow.

    Rows are taken in start order (a scan's attack rows come so; anything else is sorted first); the grouping
    works on integer codes (``_sessions``), so a flood of millions of one-packet flows costs a few integers a
    flow, not a polars group each.
    """
    allowed = "allowed" in verdicts.columns  # --allow: never
    cols = [*_NEEDED, "orig_bytes", "resp_bytes"]
    keep = (pl.col("label") != NORMAL) & ~pl.col("allowed") if allowed else pl.col("label") != NORMAL
    att = where(verdicts.select(*cols, *(["allowed"] if allowed else [])), keep).select(cols)
    if att.height == 0:
        return _empty_incidents(), pl.DataFrame(schema={"flow_id": pl.Int64, "incident_id": pl.Int64})
    if not in_start_order(att):
        att = att.sort("ts", "flow_id")
    codes = _sessions(att, config)  # (n,) each
    order, incident_of = numbered(_aggregate(att, codes), "_s")
    membership = pl.DataFrame({"flow_id": att["flow_id"], "incident_id": incident_of[codes["_s"]]})
    return order, membership.sort("flow_id")


def numbered(sessions: pl.DataFrame, code: str) -> tuple[pl.DataFrame, np.ndarray]:
    """Incident ids 1, 2, ... in order of severity (the module's rule) for ``sessions`` (one row each, its code
    0..S-1 in column ``code``): the incidents sorted by id, without ``code``, and (S,) the id of each code."""
    rank = pl.col("label").replace_strict(
        {c: i for i, c in enumerate(SEVERITY)}, default=len(SEVERITY), return_dtype=pl.Int32
    )
    order = (
        sessions.with_columns(_rank=rank, _conf=pl.col("confidence").round(2))
        .sort(
            ["_rank", "_conf", "flows", "start", "key", "grouped_by"],
            descending=[False, True, True, False, False, False],
        )
        .drop("_rank", "_conf")
        .with_row_index("incident_id", offset=1)
        .with_columns(pl.col("incident_id").cast(pl.Int64))
    )
    incident_of = np.zeros(order.height, np.int64)  # session code -> incident id
    incident_of[order[code].to_numpy()] = order["incident_id"].to_numpy()
    return order.drop(code), incident_of


def _dense(x: pl.Series | np.ndarray) -> tuple[np.ndarray, int]:
    """Codes 0..D-1 (int32) of the distinct values of ``x`` (n,), and D."""
    codes = pl.Series(x).rank("dense").to_numpy()  # (n,) uint32, 1..D
    return (codes - 1).astype(np.int32), int(codes.max()) if codes.size else 0


def _pair(a: np.ndarray, b: np.ndarray, nb: int) -> np.ndarray:
    """One int64 per (a, b) pair, b in 0..nb-1 (codes of fewer than 2**31 values each: no overflow)."""
    return a.astype(np.int64) * nb + b


def _distinct_per(group: np.ndarray, ngroup: int, value: np.ndarray, nvalue: int) -> np.ndarray:
    """(ngroup,) how many distinct ``value`` codes each ``group`` code has."""
    pairs = pl.Series(_pair(group, value, nvalue)).unique().to_numpy()
    return np.bincount(pairs // nvalue, minlength=ngroup)


def _sessions(att: pl.DataFrame, config: IncidentConfig) -> dict[str, np.ndarray]:
    """Each row's session code (``_s``, 0..S-1), grouping (``_by``: 0 source, 1 port, 2 target) and the codes of
    its source and target (``_src``, ``_dst``), by the module's rules.

    Every key is a dense integer code and every count a ``bincount`` of codes: a spoofed flood has as many
    sources as flows, and a group of polars' window expressions or of a string group-by costs 100-300 bytes,
    a code 4. Rows are in start order, which is the order of a key's flows, so sessions follow without sorting
    the rows by key.
    """
    if att.height >= 2**31:  # codes' products would overflow int64
        raise ValueError(f"{att.height:,} attack flows: incident grouping takes fewer than 2**31")
    lab, nlab = _dense(att["label"])
    src, nsrc = _dense(att["orig_h"])
    dst, ndst = _dense(att["resp_h"])
    proto, _ = _dense(att["proto"])
    # (protocol, responder port) as one code: the port rule's key
    prt, nprt = _dense(_pair(proto, att["resp_p"].fill_null(-1).to_numpy().astype(np.int64) + 1, 2**17))
    del proto

    def key(*parts: tuple[np.ndarray, int]) -> tuple[np.ndarray, int]:
        """Dense code of the tuple of codes ``parts`` ((codes, how many) each)."""
        code, n = parts[0]
        for other, m in parts[1:]:
            code, n = _dense(_pair(code, other, m))
        return code, n

    def few(code: np.ndarray) -> np.ndarray:
        """Rows whose key (``code``) has fewer than ``minor_flows`` rows."""
        return np.asarray(np.bincount(code)[code] < config.minor_flows)

    def spread(group: tuple[np.ndarray, int], mask: np.ndarray) -> np.ndarray:
        """Rows whose ``group`` holds ``spread_sources`` or more distinct sources among its ``mask`` rows."""
        code, n = group
        sources = _distinct_per(code[mask], n, src[mask], nsrc)  # (n,)
        return np.asarray(sources[code] >= config.spread_sources)

    # The rules as the window expressions that first stated them evaluated them: "minor" inside a rule's window
    # counts an originator's flows within that window's group (toward that target, or to that port and target).
    L, S, D, P = (lab, nlab), (src, nsrc), (dst, ndst), (prt, nprt)
    minor = few(key(L, S)[0])
    to_target = minor & spread(key(L, D), few(key(L, D, S)[0]))
    lp = key(L, P)
    minor_p = few(key(lp, S)[0])
    lpd = key(lp, D)
    to_target_p = minor_p & spread(lpd, few(key(lpd, S)[0]))
    to_port = minor & ~to_target & spread(lp, minor_p & ~to_target_p)
    del minor, minor_p, to_target_p, lp, lpd
    by = np.where(to_target, 2, np.where(to_port, 1, 0)).astype(np.uint8)
    keyed = np.where(to_target, dst, np.where(to_port, prt, src))
    del to_target, to_port, prt
    group, _ = _dense(_pair(_pair(lab, by, 3), keyed, max(nsrc, ndst, nprt)))
    del keyed, lab
    gap = pl.duration(microseconds=int(config.gap_s * 1e6))
    # Latest end among earlier flows of the same key: a long flow keeps the incident open past its start.
    prev_end = pl.col("ts_end").cum_max().shift(1).over("g")
    sno = (
        pl.DataFrame({"g": group, "ts": att["ts"], "ts_end": att["ts_end"]})
        .select((prev_end.is_null() | (pl.col("ts") - prev_end > gap)).cum_sum().over("g").alias("sno"))
        .to_series()
        .to_numpy()
    )
    session, _ = _dense(_pair(group, sno, int(sno.max()) + 1))
    return {"_s": session, "_by": by, "_src": src, "_dst": dst}


def _aggregate(att: pl.DataFrame, codes: dict[str, np.ndarray]) -> pl.DataFrame:
    """One row per session (``_s``); a session's rows are in start order, so ``first`` is its first flow's."""
    sessions = int(codes["_s"].max()) + 1
    nsrc, ndst = int(codes["_src"].max()) + 1, int(codes["_dst"].max()) + 1
    distinct = pl.DataFrame(
        {
            "_s": np.arange(sessions, dtype=np.int32),
            "sources": _distinct_per(codes["_s"], sessions, codes["_src"], nsrc).astype(np.uint32),
            "targets": _distinct_per(codes["_s"], sessions, codes["_dst"], ndst).astype(np.uint32),
        }
    )
    att = att.with_columns(_s=pl.Series(codes["_s"]), _by=pl.Series(codes["_by"]))

    def top3(col: str, name: str) -> pl.DataFrame:
        return (
            att.group_by("_s", col)
            .len()
            .sort(["_s", "len", col], descending=[False, True, False])
            .group_by("_s", maintain_order=True)
            .agg(pl.struct(pl.col(col).alias("value"), pl.col("len").alias("n")).head(3).alias(name))
        )

    by = pl.col("_by").first()
    agg = att.group_by("_s").agg(
        label=pl.col("label").first(),
        grouped_by=by.replace_strict({0: "source", 1: "port", 2: "target"}, return_dtype=pl.String),
        key=pl.when(by == 2)
        .then(pl.col("resp_h").first())
        .when(by == 1)
        .then(pl.format("{}/{}", pl.col("proto").first(), pl.col("resp_p").fill_null(-1).first()))
        .otherwise(pl.col("orig_h").first()),
        start=pl.col("ts").min(),
        end=pl.col("ts_end").max(),
        flows=pl.len(),
        source=pl.col("orig_h").first(),
        target=pl.col("resp_h").first(),
        ports=pl.col("resp_p").drop_nulls().n_unique(),
        port=pl.col("resp_p").drop_nulls().first(),
        confidence=pl.col("confidence").mean(),
        bytes=(pl.col("orig_bytes") + pl.col("resp_bytes")).sum(),
    )
    agg = (
        agg.join(distinct, on="_s")
        .join(top3("conn_state", "states"), on="_s")
        .join(top3("service", "services"), on="_s")
    )
    schema = {c: t for c, t in _empty_incidents().schema.items() if c != "incident_id"}
    # the empty table's types: the attack rows' few-valued strings may come as categoricals (verdicts.FEW_VALUES)
    return (
        agg.with_columns(duration_s=(pl.col("end") - pl.col("start")).dt.total_microseconds() / 1e6)
        .select("_s", *schema)
        .cast(schema)  # type: ignore[arg-type]
    )


def _empty_incidents() -> pl.DataFrame:
    pair = pl.List(pl.Struct({"value": pl.String, "n": pl.UInt32}))
    return pl.DataFrame(
        schema={
            "incident_id": pl.Int64,
            "label": pl.String,
            "grouped_by": pl.String,
            "key": pl.String,
            "start": pl.Datetime("us", "UTC"),
            "end": pl.Datetime("us", "UTC"),
            "flows": pl.UInt32,
            "sources": pl.UInt32,
            "source": pl.String,
            "targets": pl.UInt32,
            "target": pl.String,
            "ports": pl.UInt32,
            "port": pl.Int32,
            "confidence": pl.Float64,
            "bytes": pl.Int64,
            "states": pair,
            "services": pair,
            "duration_s": pl.Float64,
        }
    )


def fmt_duration(s: float) -> str:
    """``0.4 s``, ``3.2 s``, ``4 min 10 s``, ``2.1 h``."""
    if s < 60:
        return f"{s:.1f} s"
    if s < 3600:
        return f"{int(s // 60)} min {int(s % 60)} s"
    return f"{s / 3600:.1f} h"


def fmt_host(host: str) -> str:
    """An address as it is best read: IPv6 in its shortest form (RFC 5952: ``2001:db8::1``), anything else as is."""
    if ":" not in host:
        return host
    import ipaddress

    try:
        return ipaddress.ip_address(host).compressed
    except ValueError:
        return host


def fmt_endpoint(host: str, port: int | None) -> str:
    """``10.0.0.5:80``, ``[2001:db8::5]:80``, or the address alone without a port."""
    h = fmt_host(host)
    if port is None:
        return h
    return f"[{h}]:{port}" if ":" in h else f"{h}:{port}"


def phrases(row: dict[str, Any]) -> list[str]:
    """An incident line as phrases a report may wrap between (never inside: an address or a count stays whole).

    ``Probe: 10.0.0.9 -> 10.0.0.5 | 1,000 ports in 3.2 s | 998 flows (conn_state S0/REJ) | confidence 0.97``. Incidents
    made only of ICMP errors (``ICMP_ERRORS``) are worded as answers: ``10.0.0.5 answered 192 hosts with
    ICMP port unreachable (urp_i)``; the hosts sent the packets that were refused.
    """
    src = fmt_host(row["source"]) if row["sources"] == 1 else f"{row['sources']:,} sources"
    if row["targets"] == 1:
        dst = fmt_host(row["target"])
        if row["ports"] == 1 and row["port"] is not None:
            dst = fmt_endpoint(row["target"], row["port"])
    else:
        dst = f"{row['targets']:,} hosts"
        if row["grouped_by"] == "port" and row["port"] is not None:
            dst += f" port {row['port']}"
    dur = fmt_duration(row["duration_s"])
    services = [s["value"] for s in row["services"]]
    flows = f"{row['flows']:,} flow{'s' if row['flows'] != 1 else ''}"
    # Zeek's vocabulary, named: the reasons beside it are NSL-KDD features (their "flag" is KDD's), never mixed
    cs = "conn_state " + "/".join(s["value"] for s in row["states"][:2])
    if services and set(services) <= ICMP_ERRORS:
        what = "/".join(_ICMP_ERROR_WORDS[s] for s in services[:2])
        return [
            f"{row['label']}: {src} answered {dst} with ICMP {what} ({'/'.join(services[:2])})",
            f"{flows} in {dur}",
            "replies to traffic those hosts sent",
            f"confidence {row['confidence']:.2f}",
        ]
    head = f"{row['label']}: {src} -> {dst}"
    if row["ports"] > 1:
        return [head, f"{row['ports']:,} ports in {dur}", f"{flows} ({cs})", f"confidence {row['confidence']:.2f}"]
    return [f"{head} in {dur}", f"{flows} ({cs})", f"confidence {row['confidence']:.2f}"]


_ICMP_ERROR_WORDS = {"urp_i": "port unreachable", "urh_i": "unreachable", "tim_i": "time exceeded", "red_i": "redirect"}


def describe(row: dict[str, Any]) -> str:
    """One line for an incident: ``Probe: 10.0.0.9 -> 10.0.0.5, 1,000 ports in 3.2 s, 998 flows (conn_state
    S0/REJ), confidence 0.97`` (``phrases`` joined)."""
    return ", ".join(phrases(row))
