"""`nta study pca` end to end: NSL-KDD slice, labelled and unlabelled features Parquet, errors, no matplotlib."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer import plots
from analyzer.cli import app

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PNG = b"\x89PNG\r\n\x1a\n"


def need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"needs {p} (../shared beside the checkout), which is missing")
    return p


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["study", "pca", *args])
    return res.exit_code, res.stdout, res.stderr


def test_pca_on_an_nslkdd_slice(tmp_path: Path) -> None:
    src = need(SHARED / "data" / "nsl-kdd" / "KDDTrain+_20Percent.txt")
    lines = src.read_bytes().splitlines(keepends=True)[:2000]
    data = tmp_path / "slice.txt"
    data.write_bytes(b"".join(lines))
    code, out, err = _run("--data", str(data), "-o", str(tmp_path / "out"), "--sample", "1500")
    assert code == 0, err
    table = pl.read_csv(tmp_path / "out" / "pca_separability.csv")
    assert table.height == 8 and set(table["task"]) == {"normal-vs-attack", "5-class"}
    assert (table["rows"] == 1500).all()
    # Real NSL-KDD rows are far from random in 2-D under every variant (majority class is ~53%).
    assert (table["knn_accuracy"] > table["majority_accuracy"] + 0.2).all()
    assert "Separability" in out and "Paper's claim" in out
    points = pl.read_csv(tmp_path / "out" / "pca_points.csv")
    assert points.height == 1500 and points.columns[0] == "label5"
    if plots.available():
        for name in ("pca_binary.png", "pca_classes.png"):
            png = (tmp_path / "out" / name).read_bytes()
            assert png.startswith(PNG) and len(png) < 200_000


def test_pca_on_a_labelled_features_parquet(tmp_path: Path, kdd_parquet: Path) -> None:
    code, _, err = _run("--data", str(kdd_parquet), "-o", str(tmp_path / "o"), "--features", "capture")
    assert code == 0, err
    table = pl.read_csv(tmp_path / "o" / "pca_separability.csv")
    worst = table["knn_accuracy"].min()
    assert (table["rows"] == 600).all() and isinstance(worst, int | float) and worst > 0.8


def test_pca_on_an_unlabelled_capture_parquet_only_plots(tmp_path: Path, kdd_frame: pl.DataFrame) -> None:
    p = tmp_path / "capture.parquet"
    kdd_frame.drop("label").write_parquet(p)
    code, _, err = _run("--data", str(p), "-o", str(tmp_path / "o"))
    assert code == 0, err
    assert "no label column" in err
    table = pl.read_csv(tmp_path / "o" / "pca_separability.csv")
    assert table["task"].to_list() == ["unlabelled"] * 4 and "knn_accuracy" not in table.columns
    if plots.available():
        assert (tmp_path / "o" / "pca_binary.png").read_bytes().startswith(PNG)
        assert not (tmp_path / "o" / "pca_classes.png").exists()


def test_pca_without_matplotlib_still_writes_csvs(
    tmp_path: Path, kdd_parquet: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(plots, "available", lambda: False)
    code, _, err = _run("--data", str(kdd_parquet), "-o", str(tmp_path / "o"))
    assert code == 0, err
    assert "pip install '.[plots]'" in err
    assert (tmp_path / "o" / "pca_separability.csv").exists() and not list((tmp_path / "o").glob("*.png"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--features", "most"], "--features must be one of capture, full"),
        (["--sample", "-1"], "--sample must be >= 0"),
    ],
)
def test_pca_usage_errors_are_one_line(tmp_path: Path, kdd_parquet: Path, args: list[str], message: str) -> None:
    code, _, err = _run("--data", str(kdd_parquet), "-o", str(tmp_path / "o"), *args)
    assert code == 2 and message in err and err.count("\n") == 1


def test_pca_on_a_non_kdd_file_names_it(tmp_path: Path) -> None:
    bad = tmp_path / "notes.txt"
    bad.write_text("hello,world\n")
    code, _, err = _run("--data", str(bad), "-o", str(tmp_path / "o"))
    assert code == 2 and "notes.txt" in err and err.count("\n") == 1


def test_pca_on_features_extracted_from_a_real_capture(tmp_path: Path) -> None:
    pcap = Path(__file__).resolve().parents[2] / "sample_pcaps" / "demo-mixed.pcap"
    if not pcap.exists():
        pytest.skip(f"needs {pcap}")
    parquet = tmp_path / "demo.parquet"
    res = CliRunner().invoke(app, ["features", str(pcap), "-o", str(parquet), "--quiet"])
    assert res.exit_code == 0, res.stderr
    # Unlabelled, as `nta features` writes it: projection only.
    code, _, err = _run("--data", str(parquet), "-o", str(tmp_path / "u"), "--features", "capture")
    assert code == 0 and "no label column" in err, err
    # Labelled from how the capture was made (docs/results/label_demo_mixed.py's rules): scores appear.
    df = pl.read_parquet(parquet)
    scanner = pl.col("orig_h") == "192.168.56.66"
    flood = (
        (pl.col("resp_h") == "10.0.0.10")
        & pl.col("flag").is_in(["S0", "S1"])
        & ~pl.col("orig_h").str.starts_with("10.")
    )
    label = pl.when(scanner).then(pl.lit("Probe")).when(flood).then(pl.lit("DoS")).otherwise(pl.lit("normal"))
    df.with_columns(label.alias("label")).write_parquet(tmp_path / "labelled.parquet")
    code, _, err = _run(
        "--data", str(tmp_path / "labelled.parquet"), "-o", str(tmp_path / "l"), "--features", "capture"
    )
    assert code == 0, err
    table = pl.read_csv(tmp_path / "l" / "pca_separability.csv")
    mm = table.filter((pl.col("variant") == "one-hot + min-max") & (pl.col("task") == "normal-vs-attack"))
    assert mm["rows"][0] > 500 and mm["knn_accuracy"][0] > 0.95


def test_pca_on_too_few_labelled_rows_is_a_usage_error(tmp_path: Path, kdd_frame: pl.DataFrame) -> None:
    p = tmp_path / "three.parquet"
    kdd_frame.head(3).write_parquet(p)
    code, _, err = _run("--data", str(p), "-o", str(tmp_path / "o"))
    assert code == 2 and "3 labelled row(s)" in err and err.count("\n") == 2  # the row-count note, then the error
