"""Training: a small seeded run overfits, the same seed gives the same weights, the split is stratified."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from features.common import InputError
from model.data import stratified_split
from model.train import HISTORY_COLUMNS, TrainConfig, class_weights, train_model


def test_small_seeded_run_overfits(synthetic_df: pl.DataFrame, tiny_cfg: Any) -> None:
    res = train_model(synthetic_df, tiny_cfg)
    losses = [r["train_loss"] for r in res.history]
    assert losses[-1] < 0.1 < losses[0]
    assert res.val_metrics["accuracy"] > 0.95
    assert list(res.history[0]) == list(HISTORY_COLUMNS)
    assert res.n_train + res.n_val == synthetic_df.height == 400


def test_same_seed_same_weights_other_seed_differs(synthetic_df: pl.DataFrame, tiny_cfg: Any) -> None:
    cfg = replace(tiny_cfg, epochs=2)
    a = train_model(synthetic_df, cfg).net.state_dict()
    b = train_model(synthetic_df, cfg).net.state_dict()
    c = train_model(synthetic_df, replace(cfg, seed=1)).net.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not all(torch.equal(a[k], c[k]) for k in a)


def test_binary_task_and_baseline_arch(synthetic_df: pl.DataFrame, tiny_cfg: Any) -> None:
    res = train_model(synthetic_df, replace(tiny_cfg, n_classes=2, arch="mlp", epochs=3, feature_set="capture"))
    assert res.classes == ("normal", "attack") and res.net_config.arch == "mlp"
    assert len(res.spec.encoded_columns) == res.net_config.n_features == 25 + 4 + 71 + 12


def test_stratified_split_holds_out_every_class() -> None:
    y = np.array([0] * 100 + [1] * 10 + [2] * 2)
    tr, va = stratified_split(y, 0.1, seed=3)
    assert sorted(np.concatenate([tr, va]).tolist()) == list(range(len(y)))
    assert np.bincount(y[va]).tolist() == [10, 1, 1]
    _, va2 = stratified_split(y, 0.1, seed=3)
    assert np.array_equal(va, va2)


def test_class_weights_sqrt_inverse_frequency() -> None:
    y = np.array([0] * 90 + [1] * 10)
    w = class_weights(y, 3)
    assert w[1] / w[0] == pytest.approx(3.0)  # sqrt(90 / 10)
    assert w[y].mean() == pytest.approx(1.0)


def test_unknown_arch_refused(synthetic_df: pl.DataFrame, tiny_cfg: Any) -> None:
    with pytest.raises(InputError, match="unknown architecture"):
        train_model(synthetic_df, replace(tiny_cfg, arch="transformer"))


def test_time_budget_stops_after_the_epoch_that_passes_it(synthetic_df: pl.DataFrame, tiny_cfg: Any) -> None:
    res = train_model(synthetic_df, replace(tiny_cfg, epochs=5, max_minutes=1e-9))
    assert len(res.history) == 1 and res.best_epoch == 1


def test_https_alias_default_and_off(synthetic_df: pl.DataFrame) -> None:
    """The capture spec encodes http_443 as http by default; https_as_http=False keeps it distinct."""
    small = synthetic_df.head(120)
    plain = train_model(small, TrainConfig(epochs=1, depth=1, feature_set="capture", https_as_http=False))
    aliased = train_model(small, TrainConfig(epochs=1, depth=1, feature_set="capture"))
    assert plain.spec.aliases == {}
    assert aliased.spec.aliases == {"service": {"http_443": "http"}}
