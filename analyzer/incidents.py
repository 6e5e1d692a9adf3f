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

import polars as pl

from analyzer.verdicts import NORMAL

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
    """
    att = verdicts.filter(~pl.col("allowed")) if "allowed" in verdicts.columns else verdicts  # --allow: never
    att = att.select(*_NEEDED, "orig_bytes", "resp_bytes").filter(pl.col("label") != NORMAL)
    if att.height == 0:
        return _empty_incidents(), pl.DataFrame(schema={"flow_id": pl.Int64, "incident_id": pl.Int64})
    minor = pl.len().over("label", "orig_h") < config.minor_flows
    many = config.spread_sources
    to_target = minor & (pl.col("orig_h").filter(minor).n_unique().over("label", "resp_h") >= many)
    port = pl.format("{}/{}", pl.col("proto"), pl.col("resp_p").fill_null(-1))
    to_port = minor & ~to_target & (pl.col("orig_h").filter(minor & ~to_target).n_unique().over("label", port) >= many)
    att = att.with_columns(
        grouped_by=pl.when(to_target)
        .then(pl.lit("target"))
        .when(to_port)
        .then(pl.lit("port"))
        .otherwise(pl.lit("source")),
        key=pl.when(to_target).then(pl.col("resp_h")).when(to_port).then(port).otherwise(pl.col("orig_h")),
    ).sort(["label", "grouped_by", "key", "ts", "flow_id"])
    gap = pl.duration(microseconds=int(config.gap_s * 1e6))
    # Latest end among earlier flows of the same key: a long flow keeps the incident open past its start.
    prev_end = pl.col("ts_end").cum_max().shift(1).over("label", "grouped_by", "key")
    att = att.with_columns(session=(prev_end.is_null() | (pl.col("ts") - prev_end > gap)).cum_sum())
    inc = _aggregate(att)
    rank = pl.col("label").replace_strict(
        {c: i for i, c in enumerate(SEVERITY)}, default=len(SEVERITY), return_dtype=pl.Int32
    )
    order = (
        inc.with_columns(_rank=rank, _conf=pl.col("confidence").round(2))
        .sort(["_rank", "_conf", "flows", "start", "key"], descending=[False, True, True, False, False])
        .drop("_rank", "_conf")
        .with_row_index("incident_id", offset=1)
    )
    order = order.with_columns(pl.col("incident_id").cast(pl.Int64))
    membership = att.join(order.select("session", "incident_id"), on="session").select("flow_id", "incident_id")
    return order.drop("session"), membership.sort("flow_id")


def _aggregate(att: pl.DataFrame) -> pl.DataFrame:
    states = (
        att.group_by("session", "conn_state")
        .len()
        .sort(["session", "len", "conn_state"], descending=[False, True, False])
        .group_by("session", maintain_order=True)
        .agg(states=pl.struct(pl.col("conn_state").alias("value"), pl.col("len").alias("n")).head(3))
    )
    services = (
        att.group_by("session", "service")
        .len()
        .sort(["session", "len", "service"], descending=[False, True, False])
        .group_by("session", maintain_order=True)
        .agg(services=pl.struct(pl.col("service").alias("value"), pl.col("len").alias("n")).head(3))
    )
    agg = att.group_by("session").agg(
        label=pl.col("label").first(),
        grouped_by=pl.col("grouped_by").first(),
        key=pl.col("key").first(),
        start=pl.col("ts").min(),
        end=pl.col("ts_end").max(),
        flows=pl.len(),
        sources=pl.col("orig_h").n_unique(),
        source=pl.col("orig_h").first(),
        targets=pl.col("resp_h").n_unique(),
        target=pl.col("resp_h").first(),
        ports=pl.col("resp_p").drop_nulls().n_unique(),
        port=pl.col("resp_p").drop_nulls().first(),
        confidence=pl.col("confidence").mean(),
        bytes=(pl.col("orig_bytes") + pl.col("resp_bytes")).sum(),
    )
    agg = agg.join(states, on="session").join(services, on="session")
    return agg.with_columns(duration_s=(pl.col("end") - pl.col("start")).dt.total_microseconds() / 1e6)


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
