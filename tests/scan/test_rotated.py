"""Captures cut into files: rotated pieces scan as the whole capture; overlapping files are kept apart or merged.

The splitter is our own (classic pcap: the 24-byte header, then 16-byte record headers with the captured
length), so the pieces are real capture bytes, as ``tcpdump -C`` or ``editcap -c`` would write them.
"""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console
from rotated_files import DEMO, REPO, pcap_records, sensors, shifted, write_pieces

from analyzer.pipeline import ScanConfig, run_scan
from analyzer.report import render
from features.flows.extract import extract_flows
from features.kdd.frame import kdd_features


def scan(paths: list[Path], out: Path, merge: bool = False) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """(flows.parquet, verdicts.csv, report.json + the terminal report as "text") of one scan, source_file and
    uid left out of the tables (a uid names its capture file's SHA-256: pieces of a capture give other uids)."""
    result = run_scan(ScanConfig(paths=tuple(paths), out=out, device="cpu", merge=merge))
    console = Console(record=True, width=200, color_system=None, file=io.StringIO())
    render(result, console)
    flows = pl.read_parquet(out / "flows.parquet")
    verdicts = pl.read_csv(out / "verdicts.csv")
    report = json.loads((out / "report.json").read_text())
    assert flows["uid"].null_count() == 0 and flows["uid"].n_unique() == flows.height
    flows, verdicts = flows.drop("source_file", "uid"), verdicts.drop("source_file", "uid")
    return flows, verdicts, report | {"text": console.export_text()}


def without_uids(incidents: list[dict]) -> list[dict]:
    return [{k: v for k, v in i.items() if k != "uids"} for i in incidents]


@pytest.fixture(scope="module")
def whole(tmp_path_factory: pytest.TempPathFactory) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    return scan([DEMO], tmp_path_factory.mktemp("whole") / "out")


