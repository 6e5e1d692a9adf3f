"""`nta train` and `nta evaluate` end to end on a small NSL-KDD file."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from safetensors.numpy import load_file
from typer.testing import CliRunner

from analyzer.cli import app
from model.infer import Classifier


def test_train_then_evaluate(synthetic_df: pl.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "train.parquet"
    synthetic_df.write_parquet(data)
    out = tmp_path / "model"
    runner = CliRunner()
    r = runner.invoke(
        app,
        ["train", "--data", str(data), "-o", str(out), "--features", "full", "--epochs", "2", "--depth", "2", "-q"],
    )
    assert r.exit_code == 0, r.output
    assert (out / "weights.safetensors").exists() and (out / "history.csv").exists()
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["train"]["data_sha256"] and meta["train"]["config"]["depth"] == 2 and meta["train"]["epochs_run"] == 2
    assert len(pl.read_csv(out / "history.csv")) == 2

    r = runner.invoke(app, ["train", "--data", str(data), "-o", str(out), "-q"])
    assert r.exit_code == 2 and "already holds a model" in r.output

    js = tmp_path / "m.json"
    r = runner.invoke(app, ["evaluate", str(out), "--data", str(data), "--json", str(js), "--record"])
    assert r.exit_code == 0, r.output
    assert "5-class: accuracy" in r.output and "binary (normal vs attack)" in r.output
    res = json.loads(js.read_text())
    assert res["multiclass"]["n"] == 400 and len(res["multiclass"]["confusion"]) == 5
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["metrics"]["test"]["train.parquet"]["multiclass"]["accuracy"] == res["multiclass"]["accuracy"]


def test_evaluate_missing_model_is_exit_3(tmp_path: Path, sample_file: Path) -> None:
    r = CliRunner().invoke(app, ["evaluate", str(tmp_path / "none"), "--data", str(sample_file)])
    assert r.exit_code == 3 and "no model directory" in r.output


def test_train_bad_data_is_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("not,nsl,kdd\n")
    r = CliRunner().invoke(app, ["train", "--data", str(bad), "-o", str(tmp_path / "m"), "-q"])
    assert r.exit_code == 2 and "bad.txt" in r.output


def test_train_on_several_files(synthetic_df: pl.DataFrame, tmp_path: Path) -> None:
    """Two --data files train on their rows together; each is recorded with its sha256 and row count."""
    from model.data import file_sha256

    a, b = tmp_path / "a.parquet", tmp_path / "b.parquet"
    synthetic_df.head(250).write_parquet(a)
    synthetic_df.slice(250).write_parquet(b)
    out = tmp_path / "model"
    args = ["train", "--data", str(a), "--data", str(b), "-o", str(out), "--features", "capture", "--epochs", "1"]
    r = CliRunner().invoke(app, [*args, "--depth", "1", "--no-https-as-http", "-q"])
    assert r.exit_code == 0, r.output
    train = json.loads((out / "metadata.json").read_text())["train"]
    assert train["rows"] == synthetic_df.height == train["rows_train"] + train["rows_val"]
    assert train["data_files"] == [
        {"file": "a.parquet", "sha256": file_sha256(a), "rows": 250},
        {"file": "b.parquet", "sha256": file_sha256(b), "rows": synthetic_df.height - 250},
    ]
    assert train["data"] == "a.parquet" and train["data_sha256"] == file_sha256(a)
    assert train["config"]["https_as_http"] is False


def test_novelty_quantile_sets_the_gate_threshold(synthetic_df: pl.DataFrame, tmp_path: Path) -> None:
    """Same seed and data, two quantiles: identical weights, a lower threshold for the lower quantile."""
    data = tmp_path / "train.parquet"
    synthetic_df.write_parquet(data)
    metas = {}
    for q in ("0.99", "0.9"):
        out = tmp_path / f"m{q}"
        args = ["train", "--data", str(data), "-o", str(out), "--epochs", "2", "--depth", "1", "-q"]
        r = CliRunner().invoke(app, [*args, "--novelty-quantile", q])
        assert r.exit_code == 0, r.output
        metas[q] = json.loads((out / "metadata.json").read_text())
    lo, hi = metas["0.9"], metas["0.99"]
    assert lo["novelty"]["quantile"] == 0.9 and hi["novelty"]["quantile"] == 0.99
    assert lo["train"]["config"]["novelty_quantile"] == 0.9
    assert lo["novelty"]["threshold"] < hi["novelty"]["threshold"]
    assert lo["weights_sha256"] != hi["weights_sha256"]  # the profile tensors are part of the weights file
    t_lo, t_hi = (load_file(tmp_path / f"m{q}" / "weights.safetensors") for q in ("0.9", "0.99"))
    net = [k for k in t_hi if not k.startswith("novelty.")]
    assert net and all(np.array_equal(t_lo[k], t_hi[k]) for k in net)
    assert not np.array_equal(t_lo["novelty.threshold"], t_hi["novelty.threshold"])
    r = CliRunner().invoke(app, ["train", "--data", str(data), "-o", str(tmp_path / "x"), "--novelty-quantile", "1"])
    assert r.exit_code == 2


def test_novelty_clusters_are_recorded_and_reloaded(synthetic_df: pl.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "train.parquet"
    synthetic_df.write_parquet(data)
    out = tmp_path / "m"
    args = ["train", "--data", str(data), "-o", str(out), "--epochs", "2", "--depth", "1", "-q"]
    r = CliRunner().invoke(app, [*args, "--novelty-clusters", "4"])
    assert r.exit_code == 0, r.output
    meta = json.loads((out / "metadata.json").read_text())
    assert meta["novelty"]["clusters"] == 4 and meta["train"]["config"]["novelty_clusters"] == 4
    assert load_file(out / "weights.safetensors")["novelty.mean"].shape[0] == 4
    clf = Classifier.load(out, device="cpu")
    assert clf.novelty is not None and clf.novelty.clusters == 4
    r = CliRunner().invoke(app, [*args, "--force", "--novelty-clusters", "0"])
    assert r.exit_code == 2


def test_train_on_a_missing_gpu_is_one_line_not_a_traceback(sample_file: Path, tmp_path: Path) -> None:
    import torch

    if torch.cuda.is_available():
        pytest.skip("CUDA is present: --device cuda would train there")
    out = tmp_path / "m"
    r = CliRunner().invoke(app, ["train", "--data", str(sample_file), "-o", str(out), "--device", "cuda", "-q"])
    assert r.exit_code == 3 and "CUDA is not available" in r.output and "Traceback" not in r.output
    assert not out.exists()


def test_train_distils_given_models_and_names_a_missing_one(synthetic_df: pl.DataFrame, tmp_path: Path) -> None:
    data = tmp_path / "train.parquet"
    synthetic_df.write_parquet(data)
    base = ["train", "--data", str(data), "--features", "full", "--epochs", "1", "--depth", "1", "-q"]
    runner = CliRunner()
    assert runner.invoke(app, [*base, "-o", str(tmp_path / "t")]).exit_code == 0
    teacher = Classifier.load(tmp_path / "t", device="cpu").model_id
    args = [*base, "-o", str(tmp_path / "s"), "--distill", str(tmp_path / "t"), "--distill-alpha", "0.8"]
    r = runner.invoke(app, args)
    assert r.exit_code == 0, r.output
    config = json.loads((tmp_path / "s" / "metadata.json").read_text())["train"]["config"]
    assert config["teachers"] == [teacher] and config["distill_alpha"] == 0.8 and config["distill_mix"] == 0.5
    r = runner.invoke(app, [*base, "-o", str(tmp_path / "x"), "--distill", str(tmp_path / "nope")])
    assert r.exit_code != 0 and "nope" in r.output and "Traceback" not in r.output
    assert not (tmp_path / "x").exists()
