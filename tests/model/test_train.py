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


def test_tail_average_is_the_mean_of_the_last_epochs_with_fresh_batch_norm() -> None:
    """The averaged network's weights are the mean of the given epochs'; its batch-norm statistics are those of
    the training rows under the averaged weights (the stem's: the mean of its convolution's output); a worse
    validation loss than the best epoch's keeps the best epoch unchanged."""
    from torch import nn

    from model.network import MSMRNet, NetConfig
    from model.train import _tail_average

    torch.manual_seed(0)
    net = MSMRNet(NetConfig(n_features=40, n_classes=3, depth=2, patch=8, channels=8, branch_channels=4)).eval()
    states = []
    for _ in range(3):
        for p in net.parameters():
            p.data.add_(torch.randn_like(p) * 0.1)
        states.append({k: v.clone() for k, v in net.state_dict().items()})
    x_tr, x_va = torch.rand(256, 40), torch.rand(64, 40)  # (n, F)
    y_va = torch.randint(0, 3, (64,))
    loss_fn = nn.CrossEntropyLoss()
    avg, info = _tail_average(net, states, float("inf"), x_tr, x_va, y_va, loss_fn, batch_size=64)
    assert info["kept"] == "average" and avg is not net
    assert isinstance(avg, MSMRNet)  # a copy of ``net`` with the mean weights
    got = avg.state_dict()
    for k in ("stem.0.weight", "blocks.1.lstm.weight_hh_l0", "head.weight"):
        assert torch.allclose(got[k], torch.stack([s[k] for s in states]).mean(0))
    stem = avg.stem[0](nn.functional.pad(x_tr, (0, avg.pad)).unsqueeze(1))  # (n, C, L), before its batch norm
    assert torch.allclose(got["stem.1.running_mean"], stem.mean(dim=(0, 2)), atol=1e-5)
    assert not torch.allclose(got["stem.1.running_mean"], states[-1]["stem.1.running_mean"])
    kept, info = _tail_average(net, states, -1.0, x_tr, x_va, y_va, loss_fn, batch_size=64)
    assert kept is net and info["kept"] == "best" and info["val_loss"] > 0


def test_averaging_is_recorded_in_the_model_metadata(synthetic_df: pl.DataFrame, tiny_cfg: Any, tmp_path: Any) -> None:
    res = train_model(synthetic_df, replace(tiny_cfg, epochs=4, average_last=3))
    info = res.extra["averaging"]
    assert info["epochs"] == [len(res.history) - 2, len(res.history)] and info["kept"] in ("average", "best")
    assert (info["kept"] == "average") == (info["val_loss"] < info["best_val_loss"])
    meta = res.save(tmp_path / "m")
    assert meta["train"]["averaging"] == info and meta["train"]["config"]["average_last"] == 3
    assert "averaging" not in train_model(synthetic_df, replace(tiny_cfg, epochs=2)).extra
