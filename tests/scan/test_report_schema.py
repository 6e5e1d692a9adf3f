"""report.json against its JSON Schema (docs/report.schema.json): real reports validate, broken ones do not."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.summary import REPORT_SCHEMA_VERSION

jsonschema = pytest.importorskip("jsonschema", reason="jsonschema is a dev extra: pip install -e '.[dev]'")

REPO = Path(__file__).resolve().parents[2]
SCHEMA = json.loads((REPO / "docs" / "report.schema.json").read_text())


@pytest.fixture(scope="module")
def reports(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, Any]]:
    tmp = tmp_path_factory.mktemp("schema")
    out = {}
    for name, extra in [("demo-mixed.pcap", ["--carve"]), ("benign-web-dns-ssh.pcap", []), ("ping-sweep.pcap", [])]:
        res = CliRunner().invoke(app, ["scan", str(REPO / "sample_pcaps" / name), "-o", str(tmp / name), "-q", *extra])
        assert res.exit_code == 0, res.output
        out[name] = json.loads((tmp / name / "report.json").read_text())
    # a Zeek conn log as input (nta's own of the demo capture)
    log = tmp / "demo-conn.log"
    res = CliRunner().invoke(
        app, ["flows", str(REPO / "sample_pcaps" / "demo-mixed.pcap"), "-o", str(log), "--format", "zeek", "-q"]
    )
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(app, ["scan", str(log), "-o", str(tmp / "zeek"), "-q"])
    assert res.exit_code == 0, res.output
    out["demo-conn.log"] = json.loads((tmp / "zeek" / "report.json").read_text())
    return out


def test_schema_is_a_valid_schema_of_this_version() -> None:
    jsonschema.Draft202012Validator.check_schema(SCHEMA)
    assert SCHEMA["properties"]["schema_version"] == {"const": REPORT_SCHEMA_VERSION}


@pytest.mark.parametrize("name", ["demo-mixed.pcap", "benign-web-dns-ssh.pcap", "ping-sweep.pcap", "demo-conn.log"])
def test_real_reports_validate(reports: dict[str, dict[str, Any]], name: str) -> None:
    jsonschema.validate(reports[name], SCHEMA, cls=jsonschema.Draft202012Validator)


def test_typed_reasons_and_member_ids(reports: dict[str, dict[str, Any]]) -> None:
    inc = reports["demo-mixed.pcap"]["incidents"]
    reasons = [d for i in inc for d in i["reason"]]
    assert any(isinstance(d["value"], float | int) for d in reasons)
    assert all(isinstance(d["value"], str) for d in reasons if d["feature"] in ("service", "flag", "protocol_type"))
    assert all(len(i["uids"]) == len(set(i["uids"])) == i["flows"] for i in inc)


def _broken(report: dict[str, Any]) -> list[dict[str, Any]]:
    out = []
    for change in (
        lambda r: r.pop("schema_version"),
        lambda r: r.__setitem__("schema_version", "0"),
        lambda r: r["incidents"][0]["reason"][0].__setitem__("value", ["0.96"]),
        lambda r: r["incidents"][0].__setitem__("uids", [1, 2]),
        lambda r: r["incidents"][0].__setitem__("label", "normal"),
        lambda r: r.__setitem__("surprise", 1),
        lambda r: r["top_flows"][0].__setitem__("uid", ""),
    ):
        r = copy.deepcopy(report)
        change(r)
        out.append(r)
    return out


def test_broken_reports_do_not_validate(reports: dict[str, dict[str, Any]]) -> None:
    for r in _broken(reports["demo-mixed.pcap"]):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(r, SCHEMA, cls=jsonschema.Draft202012Validator)
