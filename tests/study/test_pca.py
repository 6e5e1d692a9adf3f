"""PCA and k-NN separability (features/encode/pca.py): hand-checkable cases, then the study on KDD-shaped data."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.common import InputError
from features.encode.pca import (
    VARIANTS,
    knn_cv_score,
    knn_predict,
    pca_2d,
    read_study_frame,
    run_pca_study,
    stratified_folds,
)
from features.kdd.columns import ATTACK_CLASS, KDD_FEATURES


def test_pca_recovers_the_dominant_axes_and_variance_shares() -> None:
    rng = np.random.default_rng(1)
    # Variances 9, 4, 1 along three orthogonal (rotated) axes: shares 9/14 and 4/14.
    basis = np.linalg.qr(rng.normal(size=(3, 3)))[0]
    x = (rng.normal(size=(50_000, 3)) * [3.0, 2.0, 1.0]) @ basis.T + [5.0, -2.0, 7.0]
    p = pca_2d(x)
    assert p.z.shape == (50_000, 2)
    np.testing.assert_allclose(p.explained, [9 / 14, 4 / 14], atol=0.01)
    np.testing.assert_allclose(np.abs(p.components @ basis[:, :2]), np.eye(2), atol=0.02)
    # Coordinates are centred projections; largest |loading| is positive (deterministic sign).
    np.testing.assert_allclose(p.z.mean(axis=0), 0, atol=1e-9)
    for comp in p.components:
        assert comp[np.argmax(np.abs(comp))] > 0


def test_pca_of_constant_data_is_all_zero() -> None:
    p = pca_2d(np.ones((10, 4)))
    assert np.all(p.z == 0) and np.all(p.explained == 0)


def test_knn_votes_by_majority_and_breaks_ties_by_nearness() -> None:
    train = np.array([[0.0, 0.0], [1.0, 0.0], [10.0, 0.0], [11.0, 0.0], [12.0, 0.0]])
    y = np.array([0, 0, 1, 1, 1])
    test = np.array([[0.5, 0.0], [11.0, 1.0], [5.6, 0.0]])  # 5.6: nearest 10, 1, 11
    assert knn_predict(train, y, test, k=3).tolist() == [0, 1, 1]
    # k=4 at x=6.2: neighbours 10 (cls 1), 11 (cls 1), 1 (cls 0), 0 (cls 0) -> 2:2 tie; nearest is class 1.
    assert knn_predict(train, y, np.array([[6.2, 0.0]]), k=4).tolist() == [1]
    # ... and at x=4.8 the nearest is 1.0 (class 0).
    assert knn_predict(train, y, np.array([[4.8, 0.0]]), k=4).tolist() == [0]
    # Chunking does not change the answer.
    q = np.random.default_rng(0).uniform(-1, 13, size=(101, 2))
    np.testing.assert_array_equal(knn_predict(train, y, q, k=3, chunk=7), knn_predict(train, y, q, k=3))


def test_knn_distances_survive_huge_coordinates() -> None:
    # Unscaled byte counts: 1e9 offsets must not swamp unit distances.
    train = np.array([[1e9, 0.0], [1e9 + 1, 0.0], [1e9 + 3, 0.0]])
    y = np.array([0, 1, 1])
    assert knn_predict(train, y, np.array([[1e9 + 0.2, 0.0], [1e9 + 2.9, 0.0]]), k=1).tolist() == [0, 1]


def test_stratified_folds_spread_each_class_evenly() -> None:
    y = np.array([0] * 50 + [1] * 7)
    fold = stratified_folds(y, 5, seed=3)
    for cls, n in ((0, 50), (1, 7)):
        counts = np.bincount(fold[y == cls], minlength=5)
        assert counts.sum() == n and counts.max() - counts.min() <= 1


def test_knn_cv_separates_clusters_and_not_noise() -> None:
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 2000)
    clustered = rng.normal(size=(2000, 2)) * 0.3 + y[:, None] * 3.0
    s = knn_cv_score(clustered, y)
    assert s.accuracy > 0.99 and s.balanced_accuracy > 0.99
    noise = knn_cv_score(rng.normal(size=(2000, 2)), y)
    assert 0.4 < noise.accuracy < 0.6
    assert noise.majority == pytest.approx(np.bincount(y).max() / 2000)


def test_study_scores_every_variant_on_labelled_kdd_rows(kdd_frame: pl.DataFrame) -> None:
    df = kdd_frame.with_columns(pl.col("label").replace_strict(ATTACK_CLASS).alias("label5"))
    study = run_pca_study(df, labelled=True, sample=400, seed=0)
    assert study.rows_total == kdd_frame.height and study.label5 is not None and study.label5.shape == (400,)
    assert [r.variant.name for r in study.results] == [v.name for v in VARIANTS]
    for r in study.results:
        assert r.projection.z.shape == (400, 2) and r.binary is not None and r.five_class is not None
        assert 0 < r.projection.explained.sum() <= 1 + 1e-9
    # One-hot only is dominated by src_bytes and count (hundreds): most variance on PC1.
    assert study.results[0].projection.explained[0] > 0.85
    # The synthetic classes are well apart after min-max.
    assert study.results[2].binary is not None and study.results[2].binary.accuracy > 0.9


def test_read_study_frame_accepts_labelled_text_and_parquet(kdd_text: Path, kdd_parquet: Path) -> None:
    for path in (kdd_text, kdd_parquet):
        df, labelled = read_study_frame(path)
        assert labelled and df.height == 600 and "label5" in df.columns
        assert set(df.get_column("label5").unique()) == {"normal", "DoS", "Probe", "R2L", "U2R"}


def test_read_study_frame_accepts_unlabelled_parquet_for_plot_only(tmp_path: Path, kdd_frame: pl.DataFrame) -> None:
    p = tmp_path / "capture.parquet"
    kdd_frame.drop("label").write_parquet(p)
    df, labelled = read_study_frame(p)
    assert not labelled and df.columns == list(KDD_FEATURES)
    study = run_pca_study(df, labelled=False, sample=0)
    assert study.label5 is None and all(r.binary is None and r.five_class is None for r in study.results)


def test_read_study_frame_names_missing_columns(tmp_path: Path, kdd_frame: pl.DataFrame) -> None:
    p = tmp_path / "bad.parquet"
    kdd_frame.drop("label", "src_bytes").write_parquet(p)
    with pytest.raises(InputError, match=r"bad\.parquet: missing feature column\(s\): src_bytes"):
        read_study_frame(p)
