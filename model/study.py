"""The paper's depth/shortcut study and the baseline comparison, as runs of ``model.train.train_model``.

``run_models`` trains each named ``TrainConfig`` on the same frame (same split, seed and budget), then
evaluates every result on each test frame with ``model.evaluate.evaluate``; ``depth_runs`` and
``compare_runs`` say which configs; ``run_rows`` / ``aggregate`` flatten the records into table rows;
``depth_verdict`` checks the paper's two claims against the numbers. Nothing here prints.

The depth study turns early stopping off (``patience`` > epochs) so all four networks get the same
number of epochs and their loss curves have the same length, as in the paper's Figure 3.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np
import polars as pl

from features.common import ProgressFn, no_progress
from features.encode import CLASSES
from model.evaluate import evaluate
from model.train import TrainConfig, train_model

__all__ = [
    "COMPARE_ARCHS",
    "DEPTH_MODELS",
    "DepthPair",
    "DepthVerdict",
    "RunRecord",
    "aggregate",
    "compare_runs",
    "depth_runs",
    "depth_verdict",
    "run_models",
    "run_rows",
]

# (display name, arch, depth): the paper's Figure 3.
DEPTH_MODELS: tuple[tuple[str, str, int], ...] = (
    ("MSMNet-5", "msmnet", 5),
    ("MSMRNet-5", "msmrnet", 5),
    ("MSMNet-10", "msmnet", 10),
    ("MSMRNet-10", "msmrnet", 10),
)
# display name -> arch, for the comparison table (MSMRNet first: it is the one being judged).
COMPARE_ARCHS: dict[str, str] = {
    "MSMRNet": "msmrnet",
    "MSMNet": "msmnet",
    "MLP": "mlp",
    "1-D CNN": "cnn",
    "LSTM": "lstm",
}


@dataclass
class RunRecord:
    """One trained network: its name, config, per-epoch history, training time and test results.

    ``tests[name]`` is ``model.evaluate.evaluate``'s dict ({"multiclass", "binary", "outside_spec"}).
    """

    name: str
    config: TrainConfig
    history: list[dict[str, float]]
    best_epoch: int
    seconds: float
    val_metrics: dict[str, Any]
    tests: dict[str, dict[str, Any]] = field(default_factory=dict)


def depth_runs(base: TrainConfig, epochs: int) -> list[tuple[str, TrainConfig]]:
    """The four networks of the depth study, same budget and seed, early stopping off."""
    return [
        (name, replace(base, arch=arch, depth=depth, residual=arch == "msmrnet", epochs=epochs, patience=epochs + 1))
        for name, arch, depth in DEPTH_MODELS
    ]


def compare_runs(
    base: TrainConfig, seeds: Sequence[int], archs: Mapping[str, str] = COMPARE_ARCHS
) -> list[tuple[str, TrainConfig]]:
    """Every arch x seed, each with the base config's protocol (early stopping on validation loss)."""
    return [
        (name, replace(base, arch=arch, residual=arch != "msmnet", seed=seed))
        for seed in seeds
        for name, arch in archs.items()
    ]


def _bind(
    on_epoch: Callable[[str, dict[str, float]], None] | None, name: str
) -> Callable[[dict[str, float]], None] | None:
    if on_epoch is None:
        return None
    return lambda row: on_epoch(name, row)


def run_models(
    train_df: pl.DataFrame,
    tests: Mapping[str, pl.DataFrame],
    runs: Sequence[tuple[str, TrainConfig]],
    on_start: Callable[[int, str, TrainConfig], None] | None = None,
    on_epoch: Callable[[str, dict[str, float]], None] | None = None,
    progress: ProgressFn | None = None,
    on_done: Callable[[list[RunRecord]], object] | None = None,
) -> list[RunRecord]:
    """Train each (name, config) on ``train_df`` in turn and evaluate it on every frame in ``tests``.

    ``on_start(i, name, cfg)`` fires before run ``i``; ``on_epoch(name, row)`` after each epoch;
    ``progress`` is handed to ``train_model`` (mini-batches of the current run); ``on_done(records)``
    after each run with all records so far (to save partial tables: a long study killed half-way keeps
    what it finished).
    """
    records: list[RunRecord] = []
    for i, (name, cfg) in enumerate(runs):
        if on_start is not None:
            on_start(i, name, cfg)
        res = train_model(
            train_df,
            cfg,
            progress=progress if progress is not None else no_progress,
            on_epoch=_bind(on_epoch, name),
        )
        clf = res.classifier()
        records.append(
            RunRecord(
                name=name,
                config=cfg,
                history=list(res.history),
                best_epoch=res.best_epoch,
                seconds=res.seconds,
                val_metrics=res.val_metrics,
                tests={t: evaluate(clf, df) for t, df in tests.items()},
            )
        )
        if on_done is not None:
            on_done(records)
    return records


def run_rows(records: Sequence[RunRecord]) -> list[dict[str, Any]]:
    """One flat row per (run, test set): accuracy, macro-F1, per-class recall, FPR, binary accuracy, time, and
    the same figures (``gate_*``) with the network's novelty gate."""
    rows: list[dict[str, Any]] = []
    for r in records:
        for test, ev in r.tests.items():
            multi, binary = ev["multiclass"], ev["binary"]
            row: dict[str, Any] = {
                "model": r.name,
                "seed": r.config.seed,
                "test": test,
                "accuracy": multi["accuracy"],
                "macro_f1": multi["macro_f1"],
                **{f"recall_{c}": multi["per_class"].get(c, {}).get("recall", math.nan) for c in CLASSES},
                "fpr_normal": multi["fpr_normal"],
                "binary_accuracy": binary["accuracy"],
                "train_seconds": r.seconds,
                "epochs_run": len(r.history),
                "best_epoch": r.best_epoch,
            }
            gate = ev.get("novelty_gate")  # the same network with its model.novelty gate (NaN when it has none)
            g_multi = gate["multiclass"] if gate else {}
            row |= {
                "gate_accuracy": g_multi.get("accuracy", math.nan),
                "gate_macro_f1": g_multi.get("macro_f1", math.nan),
                "gate_recall_R2L": g_multi.get("per_class", {}).get("R2L", {}).get("recall", math.nan),
                "gate_fpr_normal": g_multi.get("fpr_normal", math.nan),
                "gate_binary_accuracy": gate["binary"]["accuracy"] if gate else math.nan,
            }
            rows.append(row)
    return rows


