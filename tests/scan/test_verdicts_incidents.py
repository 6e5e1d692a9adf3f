"""Verdict rows, the CSV's format, incidents and their one-line summaries, on hand-made flows."""

from __future__ import annotations

import csv
from collections.abc import Callable
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from analyzer import incidents, verdicts
from analyzer.cmd_scan import parse_fail_on
from analyzer.report import sparkline
from features.common import InputError
from features.kdd.columns import CLASSES

Flows = Callable[..., pl.DataFrame]
Proba = Callable[[pl.DataFrame], np.ndarray]


def _verdicts(flows: pl.DataFrame, proba: np.ndarray) -> pl.DataFrame:
    service = pl.Series(["private"] * flows.height)
    return verdicts.build_verdicts(flows, service, proba, CLASSES, "test-model")


def test_verdict_columns_are_exact() -> None:
    assert verdicts.verdict_columns(CLASSES) == [
        "flow_id", "uid", "community_id", "source_file", "ts", "ts_end", "orig_h", "orig_p", "resp_h", "resp_p",
        "proto", "service", "conn_state", "orig_bytes", "resp_bytes", "label", "confidence", "p_attack",
        "p_normal", "p_DoS", "p_Probe", "p_R2L", "p_U2R", "novel", "unsupported", "allowed", "incident_id",
        "model_id",
    ]  # fmt: skip


def test_build_verdicts_labels_and_probabilities(make_flows: Flows, fake_proba: Proba) -> None:
    flows = make_flows()
    v = _verdicts(flows, fake_proba(flows))
    assert v.columns == verdicts.verdict_columns(CLASSES)
    assert v.filter(pl.col("resp_h") == "10.0.0.5")["label"].unique().to_list() == ["Probe"]
    assert v.filter(pl.col("resp_h") == "10.0.0.80")["label"].unique().to_list() == ["normal"]
    row = v.row(0, named=True)
    assert row["confidence"] == pytest.approx(0.96) and row["p_attack"] == pytest.approx(1 - row["p_normal"])
    assert not v["novel"].any()  # no gate: nothing is novel


def test_build_verdicts_takes_the_gated_labels(make_flows: Flows, fake_proba: Proba) -> None:
    flows = make_flows()
    proba = fake_proba(flows)
    normal = proba.argmax(axis=1) == 0
    novel = normal & (np.arange(flows.height) % 2 == 0)  # every other normal flow relabelled R2L
    pred = np.where(novel, CLASSES.index("R2L"), proba.argmax(axis=1))
    v = verdicts.build_verdicts(
        flows, pl.Series(["http"] * flows.height), proba, CLASSES, "m", (pred, novel, np.zeros(len(pred), bool))
    )
    assert novel.any() and v["novel"].to_list() == novel.tolist() and not v["unsupported"].any()
    assert (v.filter(pl.col("novel"))["label"] == "R2L").all()
    assert v.filter(pl.col("novel"))["confidence"].to_list() == pytest.approx(
        proba[novel, CLASSES.index("R2L")].tolist()
    )
    assert v.filter(~pl.col("novel"))["label"].to_list() == [CLASSES[i] for i in proba.argmax(axis=1)[~novel]]


def test_build_verdicts_rejects_wrong_shape(make_flows: Flows) -> None:
    flows = make_flows()
    with pytest.raises(ValueError, match="shape"):
        _verdicts(flows, np.zeros((flows.height, 4), np.float32))


def test_csv_is_rfc4180_and_reads_back(make_flows: Flows, fake_proba: Proba, tmp_path: Path) -> None:
    flows = make_flows().with_columns(pl.lit('odd, "name".pcap').alias("source_file"))
    v = _verdicts(flows, fake_proba(flows))
    path = tmp_path / "verdicts.csv"
    verdicts.write_csv(v, path)
    raw = path.read_bytes()
    assert raw.count(b"\r\n") == v.height + 1  # header + one CRLF-ended line per flow
    assert b'"odd, ""name"".pcap"' in raw  # quoted, quotes doubled
    back = pl.read_csv(path)
    assert back.columns == verdicts.verdict_columns(CLASSES)
    assert back["source_file"][0] == 'odd, "name".pcap'
    assert back["ts"][0].endswith("Z") and back.height == v.height
    with path.open(newline="") as f:  # the standard library's RFC 4180 reader agrees
        rows = list(csv.reader(f))
    assert rows[0] == verdicts.verdict_columns(CLASSES) and len(rows) == v.height + 1
    assert rows[1][3] == 'odd, "name".pcap' and all(len(r) == len(rows[0]) for r in rows)


