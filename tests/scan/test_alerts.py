"""alerts.ndjson: every line a Suricata EVE alert a SIEM reads as it reads Suricata's own (analyzer.alerts)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.alerts import CATEGORY, eve_flow_id
from analyzer.cli import app

REPO = Path(__file__).resolve().parents[2]
EVE_KEYS = ["timestamp", "flow_id", "event_type", "src_ip", "dest_ip", "proto", "community_id", "alert"]


def _scan(tmp: Path, capture: str, *extra: str) -> tuple[list[dict[str, Any]], pl.DataFrame, dict[str, Any]]:
    out = tmp / capture
    res = CliRunner().invoke(app, ["scan", str(REPO / "sample_pcaps" / capture), "-o", str(out), "-q", *extra])
    assert res.exit_code == 0, res.output
    lines = (out / "alerts.ndjson").read_text().splitlines()
    events = [json.loads(line) for line in lines]  # every line one JSON object
    assert all(line.startswith("{") and "\n" not in line for line in lines)
    v = pl.read_csv(out / "verdicts.csv", infer_schema_length=0)
    return events, v, json.loads((out / "report.json").read_text())


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], pl.DataFrame, dict[str, Any]]:
    return _scan(tmp_path_factory.mktemp("alerts"), "demo-mixed.pcap")


def test_every_event_has_eve_alert_shape(demo: Any) -> None:
    events, _, report = demo
    assert events and report["alerts"]["events"] == len(events)
    for e in events:
        assert list(e)[:4] == ["timestamp", "flow_id", "event_type", "src_ip"] and set(EVE_KEYS) <= set(e)
        assert e["event_type"] == "alert"
        t = dt.datetime.strptime(e["timestamp"], "%Y-%m-%dT%H:%M:%S.%f%z")  # Suricata's format: +0000 offset
        assert t.utcoffset() == dt.timedelta(0)
        assert isinstance(e["flow_id"], int) and 0 <= e["flow_id"] < 2**53
        assert e["proto"] in ("TCP", "UDP", "ICMP", "IPv6-ICMP")
        a = e["alert"]
        assert set(a) == {"action", "gid", "signature_id", "rev", "signature", "category", "severity"}
        assert (a["category"], a["severity"]) == CATEGORY[e["nta"]["label"]]
        assert 1_000_000 <= a["signature_id"] < 2_000_000 and a["action"] == "allowed"
        if e["proto"] in ("TCP", "UDP"):
            assert isinstance(e["src_port"], int) and isinstance(e["dest_port"], int)
        else:
            assert "src_port" not in e and "icmp_type" in e


def test_events_match_the_verdicts(demo: Any) -> None:
    events, v, report = demo
    by_uid = {r["uid"]: r for r in v.iter_rows(named=True)}
    incidents = [e for e in events if e["nta"]["kind"] == "incident"]
    flows = [e for e in events if e["nta"]["kind"] == "flow"]
    assert [e["nta"]["incident_id"] for e in incidents] == [i["incident_id"] for i in report["incidents"]]
    sure = v.filter((pl.col("label") != "normal") & (pl.col("confidence").cast(pl.Float64) >= 0.9))
    assert len(flows) == sure.height > 0
    for e in events:
        r = by_uid[e["nta"]["uid"]]
        assert e["flow_id"] == eve_flow_id(r["uid"])
        assert (e["src_ip"], e["dest_ip"], e["community_id"]) == (r["orig_h"], r["resp_h"], r["community_id"])
        assert e["nta"]["label"] == r["label"] or e["nta"]["kind"] == "incident"
        if "src_port" in e:
            assert (str(e["src_port"]), str(e["dest_port"])) == (r["orig_p"], r["resp_p"])
    first = report["incidents"][0]
    assert incidents[0]["alert"]["signature"] == f"nta incident #1 {first['summary']}"


def test_threshold_and_benign(tmp_path: Path) -> None:
    none, _, report = _scan(tmp_path, "demo-mixed.pcap", "--alert-confidence", "1.0")
    assert all(e["nta"]["kind"] == "incident" or e["nta"]["confidence"] >= 1.0 for e in none)
    assert report["alerts"]["min_confidence"] == 1.0
    benign, v, _ = _scan(tmp_path, "benign-web-dns-ssh.pcap")
    attacks = v.filter(pl.col("label") != "normal").height
    assert (len(benign) == 0) == (attacks == 0)
