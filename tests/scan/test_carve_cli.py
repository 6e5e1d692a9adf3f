"""``nta scan --carve`` and ``nta carve``: incident captures, display filters and Community IDs, end to end."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import dpkt
import polars as pl
import pytest
from typer.testing import CliRunner, Result

from analyzer.cli import app
from features.capture.write import PcapngWriter

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sample_pcaps" / "demo-mixed.pcap"


def nta(*args: str | Path) -> Result:
    return CliRunner().invoke(app, [*map(str, args)])


def _count(path: Path) -> int:
    with path.open("rb") as f:
        return len(list(dpkt.pcapng.Reader(f) if path.suffix == ".pcapng" else dpkt.pcap.Reader(f)))


@pytest.fixture(scope="module")
def carved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("carve") / "demo"
    res = nta("scan", DEMO, "--out", out, "--carve", "--quiet")
    assert res.exit_code == 0, res.output
    return out


def test_each_incident_is_carved_with_its_flows_packets(carved: Path) -> None:
    report = json.loads((carved / "report.json").read_text())
    flows = pl.read_parquet(carved / "flows.parquet")
    v = pl.read_csv(carved / "verdicts.csv")
    assert report["incidents"]
    names = sorted(p.name for p in (carved / "incidents").iterdir())
    assert names == sorted(Path(i["carved"]["file"]).name for i in report["incidents"])
    for inc in report["incidents"]:
        members = flows.join(v.filter(pl.col("incident_id") == inc["incident_id"]).select("flow_id"), on="flow_id")
        path = Path(inc["carved"]["file"])
        assert path.name.startswith(f"{inc['incident_id']:03d}-{inc['label']}-")
        assert _count(path) == inc["carved"]["packets"] == (members["orig_pkts"] + members["resp_pkts"]).sum()
        assert (
            inc["community_ids"] == members.sort("ts", "flow_id")["community_id"].unique(maintain_order=True).to_list()
        )
        assert "frame.time_epoch >= " in inc["wireshark_filter"]
    assert all(f["wireshark_filter"].startswith("ip") for f in report["top_flows"]) and report["carved"]


def test_nta_carve_on_a_finished_scan_writes_the_same_bytes(carved: Path, tmp_path: Path) -> None:
    out = tmp_path / "later"
    assert nta("scan", DEMO, "--out", out, "--quiet").exit_code == 0
    first = json.loads((carved / "report.json").read_text())["incidents"][0]
    res = nta("carve", out, "--incident", str(first["incident_id"]), "-q")
    assert res.exit_code == 0, res.output
    (made,) = list((out / "incidents").iterdir())
    assert made.read_bytes() == Path(first["carved"]["file"]).read_bytes()
    assert f"#{first['incident_id']}: {made}" in res.output
    again = nta("carve", out, "--incident", str(first["incident_id"]), "-q")
    assert again.exit_code == 2 and "exists; use --force" in again.output
    assert nta("carve", out, "--incident", "99", "-q").exit_code == 2
    shutil.rmtree(out / "incidents")
    (out / "incidents").write_bytes(b"")  # a file where the incidents folder goes
    blocked = nta("carve", out, "-q")
    assert blocked.exit_code == 2 and "/incidents: a file is in the way)" in " ".join(blocked.output.split())
    assert "Traceback" not in blocked.output and "File exists" not in blocked.output


def test_a_capture_changed_since_the_scan_is_refused(tmp_path: Path) -> None:
    cap = tmp_path / "c.pcap"
    shutil.copy(DEMO, cap)
    assert nta("scan", cap, "--out", tmp_path / "s", "--quiet").exit_code == 0
    data = cap.read_bytes()
    cap.write_bytes(data[:-60] + bytes(60))  # the same size, other bytes
    res = nta("carve", tmp_path / "s", "-q")
    assert res.exit_code == 2 and "changed since the scan" in res.output
    assert not list((tmp_path / "s" / "incidents").glob("*.pcap*"))


def test_scan_carve_refuses_earlier_incidents_without_force(carved: Path, tmp_path: Path) -> None:
    out = tmp_path / "o"
    shutil.copytree(carved / "incidents", out / "incidents")  # only the carved files of an earlier scan
    stale = out / "incidents" / "999-Probe-1.2.3.4.pcap"
    stale.write_bytes(b"")
    res = nta("scan", DEMO, "--out", out, "--carve", "--quiet")
    assert res.exit_code == 2 and "holds carved incidents already" in res.output
    res = nta("scan", DEMO, "--out", out, "--carve", "--force", "--quiet")
    assert res.exit_code == 0 and not stale.exists()


def test_pcapng_input_gives_pcapng_incidents_with_a_comment(tmp_path: Path) -> None:
    cap = tmp_path / "demo.pcapng"
    w = PcapngWriter(cap, "input")
    with DEMO.open("rb") as f:
        for ts, frame in dpkt.pcap.Reader(f):
            w.write(int(ts * 10**9), bytes(frame), len(frame), 1)
    w.commit()
    res = nta("scan", cap, "--out", tmp_path / "s", "--carve", "--quiet")
    assert res.exit_code == 0, res.output
    files = sorted((tmp_path / "s" / "incidents").iterdir())
    assert files and all(p.suffix == ".pcapng" for p in files)
    assert b"nta incident #1: " in files[0].read_bytes()[:400]


@pytest.mark.skipif(shutil.which("tshark") is None, reason="needs tshark (Debian package tshark)")
def test_wireshark_filters_select_the_packets(carved: Path) -> None:
    report = json.loads((carved / "report.json").read_text())

    def matched(path: Path, flt: str) -> int:
        p = subprocess.run(["tshark", "-n", "-r", str(path), "-Y", flt], capture_output=True, text=True, check=True)
        return len(p.stdout.splitlines())

    for inc in report["incidents"]:  # every carved packet of an incident matches its filter
        assert matched(Path(inc["carved"]["file"]), inc["wireshark_filter"]) == inc["carved"]["packets"]
    flows = pl.read_parquet(carved / "flows.parquet").select("flow_id", "orig_pkts", "resp_pkts")
    for top in report["top_flows"][:4]:  # a top flow's filter finds exactly its packets in the capture
        row = flows.filter(pl.col("flow_id") == top["flow_id"]).row(0, named=True)
        assert matched(DEMO, top["wireshark_filter"]) == row["orig_pkts"] + row["resp_pkts"]