def test_incidents_group_scan_and_spoofed_flood(make_flows: Flows, fake_proba: Proba) -> None:
    flows = make_flows()
    v = _verdicts(flows, fake_proba(flows))
    inc, members = incidents.find_incidents(v)
    assert inc.height == 2
    scan = inc.filter(pl.col("label") == "Probe").row(0, named=True)
    assert (scan["flows"], scan["ports"], scan["targets"], scan["source"]) == (100, 100, 1, "10.0.0.9")
    flood = inc.filter(pl.col("label") == "DoS").row(0, named=True)
    assert flood["grouped_by"] == "target" and flood["sources"] == 50 and flood["flows"] == 50
    assert scan["grouped_by"] == "source"
    assert members.height == 150  # every attack flow, no normal one
    assert inc["incident_id"].to_list() == [1, 2]
    assert (flood["incident_id"], scan["incident_id"]) == (1, 2)  # by severity: DoS before Probe, whatever starts first


def test_incident_gap_splits_sessions(make_flows: Flows, fake_proba: Proba) -> None:
    flows = make_flows(second_scan=True)
    v = _verdicts(flows, fake_proba(flows))
    inc, _ = incidents.find_incidents(v, incidents.IncidentConfig(gap_s=60))
    probes = inc.filter(pl.col("label") == "Probe").sort("start")
    assert probes["flows"].to_list() == [100, 10]
    inc_long, _ = incidents.find_incidents(v, incidents.IncidentConfig(gap_s=3600))
    assert inc_long.filter(pl.col("label") == "Probe")["flows"].to_list() == [110]


def test_incident_summary_line(make_flows: Flows, fake_proba: Proba) -> None:
    flows = make_flows()
    v = _verdicts(flows, fake_proba(flows))
    inc, _ = incidents.find_incidents(v)
    lines = [incidents.describe(r) for r in inc.iter_rows(named=True)]
    assert lines[1] == "Probe: 10.0.0.9 -> 10.0.0.5, 100 ports in 1.0 s, 100 flows (conn_state REJ/S0), confidence 0.96"
    assert lines[0] == "DoS: 50 sources -> 10.0.0.7:80 in 0.1 s, 50 flows (conn_state S0), confidence 0.96"


def _one(label: str, conf: float, flows: int, start: int, key: str = "a") -> dict[str, object]:
    return {"label": label, "confidence": conf, "flows": flows, "start": start, "key": key}


@pytest.mark.parametrize(
    ("rows", "want"),
    [
        # class first: a 1-flow DoS at 1.00 above 2-flow Probes, U2R and R2L above both
        ([_one("Probe", 1.0, 2, 0), _one("DoS", 1.0, 1, 5), _one("U2R", 0.6, 1, 9), _one("R2L", 0.9, 3, 1)],
         ["U2R", "R2L", "DoS", "Probe"]),
        # then confidence as shown (0.996 and 1.0 both read 1.00: the bigger first), then size, then start
        ([_one("DoS", 0.996, 5, 0, "x"), _one("DoS", 1.0, 2, 1, "y"), _one("DoS", 0.9, 900, 2, "z"),
          _one("DoS", 1.0, 2, 0, "w")], ["x", "w", "y", "z"]),
    ],
)  # fmt: skip
def test_incidents_are_numbered_by_severity(rows: list[dict[str, object]], want: list[str]) -> None:
    import datetime as dt

    t0 = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    flows: list[dict[str, object]] = []
    for i, r in enumerate(rows):
        for k in range(int(r["flows"])):  # type: ignore[call-overload]
            ts = t0 + dt.timedelta(seconds=int(r["start"]) + k)  # type: ignore[call-overload]
            flows.append(
                {"flow_id": len(flows), "ts": ts, "ts_end": ts, "orig_h": f"10.0.{i}.1", "resp_h": "10.9.9.9",
                 "resp_p": 80, "proto": "tcp", "conn_state": "S0", "service": "http", "label": r["label"],
                 "confidence": r["confidence"], "orig_bytes": 0, "resp_bytes": 0, "key": r["key"]}
            )  # fmt: skip
    v = pl.DataFrame(flows)
    inc, _ = incidents.find_incidents(v.drop("key"))
    by_source = dict(zip(v["orig_h"], v["key"] if want[0] == "x" else v["label"], strict=False))
    assert [by_source[s] for s in inc.sort("incident_id")["source"]] == want
    again, _ = incidents.find_incidents(v.drop("key").sample(fraction=1.0, shuffle=True, seed=3))
    assert again["incident_id"].to_list() == inc["incident_id"].to_list()
    assert again["source"].to_list() == inc["source"].to_list()  # stable: the same numbering from any row order