def test_rotated_pieces_scan_as_the_whole_capture(tmp_path: Path, whole: tuple) -> None:
    header, recs = pcap_records(DEMO)
    size = -(-len(recs) // 10)
    pieces = [[r for _, r in recs[i : i + size]] for i in range(0, len(recs), size)]
    assert len(pieces) == 10
    paths = write_pieces(tmp_path / "ring", header, pieces, "demo.pcap")
    flows, verdicts, report = scan([tmp_path / "ring"], tmp_path / "out")  # found in a folder, in name order
    assert flows.equals(whole[0])  # flow columns and the 41 KDD features, row for row
    assert verdicts.equals(whole[1])
    assert report["flows"] == whole[2]["flows"]
    assert without_uids(report["incidents"]) == without_uids(whole[2]["incidents"])
    assert report["capture_streams"] == [{"files": [str(p) for p in paths], "how": "joined"}]
    text = " ".join(report["text"].split())  # the terminal report, line wraps undone
    joined = (
        "Joined 10 files read in time order as one stream (each starts where the one before ends, as rotated files do)"
    )
    assert f"{joined}: {paths[0]}, {paths[1]} ... {paths[9]}" in text
    assert "Joined" not in whole[2]["text"]
    # Each flow names the piece holding its first packet.
    firsts = [pcap_records(p)[1][0][0] for p in paths]
    got = pl.read_parquet(tmp_path / "out" / "flows.parquet", columns=["ts", "source_file"])
    ts = got["ts"].dt.epoch("us").to_numpy() / 1e6
    piece = [paths.index(Path(f)) for f in got["source_file"]]
    assert all(firsts[k] <= t + 1e-6 and (k == 9 or t < firsts[k + 1] + 1e-6) for k, t in zip(piece, ts, strict=True))


def test_given_out_of_order_the_pieces_are_read_in_time_order(tmp_path: Path) -> None:
    header, recs = pcap_records(DEMO)
    half = len(recs) // 2
    a, b = write_pieces(tmp_path, header, [[r for _, r in recs[:half]], [r for _, r in recs[half:]]], "cut")
    ext = extract_flows([b, a], payloads=False)
    assert ext.streams == [{"files": [str(a), str(b)], "how": "joined"}]
    drop = ["source_file", "uid"]  # uid: the piece's SHA-256, not the whole capture's
    assert ext.flows.drop(drop).equals(extract_flows([DEMO], payloads=False).flows.drop(drop))


def test_overlapping_files_are_kept_apart(tmp_path: Path) -> None:
    paths = sensors(tmp_path)
    ext = extract_flows(paths, payloads=False)
    assert [s["how"] for s in ext.streams] == ["single", "single"]
    whole = extract_flows([DEMO], payloads=False)
    assert ext.flows.num_rows > whole.flows.num_rows  # a flow's packets in two files are two flows


def test_merge_reads_overlapping_files_as_one_stream(tmp_path: Path, whole: tuple) -> None:
    paths = sensors(tmp_path)
    flows, verdicts, report = scan(paths, tmp_path / "out", merge=True)
    assert flows.equals(whole[0])
    assert verdicts.equals(whole[1])
    # Files in order of their first packet: the first timestamp run went to sensor01.
    assert report["capture_streams"] == [{"files": [str(paths[1]), str(paths[0])], "how": "merged"}]
    assert "Merged 2 files merged by time (--merge):" in " ".join(report["text"].split())


def test_incidents_carved_from_rotated_pieces_hold_the_whole_captures_packets(tmp_path: Path) -> None:
    """A flow cut by a rotation is carved whole: its packets are looked for in every piece of its stream."""
    header, recs = pcap_records(DEMO)
    size = -(-len(recs) // 10)
    pieces = [[r for _, r in recs[i : i + size]] for i in range(0, len(recs), size)]
    paths = write_pieces(tmp_path / "ring", header, pieces, "demo.pcap")
    carved = {}
    for name, given in (("whole", [DEMO]), ("ring", list(reversed(paths)))):  # pieces given out of order
        result = run_scan(ScanConfig(paths=tuple(given), out=tmp_path / name, device="cpu", carve=True))
        carved[name] = {p.name: p.read_bytes() for p, _ in result.carved.values()}
    assert carved["whole"] and carved["ring"] == carved["whole"]


@pytest.mark.parametrize("when", ["a day later", "at the same time"])
def test_unrelated_captures_are_read_apart_and_scan_as_each_alone(tmp_path: Path, when: str) -> None:
    """Two captures of different traffic, the second a day after the first (a folder of samples) or made at the
    same time (two sensors, kept apart): neither joined nor sharing window features (each stream is its own
    session), each file's flows, 41 features and verdicts are those it gets scanned alone."""
    a = tmp_path / "web.pcap"
    a.write_bytes((REPO / "sample_pcaps" / "benign-web-dns-ssh.pcap").read_bytes())
    web, demo = pcap_records(a)[1], pcap_records(DEMO)[1]
    assert web[-1][0] - web[0][0] > 2  # so the demo, moved to start 1 s after the web capture, overlaps it
    seconds = 86_400 if when == "a day later" else int(web[0][0] - demo[0][0]) + 1
    b = shifted(DEMO, tmp_path / "demo-moved.pcap", seconds)
    ext = extract_flows([b, a], payloads=False)
    assert ext.streams == [{"files": [str(b)], "how": "single"}, {"files": [str(a)], "how": "single"}]
    assert ext.stream_ids is not None and ext.stream_ids.n_unique() == 2
    keep = ["uid", "label", "p_normal", "p_DoS", "p_Probe", "p_R2L", "p_U2R"]  # incidents are numbered per scan
    together = run_scan(ScanConfig(paths=(a, b), out=tmp_path / "both", device="cpu"))
    console = Console(record=True, width=400, color_system=None, file=io.StringIO())
    render(together, console)
    text = " ".join(console.export_text().split())
    assert together.sessions == 2
    assert json.loads((tmp_path / "both" / "report.json").read_text())["capture_sessions"] == 2
    html = (tmp_path / "both" / "report.html").read_text()
    assert "<dt>Sessions</dt><dd>2: one per packet stream (a capture, or files read as one)" in html
    assert "Sessions 2 (one per packet stream: a capture, or files read as one): each session's window" in text
    assert "Joined" not in text
    both = pl.read_parquet(tmp_path / "both" / "flows.parquet").drop("flow_id", "source_file", "incident_id")
    both_v = pl.read_csv(tmp_path / "both" / "verdicts.csv").select(keep)
    alone, alone_v = [], []
    for p in (a, b):
        run_scan(ScanConfig(paths=(p,), out=tmp_path / p.stem, device="cpu"))
        alone.append(pl.read_parquet(tmp_path / p.stem / "flows.parquet").drop("flow_id", "source_file", "incident_id"))
        alone_v.append(pl.read_csv(tmp_path / p.stem / "verdicts.csv").select(keep))
    assert together.flows == sum(t.height for t in alone) and all(t.height for t in alone)
    assert both.sort("uid").equals(pl.concat(alone).sort("uid"))  # flow columns, the 41 features, verdicts
    assert both_v.sort("uid").equals(pl.concat(alone_v).sort("uid"))
    # The sessions are what keeps them apart: as one stream (one session), the later file's first flows get other
    # window features (the demo's hosts and services follow the web capture's records, or mix with them).
    one = kdd_features(ext.flows, ext.payloads).sort("ts")
    apart = kdd_features(ext.flows, ext.payloads, stream_ids=ext.stream_ids).sort("ts")
    assert not one.equals(apart)
    if when == "a day later":
        assert one.filter(pl.col("source_file") == str(a)).equals(apart.filter(pl.col("source_file") == str(a)))


def test_carving_reads_only_the_pieces_whose_times_meet_the_incident(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``nta carve`` on rotated pieces (one joined stream): a piece whose first-to-last record times meet none of
    the incident's flows is not read, and the carved capture is the one carved from the whole capture."""
    from typer.testing import CliRunner

    import features.flows.carve as carve_mod
    from analyzer.cli import app

    header, recs = pcap_records(DEMO)
    size = -(-len(recs) // 10)
    pieces = [[r for _, r in recs[i : i + size]] for i in range(0, len(recs), size)]
    paths = write_pieces(tmp_path / "ring", header, pieces, "demo.pcap")
    for name, given in (("whole", [DEMO]), ("ring", paths)):
        run_scan(ScanConfig(paths=tuple(given), out=tmp_path / name, device="cpu"))
    report = json.loads((tmp_path / "ring" / "report.json").read_text())
    spans = {c["file"]: (c["first_packet"], c["last_packet"]) for c in report["captures"]}
    assert len(spans) == 10 and all(a <= b for a, b in spans.values())
    probe = next(i for i in report["incidents"] if i["label"] == "Probe")["incident_id"]
    read: list[str] = []
    real = carve_mod._carve_one

    def searched(src: Any, *args: Any) -> None:
        read.append(str(src.path))
        real(src, *args)

    monkeypatch.setattr(carve_mod, "_carve_one", searched)
    carved = {}
    for name in ("whole", "ring"):
        got = CliRunner().invoke(app, ["carve", str(tmp_path / name), "--incident", str(probe), "-q"])
        assert got.exit_code == 0, got.output
        (path,) = (tmp_path / name / "incidents").iterdir()
        carved[name] = path.read_bytes()
    assert carved["ring"] == carved["whole"] and len(carved["whole"]) > 24 * 10
    flows = pl.read_parquet(tmp_path / "ring" / "flows.parquet")
    verdicts = pl.read_csv(tmp_path / "ring" / "verdicts.csv").filter(pl.col("incident_id") == probe)
    members = flows.filter(pl.col("flow_id").is_in(verdicts["flow_id"].to_list()))
    iso = "%Y-%m-%dT%H:%M:%S.%6fZ"
    t0 = members.select(pl.col("ts").min().dt.strftime(iso)).item()
    t1 = members.select(pl.col("ts_end").max().dt.strftime(iso)).item()
    # the probe's flows lie in one stretch: the pieces that meet it are those that meet its first start to last end
    meeting = [str(p) for p in paths if spans[str(p)][0] <= t1 and spans[str(p)][1] >= t0]
    assert read[1:] == meeting and 0 < len(meeting) < 10  # read[0]: the whole capture's carve
    # Rotated away since the scan: pieces the incident does not need may be gone or overwritten; a piece it needs
    # may not (one line naming it, exit 2, nothing written).
    others = [p for p in paths if str(p) not in meeting]
    others[0].unlink()
    others[-1].write_bytes(others[-1].read_bytes()[:-1])
    got = CliRunner().invoke(app, ["carve", str(tmp_path / "ring"), "--incident", str(probe), "-q", "--force"])
    assert got.exit_code == 0, got.output
    assert [p.read_bytes() for p in (tmp_path / "ring" / "incidents").iterdir()] == [carved["whole"]]
    Path(meeting[0]).unlink()
    shutil.rmtree(tmp_path / "ring" / "incidents")
    got = CliRunner().invoke(app, ["carve", str(tmp_path / "ring"), "--incident", str(probe), "-q"])
    assert got.exit_code == 2
    assert (
        got.output.strip().splitlines()[-1]
        == f"nta: error: {meeting[0]}: the scanned capture is gone (its incident flows are read from it)"
    )
    assert not (tmp_path / "ring" / "incidents").exists() or not any((tmp_path / "ring" / "incidents").iterdir())
