"""``nta features``: Parquet (identity + 41) and NSL-KDD text outputs, atomic, refusing to overwrite.

The flow builder is replaced by a stub returning a hand-built flow table, so these tests exercise the
command itself whatever state features.flows.extract is in.
"""

from __future__ import annotations

import sys
import types
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

import features
from analyzer.cli import app
from features.kdd.columns import KDD_FEATURES
from features.kdd.frame import IDENTITY_COLUMNS

SAMPLE = Path(__file__).resolve().parents[2] / "sample_pcaps" / "land.pcap"


@pytest.fixture
def stub_extract(monkeypatch: pytest.MonkeyPatch, flow: Any, flows_table: Any) -> None:
    table = flows_table([flow(0), flow(0.5, conn_state="S0", resp_p=6000), flow(1, proto="gre")])

    def extract_flows(paths: list[Path], progress: Any = None, **_: Any) -> Any:
        return types.SimpleNamespace(
            flows=table, payloads=None, warnings=["stub warning"], bad_packets={}, service_hints=None, stream_ids=None
        )

    mod = types.ModuleType("features.flows.extract")
    mod.extract_flows = extract_flows  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "features.flows.extract", mod)
    monkeypatch.setattr(features, "extract", mod, raising=False)


def test_parquet_output(stub_extract: None, need: Any, tmp_path: Path) -> None:
    out = tmp_path / "kdd.parquet"
    res = CliRunner().invoke(app, ["features", str(need(SAMPLE)), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    df = pl.read_parquet(out)
    assert df.columns == [*IDENTITY_COLUMNS, *KDD_FEATURES] and df.height == 3
    assert df["service"].to_list() == ["http", "X11", "other"]
    assert list(tmp_path.iterdir()) == [out]  # no temporary file left behind


def test_nslkdd_output(stub_extract: None, need: Any, tmp_path: Path) -> None:
    out = tmp_path / "kdd.txt"
    res = CliRunner().invoke(app, ["features", str(need(SAMPLE)), "-o", str(out), "--format", "nsl-kdd"])
    assert res.exit_code == 0, res.output
    lines = out.read_text().splitlines()
    assert len(lines) == 2 and all(len(line.split(",")) == 41 for line in lines)
    assert lines[1].split(",")[1:4] == ["tcp", "X11", "S0"]
    assert "1 flows of other IP protocols left out" in res.output


def test_refuses_to_overwrite(stub_extract: None, need: Any, tmp_path: Path) -> None:
    out = tmp_path / "kdd.parquet"
    out.write_text("keep me")
    res = CliRunner().invoke(app, ["features", str(need(SAMPLE)), "-o", str(out)])
    assert res.exit_code == 2 and "--force" in res.output
    assert out.read_text() == "keep me"
    res = CliRunner().invoke(app, ["features", str(need(SAMPLE)), "-o", str(out), "--force", "-q"])
    assert res.exit_code == 0 and pl.read_parquet(out).height == 3


def test_not_a_capture_is_exit_2(stub_extract: None, tmp_path: Path) -> None:
    bogus = tmp_path / "notes.txt"
    bogus.write_text("hello")
    res = CliRunner().invoke(app, ["features", str(bogus), "-o", str(tmp_path / "o.parquet")])
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert not (tmp_path / "o.parquet").exists()


def test_real_capture_to_nslkdd_text(need: Any, tmp_path: Path) -> None:
    """No stub: the flow builder, the features and the writer on land.pcap (one HTTP request, three land SYNs)."""
    out = tmp_path / "land.txt"
    res = CliRunner().invoke(app, ["features", str(need(SAMPLE)), "-o", str(out), "--format", "nsl-kdd", "-q"])
    assert res.exit_code == 0, res.output
    rows = [line.split(",") for line in out.read_text().splitlines()]
    land = [r for r in rows if r[KDD_FEATURES.index("land")] == "1"]
    assert land and all(r[1:4] == ["tcp", "netbios_ssn", "S0"] for r in land)
    assert any(r[2] == "http" and r[3] == "SF" for r in rows)


SAMPLES = SAMPLE.parent


def _features(args: list[str]) -> Any:
    return CliRunner().invoke(app, ["features", *args, "-q"])


def test_per_file_windows_equal_each_capture_alone(need: Any, tmp_path: Path) -> None:
    """--per-file: each capture's rows equal that capture's own extraction (windows never see the other)."""
    a, b = need(SAMPLES / "syn-portscan.pcap"), need(SAMPLES / "benign-web-dns-ssh.pcap")
    both, alone_a, alone_b = tmp_path / "both.parquet", tmp_path / "a.parquet", tmp_path / "b.parquet"
    assert _features([str(a), str(b), "-o", str(both), "--per-file"]).exit_code == 0
    assert _features([str(a), "-o", str(alone_a)]).exit_code == 0
    assert _features([str(b), "-o", str(alone_b)]).exit_code == 0
    got = pl.read_parquet(both)
    assert got.get_column("capture").unique(maintain_order=True).to_list() == [str(a), str(b)]
    for path, alone in ((a, alone_a), (b, alone_b)):
        part = got.filter(pl.col("capture") == str(path)).drop("capture")
        assert part.select(KDD_FEATURES).equals(pl.read_parquet(alone).select(KDD_FEATURES))


def test_label_makes_training_data(need: Any, tmp_path: Path) -> None:
    """--label normal: the Parquet reads back through read_labeled as normal rows, one per flow."""
    from features.kdd.nslkdd import read_labeled

    out = tmp_path / "known-good.parquet"
    res = _features([str(need(SAMPLES / "benign-web-dns-ssh.pcap")), "-o", str(out), "--label", "normal"])
    assert res.exit_code == 0, res.output
    df = read_labeled(out)
    assert df.height == pl.read_parquet(out).height > 0
    assert set(df.get_column("label5").to_list()) == {"normal"}
    res = _features([str(SAMPLES / "syn-portscan.pcap"), "-o", str(tmp_path / "s.parquet"), "--label", "portsweep"])
    assert res.exit_code == 0
    assert set(read_labeled(tmp_path / "s.parquet").get_column("label5").to_list()) == {"Probe"}


@pytest.mark.parametrize(
    ("extra", "needle"),
    [(["--label", "benign"], "not a class"), (["--label", "normal", "--format", "nsl-kdd"], "needs --format parquet")],
)
def test_bad_label_is_usage_error(need: Any, tmp_path: Path, extra: list[str], needle: str) -> None:
    out = tmp_path / "o.parquet"
    res = CliRunner().invoke(app, ["features", str(need(SAMPLE)), "-o", str(out), *extra])
    assert res.exit_code == 2
    assert needle in res.output
    assert not out.exists()
