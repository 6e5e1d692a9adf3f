"""model.novelty: the normal-profile gate's arithmetic, its fit, and its trip through a model folder."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from safetensors.torch import load_file, save_file

from features.common import ModelError
from model.artifacts import METADATA, WEIGHTS, _sha256
from model.evaluate import evaluate
from model.infer import Classifier
from model.novelty import (
    NormalProfile,
    fit_class_gaussians,
    fit_profile,
    kmeans,
    last_linear,
    nearest_class,
    representations,
)
from model.train import TrainResult, train_model


def _unit_profile(threshold: float = 4.0) -> NormalProfile:
    return NormalProfile(centres=np.zeros((1, 2)), precision=np.eye(2), threshold=threshold, quantile=0.99)


def test_distance_is_the_squared_mahalanobis_distance() -> None:
    prof = NormalProfile(centres=np.array([[1.0, 0.0]]), precision=np.diag([1.0, 0.25]), threshold=1.0, quantile=0.9)
    z = np.array([[1.0, 0.0], [2.0, 0.0], [1.0, 2.0], [3.0, 4.0]])
    np.testing.assert_allclose(prof.distance(z), [0.0, 1.0, 1.0, 4.0 + 4.0])


@pytest.mark.parametrize(
    ("proba", "z", "want_pred", "want_novel"),
    [
        ([0.9, 0.05, 0.03, 0.01, 0.01], [0.0, 0.0], 0, False),  # normal, close to the profile: kept
        ([0.9, 0.02, 0.05, 0.02, 0.01], [3.0, 0.0], 2, True),  # normal but far (9 > 4): best attack, Probe
        ([0.6, 0.01, 0.01, 0.37, 0.01], [0.0, 2.5], 3, True),  # far: R2L, its most probable attack class
        ([0.2, 0.7, 0.05, 0.03, 0.02], [5.0, 5.0], 1, False),  # already an attack: the gate never touches it
        ([0.9, 0.02, 0.05, 0.02, 0.01], [2.0, 0.0], 0, False),  # exactly at the threshold (4): not novel
    ],
)
def test_gate_relabels_only_far_rows_predicted_normal(
    proba: list[float], z: list[float], want_pred: int, want_novel: bool
) -> None:
    pred, novel = _unit_profile().gate(np.array([proba]), np.array([z]))
    assert (int(pred[0]), bool(novel[0])) == (want_pred, want_novel)


def test_fit_flags_about_the_quantile_of_unseen_normal_rows_and_the_outliers() -> None:
    rng = np.random.default_rng(0)
    cov = np.array([[2.0, 0.8, 0.0], [0.8, 1.0, 0.0], [0.0, 0.0, 0.5]])
    normal = rng.multivariate_normal([1.0, -1.0, 0.0], cov, size=30_000)
    prof = fit_profile(normal[:20_000], normal[20_000:25_000], quantile=0.99)
    assert prof.quantile == 0.99
    np.testing.assert_allclose(prof.centres[0], [1.0, -1.0, 0.0], atol=0.05)
    assert 0.005 < float((prof.distance(normal[25_000:]) > prof.threshold).mean()) < 0.02  # fresh normal rows: ~1%
    far = rng.multivariate_normal([6.0, -6.0, 3.0], cov, size=200)
    assert (prof.distance(far) > prof.threshold).mean() > 0.99


def _blobs(rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Four well-separated round clusters in 3-D: rows (n, 3), their cluster (n,)."""
    centres = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    which = rng.integers(4, size=n)
    return centres[which] + rng.normal(size=(n, 3)), which


def test_kmeans_finds_separated_clusters_and_is_deterministic() -> None:
    z, which = _blobs(np.random.default_rng(1), 4000)
    centres, assign = kmeans(z, 4, seed=0)
    again, _ = kmeans(z, 4, seed=0)
    np.testing.assert_array_equal(centres, again)
    # each found cluster is one true cluster (a bijection), its centre within 0.1 of the truth
    pairs = {(int(a), int(w)) for a, w in zip(assign, which, strict=True)}
    assert len(pairs) == 4 and len({a for a, _ in pairs}) == 4
    truth = np.array([[0.0, 0.0, 0.0], [10.0, 0.0, 0.0], [0.0, 10.0, 0.0], [0.0, 0.0, 10.0]])
    for a, w in pairs:
        assert np.abs(centres[a] - truth[w]).max() < 0.1
    assert kmeans(z[:3], 8)[0].shape == (3, 3)  # never more centres than rows


