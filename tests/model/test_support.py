"""model.support: the support gate's rule, its fit, its trip through a model folder, and ``nta fit-support``."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from features.common import ModelError
from model.artifacts import METADATA, WEIGHTS, load_model, save_model
from model.evaluate import evaluate
from model.infer import Classifier
from model.support import SupportProfile, fit_support


@pytest.fixture
def tiny_train(synthetic_df: pl.DataFrame) -> pl.DataFrame:
    return synthetic_df


@pytest.fixture
def tiny_train_file(synthetic_df: pl.DataFrame, tmp_path: Path) -> Path:
    p = tmp_path / "train.parquet"
    synthetic_df.write_parquet(p)
    return p


@pytest.fixture
def tiny_model(tiny_train_file: Path, tmp_path: Path) -> Path:
    """A model trained by ``nta train`` (2 epochs): it fits the support gate itself."""
    out = tmp_path / "model"
    args = ["train", "--data", str(tiny_train_file), "-o", str(out), "--features", "full", "--epochs", "2"]
    r = CliRunner().invoke(app, [*args, "--depth", "2", "-q"])
    assert r.exit_code == 0, r.output
    return out


# Two classes on a line: normal's centre at 0 (radius 1), DoS's at 10 (radius 1); 3 classes, the third without rows.
LINE = SupportProfile(
    centres=np.array([[0.0], [10.0]]), owner=np.array([0, 1]), radius=np.array([1.0, 1.0, 0.0]), quantile=0.99
)


@pytest.mark.parametrize(
    ("x", "pred", "off"),
    [
        (0.5, 1, True),  # called DoS, inside normal's support, far outside DoS's: set to normal
        (9.5, 1, False),  # called DoS inside DoS's support: stands
        (0.5, 0, False),  # called normal: the gate never touches it
        (3.0, 1, False),  # outside both supports: nothing is known there, the network's verdict stands
        (1.0, 1, True),  # exactly at normal's radius counts as inside it
        (0.2, 2, True),  # a class with no training rows has no support anywhere
    ],
)
def test_the_rule(x: float, pred: int, off: bool) -> None:
    assert bool(LINE.unsupported(np.array([pred]), np.array([[x]]))[0]) is off


def test_a_value_no_normal_row_shows_keeps_the_verdict() -> None:
    # version 2: normal rows only ever had column 1 at 0; a row near normal's centre but with column 1 at 0.3
    # (say wrong_fragment) is not "near normal", so its attack verdict stands
    two = SupportProfile(
        np.array([[0.0, 0.0], [10.0, 0.0]]), np.array([0, 1]), np.array([1.0, 1.0]), 0.99,
        normal_lo=np.array([-1.0, 0.0]), normal_hi=np.array([1.0, 0.0]),
    )  # fmt: skip
    x = np.array([[0.5, 0.0], [0.5, 0.3], [-1.0, 0.0]])
    assert two.unsupported(np.array([1, 1, 1]), x).tolist() == [True, False, True]  # the range's ends count inside
    v1 = SupportProfile(two.centres, two.owner, two.radius, 0.99)  # no ranges: version 1's rule
    assert v1.unsupported(np.array([1, 1, 1]), x).tolist() == [True, True, True]


def test_nearer_to_the_class_than_to_normal_stands() -> None:
    # normal's radius is wide here: a row inside it but nearer to DoS's centre keeps its DoS verdict
    wide = SupportProfile(LINE.centres, LINE.owner, np.array([8.0, 1.0, 0.0]), 0.99)
    got = wide.unsupported(np.array([1, 1]), np.array([[7.0], [4.0]]))
    assert got.tolist() == [False, True]


def test_distances_are_to_the_nearest_centre_of_each_class() -> None:
    prof = SupportProfile(np.array([[0.0, 0.0], [3.0, 4.0], [6.0, 8.0]]), np.array([0, 1, 1]), np.ones(2), 0.99)
    np.testing.assert_allclose(prof.distances(np.array([[0.0, 0.0], [6.0, 8.0]])), [[0.0, 5.0], [10.0, 0.0]])


def _blobs(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = np.concatenate([rng.normal(0.0, 0.1, (400, 3)), rng.normal(1.0, 0.1, (300, 3))]).astype(np.float32)
    return x, np.repeat([0, 1], [400, 300])


def test_fit_puts_about_the_quantile_of_unseen_rows_inside_and_is_deterministic() -> None:
    x_tr, y_tr = _blobs(0)
    x_va, y_va = _blobs(1)
    prof = fit_support(x_tr, y_tr, x_va, y_va, 3, quantile=0.9, centres=8)
    again = fit_support(x_tr, y_tr, x_va, y_va, 3, quantile=0.9, centres=8)
    np.testing.assert_array_equal(prof.centres, again.centres)
    np.testing.assert_array_equal(prof.radius, again.radius)
    assert prof.owner.tolist() == [0] * 8 + [1] * 8 and prof.radius[2] == 0.0  # class 2: no rows, no support
    assert prof.normal_lo is not None and prof.normal_hi is not None
    np.testing.assert_array_equal(prof.normal_lo, x_tr[y_tr == 0].min(axis=0))
    np.testing.assert_array_equal(prof.normal_hi, x_tr[y_tr == 0].max(axis=0))
    d = prof.distances(x_va)
    inside = [(d[y_va == c, c] <= prof.radius[c]).mean() for c in (0, 1)]
    assert all(0.89 <= s <= 0.91 for s in inside)
    # a row between the blobs, called class 1, is outside both: it stands; one at normal's centre is set to normal
    assert prof.unsupported(np.array([1, 1]), np.array([[0.5] * 3, [0.0] * 3], np.float32)).tolist() == [False, True]


def test_tensors_round_trip_and_bad_ones_are_refused() -> None:
    back = SupportProfile.from_tensors(LINE.to_tensors(), "w", n_features=1, n_classes=3)
    for a, b in ((back.centres, LINE.centres), (back.owner, LINE.owner), (back.radius, LINE.radius)):
        np.testing.assert_array_equal(a, b)
    assert back.normal_lo is None and back.normal_hi is None  # a version-1 profile stays one
    ranged = replace(LINE, normal_lo=np.array([-0.5]), normal_hi=np.array([0.5]))
    back = SupportProfile.from_tensors(ranged.to_tensors(), "w", n_features=1, n_classes=3)
    assert back.normal_lo is not None and back.normal_hi is not None
    assert (back.normal_lo.tolist(), back.normal_hi.tolist()) == ([-0.5], [0.5])
    half = ranged.to_tensors()
    del half["support.normal_hi"]
    with pytest.raises(ModelError, match="without the other"):
        SupportProfile.from_tensors(half, "w", n_features=1, n_classes=3)
    t = LINE.to_tensors()
    with pytest.raises(ModelError, match="do not fit a network of 2 inputs"):
        SupportProfile.from_tensors(t, "w", n_features=2, n_classes=3)
    with pytest.raises(ModelError, match="4-class"):
        SupportProfile.from_tensors(t, "w", n_features=1, n_classes=4)
    t["support.radius"] = np.array([1.0, float("nan"), 0.0])
    with pytest.raises(ModelError, match="finite"):
        SupportProfile.from_tensors(t, "w", n_features=1, n_classes=3)
    del t["support.owner"]
    with pytest.raises(ModelError, match=r"lacks support\.owner"):
        SupportProfile.from_tensors(t, "w", n_features=1, n_classes=3)


def _model_with_support(tmp_path: Path, tiny_model: Path) -> tuple[Path, Classifier, SupportProfile]:
    clf = Classifier.load(tiny_model, device="cpu")
    f = clf.net_config.n_features
    # normal's support around the all-zero row, DoS's around the all-one row
    prof = SupportProfile(
        centres=np.stack([np.zeros(f), np.ones(f)]),
        owner=np.array([0, 1]),
        radius=np.array([0.5, 0.5] + [0.0] * (len(clf.classes) - 2)),
        quantile=0.99,
    )
    out = tmp_path / "m"
    save_model(out, clf.net, clf.net_config, clf.spec, clf.classes, dict(clf.metadata), clf.novelty, prof)
    return out, clf, prof


def test_a_model_folder_keeps_the_gate_and_the_classifier_applies_it(tmp_path: Path, tiny_model: Path) -> None:
    out, clf, prof = _model_with_support(tmp_path, tiny_model)
    meta = json.loads((out / METADATA).read_text())
    assert meta["support"] == {
        "centres": 2, "quantile": 0.99, "radius": [0.5, 0.5, 0.0, 0.0, 0.0], "normal_range": False,
    }  # fmt: skip
    assert meta["weights_sha256"] != clf.metadata["weights_sha256"]  # the gate is part of the model's id
    loaded = load_model(out)
    assert loaded.support is not None
    np.testing.assert_array_equal(loaded.support.centres, prof.centres)
    gated = Classifier.load(out, device="cpu")
    x = np.random.default_rng(0).random((64, clf.net_config.n_features), dtype=np.float32) * 0.05  # near zero
    pred, proba, off = gated.predict_supported(x)
    np.testing.assert_array_equal(proba, clf.predict_proba(x))  # the network itself is unchanged
    raw = proba.argmax(axis=1)
    np.testing.assert_array_equal(off, raw > 0)  # every attack call here sits on normal's centre
    np.testing.assert_array_equal(pred, np.where(off, 0, raw))
    # no profile: plain argmax, nothing unsupported
    p2, _, off2 = replace(clf, support=None).predict_supported(x)
    assert not off2.any() and np.array_equal(p2, raw)


def test_metadata_that_disagrees_with_the_tensors_is_refused(tmp_path: Path, tiny_model: Path) -> None:
    out, _, _ = _model_with_support(tmp_path, tiny_model)
    meta = json.loads((out / METADATA).read_text())
    meta["support"]["normal_range"] = True  # the tensors hold no ranges
    (out / METADATA).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="normal_range disagree"):
        load_model(out)
    del meta["support"]
    (out / METADATA).write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="says there is none"):
        load_model(out)


def test_evaluate_reports_the_gated_view(tmp_path: Path, tiny_model: Path, tiny_train: pl.DataFrame) -> None:
    out, _, _ = _model_with_support(tmp_path, tiny_model)
    res = evaluate(Classifier.load(out, device="cpu"), tiny_train)
    assert "support_gate" in res and res["support_gate"]["relabelled"] >= 0
    assert set(res["support_gate"]) >= {"multiclass", "binary", "relabelled"}


def test_fit_support_cli_needs_the_recorded_training_files(
    tmp_path: Path, tiny_model: Path, tiny_train_file: Path
) -> None:
    runner = CliRunner()
    model = tmp_path / "copy"
    model.mkdir()
    for name in (WEIGHTS, METADATA):
        (model / name).write_bytes((tiny_model / name).read_bytes())
    other = tmp_path / "other.parquet"
    pl.read_parquet(tiny_train_file).head(50).write_parquet(other)
    bad = runner.invoke(app, ["fit-support", str(model), "--data", str(other)])
    assert bad.exit_code == 2 and "recorded order" in bad.output
    assert (model / WEIGHTS).read_bytes() == (tiny_model / WEIGHTS).read_bytes()  # untouched
    ok = runner.invoke(app, ["fit-support", str(model), "--data", str(tiny_train_file)])
    assert ok.exit_code == 0, ok.output
    # the same split of the same rows: the profile nta train fitted, exactly
    fitted, trained = load_model(model).support, load_model(tiny_model).support
    assert fitted is not None and trained is not None and len(fitted.radius) == 5
    np.testing.assert_array_equal(fitted.centres, trained.centres)
    np.testing.assert_array_equal(fitted.radius, trained.radius)
    assert sorted(np.unique(fitted.owner).tolist()) == [0, 1, 2, 3, 4]  # centres for every class
