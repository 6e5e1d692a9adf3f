"""``report.json``: the machine-readable summary of a ``ScanResult`` (``analyzer.report`` is its terminal twin).

Plain data in, plain data out: no terminal, no pipeline.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import polars as pl

from analyzer import __version__, verdicts
from analyzer.result import ScanResult, talkers_of, timeline_of
from features.common import ISO_UTC, escape_surrogates, path_text

# report.json's shape, described by docs/report.schema.json (tests/scan/test_report_schema.py validates against it).
# 1: the first versioned shape: schema_version, typed reason values, incidents' uids.
REPORT_SCHEMA_VERSION = "1"
TOP_FLOWS = 10
TOP_TALKERS = 5


def _iso(t: dt.datetime | None) -> str | None:
    return None if t is None else t.strftime(ISO_UTC)


def span(result: ScanResult) -> tuple[dt.datetime | None, dt.datetime | None]:
    """(earliest flow start, latest flow end); (None, None) without flows."""
    return result.tally.ts_min, result.tally.ts_end_max


def _incident_json(row: dict[str, Any]) -> dict[str, Any]:
    return {
        "incident_id": row["incident_id"],
        "label": row["label"],
        "summary": row["summary"],
        "reason": [
            {
                "feature": d["feature"],  # an NSL-KDD feature name
                "value": d["value"] if d.get("number") is None else d["number"],  # number, or category text
                "text": d["value"],  # as the terminal report shows it
                "score": d["score"],
            }
            for d in row["reason"]
        ],
        "grouped_by": row["grouped_by"],
        "start": _iso(row["start"]),
        "end": _iso(row["end"]),
        "duration_s": row["duration_s"],
        "flows": row["flows"],
        "sources": row["sources"],
        "source": row["source"] if row["sources"] == 1 else None,
        "targets": row["targets"],
        "target": row["target"] if row["targets"] == 1 else None,
        "ports": row["ports"],
        "conn_states": {s["value"]: s["n"] for s in row["states"]},
        "services": {s["value"]: s["n"] for s in row["services"]},
        "confidence": row["confidence"],
        "bytes": row["bytes"],
        "wireshark_filter": row.get("wireshark_filter"),
        "community_ids": row.get("community_ids") or [],
        "uids": row.get("uids") or [],
    }


def top_flow_rows(result: ScanResult) -> pl.DataFrame:
    """The top suspicious flows, each with its Wireshark display filter (``analyzer.evidence.flow_filter``)."""
    from analyzer.evidence import flow_filter

    top = result.ranked if result.ranked is not None else verdicts.top_flows(result.attacks, TOP_FLOWS)
    if result.top_flows is not None:  # their whole verdict rows: the attack rows keep ATTACK_COLUMNS only
        rest = [c for c in result.top_flows.columns if c not in top.columns]
        top = top.join(result.top_flows.select("flow_id", *rest), on="flow_id", how="left", maintain_order="left")
        top = top.select(result.top_flows.columns)
    if result.flow_table is None or top.height == 0:
        return top.with_columns(wireshark_filter=pl.lit(None, pl.String))
    extra = result.flow_table.select("flow_id", "ip_proto", "icmp_type", "icmp_code", "vlan")
    rows = top.join(extra, on="flow_id", how="left", maintain_order="left")
    return top.with_columns(
        wireshark_filter=pl.Series([flow_filter(r) for r in rows.iter_rows(named=True)], dtype=pl.String)
    )


def _carved(result: ScanResult, incident_id: int) -> dict[str, Any] | None:
    got = result.carved.get(incident_id)
    return None if got is None else {"file": path_text(got[0]), "packets": got[1]}


def _rows(df: pl.DataFrame) -> list[dict[str, Any]]:
    return [{k: (_iso(x) if isinstance(x, dt.datetime) else x) for k, x in r.items()} for r in df.iter_rows(named=True)]


def to_json(result: ScanResult) -> dict[str, Any]:
    """The machine-readable summary written to ``report.json`` (and printed by ``--format json``)."""
    start, end = span(result)
    line = timeline_of(result)
    return {
        "schema_version": REPORT_SCHEMA_VERSION,
        "nta_version": __version__,
        "model": {
            "id": result.model_id,
            "device": result.device,
            "classes": list(result.classes),
            "confirmers": result.confirmers,
        },
        "novelty_gate": {
            "applied": result.novelty,
            "relabelled_flows": result.novel_flows,
        },
        "support_gate": {"applied": result.support, "relabelled_flows": result.unsupported_flows},
        "input": {"kind": result.input_kind, "unavailable_features": list(result.unavailable_features)},
        "captures": result.captures,
        "capture_streams": result.streams,
        "capture_sessions": result.sessions,
        "skipped": [{"file": path_text(p), "reason": escape_surrogates(r)} for p, r in result.skipped],
        "packets": result.packets,
        "flows": result.flows,
        "time_span": {
            "start": _iso(start),
            "end": _iso(end),
            "seconds": (end - start).total_seconds() if start and end else 0.0,
        },
        "options": {"decap": result.decap},
        "filters": {"asked": list(result.filters), "packets_skipped": result.filtered_packets},
        "allowed": {"file": result.allow_file, "entries": result.allow_entries, "flows": result.allowed_flows},
        "bad_packets": result.bad_packets,
        "warnings": result.warnings,
        "unknown_values": result.unknown_values,
        "seconds": {k: round(s, 3) for k, s in result.seconds.items()},
        "verdicts": verdicts.class_summary(result.tally, result.classes),
        "timeline": {**line, "start": _iso(line["start"])},
        "incidents": [
            {**_incident_json(r), "carved": _carved(result, r["incident_id"])}
            for r in result.incidents.iter_rows(named=True)
        ],
        "top_flows": _rows(top_flow_rows(result)),
        "top_talkers": _rows(talkers_of(result, TOP_TALKERS)),
        "fail_on": {
            "classes": sorted(result.fail_on),
            "min_confidence": result.min_confidence,
            "matched_flows": result.matched,
        },
        "alerts": {"min_confidence": result.alert_confidence, "events": result.alerts},
        "exit_code": result.exit_code,
        "outputs": {k: path_text(p) for k, p in result.outputs.items()},
        "carved": [path_text(p) for p, _ in result.carved.values()],
    }
