"""``--allow FILE`` (known-good hosts, networks, services) and the packet filters, end to end on the demo capture."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner, Result

from analyzer.allow import allowed, read_allow
from analyzer.cli import app
from analyzer.incidents import find_incidents
from analyzer.verdicts import matches
from features.common import InputError

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sample_pcaps" / "demo-mixed.pcap"
SCANNER, SCANNED = "192.168.56.66", "10.0.0.20"


def scan(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["scan", "--no-progress", *map(str, args)])


def test_allow_file_entries_and_one_line_errors(tmp_path: Path) -> None:
    f = tmp_path / "allow.txt"
    f.write_text("# known good\n10.0.0.5\n\n10.20.0.0/16  # lab\n53/udp\n10.0.0.53 53/UDP\n2001:db8::/32 443/tcp\n")
    entries = read_allow(f)
    assert [(str(e.net) if e.net else None, e.port, e.proto) for e in entries] == [
        ("10.0.0.5/32", None, None),
        ("10.20.0.0/16", None, None),
        (None, 53, "udp"),
        ("10.0.0.53/32", 53, "udp"),
        ("2001:db8::/32", 443, "tcp"),
    ]
    for line, msg in [("10.0.0.1/33", ":1: '10.0.0.1/33' is not an address"), ("10.0.0.1 53", ":1: '53' is not a service"),
                      ("53/sctp", "is not an address"), ("10.0.0.1 70000/udp", "is not a service")]:  # fmt: skip
        f.write_text(line + "\n")
        with pytest.raises(InputError, match=msg):
            read_allow(f)
    with pytest.raises(InputError, match="no such file"):
        read_allow(tmp_path / "missing.txt")


def test_entries_match_hosts_either_way_and_services_at_the_responder(
    tmp_path: Path, make_flows: Callable[..., pl.DataFrame]
) -> None:
    flows = (
        make_flows()
    )  # a scan 10.0.0.9 -> 10.0.0.5 ports 1-100, a flood -> 10.0.0.7:80, web 10.0.0.2 -> 10.0.0.80:443
    f = tmp_path / "a.txt"
    for text, n in [("10.0.0.9", 100), ("10.0.0.5", 100), ("10.0.0.0/29", 170), ("80/tcp", 51), ("80/udp", 0),
                    ("10.0.0.80 443/tcp", 20), ("10.0.0.2 443/tcp", 0), ("192.0.2.0/24", 50), ("::/0", 0)]:  # fmt: skip
        f.write_text(text)
        assert allowed(flows, read_allow(f)).sum() == n, text


def test_allowed_flows_make_no_incident_and_no_fail_on_match(make_flows: Callable[..., pl.DataFrame]) -> None:
    flows = make_flows()
    v = flows.with_columns(
        label=pl.when(pl.col("resp_h") == "10.0.0.5").then(pl.lit("Probe")).otherwise(pl.lit("normal")),
        confidence=pl.lit(0.9),
        service=pl.lit("private"),
        allowed=pl.col("orig_h") == "10.0.0.9",
    )
    inc, members = find_incidents(v)
    assert inc.height == 0 and members.height == 0
    assert matches(v, frozenset({"Probe"}), 0.0) == 0
    assert (
        find_incidents(v.drop("allowed"))[0].height == 1 and matches(v.drop("allowed"), frozenset({"Probe"}), 0) == 100
    )


def test_scan_with_allow_keeps_the_flows_and_drops_their_incidents(tmp_path: Path) -> None:
    plain = scan(DEMO, "--out", tmp_path / "plain", "--fail-on", "probe")
    assert plain.exit_code == 1
    allow = tmp_path / "allow.txt"
    allow.write_text(f"{SCANNED}   # our scanner's target\n")
    res = scan(DEMO, "--out", tmp_path / "a", "--fail-on", "probe", "--allow", allow)
    report = json.loads((tmp_path / "a" / "report.json").read_text())
    before = json.loads((tmp_path / "plain" / "report.json").read_text())
    v = pl.read_csv(tmp_path / "a" / "verdicts.csv")
    assert v.height == before["flows"]  # every flow stays in the outputs
    hit = v.filter((pl.col("orig_h") == SCANNED) | (pl.col("resp_h") == SCANNED))
    assert hit["allowed"].all() and v["allowed"].sum() == hit.height == report["allowed"]["flows"] > 300
    assert hit.filter(pl.col("label") == "Probe").height > 250  # the model still says what it saw
    assert hit["incident_id"].is_null().all()
    # The scanner's incidents lose exactly the allowed flows (what is left, e.g. a ping sweep the model calls
    # Probe, stays; an incident left with no flow is gone).
    old = sum(i["flows"] for i in before["incidents"] if i["source"] == SCANNER)
    new = sum(i["flows"] for i in report["incidents"] if i["source"] == SCANNER)
    scanned = hit.filter((pl.col("orig_h") == SCANNER) & (pl.col("label") == "Probe")).height
    assert new == old - scanned and scanned > 250
    probes = v.filter((pl.col("label") == "Probe") & ~pl.col("allowed")).height
    assert report["fail_on"]["matched_flows"] == probes and res.exit_code == (1 if probes else 0)
    assert report["allowed"] == {"file": str(allow), "entries": 1, "flows": hit.height}
    assert "Allowed" in res.stdout and f"{hit.height:,} flows known-good" in " ".join(res.stdout.split())


def test_scan_filters_narrow_the_read_and_the_report_says_so(tmp_path: Path) -> None:
    res = scan(DEMO, "--out", tmp_path / "f", "--host", SCANNED, "--since", "2024-03-01T10:00:00Z", "--port", "22")
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "f" / "report.json").read_text())
    assert report["filters"]["asked"] == ["since 2024-03-01T10:00:00Z", f"host {SCANNED}", "port 22"]
    assert report["filters"]["packets_skipped"] == report["packets"] - 3 and report["flows"] == 1
    assert "packets outside, skipped while reading" in " ".join(res.stdout.split())
    bad = scan(DEMO, "--out", tmp_path / "g", "--until", "2024-03-01T09:00:00Z", "--since", "2024-03-01T10:00:00Z")
    assert bad.exit_code == 2 and "is not after --since" in bad.output and not (tmp_path / "g").exists()


def test_flows_and_features_take_the_filters(tmp_path: Path) -> None:
    out = tmp_path / "f.parquet"
    res = CliRunner().invoke(app, ["flows", str(DEMO), "-o", str(out), "-q", "--host", SCANNER, "--port", "80"])
    assert res.exit_code == 0 and "packets outside the filters were skipped" in res.output
    df = pl.read_parquet(out)
    assert df.height == 1 and df.row(0, named=True)["resp_h"] == SCANNED and df["resp_p"].to_list() == [80]
    res = CliRunner().invoke(app, ["features", str(DEMO), "-o", str(tmp_path / "k.parquet"), "-q", "--port", "80"])
    assert res.exit_code == 0 and pl.read_parquet(tmp_path / "k.parquet")["service"].unique().to_list() == ["http"]