def aggregate(rows: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Mean and sample standard deviation per (model, test) over seeds, in first-seen order.

    Numeric columns ``x`` become ``x_mean`` and ``x_std`` (std 0 for a single seed); ``seeds`` counts runs.
    """
    skip = {"model", "seed", "test"}
    groups: dict[tuple[str, str], list[Mapping[str, Any]]] = {}
    for row in rows:
        groups.setdefault((row["model"], row["test"]), []).append(row)
    out: list[dict[str, Any]] = []
    for (model, test), members in groups.items():
        agg: dict[str, Any] = {"model": model, "test": test, "seeds": len(members)}
        for key in members[0]:
            if key in skip:
                continue
            v = np.array([float(m[key]) for m in members])  # (seeds,)
            agg[f"{key}_mean"] = float(np.mean(v))
            agg[f"{key}_std"] = float(np.std(v, ddof=1)) if len(v) > 1 else 0.0
        out.append(agg)
    return out


def _curve(rec: RunRecord, key: str) -> np.ndarray:
    return np.array([h[key] for h in rec.history], dtype=np.float64)  # (epochs,)


@dataclass(frozen=True)
class DepthPair:
    """MSMNet vs MSMRNet at one depth: validation-loss convergence and final training loss."""

    depth: int
    msmnet_val_auc: float  # mean validation loss over the epochs (area under the curve / epochs)
    msmrnet_val_auc: float
    msmnet_first_val_loss: float  # after epoch 1
    msmrnet_first_val_loss: float
    msmnet_best_val_loss: float  # lowest over the epochs
    msmrnet_best_val_loss: float
    msmnet_final_train_loss: float
    msmrnet_final_train_loss: float

    @property
    def residual_faster(self) -> bool:
        return self.msmrnet_val_auc < self.msmnet_val_auc


@dataclass(frozen=True)
class DepthVerdict:
    """The paper's two claims checked on one depth study.

    ``degradation_agrees`` is None when MSMNet does not degrade from 5 to 10 modules (nothing to prevent).
    """

    pairs: dict[int, DepthPair]
    convergence_agrees: bool
    msmnet_degrades: bool
    msmrnet_degrades: bool
    degradation_agrees: bool | None
    test: str | None
    test_accuracy: dict[str, float]

    @property
    def msmnet_test_degrades(self) -> bool | None:
        """Whether MSMNet-10 is less accurate than MSMNet-5 on the test set (None without one)."""
        if not self.test_accuracy:
            return None
        return self.test_accuracy["MSMNet-10"] < self.test_accuracy["MSMNet-5"]


def depth_verdict(records: Sequence[RunRecord], test: str | None = None) -> DepthVerdict:
    """Check the paper's two claims on a depth study's four records (names as in ``DEPTH_MODELS``).

    * Convergence: at each depth, does MSMRNet's validation loss fall faster than MSMNet's? Measured as
      the mean validation loss over all epochs (lower = converged sooner); also reported: the loss after
      epoch 1 and the best over the epochs.
    * Degradation: does MSMNet's final *training* loss get worse from 5 to 10 modules (the classic
      symptom: a deeper plain net fits its own training data worse), and does MSMRNet's not?

    One seed: differences of a few percent are within run-to-run noise, which the caller should say.
    """
    by = {r.name: r for r in records}
    pairs: dict[int, DepthPair] = {}
    for d in (5, 10):
        plain, res = by[f"MSMNet-{d}"], by[f"MSMRNet-{d}"]
        vp, vr = _curve(plain, "val_loss"), _curve(res, "val_loss")
        pairs[d] = DepthPair(
            depth=d,
            msmnet_val_auc=float(vp.mean()),
            msmrnet_val_auc=float(vr.mean()),
            msmnet_first_val_loss=float(vp[0]),
            msmrnet_first_val_loss=float(vr[0]),
            msmnet_best_val_loss=float(vp.min()),
            msmrnet_best_val_loss=float(vr.min()),
            msmnet_final_train_loss=float(_curve(plain, "train_loss")[-1]),
            msmrnet_final_train_loss=float(_curve(res, "train_loss")[-1]),
        )
    plain_degrades = pairs[10].msmnet_final_train_loss > pairs[5].msmnet_final_train_loss
    res_degrades = pairs[10].msmrnet_final_train_loss > pairs[5].msmrnet_final_train_loss
    acc: dict[str, float] = {}
    if test is not None and all(test in by[n].tests for n, _, _ in DEPTH_MODELS):
        acc = {n: float(by[n].tests[test]["multiclass"]["accuracy"]) for n, _, _ in DEPTH_MODELS}
    return DepthVerdict(
        pairs=pairs,
        convergence_agrees=all(p.residual_faster for p in pairs.values()),
        msmnet_degrades=plain_degrades,
        msmrnet_degrades=res_degrades,
        # If the plain net does not degrade, there is nothing for the shortcuts to prevent: untested.
        degradation_agrees=(not res_degrades) if plain_degrades else None,
        test=test if acc else None,
        test_accuracy=acc,
    )
