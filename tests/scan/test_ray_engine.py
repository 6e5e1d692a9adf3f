"""``nta scan --engine ray``: the same flows, features and verdicts as the default engine, on a local Ray instance
(2 CPUs) and on a simulated 2-node cluster (``ray.cluster_utils.Cluster``). Skipped when Ray is not installed
(``pip install 'nta[ray]'``; the README's test command installs it, so CI runs these)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest
from rotated_files import pcap_records, sensors, shifted, write_pieces
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.pipeline import ScanConfig, run_scan

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def outputs(out: Path) -> tuple[pl.DataFrame, pl.DataFrame, dict]:
    """flows.parquet and verdicts.csv sorted by flow key, and report.json without run-specific fields."""
    key = ["ts", "source_file", "ip_proto", "orig_h", "orig_p", "resp_h", "resp_p", "icmp_type", "icmp_code", "vlan"]
    flows = pl.read_parquet(out / "flows.parquet").sort(key, nulls_last=False)
    verdicts = pl.read_csv(out / "verdicts.csv").sort(["ts", "source_file", "orig_h", "orig_p", "resp_h", "resp_p"])
    report = json.loads((out / "report.json").read_text())
    report.pop("seconds"), report.pop("outputs")
    if "carved" in report:  # carved files lie in each scan's own folder
        report["carved"] = [Path(f).name for f in report["carved"]]
    for inc in report["incidents"]:
        if inc.get("carved"):
            inc["carved"]["file"] = Path(inc["carved"]["file"]).name
    return flows, verdicts, report


def same_as_default(paths: tuple[Path, ...], tmp: Path, **kw: object) -> None:
    local = run_scan(ScanConfig(paths=paths, out=tmp / "local", device="cpu", **kw))  # type: ignore[arg-type]
    ray_ = run_scan(ScanConfig(paths=paths, out=tmp / "ray", device="cpu", engine="ray", chunk_flows=400, **kw))  # type: ignore[arg-type]
    a, b = outputs(local.out_dir), outputs(ray_.out_dir)
    assert b[0].equals(a[0]), "flows and features differ"
    assert b[1].equals(a[1]), "verdicts differ"
    assert b[2] == a[2], "reports differ"
    assert (tmp / "ray" / "verdicts.csv").read_bytes() == (tmp / "local" / "verdicts.csv").read_bytes()
    assert (tmp / "ray" / "alerts.ndjson").read_bytes() == (tmp / "local" / "alerts.ndjson").read_bytes()
    assert a[0]["uid"].null_count() == 0 and {"label", "confidence", "incident_id"} <= set(a[0].columns)


@pytest.fixture(scope="module")
def local_ray() -> Iterator[None]:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nta[ray]')")
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_samples_give_the_default_engines_outputs(local_ray: None, tmp_path: Path) -> None:
    names = ("demo-mixed.pcap", "syn-flood.pcap", "teardrop.pcap", "ftp-bruteforce.pcap", "fmt-vlan-qinq.pcap")
    same_as_default(tuple(SAMPLES / n for n in names), tmp_path)


def test_tunnels_filters_allow_zeek_and_carving(local_ray: None, tmp_path: Path) -> None:
    """Main's options hold on the Ray engine too: decapsulated tunnels (and --no-decap), the packet filter,
    --allow, the Zeek logs and the carved incidents are those of the default engine."""
    from features.capture.filter import PacketFilter

    tunnels = tuple(SAMPLES / n for n in ("tunnel-vxlan.pcap", "tunnel-gre-portscan.pcap", "tunnel-teredo.pcap"))
    same_as_default(tunnels, tmp_path / "decap")
    same_as_default(tunnels, tmp_path / "outer", decap=False)
    demo = (SAMPLES / "demo-mixed.pcap",)
    allow = tmp_path / "allow.txt"
    allow.write_text("10.0.0.20\n53/udp\n")
    narrowed = PacketFilter.build("2024-03-01T10:00:00Z", None, [], [22, 80, 53])
    same_as_default(demo, tmp_path / "options", packet_filter=narrowed, allow=allow, zeek="tsv", carve=True)
    for name in ("conn.log", "nta.log"):
        assert (tmp_path / "options" / "ray" / name).read_bytes() == (
            tmp_path / "options" / "local" / name
        ).read_bytes()
    carved = [sorted((tmp_path / "options" / e / "incidents").iterdir()) for e in ("local", "ray")]
    assert carved[0] and [p.read_bytes() for p in carved[1]] == [p.read_bytes() for p in carved[0]]


def test_a_rotated_capture_and_merged_sensors(local_ray: None, tmp_path: Path) -> None:
    header, recs = pcap_records(SAMPLES / "demo-mixed.pcap")
    size = -(-len(recs) // 10)
    write_pieces(
        tmp_path / "ring", header, [[r for _, r in recs[i : i + size]] for i in range(0, len(recs), size)], "x"
    )
    same_as_default((tmp_path / "ring",), tmp_path / "rotated")
    same_as_default(tuple(sensors(tmp_path / "sensors")), tmp_path / "merged", merge=True)
    # kept apart, the two sensors' records interleave in window order: two sessions, each its own positions
    same_as_default(tuple(sensors(tmp_path / "sensors")), tmp_path / "apart")
    # a capture a day after another: two sessions, whose windows the Ray engine keeps apart as well
    later = shifted(SAMPLES / "syn-flood.pcap", tmp_path / "next-day.pcap", 86_400)
    same_as_default((SAMPLES / "demo-mixed.pcap", later), tmp_path / "sessions")


def test_a_two_node_cluster(tmp_path: Path) -> None:
    ray = pytest.importorskip("ray", reason="Ray is not installed (pip install 'nta[ray]')")
    from ray.cluster_utils import Cluster

    if ray.is_initialized():
        ray.shutdown()
    cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1})
    cluster.add_node(num_cpus=1)
    try:
        ray.init(address=cluster.address, log_to_driver=False)
        assert len([n for n in ray.nodes() if n["Alive"]]) == 2
        same_as_default((SAMPLES / "demo-mixed.pcap", SAMPLES / "udp-flood.pcap"), tmp_path)
    finally:
        ray.shutdown()
        cluster.shutdown()


def test_without_ray_the_engine_is_one_line_and_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "ray", None)  # import ray fails
    res = CliRunner().invoke(app, ["scan", str(SAMPLES / "land.pcap"), "-o", str(tmp_path / "o"), "--engine", "ray"])
    assert res.exit_code == 2 and not (tmp_path / "o").exists()
    assert res.stderr.strip().splitlines() == [
        "nta: error: --engine ray needs Ray, an optional extra: pip install 'nta[ray]'"
    ]
    res = CliRunner().invoke(app, ["scan", str(SAMPLES / "land.pcap"), "-o", str(tmp_path / "o"), "--address", "x:1"])
    assert res.exit_code == 2 and "--address: only with --engine ray" in res.stderr


def test_size_guards_hold_on_the_workers(local_ray: None, tmp_path: Path) -> None:
    """--max-bytes and --max-inflate reach the Ray workers that read the files: the scan stops with the default
    engine's one line (not a remote traceback) and writes nothing."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "capture"))
    from test_limits import zero_bomb  # the same bomb as the default engine's test

    from features.capture.stream import ReadLimits
    from features.common import InputError

    demo = SAMPLES / "demo-mixed.pcap"
    cases = [
        (demo, ReadLimits(64 << 10, 0), rf"{demo}: more than 64 KiB of capture data \(an endless stream\?\)"),
        (zero_bomb(tmp_path / "bomb.pcap.gz", 80), ReadLimits(), r"bomb.pcap.gz: gzip inflates more than 100x"),
    ]
    for path, limits, message in cases:
        for engine in ("local", "ray"):
            out = tmp_path / f"out-{engine}"
            with pytest.raises(InputError, match=message) as e:
                run_scan(ScanConfig(paths=(path,), out=out, device="cpu", engine=engine, limits=limits))
            assert "\n" not in str(e.value) and not out.exists()