def test_clustered_distance_is_the_distance_to_the_nearest_centre() -> None:
    rng = np.random.default_rng(2)
    z, _ = _blobs(rng, 3000)
    prof = fit_profile(z[:2000], z[2000:2500], quantile=0.95, clusters=4)
    assert prof.clusters == 4 and prof.dims == 3
    probe = rng.normal(scale=6.0, size=(300, 3))
    brute = np.min(
        [np.einsum("ij,ij->i", (probe - c) @ prof.precision, probe - c) for c in prof.centres], axis=0
    )  # (300,)
    np.testing.assert_allclose(prof.distance(probe), brute, rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("clusters", [1, 4])
def test_distance_in_chunks_equals_one_pass(clusters: int, monkeypatch: pytest.MonkeyPatch) -> None:
    import model.novelty as nov

    z, _ = _blobs(np.random.default_rng(5), 1000)
    prof = fit_profile(z[:800], z[800:], quantile=0.9, clusters=clusters)
    whole = prof.distance(z)  # 1000 rows < CHUNK_ROWS: one chunk
    monkeypatch.setattr(nov, "CHUNK_ROWS", 7)  # 142 full chunks and a ragged one of 6
    np.testing.assert_allclose(prof.distance(z), whole, rtol=1e-12)
    assert prof.distance(z[:0]).shape == (0,)


def test_clusters_catch_what_one_gaussian_lets_through() -> None:
    """Normal rows in four clumps: the hole between them is inside one Gaussian's hull, far from every clump."""
    rng = np.random.default_rng(3)
    z, _ = _blobs(rng, 30_000)
    hole = np.array([[5.0, 5.0, 0.0]]) + rng.normal(scale=0.3, size=(500, 3))  # between two clumps
    one = fit_profile(z[:20_000], z[20_000:25_000], quantile=0.99)
    four = fit_profile(z[:20_000], z[20_000:25_000], quantile=0.99, clusters=4)
    assert (one.distance(hole) > one.threshold).mean() < 0.05
    assert (four.distance(hole) > four.threshold).mean() > 0.99
    fresh = z[25_000:]
    assert 0.005 < float((four.distance(fresh) > four.threshold).mean()) < 0.02


def test_profile_tensors_round_trip_one_and_several_centres() -> None:
    z, _ = _blobs(np.random.default_rng(4), 2000)
    for k, mean_shape in ((1, (3,)), (4, (4, 3))):
        prof = fit_profile(z[:1500], z[1500:], quantile=0.9, clusters=k)
        t = prof.to_tensors()
        assert tuple(t["novelty.mean"].shape) == mean_shape  # one centre: the (D,) layout of older model files
        back = NormalProfile.from_tensors(t, "w")
        np.testing.assert_array_equal(back.centres, prof.centres)
        np.testing.assert_array_equal(back.distance(z), prof.distance(z))


def test_fit_needs_rows_in_both_splits() -> None:
    with pytest.raises(ValueError, match="need normal rows"):
        fit_profile(np.zeros((1, 3)), np.zeros((5, 3)))


@pytest.fixture
def trained(synthetic_df: pl.DataFrame, tiny_cfg: Any) -> TrainResult:
    return train_model(synthetic_df, replace(tiny_cfg, epochs=2))


def test_class_gaussians_recover_the_class_of_fresh_rows() -> None:
    """Three classes with one shared, strongly correlated covariance: the tied-covariance Mahalanobis
    nearest mean recovers the class of fresh rows, where the plain Euclidean nearest mean often fails."""
    rng = np.random.default_rng(0)
    mix = np.array([[3.0, 0.0], [2.9, 0.2]])  # correlated, thin along one axis
    centres = np.array([[0.0, 0.0], [1.0, -1.0], [-1.0, 1.0]])
    y = np.repeat(np.arange(3), 2000)
    z = centres[y] + rng.normal(size=(len(y), 2)) @ mix
    means, prec = fit_class_gaussians(z, y, 4)  # class 3 has no rows
    assert np.isnan(means[3]).all() and np.allclose(means[:3], centres, atol=0.15)
    y2 = np.repeat(np.arange(3), 500)
    z2 = centres[y2] + rng.normal(size=(len(y2), 2)) @ mix
    got = nearest_class(z2, means, prec, np.ones(4, dtype=bool))
    euclid = np.linalg.norm(z2[:, None, :] - centres[None], axis=2).argmin(1)
    assert (got == y2).mean() > 0.95 > 0.7 > (euclid == y2).mean()
    assert not (got == 3).any()  # a class without rows is never chosen
    only_12 = nearest_class(z2, means, prec, np.array([False, True, True, False]))
    assert set(np.unique(only_12)) <= {1, 2} and (only_12[y2 == 1] == 1).mean() > 0.95


def test_training_fits_a_profile_on_the_heads_input(trained: TrainResult) -> None:
    prof = trained.novelty
    assert prof is not None and prof.quantile == 0.99 and np.isfinite(prof.threshold)
    assert prof.dims == last_linear(trained.net).in_features == trained.net_config.channels * trained.net_config.seq_len


def test_profile_round_trips_through_the_model_folder(
    trained: TrainResult, tmp_path: Path, synthetic_df: pl.DataFrame
) -> None:
    d = tmp_path / "m"
    trained.save(d)
    clf = Classifier.load(d, device="cpu")
    assert clf.novelty is not None and trained.novelty is not None
    np.testing.assert_array_equal(clf.novelty.centres, trained.novelty.centres)
    np.testing.assert_array_equal(clf.novelty.precision, trained.novelty.precision)
    assert clf.novelty.threshold == trained.novelty.threshold
    meta = json.loads((d / METADATA).read_text())
    assert meta["novelty"]["dims"] == clf.novelty.dims and meta["novelty"]["quantile"] == 0.99
    x, _ = clf.encode(synthetic_df)
    pred, proba, novel = clf.predict_gated(x)
    p_mem, z_mem = representations(trained.net, x)
    want_pred, want_novel = trained.novelty.gate(p_mem, z_mem)
    np.testing.assert_array_equal(pred, want_pred)
    np.testing.assert_array_equal(novel, want_novel)
    # the plain and the gated paths are one forward pass: same probabilities, same class where not novel
    np.testing.assert_array_equal(proba, clf.predict_proba(x))
    np.testing.assert_array_equal(pred[~novel], proba.argmax(1)[~novel])
    res = evaluate(clf, synthetic_df)
    assert res["novelty_gate"]["flagged"] == int(novel.sum())
    assert res["novelty_gate"]["multiclass"]["n"] == 400


def _rewrite_weights(d: Path, change: Any) -> None:
    """Edit the tensors and record the new sha256, as a careless tool would (the hash check alone passes)."""
    tensors = load_file(str(d / WEIGHTS))
    change(tensors)
    save_file(tensors, str(d / WEIGHTS), metadata={"format": "pt"})
    meta = json.loads((d / METADATA).read_text())
    (d / METADATA).write_text(json.dumps({**meta, "weights_sha256": _sha256(d / WEIGHTS)}))


def test_a_profile_that_does_not_fit_the_network_is_refused(trained: TrainResult, tmp_path: Path) -> None:
    d = tmp_path / "m"
    trained.save(d)
    _rewrite_weights(d, lambda t: t.update({"novelty.mean": t["novelty.mean"][:-1]}))
    with pytest.raises(ModelError, match=r"novelty profile shapes"):
        Classifier.load(d, device="cpu")
    _rewrite_weights(d, lambda t: t.pop("novelty.threshold"))
    with pytest.raises(ModelError, match=r"novelty profile lacks novelty\.threshold"):
        Classifier.load(d, device="cpu")


def test_a_model_without_a_profile_loads_and_says_so(
    trained: TrainResult, tmp_path: Path, synthetic_df: pl.DataFrame
) -> None:
    d = tmp_path / "m"
    replace(trained, novelty=None).save(d)
    clf = Classifier.load(d, device="cpu")
    assert clf.novelty is None and json.loads((d / METADATA).read_text())["novelty"] is None
    assert "novelty_gate" not in evaluate(clf, synthetic_df)
    with pytest.raises(ModelError, match="has no novelty profile"):
        clf.predict_gated(clf.encode(synthetic_df)[0])
