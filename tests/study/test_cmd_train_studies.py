"""`nta study depth` and `nta study compare` smoke tests: tiny slices, one epoch, one torch thread."""

from __future__ import annotations

import json
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer import plots
from analyzer.cli import app

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
PNG = b"\x89PNG\r\n\x1a\n"
FAST = ["--epochs", "1", "--threads", "1", "--batch-size", "128"]


def need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"needs {p} (../shared beside the checkout), which is missing")
    return p


def _run(*args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(app, ["study", *args])
    return res.exit_code, res.stdout, res.stderr


def _slice(src: Path, dst: Path, n: int) -> Path:
    dst.write_bytes(b"".join(src.read_bytes().splitlines(keepends=True)[:n]))
    return dst


def test_depth_on_nslkdd_slices(tmp_path: Path) -> None:
    kdd = SHARED / "data" / "nsl-kdd"
    train = _slice(need(kdd / "KDDTrain+_20Percent.txt"), tmp_path / "train.txt", 2000)
    test = _slice(need(kdd / "KDDTest+.txt"), tmp_path / "KDDTest+.txt", 500)
    out = tmp_path / "depth"
    code, stdout, err = _run("depth", "--data", str(train), "--test", str(test), "-o", str(out), *FAST)
    assert code == 0, err
    hist = pl.read_csv(out / "depth_history.csv")
    assert hist["model"].to_list() == ["MSMNet-5", "MSMRNet-5", "MSMNet-10", "MSMRNet-10"]
    assert (hist["train_loss"] > 0).all() and (hist["val_loss"] > 0).all()
    metrics = pl.read_csv(out / "depth_metrics.csv")
    assert metrics["test"].to_list() == ["KDDTest+"] * 4 and metrics["accuracy"].is_between(0, 1).all()
    verdict = (out / "depth_verdict.txt").read_text()
    assert "'Shortcuts speed convergence': our run" in verdict and verdict.strip() in stdout
    assert "KDDTest+ accuracy MSMNet-5" in verdict
    if plots.available():
        png = (out / "depth_loss.png").read_bytes()
        assert png.startswith(PNG) and len(png) < 200_000


def test_depth_and_compare_on_a_labelled_features_parquet(tmp_path: Path, kdd_parquet: Path) -> None:
    code, _, err = _run("depth", "--data", str(kdd_parquet), "-o", str(tmp_path / "d"), "--features", "capture", *FAST)
    assert code == 0, err
    assert "no --test data" in err and not (tmp_path / "d" / "depth_metrics.csv").exists()
    assert pl.read_csv(tmp_path / "d" / "depth_history.csv").height == 4
    config = json.loads((tmp_path / "d" / "depth_config.json").read_text())
    assert [r["depth"] for r in config["runs"]] == [5, 5, 10, 10] and config["torch_threads"] == 1

    out = tmp_path / "c"
    args = ["compare", "--data", str(kdd_parquet), "--test", str(kdd_parquet), "-o", str(out)]
    code, stdout, err = _run(*args, "--seeds", "2", "--models", "MSMRNet,MLP,CNN", "--patience", "3", *FAST)
    assert code == 0, err
    config = json.loads((out / "compare_config.json").read_text())
    assert {(r["arch"], r["seed"], r["patience"]) for r in config["runs"]} == {
        (a, s, 3) for a in ("msmrnet", "mlp", "cnn") for s in (0, 1)
    }
    runs = pl.read_csv(out / "compare_runs.csv")
    assert sorted(zip(runs["model"], runs["seed"], strict=True)) == sorted(
        (m, s) for m in ("MSMRNet", "MLP", "1-D CNN") for s in (0, 1)
    )
    summary = pl.read_csv(out / "compare_summary.csv")
    assert summary["model"].to_list() == ["MSMRNet", "MLP", "1-D CNN"] and (summary["seeds"] == 2).all()
    for col in ("accuracy", "macro_f1", "recall_U2R", "fpr_normal", "train_seconds"):
        assert f"{col}_mean" in summary.columns and f"{col}_std" in summary.columns
    assert "±" in stdout and "MSMRNet" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["compare", "--models", "MSMRNet,GPT"], "--models: unknown GPT"),
        (["compare", "--seeds", "0"], "--seeds must be >= 1"),
        (["compare", "--patience", "-1"], "--patience must be >= 0"),
        (["depth", "--features", "some"], "--features must be one of"),
        (["depth", "--threads", "-2"], "--threads must be >= 0"),
    ],
)
def test_usage_errors_are_one_line(tmp_path: Path, kdd_parquet: Path, args: list[str], message: str) -> None:
    code, _, err = _run(*args, "--data", str(kdd_parquet), "-o", str(tmp_path / "o"))
    assert code == 2 and message in err and err.count("\n") == 1, err


def test_unlabelled_training_data_is_refused(tmp_path: Path, kdd_frame: pl.DataFrame) -> None:
    p = tmp_path / "capture.parquet"
    kdd_frame.drop("label").write_parquet(p)
    code, _, err = _run("depth", "--data", str(p), "-o", str(tmp_path / "o"), *FAST)
    assert code == 2 and "capture.parquet: no label column" in err