def test_icmp_errors_are_worded_as_answers() -> None:
    row = {"label": "Probe", "source": "10.0.0.5", "sources": 1, "target": None, "targets": 192, "port": None,
           "ports": 0, "grouped_by": "source", "duration_s": 40.0, "flows": 192, "confidence": 0.88,
           "states": [{"value": "OTH", "n": 192}], "services": [{"value": "urp_i", "n": 192}]}  # fmt: skip
    line = incidents.describe(row)
    assert line == (
        "Probe: 10.0.0.5 answered 192 hosts with ICMP port unreachable (urp_i), 192 flows in 40.0 s, "
        "replies to traffic those hosts sent, confidence 0.88"
    )
    assert "->" not in line
    v6 = {**row, "services": [{"value": "eco_i", "n": 3}], "source": "2001:0db8:0000:0000:0000:0000:0000:0001",
          "targets": 1, "target": "2001:db8:0:0:0:0:0:0002", "ports": 0}  # fmt: skip
    assert incidents.describe(v6).startswith("Probe: 2001:db8::1 -> 2001:db8::2 in 40.0 s")


def test_no_attacks_no_incidents(make_flows: Flows) -> None:
    flows = make_flows()
    p = np.zeros((flows.height, 5), np.float32)
    p[:, 0] = 1.0
    inc, members = incidents.find_incidents(_verdicts(flows, p))
    assert inc.height == 0 and members.height == 0


def test_fail_on_matching(make_flows: Flows, fake_proba: Proba) -> None:
    flows = make_flows()
    v = _verdicts(flows, fake_proba(flows))
    assert verdicts.matches(v, parse_fail_on("any"), 0.0) == 150
    assert verdicts.matches(v, parse_fail_on("PROBE"), 0.0) == 100
    assert verdicts.matches(v, parse_fail_on("r2l,u2r"), 0.0) == 0
    assert verdicts.matches(v, parse_fail_on("dos"), 0.97) == 0  # every DoS verdict is 0.96
    assert verdicts.matches(v, frozenset(), 0.0) == 0
    with pytest.raises(InputError, match="unknown class 'worms'"):
        parse_fail_on("dos,worms")


def test_summaries_timeline_top(make_flows: Flows, fake_proba: Proba) -> None:
    flows = make_flows()
    v = _verdicts(flows, fake_proba(flows))
    summary = {c["label"]: c for c in verdicts.class_summary(v, CLASSES)}
    assert summary["Probe"]["flows"] == 100 and summary["U2R"]["flows"] == 0
    assert summary["normal"]["share"] == pytest.approx(20 / 170)
    line = verdicts.timeline(v, CLASSES, bins=10)
    assert sum(line["counts"]["Probe"]) == 100 and sum(line["counts"]["DoS"]) == 50 and "normal" not in line["counts"]
    talkers = verdicts.top_talkers(v)
    assert talkers.row(0, named=True)["orig_h"] == "10.0.0.9" and talkers.row(0, named=True)["ports"] == 100


def test_sparkline() -> None:
    assert sparkline([0, 1, 8, 4]) == " ▁█▄"
    assert sparkline([0, 0]) == "  "


def test_spoofed_sources_to_many_hosts_group_by_port(make_flows: Flows, fake_proba: Proba) -> None:
    """A DHCP-flood shape: 30 spoofed clients, each one flow to a different server, all to udp/67."""
    flows = make_flows()
    dhcp = flows.head(30).with_columns(
        flow_id=pl.int_range(1000, 1030, dtype=pl.Int64),
        orig_h=pl.format("172.16.0.{}", pl.int_range(30)),
        resp_h=pl.format("10.1.0.{}", pl.int_range(30)),
        resp_p=pl.lit(67, dtype=pl.Int32),
        proto=pl.lit("udp"),
    )
    flows = pl.concat([flows, dhcp])
    p = fake_proba(flows)
    p[-30:] = [0.01, 0.96, 0.01, 0.01, 0.01]  # DoS
    inc, _ = incidents.find_incidents(_verdicts(flows, p))
    flood = inc.filter(pl.col("grouped_by") == "port").row(0, named=True)
    assert (flood["label"], flood["flows"], flood["sources"], flood["targets"]) == ("DoS", 30, 30, 30)
    assert incidents.describe(flood).startswith("DoS: 30 sources -> 30 hosts port 67 in ")
