"""From a verdict to the evidence: Wireshark display filters, Community IDs, and carved incident captures.

* ``flow_filter``: a display filter for one flow: both addresses, both ports (or the ICMP type, or the IP
  protocol), its VLAN, and its time span as ``frame.time_epoch`` bounds (UTC, no time-zone doubt; the end one
  microsecond late, flow times being whole microseconds).
* ``incident_filters``: one for each incident's flows: its sources and its targets when there are few of them
  (at most ``MAX_SET`` each), its protocol and responder ports (at most ``MAX_PORTS``), its time span.
  Every packet of the incident matches it (the tests check that with tshark on the carved file); with many
  sources, targets or ports it names fewer of them and matches more than the incident.
* ``carve_incidents``: each chosen incident's packets, streamed again from the captures, to
  ``incidents/NNN-<class>-<source>.pcap`` (``features.flows.carve``; ``.pcapng`` with a comment naming the
  incident when a capture was pcapng or the link types differ). ``<source>`` is the incident's one
  originator, or ``to-<target>`` for an incident grouped by target, or ``many``.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.verdicts import where
from features.common import ProgressFn, no_progress

MAX_SET = 8  # addresses named in an incident filter, per side
MAX_PORTS = 16
INCIDENTS_DIR = "incidents"


def _epoch(t: dt.datetime) -> str:
    us = int(t.timestamp() * 1_000_000 + 0.5) if t.tzinfo else int(t.replace(tzinfo=dt.UTC).timestamp() * 1e6 + 0.5)
    return f"{us // 1_000_000}.{us % 1_000_000:06d}"


def _time(start: dt.datetime, end: dt.datetime) -> str:
    """Flow times are whole microseconds (rounded down): the end bound is one microsecond later, so packets of
    a nanosecond capture within that microsecond still match."""
    return f"frame.time_epoch >= {_epoch(start)} && frame.time_epoch <= {_epoch(end + dt.timedelta(microseconds=1))}"


def _family(addrs: list[str]) -> str:
    v4 = [a for a in addrs if ":" not in a]
    v6 = [a for a in addrs if ":" in a]
    parts = []
    for field, group in (("ip.addr", v4), ("ipv6.addr", v6)):
        if len(group) == 1:
            parts.append(f"{field} == {group[0]}")
        elif group:
            parts.append(f"{field} in {{{', '.join(group)}}}")
    return parts[0] if len(parts) == 1 else "(" + " || ".join(parts) + ")"


def _transport(proto: str, ip_proto: int, v6: bool) -> str:
    if proto in ("tcp", "udp"):
        return proto
    if proto in ("icmp", "icmp6"):
        return "icmpv6" if proto == "icmp6" else "icmp"
    return f"ipv6.nxt == {ip_proto}" if v6 else f"ip.proto == {ip_proto}"


def flow_filter(row: dict[str, Any]) -> str:
    """Display filter for one flow (a verdicts or flows row: addresses, ports, proto, ip_proto, vlan, times)."""
    v6 = ":" in row["orig_h"]
    field = "ipv6.addr" if v6 else "ip.addr"
    parts = [f"{field} == {row['orig_h']}"]
    if row["resp_h"] != row["orig_h"]:
        parts.append(f"{field} == {row['resp_h']}")
    proto = row["proto"]
    parts.append(_transport(proto, int(row.get("ip_proto") or {"tcp": 6, "udp": 17}.get(proto, 0)), v6))
    if proto in ("tcp", "udp") and row.get("orig_p") is not None:
        ports = sorted({row["orig_p"], row["resp_p"]} - {None})
        parts += [f"{proto}.port == {p}" for p in ports]
    elif proto in ("icmp", "icmp6") and row.get("icmp_type") is not None:
        parts.append(f"{_transport(proto, 1, v6)}.type == {row['icmp_type']}")
    if row.get("vlan") is not None:
        parts.append(f"vlan.id == {row['vlan']}")
    parts.append(_time(row["ts"], row["ts_end"]))
    return " && ".join(parts)


def incident_filters(members: pl.DataFrame, ip_proto: dict[int, int] | None = None) -> dict[int, str]:
    """Display filter matching every packet of each incident's flows: {incident_id: filter}.

    ``members``: the incidents' flows, one row each, with ``incident_id``, ``orig_h``, ``resp_h``, ``proto``,
    ``resp_p``, ``ts``, ``ts_end`` (and ``flow_id``, ``ip_proto`` when at hand). ``ip_proto``: the IP protocol
    of each incident's first flow (lowest ``flow_id``), for incidents of one protocol other than TCP, UDP or ICMP;
    without it the ``members``' own column is used. Aggregated per incident in one group-by, so a flood of
    millions of flows costs a few values per incident, not a copy of its rows."""
    return filters_from(filter_aggregates(members), ip_proto)


def filter_aggregates(members: pl.DataFrame) -> pl.DataFrame:
    """What ``incident_filters`` reads of each incident's flows, one row an incident: distinct sources and
    targets (counts, and the first ``MAX_SET`` + 1 sorted), protocols, the first flow's IP protocol, responder
    ports (the first ``MAX_PORTS`` + 1 sorted), time span."""
    has_ip = "ip_proto" in members.columns
    first = pl.col("ip_proto").sort_by("flow_id").first() if has_ip else pl.lit(0)
    return members.group_by("incident_id").agg(
        n_src=pl.col("orig_h").n_unique(),
        srcs=pl.col("orig_h").unique().sort().head(MAX_SET + 1),
        v6=pl.col("orig_h").str.contains(":", literal=True).all(),
        n_dst=pl.col("resp_h").n_unique(),
        dsts=pl.col("resp_h").unique().sort().head(MAX_SET + 1),
        protos=pl.col("proto").unique().head(2),
        ip_proto=first,
        ports=pl.col("resp_p").drop_nulls().unique().sort().head(MAX_PORTS + 1),
        start=pl.col("ts").min(),
        end=pl.col("ts_end").max(),
    )


def filters_from(agg: pl.DataFrame, ip_proto: dict[int, int] | None = None) -> dict[int, str]:
    """``incident_filters`` of the aggregates ``filter_aggregates`` (or a query) made."""
    if agg.height == 0:
        return {}
    out = {}
    for r in agg.iter_rows(named=True):
        parts = []
        sources = r["srcs"] if r["n_src"] <= MAX_SET else None
        targets = r["dsts"] if r["n_dst"] <= MAX_SET else None
        if sources is not None:
            parts.append(_family(sources))
        # the targets are left out when they are the sources (every flow between the same few hosts)
        if targets is not None and (r["n_dst"] != r["n_src"] or r["dsts"] != r["srcs"]):
            parts.append(_family(targets))
        if len(r["protos"]) == 1:
            proto = r["protos"][0]
            ip = (ip_proto or {}).get(r["incident_id"], r.get("ip_proto", 0))
            parts.append(_transport(proto, int(ip or 0), bool(r["v6"])))
            ports = r["ports"]
            if proto in ("tcp", "udp") and 0 < len(ports) <= MAX_PORTS:
                parts.append(
                    f"{proto}.port == {ports[0]}"
                    if len(ports) == 1
                    else f"{proto}.port in {{{', '.join(map(str, ports))}}}"
                )
        parts.append(_time(r["start"], r["end"]))
        out[int(r["incident_id"])] = " && ".join(parts)
    return out


def community_ids(members: pl.DataFrame) -> list[str]:
    """The distinct Community IDs of an incident's flows, in the order their flows start."""
    return members.sort("ts", "flow_id")["community_id"].unique(maintain_order=True).to_list()


