"""``alerts.ndjson``: nta's findings as Suricata EVE ``alert`` events, one JSON object a line, so Filebeat's
Suricata module, Elastic, Splunk or any EVE reader ingests them without a custom parser.

Two kinds of event, told apart by ``alert.signature_id`` and ``nta.kind``:

* one per incident (``analyzer.incidents``), in incident order (most severe first): the tuple is that of the
  incident's first flow, the signature its one-line summary;
* one per attack flow whose confidence is at least ``min_confidence`` (``nta scan --alert-confidence``), in
  time order.

Flows an ``--allow`` entry covers make no alert, as they make no incident. Fields follow EVE: ``timestamp``
(``2024-03-01T10:00:12.004000+0000``), ``flow_id`` (an integer: Suricata's is one; nta's is the flow's ``uid``
hashed to 53 bits, exact in every JSON reader), ``event_type`` ``alert``, ``src_ip``/``src_port``/``dest_ip``/
``dest_port`` (ports left out for ICMP, whose ``icmp_type``/``icmp_code`` are given instead), ``proto`` as
Suricata names it (``TCP``, ``UDP``, ``ICMP``, ``IPv6-ICMP``), ``community_id``, and ``alert`` with ``action``
``allowed`` (nta only reads captures), ``gid`` 1, ``signature_id``, ``rev``, ``signature``, ``category`` and
``severity`` (1 most severe) from Suricata's classification.config entries for each class. nta's own fields
(``uid``, class, confidence, incident) are under ``nta``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import polars as pl

from analyzer.verdicts import suspicious, where
from features.common import own_strings

# class -> (Suricata classification.config description, its priority = EVE severity). Same order as
# analyzer.incidents.SEVERITY: a host taken over before a service brought down before a scan.
CATEGORY: dict[str, tuple[str, int]] = {
    "U2R": ("Attempted Administrator Privilege Gain", 1),  # attempted-admin
    "R2L": ("Attempted User Privilege Gain", 1),  # attempted-user
    "DoS": ("Detection of a Denial of Service Attack", 2),  # denial-of-service
    "Probe": ("Detection of a Network Scan", 3),  # network-scan
}
# Signature ids in the local range (1000000-1999999, never used by published rule sets): 1_770_000 + class.
SID_BASE = {"incident": 1_770_100, "flow": 1_770_200}
SID_CLASS = {"DoS": 1, "Probe": 2, "R2L": 3, "U2R": 4}
REV = 1
_PROTO = {"tcp": "TCP", "udp": "UDP", "icmp": "ICMP", "icmp6": "IPv6-ICMP"}


def eve_flow_id(uid: str) -> int:
    """A 53-bit integer for a flow's uid: EVE's ``flow_id`` is a number, and 53 bits stay exact in JavaScript."""
    return int.from_bytes(hashlib.blake2b(uid.encode(), digest_size=8).digest(), "big") & (2**53 - 1)


def _ts(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+0000")


def _tuple(r: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {
        "timestamp": _ts(r["ts"]),
        "flow_id": eve_flow_id(r["uid"]),
        "event_type": "alert",
        "src_ip": r["orig_h"],
    }
    icmp = r["proto"] in ("icmp", "icmp6")
    if not icmp and r["orig_p"] is not None:
        out["src_port"] = r["orig_p"]
    out["dest_ip"] = r["resp_h"]
    if not icmp and r["resp_p"] is not None:
        out["dest_port"] = r["resp_p"]
    out["proto"] = _PROTO.get(r["proto"], str(r["proto"]).upper())
    if icmp and r.get("icmp_type") is not None:
        out["icmp_type"], out["icmp_code"] = r["icmp_type"], r["icmp_code"]
    out["community_id"] = r["community_id"]
    return out


def _alert(kind: str, label: str, signature: str) -> dict[str, Any]:
    category, severity = CATEGORY.get(label, ("Misc Attack", 2))
    return {
        "action": "allowed",
        "gid": 1,
        "signature_id": SID_BASE[kind] + SID_CLASS.get(label, 0),
        "rev": REV,
        "signature": signature,
        "category": category,
        "severity": severity,
    }


def first_flows(verdicts: pl.DataFrame) -> pl.DataFrame:
    """Each incident's first flow (by start, then ``flow_id``) among ``verdicts``' suspicious rows: the tuple
    its incident alert carries."""
    return (
        where(suspicious(verdicts), pl.col("incident_id").is_not_null())
        .sort("ts", "flow_id")
        .group_by("incident_id", maintain_order=True)
        .first()
    )


def incident_events(incidents: pl.DataFrame, first: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """One alert per incident, in incident order; ``first``: each incident's first flow (``first_flows``, with
    ``uid``, ``community_id``, ``orig_p``, ``model_id``, and ICMP type and code when known)."""
    by_incident = {r["incident_id"]: r for r in first.iter_rows(named=True)}
    for inc in incidents.sort("incident_id").iter_rows(named=True):
        r = by_incident.get(inc["incident_id"])
        if r is None:
            continue
        yield {
            **_tuple(r),
            "alert": _alert("incident", inc["label"], f"nta incident #{inc['incident_id']} {inc['summary']}"),
            "nta": {
                "kind": "incident",
                "incident_id": inc["incident_id"],
                "label": inc["label"],
                "confidence": round(float(inc["confidence"]), 6),
                "flows": inc["flows"],
                "sources": inc["sources"],
                "targets": inc["targets"],
                "start": _ts(inc["start"]),
                "end": _ts(inc["end"]),
                "uid": r["uid"],
                "model_id": r["model_id"],
            },
        }


def sure_flows(verdicts: pl.DataFrame, min_confidence: float) -> pl.DataFrame:
    """The rows that get a flow alert: suspicious, at ``min_confidence`` or above, in time order."""
    return suspicious(verdicts).filter(pl.col("confidence") >= min_confidence).sort("ts", "flow_id")


def flow_events(sure: pl.DataFrame) -> Iterator[dict[str, Any]]:
    """One alert per row of ``sure`` (``sure_flows``: verdict rows with ``incident_id``, and ICMP type and code
    when known), in its order."""
    for r in sure.iter_rows(named=True):
        signature = f"nta {r['label']} flow ({r['service']}, conn_state {r['conn_state']})"
        yield {
            **_tuple(r),
            "alert": _alert("flow", r["label"], signature),
            "nta": {
                "kind": "flow",
                "uid": r["uid"],
                "label": r["label"],
                "confidence": round(float(r["confidence"]), 6),
                "p_attack": round(float(r["p_attack"]), 6),
                "incident_id": r["incident_id"],
                "service": r["service"],
                "conn_state": r["conn_state"],
                "model_id": r["model_id"],
            },
        }


def alert_events(
    verdicts: pl.DataFrame, incidents: pl.DataFrame, min_confidence: float, flows: pl.DataFrame | None = None
) -> Iterator[dict[str, Any]]:
    """EVE alert events: one per incident, then one per attack flow at ``min_confidence`` or above.

    ``flows`` (the flow table) adds ICMP type and code; without it ICMP alerts carry neither.
    """
    att = suspicious(verdicts)
    if flows is not None and att.height:
        att = att.join(flows.select("flow_id", "icmp_type", "icmp_code"), on="flow_id", how="left")
    yield from incident_events(incidents, first_flows(att))
    yield from flow_events(sure_flows(att, min_confidence))


def _json_str(col: pl.Series) -> pl.Series:
    """Each value as ``json.dumps`` writes it (null as ``null``): printable ASCII without quote or backslash
    quoted as it is, anything else through ``json.dumps`` once per distinct value."""
    col = col.cast(pl.String)
    plain = col.str.contains(r"^[ !#-\[\]-~]*$").fill_null(True)
    out = '"' + col + '"'
    odd = col.filter(~plain).unique()
    if odd.len():
        table = {v: json.dumps(v) for v in odd.to_list()}
        out = pl.select(
            pl.when(plain).then(out).otherwise(col.replace_strict(table, default=None, return_dtype=pl.String))
        ).to_series()
    return out.fill_null("null")


def flow_event_lines(sure: pl.DataFrame) -> pl.Series:
    """``flow_events``' events as JSON lines (without the line break), built a column at a time: a flood has
    an alert per flow, and a dict and ``json.dumps`` per event took 20 µs each (200 s for 10M flows)."""
    if sure.height == 0:
        return pl.Series([], dtype=pl.String)
    if "icmp_type" not in sure.columns:
        sure = sure.with_columns(icmp_type=pl.lit(None, pl.Int32), icmp_code=pl.lit(None, pl.Int32))
    label = sure["label"]
    category = label.replace_strict(
        {c: v[0] for c, v in CATEGORY.items()}, default="Misc Attack", return_dtype=pl.String
    )
    severity = label.replace_strict({c: v[1] for c, v in CATEGORY.items()}, default=2, return_dtype=pl.Int64)
    sid = SID_BASE["flow"] + label.replace_strict(SID_CLASS, default=0, return_dtype=pl.Int64)
    proto = sure["proto"].cast(pl.String)
    suricata = proto.replace_strict(_PROTO, default=None, return_dtype=pl.String)
    suricata = suricata.fill_null(proto.cast(pl.String).str.to_uppercase()).fill_null("NONE")
    # the signature as an f-string writes it (a missing value reads "None")
    service, state = (sure[k].cast(pl.String).fill_null("None") for k in ("service", "conn_state"))
    signature = "nta " + label + " flow (" + service + ", conn_state " + state + ")"
    ts = sure["ts"].dt.convert_time_zone("UTC").dt.strftime("%Y-%m-%dT%H:%M:%S%.6f+0000")
    flow_id = pl.Series([eve_flow_id(u) for u in sure["uid"].to_list()], dtype=pl.UInt64).cast(pl.String)
    rounded = {
        c: pl.Series([repr(round(float(x), 6)) for x in sure[c].to_list()], dtype=pl.String)
        for c in ("confidence", "p_attack")
    }
    frame = pl.DataFrame(
        {
            "ts": ts,
            "flow_id": flow_id,
            "src": _json_str(sure["orig_h"]),
            "dst": _json_str(sure["resp_h"]),
            "orig_p": sure["orig_p"].cast(pl.String),
            "resp_p": sure["resp_p"].cast(pl.String),
            "icmp": proto.is_in(["icmp", "icmp6"]).fill_null(False),
            "icmp_type": sure["icmp_type"].cast(pl.String),
            "icmp_code": sure["icmp_code"].cast(pl.String).fill_null("null"),
            "proto": _json_str(suricata),
            "cid": _json_str(sure["community_id"]),
            "sid": sid.cast(pl.String),
            "sig": _json_str(signature),
            "cat": _json_str(category),
            "sev": severity.cast(pl.String),
            "uid": _json_str(sure["uid"]),
            "label": _json_str(label),
            "conf": rounded["confidence"],
            "p": rounded["p_attack"],
            "inc": sure["incident_id"].cast(pl.String).fill_null("null"),
            "service": _json_str(sure["service"]),
            "state": _json_str(sure["conn_state"]),
            "model": _json_str(sure["model_id"]),
        }
    )
    c = pl.col

    def port(name: str, col: str) -> pl.Expr:  # ports are left out for ICMP and when unknown (_tuple)
        return pl.when(~c("icmp") & c(col).is_not_null()).then(pl.lit(f',"{name}":') + c(col)).otherwise(pl.lit(""))

    icmp = (
        pl.when(c("icmp") & c("icmp_type").is_not_null())
        .then(pl.lit(',"icmp_type":') + c("icmp_type") + pl.lit(',"icmp_code":') + c("icmp_code"))
        .otherwise(pl.lit(""))
    )
    line = pl.concat_str(
        [
            pl.lit('{"timestamp":"'),
            c("ts"),
            pl.lit('","flow_id":'),
            c("flow_id"),
            pl.lit(',"event_type":"alert","src_ip":'),
            c("src"),
            port("src_port", "orig_p"),
            pl.lit(',"dest_ip":'),
            c("dst"),
            port("dest_port", "resp_p"),
            pl.lit(',"proto":'),
            c("proto"),
            icmp,
            pl.lit(',"community_id":'),
            c("cid"),
            pl.lit(',"alert":{"action":"allowed","gid":1,"signature_id":'),
            c("sid"),
            pl.lit(f',"rev":{REV},"signature":'),
            c("sig"),
            pl.lit(',"category":'),
            c("cat"),
            pl.lit(',"severity":'),
            c("sev"),
            pl.lit('},"nta":{"kind":"flow","uid":'),
            c("uid"),
            pl.lit(',"label":'),
            c("label"),
            pl.lit(',"confidence":'),
            c("conf"),
            pl.lit(',"p_attack":'),
            c("p"),
            pl.lit(',"incident_id":'),
            c("inc"),
            pl.lit(',"service":'),
            c("service"),
            pl.lit(',"conn_state":'),
            c("state"),
            pl.lit(',"model_id":'),
            c("model"),
            pl.lit("}}"),
        ]
    )
    return frame.select(line).to_series()


# Flow alerts made into lines at a time: a call of flow_event_lines costs ~11 ms whatever its rows (the 1M capture's
# six chunks of ~100 alerts each: 0.065-0.070 s one call a chunk, 0.015-0.018 s for all at once).
ALERT_ROWS = 16_384


class AlertWriter:
    """``alerts.ndjson`` written as the verdict rows stream past (the caller makes it atomic): the incident
    alerts first (``begin``), then each chunk's flow alerts (``add``, chunks in time order; written
    ``ALERT_ROWS`` or more at a time, the rest by ``flush`` or ``close``). ``events``: the lines written."""

    def __init__(self, path: Path, min_confidence: float) -> None:
        self.min_confidence = min_confidence
        self.events = 0
        self._f = path.open("w", encoding="utf-8")
        self._pending: list[pl.DataFrame] = []  # flow alerts added and not yet written, in order
        self._pending_rows = 0

    def _write(self, events: Iterator[dict[str, Any]]) -> None:
        for event in events:
            self._f.write(json.dumps(event, separators=(",", ":")) + "\n")
            self.events += 1

    def begin(self, incidents: pl.DataFrame, first: pl.DataFrame) -> None:
        self._write(incident_events(incidents, first))

    def sure(self, verdicts: pl.DataFrame) -> pl.DataFrame:
        """The rows of one chunk that get a flow alert (the caller adds ICMP type and code to those)."""
        return sure_flows(verdicts, self.min_confidence)

    def add(self, sure: pl.DataFrame) -> None:
        if sure.height:
            # own strings: rows filtered from a chunk point into all of its strings (50M packets: +700 MiB held)
            self._pending.append(own_strings(sure))
            self._pending_rows += sure.height
        if self._pending_rows >= ALERT_ROWS:
            self.flush()

    def flush(self) -> None:
        """Write the flow alerts added so far."""
        if not self._pending:
            return
        # chunks' ICMP columns may differ in integer width (read back, or null where a chunk had no ICMP flow)
        sure = pl.concat(self._pending, how="vertical_relaxed") if len(self._pending) > 1 else self._pending[0]
        self._pending, self._pending_rows = [], 0
        lines = flow_event_lines(sure)
        if lines.len():
            self._f.write("\n".join(lines.to_list()) + "\n")
            self.events += lines.len()

    def extend(self, path: Path, events: int) -> None:
        """Append the ``events`` lines another writer wrote to ``path`` (its ``add`` calls), as they are."""
        self.flush()
        self._f.flush()
        with path.open("rb") as src:
            shutil.copyfileobj(src, self._f.buffer)
        self.events += events

    def close(self) -> None:
        try:
            self.flush()
        finally:
            self._f.close()


def write_alerts(
    path: Path,
    verdicts: pl.DataFrame,
    incidents: pl.DataFrame,
    min_confidence: float,
    flows: pl.DataFrame | None = None,
) -> int:
    """Write ``alerts.ndjson`` (the caller makes it atomic); returns the number of events."""
    n = 0
    with path.open("w", encoding="utf-8") as f:
        for event in alert_events(verdicts, incidents, min_confidence, flows):
            f.write(json.dumps(event, separators=(",", ":")) + "\n")
            n += 1
    return n
