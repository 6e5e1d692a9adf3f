"""model/study.py: verdict logic on hand-made loss curves, table rows and seed aggregation."""

from __future__ import annotations

import math
from typing import Any

import pytest

from model.study import COMPARE_ARCHS, RunRecord, aggregate, compare_runs, depth_runs, depth_verdict, run_rows
from model.train import TrainConfig


def _record(name: str, train: list[float], val: list[float], acc: float = 0.8, seed: int = 0) -> RunRecord:
    history = [
        {
            "epoch": i + 1,
            "train_loss": t,
            "val_loss": v,
            "val_acc": 0.0,
            "val_macro_f1": 0.0,
            "lr": 1e-3,
            "seconds": 1.0,
        }
        for i, (t, v) in enumerate(zip(train, val, strict=True))
    ]
    per_class = {
        c: {"precision": 1.0, "recall": acc, "f1": acc, "support": 10} for c in ("normal", "DoS", "Probe", "R2L", "U2R")
    }
    ev: dict[str, Any] = {
        "multiclass": {"accuracy": acc, "macro_f1": acc - 0.1, "fpr_normal": 1 - acc, "per_class": per_class},
        "binary": {"accuracy": acc + 0.05},
    }
    return RunRecord(name, TrainConfig(seed=seed), history, len(history), 10.0 + seed, {}, {"KDDTest+": ev})


def test_depth_runs_share_budget_and_seed_and_turn_off_early_stopping() -> None:
    runs = depth_runs(TrainConfig(seed=7, epochs=99), epochs=4)
    assert [n for n, _ in runs] == ["MSMNet-5", "MSMRNet-5", "MSMNet-10", "MSMRNet-10"]
    assert [(c.arch, c.depth, c.residual) for _, c in runs] == [
        ("msmnet", 5, False), ("msmrnet", 5, True), ("msmnet", 10, False), ("msmrnet", 10, True)
    ]  # fmt: skip
    assert all(c.seed == 7 and c.epochs == 4 and c.patience > 4 for _, c in runs)


def test_compare_runs_cover_every_arch_and_seed() -> None:
    runs = compare_runs(TrainConfig(), seeds=[0, 1])
    assert len(runs) == 2 * len(COMPARE_ARCHS)
    assert {(n, c.seed) for n, c in runs} == {(n, s) for n in COMPARE_ARCHS for s in (0, 1)}
    assert all(c.residual == (c.arch != "msmnet") for _, c in runs)


def test_verdict_agrees_when_shortcuts_converge_faster_and_plain_net_degrades() -> None:
    recs = [
        _record("MSMNet-5", [0.5, 0.3, 0.2], [0.6, 0.4, 0.3], 0.75),
        _record("MSMRNet-5", [0.3, 0.2, 0.1], [0.4, 0.3, 0.29], 0.78),
        _record("MSMNet-10", [0.9, 0.7, 0.6], [1.0, 0.8, 0.7], 0.60),  # deeper plain net fits worse
        _record("MSMRNet-10", [0.25, 0.15, 0.09], [0.35, 0.3, 0.28], 0.79),
    ]
    v = depth_verdict(recs, "KDDTest+")
    assert v.convergence_agrees and v.msmnet_degrades and not v.msmrnet_degrades and v.degradation_agrees is True
    assert v.pairs[5].msmnet_val_auc == pytest.approx(13 / 30)
    assert (v.pairs[5].msmrnet_best_val_loss, v.pairs[5].msmnet_best_val_loss) == (0.29, 0.3)
    assert v.pairs[10].msmnet_first_val_loss == 1.0 and v.msmnet_test_degrades is True
    assert v.test_accuracy == {"MSMNet-5": 0.75, "MSMRNet-5": 0.78, "MSMNet-10": 0.60, "MSMRNet-10": 0.79}


def test_verdict_says_untested_when_the_plain_net_does_not_degrade() -> None:
    recs = [
        _record("MSMNet-5", [0.5, 0.3], [0.3, 0.2]),
        _record("MSMRNet-5", [0.5, 0.4], [0.5, 0.4]),  # slower than the plain net at depth 5
        _record("MSMNet-10", [0.4, 0.2], [0.3, 0.2]),
        _record("MSMRNet-10", [0.4, 0.1], [0.2, 0.1]),
    ]
    v = depth_verdict(recs)
    assert not v.convergence_agrees and v.pairs[10].residual_faster and not v.pairs[5].residual_faster
    assert v.degradation_agrees is None and v.test is None and v.test_accuracy == {}
    assert v.msmnet_test_degrades is None


def test_rows_and_mean_std_over_seeds() -> None:
    recs = [_record("MLP", [0.1], [0.1], acc, seed) for seed, acc in enumerate((0.7, 0.8, 0.9))]
    rows = run_rows(recs)
    assert len(rows) == 3 and rows[0]["recall_U2R"] == 0.7 and rows[0]["binary_accuracy"] == pytest.approx(0.75)
    (agg,) = aggregate(rows)
    assert agg["model"] == "MLP" and agg["test"] == "KDDTest+" and agg["seeds"] == 3
    assert agg["accuracy_mean"] == pytest.approx(0.8) and agg["accuracy_std"] == pytest.approx(0.1)
    assert agg["train_seconds_mean"] == pytest.approx(11.0)
    (single,) = aggregate(rows[:1])
    assert single["accuracy_std"] == 0.0 and not math.isnan(single["macro_f1_mean"])


def test_rows_carry_the_novelty_gate_figures_when_the_run_has_them() -> None:
    plain = _record("MSMRNet", [0.1], [0.1], 0.8)
    gated = _record("MSMRNet", [0.1], [0.1], 0.8, seed=1)
    gate_per_class = {c: {"recall": 0.9 if c == "R2L" else 0.8} for c in ("normal", "DoS", "Probe", "R2L", "U2R")}
    gated.tests["KDDTest+"]["novelty_gate"] = {
        "multiclass": {"accuracy": 0.85, "macro_f1": 0.7, "fpr_normal": 0.09, "per_class": gate_per_class},
        "binary": {"accuracy": 0.9},
        "flagged": 12,
    }
    without, with_gate = run_rows([plain, gated])
    assert math.isnan(without["gate_accuracy"]) and math.isnan(without["gate_binary_accuracy"])
    assert (with_gate["gate_accuracy"], with_gate["gate_macro_f1"], with_gate["gate_recall_R2L"]) == (0.85, 0.7, 0.9)
    assert (with_gate["gate_fpr_normal"], with_gate["gate_binary_accuracy"]) == (0.09, 0.9)
    assert with_gate["accuracy"] == 0.8  # the plain network's figures stay as they were
