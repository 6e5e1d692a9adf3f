"""Model folders: save/load gives identical logits; tampering and feature mismatches are refused."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from features.common import InputError, ModelError
from features.kdd.nslkdd import read_labeled
from model.artifacts import METADATA, WEIGHTS
from model.evaluate import evaluate
from model.infer import Classifier, default_model_dir
from model.train import TrainResult, train_model


@pytest.fixture
def trained(synthetic_df: pl.DataFrame, tiny_cfg: Any) -> TrainResult:
    return train_model(synthetic_df, replace(tiny_cfg, epochs=2))


@pytest.fixture
def saved(trained: TrainResult, tmp_path: Path) -> Path:
    d = tmp_path / "m"
    trained.save(d, extra={"note": "test"})
    return d


def test_save_load_identical_logits(trained: TrainResult, saved: Path, synthetic_df: pl.DataFrame) -> None:
    clf = Classifier.load(saved, device="cpu")
    x, _ = clf.encode(synthetic_df)
    with torch.inference_mode():
        want = trained.net.eval()(torch.from_numpy(x))
        got = clf.net(torch.from_numpy(x))
    assert torch.equal(want, got)
    np.testing.assert_allclose(clf.predict_proba(x, batch_size=7), torch.softmax(want, 1).numpy(), rtol=1e-5, atol=1e-7)
    meta = json.loads((saved / METADATA).read_text())
    assert meta["format_version"] == 1 and meta["note"] == "test" and meta["feature_set"] == "full"
    assert clf.model_id == meta["weights_sha256"][:12] and clf.feature_set == "full"
    assert (saved / "history.csv").read_text().startswith("epoch,train_loss,val_loss,val_acc,val_macro_f1")


def test_a_file_in_the_way_of_the_model_folder_is_one_line(trained: TrainResult, tmp_path: Path) -> None:
    (tmp_path / "models").write_bytes(b"")
    with pytest.raises(InputError, match=r"models/m/weights\.safetensors: .*\(.*/models: a file is in the way\)"):
        trained.save(tmp_path / "models" / "m")
    assert not list(tmp_path.glob("models*/**/*.tmp"))


def test_tampered_weights_refused(saved: Path) -> None:
    raw = bytearray((saved / WEIGHTS).read_bytes())
    raw[-5] ^= 0xFF
    (saved / WEIGHTS).write_bytes(bytes(raw))
    with pytest.raises(ModelError, match=r"weights\.safetensors: sha256 .* differs"):
        Classifier.load(saved, device="cpu")


def test_format_version_and_missing_files_refused(saved: Path, tmp_path: Path) -> None:
    meta = json.loads((saved / METADATA).read_text())
    (saved / METADATA).write_text(json.dumps({**meta, "format_version": 99}))
    with pytest.raises(ModelError, match="format version 99"):
        Classifier.load(saved)
    with pytest.raises(ModelError, match="no model directory"):
        Classifier.load(tmp_path / "nope")
    (saved / METADATA).unlink()
    with pytest.raises(ModelError, match=r"metadata\.json: missing"):
        Classifier.load(saved)


def test_spec_network_mismatch_refused(saved: Path) -> None:
    meta = json.loads((saved / METADATA).read_text())
    meta["feature_spec"]["columns"].remove("hot")
    del meta["feature_spec"]["stats"]["hot"]
    (saved / METADATA).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="feature spec has 124 columns, network expects 125"):
        Classifier.load(saved)


def test_check_columns_names_the_difference(saved: Path) -> None:
    clf = Classifier.load(saved, device="cpu")
    cols = clf.spec.encoded_columns
    clf.check_columns(cols)
    with pytest.raises(ModelError, match=r"missing \['hot'\]"):
        clf.check_columns([c for c in cols if c != "hot"])
    with pytest.raises(ModelError, match="other order"):
        clf.check_columns(cols[::-1])
    with pytest.raises(ModelError, match=r"expects \(n, 125\)"):
        clf.predict_proba(np.zeros((2, 124), dtype=np.float32))


def test_attribution_is_gradient_times_input(saved: Path, synthetic_df: pl.DataFrame) -> None:
    clf = Classifier.load(saved, device="cpu")
    x, _ = clf.encode(synthetic_df.head(3))
    a = clf.attribute(x, np.array([0, 1, 2]))
    assert a.shape == x.shape and a.dtype == np.float32
    assert np.all(a[x == 0] == 0)  # gradient x input vanishes where the input is 0
    t = torch.from_numpy(x[:1]).requires_grad_(True)
    clf.net(t)[0, 0].backward()
    assert t.grad is not None
    np.testing.assert_allclose(a[0], (t.grad * t).detach().numpy()[0], rtol=1e-5, atol=1e-7)


def test_evaluate_a_classifier(saved: Path, synthetic_df: pl.DataFrame) -> None:
    res = evaluate(Classifier.load(saved, device="cpu"), synthetic_df)
    assert res["multiclass"]["n"] == 400 and sum(map(sum, res["multiclass"]["confusion"])) == 400
    assert res["binary"]["classes"] == ["normal", "attack"]


def test_shipped_default_model_loads() -> None:
    d = default_model_dir()
    if not (d / METADATA).exists():
        pytest.skip(f"no shipped model at {d}")
    clf = Classifier.load(d, device="cpu")
    assert clf.feature_set == "capture" and clf.classes == ("normal", "DoS", "Probe", "R2L", "U2R")
    assert "hot" not in clf.spec.columns


@pytest.mark.parametrize("which", ["default", "default-full"])
def test_shipped_models_reproduce_their_recorded_test_figures(which: str, nslkdd_dir: Path) -> None:
    """docs/model.md's tables come from metadata.json's metrics.test: the shipped weights must still give them."""
    d = default_model_dir().parent / which
    clf = Classifier.load(d, device="cpu")
    recorded = json.loads((d / METADATA).read_text())["metrics"]["test"]["KDDTest+.txt"]
    got = evaluate(clf, read_labeled(nslkdd_dir / "KDDTest+.txt"))
    for view in ("multiclass", "binary"):
        assert got[view]["confusion"] == recorded[view]["confusion"]
        assert got["novelty_gate"][view]["confusion"] == recorded["novelty_gate"][view]["confusion"]
    assert got["novelty_gate"]["flagged"] == recorded["novelty_gate"]["flagged"]
