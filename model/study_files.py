"""What ``nta study depth|compare`` write: run configs, history and metric tables, and the depth verdict's text.

The command (``analyzer/cmd_study.py``) parses options and prints; the files and the words of the verdict are
made here, from ``model.study``'s records. Every file is written atomically. Nothing here prints: messages go
to the ``say`` callback the caller passes.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch

from features.common import InputError, atomic_path
from features.encode.spec import FEATURE_SETS
from model.study import DepthVerdict, RunRecord, run_models, run_rows
from model.train import TrainConfig

__all__ = [
    "base_config",
    "depth_verdict_text",
    "save_partial",
    "set_threads",
    "train_all",
    "write_config",
    "write_csv",
    "write_text",
]

Say = Callable[[str], None]


def set_threads(threads: int) -> int:
    """Set torch's CPU threads (0 = leave torch's default); returns the number in force."""
    if threads < 0:
        raise InputError(f"--threads must be >= 0, not {threads}")
    if threads:
        torch.set_num_threads(threads)
    return torch.get_num_threads()


def base_config(features: str, seed: int, batch_size: int, epochs: int) -> TrainConfig:
    """The training config every run of a study starts from (validated options)."""
    if features not in FEATURE_SETS:
        raise InputError(f"--features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")
    if epochs < 1 or batch_size == 1 or batch_size < 0:
        raise InputError(f"--epochs must be >= 1 and --batch-size 0 or >= 2 (got {epochs}, {batch_size})")
    cfg = TrainConfig(feature_set=features, seed=seed, epochs=epochs)
    return replace(cfg, batch_size=batch_size) if batch_size else cfg


def train_all(
    train_df: pl.DataFrame,
    tests: dict[str, pl.DataFrame],
    runs: list[tuple[str, TrainConfig]],
    say: Say,
    save: Callable[[list[RunRecord]], object] | None = None,
) -> list[RunRecord]:
    """``model.study.run_models`` with a line per run start and per epoch for ``say``."""
    t0 = time.perf_counter()

    def start(i: int, name: str, cfg: TrainConfig) -> None:
        say(f"[{i + 1}/{len(runs)}] training {name} (seed {cfg.seed}, up to {cfg.epochs} epochs)")

    def epoch(name: str, row: dict[str, float]) -> None:
        say(
            f"  {name} epoch {int(row['epoch'])}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f},"
            f" val acc {row['val_acc']:.4f} ({row['seconds']:.0f} s; {time.perf_counter() - t0:.0f} s total)"
        )

    return run_models(train_df, tests, runs, on_start=start, on_epoch=epoch, on_done=save)


def write_csv(rows: list[dict[str, object]], path: Path) -> None:
    with atomic_path(path) as tmp:
        pl.DataFrame(rows).write_csv(tmp, float_precision=5)


def write_text(path: Path, text: str) -> None:
    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def write_config(runs: list[tuple[str, TrainConfig]], data: Path, tests: dict[str, pl.DataFrame], path: Path) -> None:
    """Every run's full training config, so a table can be traced to the exact settings that made it."""
    doc = {
        "data": str(data),
        "tests": list(tests),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "runs": [{"name": n, **c.to_dict()} for n, c in runs],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")


def save_partial(records: list[RunRecord], out: Path, study: str) -> list[dict[str, object]]:
    """(Re)write the history and per-run tables with the runs finished so far; returns the run rows."""
    write_csv(
        [{"model": r.name, "seed": r.config.seed, **h} for r in records for h in r.history],
        out / f"{study}_history.csv",
    )
    rows = run_rows(records)
    if rows:
        write_csv(rows, out / (f"{study}_metrics.csv" if study == "depth" else f"{study}_runs.csv"))
    return rows


def depth_verdict_text(v: DepthVerdict, epochs: int, rows: int, data: Path) -> str:
    """The depth study's plain-language verdict on the paper's two claims, with the numbers."""
    lines = [f"Verdict on the paper's claims ({data.name}, {rows} rows, {epochs} epochs, one seed):"]
    conv = [
        f"depth {p.depth}: mean validation loss over the epochs MSMRNet {p.msmrnet_val_auc:.4f} vs MSMNet "
        f"{p.msmnet_val_auc:.4f}, after epoch 1 {p.msmrnet_first_val_loss:.4f} vs {p.msmnet_first_val_loss:.4f}, "
        f"best {p.msmrnet_best_val_loss:.4f} vs {p.msmnet_best_val_loss:.4f}"
        for p in v.pairs.values()
    ]
    if v.convergence_agrees:
        word = "AGREES"
    elif any(p.residual_faster for p in v.pairs.values()):
        word = "PARTLY AGREES (one depth only)"
    else:
        word = "DOES NOT AGREE"
    lines.append(f"1. 'Shortcuts speed convergence': our run {word}: " + "; ".join(conv) + ".")
    p5, p10 = v.pairs[5], v.pairs[10]
    nums = (
        f"final training loss MSMNet {p5.msmnet_final_train_loss:.4f} (5 modules) -> {p10.msmnet_final_train_loss:.4f}"
        f" (10), MSMRNet {p5.msmrnet_final_train_loss:.4f} -> {p10.msmrnet_final_train_loss:.4f}"
    )
    if v.test_accuracy:
        nums += f"; {v.test} accuracy " + ", ".join(f"{k} {a:.4f}" for k, a in v.test_accuracy.items())
    if v.degradation_agrees is None:
        lines.append(
            "2. 'Shortcuts prevent degradation at depth 10': NOT TESTED by this run: MSMNet did not degrade "
            f"from 5 to 10 modules, so there was nothing to prevent ({nums})."
        )
    else:
        word = "AGREES" if v.degradation_agrees else "DOES NOT AGREE"
        lines.append(
            f"2. 'Shortcuts prevent degradation at depth 10': on training loss our run {word}: MSMNet fits its "
            f"training data worse with 10 modules than with 5, MSMRNet {'does too' if v.msmrnet_degrades else 'does not'}"
            f" ({nums})."
        )
    if v.msmnet_test_degrades is False:
        lines.append(
            f"   But on {v.test} accuracy the plain network did not degrade from 5 to 10 modules, so the benefit of the "
            "shortcuts there is not shown by this run."
        )
    lines.append("One seed and a short budget: differences of a few percent are within run-to-run noise.")
    return "\n".join(lines)