def incident_stem(row: dict[str, Any]) -> str:
    """``003-Probe-192.168.56.66``: the incident's number, class and source (file-name safe)."""
    if row.get("sources") == 1 and row.get("source"):
        who = str(row["source"])
    elif row.get("grouped_by") == "target" and row.get("target"):
        who = f"to-{row['target']}"
    else:
        who = "many"
    return f"{int(row['incident_id']):03d}-{row['label']}-{who.replace(':', '_')}"


def incident_members(verdicts: pl.DataFrame, flows: pl.DataFrame) -> pl.DataFrame:
    """Flow rows (flow-table columns) of every flow in an incident, with ``incident_id``."""
    ids = where(verdicts.select("flow_id", "incident_id"), pl.col("incident_id").is_not_null())
    return flows.join(ids, on="flow_id", how="inner")


def carve_incidents(
    out_dir: Path,
    captures: list[Path],
    members: pl.DataFrame,
    incidents: pl.DataFrame,
    *,
    decap: bool = True,
    only: set[int] | None = None,
    force: bool = False,
    progress: ProgressFn = no_progress,
    expect_sha256: dict[str, str] | None = None,
    streams: list[list[str]] | None = None,
    spans: dict[str, tuple[int, int]] | None = None,
) -> dict[int, tuple[Path, int]]:
    """Carve each chosen incident (all, or ``only``) into ``out_dir/incidents``; {incident: (file, packets)}.

    ``streams``: the files read as one stream (report.json's ``capture_streams``), so a flow that crosses a
    rotation is carved whole. ``spans``: each file's earliest and latest record time (``features.flows.carve``:
    a file whose span meets no chosen flow is not read)."""
    from features.common import InputError
    from features.flows.carve import CarveJob, carve

    chosen = incidents if only is None else incidents.filter(pl.col("incident_id").is_in(sorted(only)))
    folder = out_dir / INCIDENTS_DIR
    jobs = {}
    for row in chosen.iter_rows(named=True):
        stem = folder / incident_stem(row)
        existing = [
            p for p in (stem.with_name(stem.name + ".pcap"), stem.with_name(stem.name + ".pcapng")) if p.exists()
        ]
        if existing and not force:
            raise InputError(f"{existing[0]}: exists; use --force to overwrite it")
        comment = f"nta incident #{row['incident_id']}: {row.get('summary') or row['label']}"
        jobs[int(row["incident_id"])] = CarveJob(int(row["incident_id"]), stem, comment)
    if not jobs:
        return {}
    flows = members.filter(pl.col("incident_id").is_in(list(jobs))).rename({"incident_id": "group"})
    return carve(
        captures, flows, jobs, decap=decap, progress=progress, expect_sha256=expect_sha256, streams=streams, spans=spans
    )
