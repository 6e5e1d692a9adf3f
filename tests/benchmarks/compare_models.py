"""MSMRNet against MSMNet, MLP, 1-D CNN and LSTM on one split, several seeds: per-run CSV and mean +/- std.

Runs ``model.study`` (the code behind ``nta study compare``) for the seeds given, so several processes
can each take some seeds; ``--merge`` then aggregates their CSVs into one table (markdown on stdout).

    python tests/benchmarks/compare_models.py --train KDDTrain+_20Percent.txt --test KDDTest+.txt \
        --test KDDTest-21.txt --seeds 0 --epochs 10 --out runs-seed0.csv
    python tests/benchmarks/compare_models.py --merge runs-seed0.csv runs-seed1.csv runs-seed2.csv
"""

from __future__ import annotations

import argparse
import time
from dataclasses import replace
from pathlib import Path

import polars as pl
import torch

from features.kdd.nslkdd import read_labeled
from model.study import COMPARE_ARCHS, aggregate, compare_runs, run_models, run_rows
from model.train import TrainConfig

COLS = ("accuracy", "macro_f1", "binary_accuracy", "recall_R2L", "recall_U2R", "fpr_normal", "train_seconds")


GATE_COLS = ("gate_accuracy", "gate_macro_f1", "gate_binary_accuracy", "gate_recall_R2L", "gate_fpr_normal")


def markdown(summary: list[dict[str, object]], cols: tuple[str, ...] = COLS) -> str:
    head = "| model | test | seeds | " + " | ".join(cols) + " |"
    lines = [head, "|" + " --- |" * (3 + len(cols))]
    for row in summary:
        if f"{cols[0]}_mean" not in row:
            continue
        cells = [
            f"{row[c + '_mean']:.0f} ± {row[c + '_std']:.0f}"
            if c == "train_seconds"
            else f"{row[c + '_mean']:.4f} ± {row[c + '_std']:.4f}"
            for c in cols
        ]
        lines.append(f"| {row['model']} | {row['test']} | {row['seeds']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def tables(summary: list[dict[str, object]]) -> str:
    """The plain networks' table, then (when the runs have it) the same networks with their novelty gate."""
    out = markdown(summary)
    if any("gate_accuracy_mean" in r for r in summary):
        out += "\n\nWith each network's novelty gate (model.novelty):\n\n" + markdown(summary, GATE_COLS)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=Path)
    ap.add_argument("--test", type=Path, action="append", default=[])
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--archs", default=",".join(COMPARE_ARCHS))
    ap.add_argument("--epochs", type=int, default=10)
    ap.add_argument("--patience", type=int, default=3)
    ap.add_argument("--features", default="full")
    ap.add_argument("--depth", type=int, default=TrainConfig.depth, help="modules of MSMRNet / MSMNet")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--novelty-quantile", type=float, default=TrainConfig.novelty_quantile)
    ap.add_argument("--novelty-clusters", type=int, default=TrainConfig.novelty_clusters, help="1: one Gaussian")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--merge", type=Path, nargs="+")
    a = ap.parse_args()
    if a.merge:
        rows = pl.concat([pl.read_csv(p) for p in a.merge]).to_dicts()
        print(tables(aggregate(rows)))
        return
    torch.set_num_threads(a.threads)
    train_df = read_labeled(a.train)
    tests = {p.name: read_labeled(p) for p in a.test}
    base = replace(
        TrainConfig(),
        feature_set=a.features,
        depth=a.depth,
        epochs=a.epochs,
        patience=a.patience,
        novelty_quantile=a.novelty_quantile,
        novelty_clusters=a.novelty_clusters,
    )
    archs = {k: v for k, v in COMPARE_ARCHS.items() if k in a.archs.split(",")}
    runs = compare_runs(base, [int(s) for s in a.seeds.split(",")], archs)
    t0 = time.perf_counter()
    records = run_models(
        train_df,
        tests,
        runs,
        on_start=lambda i, name, cfg: print(f"[{time.perf_counter() - t0:6.0f} s] {name} seed {cfg.seed}", flush=True),
    )
    rows = run_rows(records)
    if a.out:
        pl.DataFrame(rows).write_csv(a.out)
    print(tables(aggregate(rows)))


if __name__ == "__main__":
    main()
