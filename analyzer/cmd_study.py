"""`nta study pca|depth|compare`: the MSMRNet paper's experiments, rerunnable on NSL-KDD or on captures.

Each command writes CSV tables (always) and PNG figures (when matplotlib, the ``plots`` extra, is
installed) into ``-o DIR``, and prints its table and a plain verdict.
"""

from __future__ import annotations

import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.errors import guarded

if TYPE_CHECKING:
    from collections.abc import Callable

    import polars as pl
    from rich.console import Console

    from features.pca import PcaStudy
    from model.study import DepthVerdict, RunRecord
    from model.train import TrainConfig

study_app = typer.Typer(
    help="Rerun the paper's experiments: preprocessing PCA, the depth/shortcut study, the baseline comparison.",
    no_args_is_help=True,
)

DataOpt = Annotated[
    Path,
    typer.Option(
        "--data", help="NSL-KDD text (.txt/.gz) or a Parquet of nta features (with a label column for scores)."
    ),
]
TrainOpt = Annotated[
    Path, typer.Option("--data", help="Training data: NSL-KDD text (.txt/.gz) or a labelled Parquet of nta features.")
]
TestOpt = Annotated[
    list[Path] | None,
    typer.Option("--test", help="Test data (same formats); repeat for several (e.g. KDDTest+ and KDDTest-21)."),
]
OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Output folder (created).")]
ThreadsOpt = Annotated[
    int,
    typer.Option(
        help="torch CPU threads; 0 = torch's default. Use 1 on a busy machine: more threads than free cores "
        "made an epoch ~20x slower here."
    ),
]


def _say(msg: str) -> None:
    """Progress and notes go to stderr so stdout holds only the tables."""
    print(f"nta: {msg}", file=sys.stderr, flush=True)


@study_app.command("pca")
@guarded
def pca_cmd(
    data: DataOpt,
    out: OutOpt,
    sample: Annotated[int, typer.Option(help="Rows sampled (seeded) before projecting; 0 = all.")] = 20_000,
    seed: Annotated[int, typer.Option(help="Seed for the sample and the folds.")] = 0,
    features: Annotated[
        str, typer.Option(help="Feature set: full (41) or capture (28, no content features).")
    ] = "full",
) -> None:
    """2-D PCA after one-hot only, + standardisation, + min-max (and nta's log1p + min-max), with k-NN scores.

    Writes pca_separability.csv, pca_points.csv, and (with matplotlib) pca_binary.png and pca_classes.png.
    """
    from features.encode import FEATURE_SETS
    from features.errors import InputError
    from features.pca import read_study_frame, run_pca_study

    if features not in FEATURE_SETS:
        raise InputError(f"--features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")
    if sample < 0:
        raise InputError(f"--sample must be >= 0, not {sample}")
    t0 = time.perf_counter()
    df, labelled = read_study_frame(data)
    if not labelled:
        _say(f"{data}: no label column, so only the projection is drawn (no separability scores)")
    _say(f"{data}: {df.height} rows; projecting {min(df.height, sample or df.height)} (seed {seed})")
    study = run_pca_study(
        df,
        labelled=labelled,
        columns=FEATURE_SETS[features],
        sample=sample,
        seed=seed,
        progress=lambda d, t: _say(f"pca: variant {d}/{t} done ({time.perf_counter() - t0:.0f} s)"),
    )
    _write_pca(study, out, str(data))
    _print_pca(study)
    _say(f"pca: wrote {out} in {time.perf_counter() - t0:.1f} s")


def _write_pca(study: PcaStudy, out: Path, source: str) -> None:
    import numpy as np
    import polars as pl

    from analyzer import plots
    from features.atomic import atomic_path
    from features.kdd_columns import CLASSES

    out.mkdir(parents=True, exist_ok=True)
    n = study.results[0].projection.z.shape[0]
    rows = []
    for r in study.results:
        base = {
            "variant": r.variant.name,
            "scaling": r.variant.scaling,
            "log1p": " ".join(r.variant.log1p),
            "rows": n,
            "pc1_variance": float(r.projection.explained[0]),
            "pc2_variance": float(r.projection.explained[1]),
        }
        for task, s in (("normal-vs-attack", r.binary), ("5-class", r.five_class)):
            if s is not None:
                rows.append(
                    {
                        **base,
                        "task": task,
                        "knn_k": 5,
                        "folds": 5,
                        "knn_accuracy": s.accuracy,
                        "knn_balanced_accuracy": s.balanced_accuracy,
                        "majority_accuracy": s.majority,
                    }
                )
        if r.binary is None:
            rows.append({**base, "task": "unlabelled"})
    with atomic_path(out / "pca_separability.csv") as tmp:
        pl.DataFrame(rows).write_csv(tmp, float_precision=4)
    points: dict[str, np.ndarray] = {}
    if study.label5 is not None:
        points["label5"] = study.label5
    for i, r in enumerate(study.results):
        points[f"v{i + 1}_pc1"] = r.projection.z[:, 0]
        points[f"v{i + 1}_pc2"] = r.projection.z[:, 1]
    with atomic_path(out / "pca_points.csv") as tmp:
        pl.DataFrame(points).write_csv(tmp, float_precision=6)
    if not plots.available():
        _say(f"pca: CSVs written; {plots.PLOTS_HINT}")
        return
    binary = None if study.label5 is None else np.where(study.label5 == "normal", "normal", "attack")
    for name, labels, classes, what in (
        ("pca_binary.png", binary, ("normal", "attack"), "normal vs attack"),
        ("pca_classes.png", study.label5, CLASSES, "5 classes"),
    ):
        if labels is None and name == "pca_classes.png":
            continue
        panels = []
        for r in study.results:
            s = r.binary if classes[1] == "attack" else r.five_class
            note = f"5-NN acc {s.accuracy:.3f}\nbalanced {s.balanced_accuracy:.3f}" if s is not None else ""
            panels.append(plots.Panel(r.variant.name, r.projection.z, r.projection.explained, note))
        title = f"2-D PCA of {Path(source).name} ({n} rows), {what if labels is not None else 'unlabelled'}"
        plots.pca_figure(panels, labels, classes, out / name, title)


def _console() -> Console:
    """stdout console; off a terminal (pipes, CI logs) wide enough that tables do not wrap."""
    from rich.console import Console

    console = Console()
    return console if console.is_terminal else Console(width=160)


def _print_pca(study: PcaStudy) -> None:
    from rich.table import Table

    table = Table(title=f"Separability in the 2-D projection (5-NN, 5-fold; {study.rows_total} rows in the data)")
    for col in (
        "variant",
        "PC1+PC2 var",
        "binary acc",
        "binary bal.",
        "5-class acc",
        "5-class bal.",
        "binary majority",
    ):
        table.add_column(col, justify="left" if col == "variant" else "right")
    for r in study.results:
        b, f = r.binary, r.five_class
        table.add_row(
            r.variant.name,
            f"{r.projection.explained.sum():.1%}",
            *(f"{v:.4f}" if v is not None else "-" for v in (b and b.accuracy, b and b.balanced_accuracy)),
            *(f"{v:.4f}" if v is not None else "-" for v in (f and f.accuracy, f and f.balanced_accuracy)),
            f"{b.majority:.4f}" if b is not None else "-",
        )
    _console().print(table)
    if study.results[0].binary is not None:
        best = max(study.results, key=lambda r: r.binary.accuracy if r.binary else 0.0)
        std = next(r for r in study.results if r.variant.scaling == "standard")
        mm = next(r for r in study.results if r.variant.scaling == "minmax" and not r.variant.log1p)
        assert std.binary is not None and mm.binary is not None
        verdict = "agrees with" if mm.binary.accuracy > std.binary.accuracy else "does NOT agree with"
        print(
            f"Paper's claim (min-max separates normal from attack better than standardisation): this run {verdict} it "
            f"- 5-NN accuracy in 2-D {mm.binary.accuracy:.4f} (min-max) vs {std.binary.accuracy:.4f} (standard). "
            f"Most separable variant here: {best.variant.name}."
        )


@study_app.command("depth")
@guarded
def depth_cmd(
    data: TrainOpt,
    out: OutOpt,
    test: TestOpt = None,
    epochs: Annotated[int, typer.Option(help="Epochs for every network (no early stopping: same budget).")] = 8,
    seed: Annotated[int, typer.Option(help="One seed for split, init and batches, shared by all four.")] = 0,
    features: Annotated[str, typer.Option(help="Feature set: full (41, as the paper) or capture (28).")] = "full",
    batch_size: Annotated[int, typer.Option(help="Mini-batch size; 0 = the training default.")] = 0,
    train_rows: Annotated[int, typer.Option(help="Train on a seeded sample of this many rows; 0 = all.")] = 0,
    threads: ThreadsOpt = 0,
) -> None:
    """Train MSMNet-5, MSMRNet-5, MSMNet-10, MSMRNet-10 alike; loss curves (the paper's Figure 3), test table.

    Writes depth_config.json, depth_history.csv, depth_metrics.csv, depth_verdict.txt, depth_loss.png (matplotlib).
    """
    from model.study import depth_runs, depth_verdict

    runs = depth_runs(_base_config(features, seed, batch_size, epochs), epochs)
    _set_threads(threads)
    t0 = time.perf_counter()
    train_df, tests = _load_train_test(data, test or [], train_rows, seed)
    out.mkdir(parents=True, exist_ok=True)
    _write_config(runs, data, tests, out / "depth_config.json")
    records = _train_all(train_df, tests, runs, t0, save=lambda recs: _save_partial(recs, out, "depth"))
    rows = _save_partial(records, out, "depth")
    first_test = next(iter(tests), None)
    verdict = _verdict_text(depth_verdict(records, first_test), epochs, train_df.height, data)
    _write_text(out / "depth_verdict.txt", verdict)
    _plot_losses(records, out / "depth_loss.png", f"Loss per epoch, {data.name} ({train_df.height} rows), seed {seed}")
    _print_runs(rows, f"Depth study: test metrics ({epochs} epochs each, seed {seed})")
    print(verdict)
    _say(f"depth: wrote {out} in {time.perf_counter() - t0:.0f} s")


@study_app.command("compare")
@guarded
def compare_cmd(
    data: TrainOpt,
    out: OutOpt,
    test: TestOpt = None,
    seeds: Annotated[int, typer.Option(help="Number of seeds (0, 1, ... N-1) per model.")] = 3,
    epochs: Annotated[int, typer.Option(help="Epoch budget per run (early stopping on validation loss).")] = 30,
    patience: Annotated[
        int, typer.Option(help="Epochs without a better validation loss before stopping; 0 = the training default.")
    ] = 0,
    features: Annotated[str, typer.Option(help="Feature set: full (41) or capture (28).")] = "full",
    batch_size: Annotated[int, typer.Option(help="Mini-batch size; 0 = the training default.")] = 0,
    train_rows: Annotated[int, typer.Option(help="Train on a seeded sample of this many rows; 0 = all.")] = 0,
    models: Annotated[
        str, typer.Option(help="Comma-separated subset of: MSMRNet, MSMNet, MLP, CNN, LSTM.")
    ] = "MSMRNet,MSMNet,MLP,CNN,LSTM",
    threads: ThreadsOpt = 0,
) -> None:
    """MSMRNet against MSMNet, an MLP, a 1-D CNN and an LSTM over several seeds: mean +/- std table.

    Writes compare_config.json, compare_runs.csv (a row per run and test set), compare_summary.csv, compare_history.csv.
    """
    from features.errors import InputError
    from model.study import COMPARE_ARCHS, aggregate, compare_runs

    if seeds < 1:
        raise InputError(f"--seeds must be >= 1, not {seeds}")
    lookup = {k.lower().replace("1-d ", ""): k for k in COMPARE_ARCHS}
    wanted = [m.strip() for m in models.split(",") if m.strip()]
    unknown = [m for m in wanted if m.lower() not in lookup]
    if unknown or not wanted:
        raise InputError(
            f"--models: unknown {', '.join(unknown) or '(none given)'} (known: MSMRNet, MSMNet, MLP, CNN, LSTM)"
        )
    archs = {lookup[m.lower()]: COMPARE_ARCHS[lookup[m.lower()]] for m in wanted}
    if patience < 0:
        raise InputError(f"--patience must be >= 0, not {patience}")
    base = _base_config(features, 0, batch_size, epochs)
    runs = compare_runs(replace(base, patience=patience) if patience else base, range(seeds), archs)
    _set_threads(threads)
    t0 = time.perf_counter()
    train_df, tests = _load_train_test(data, test or [], train_rows, 0)
    out.mkdir(parents=True, exist_ok=True)
    _write_config(runs, data, tests, out / "compare_config.json")
    records = _train_all(train_df, tests, runs, t0, save=lambda recs: _save_partial(recs, out, "compare"))
    rows = _save_partial(records, out, "compare")
    summary = aggregate(rows)
    _write_csv(summary, out / "compare_summary.csv")
    _print_summary(summary, f"Comparison over {seeds} seed(s), {data.name} ({train_df.height} rows), mean +/- std")
    _say(f"compare: wrote {out} in {time.perf_counter() - t0:.0f} s")


# --- shared pieces of depth/compare ---------------------------------------------------------------------


def _set_threads(threads: int) -> None:
    import torch

    from features.errors import InputError

    if threads < 0:
        raise InputError(f"--threads must be >= 0, not {threads}")
    if threads:
        torch.set_num_threads(threads)
    _say(f"torch threads: {torch.get_num_threads()}")


def _load_train_test(
    data: Path, tests: list[Path], train_rows: int, seed: int
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    import numpy as np

    from features.errors import InputError
    from features.nslkdd import read_labeled

    if train_rows < 0:
        raise InputError(f"--train-rows must be >= 0, not {train_rows}")
    train_df = read_labeled(data)
    if train_rows and train_df.height > train_rows:
        keep = np.sort(np.random.default_rng(seed).choice(train_df.height, size=train_rows, replace=False))
        train_df = train_df[keep]
    frames: dict[str, pl.DataFrame] = {}
    for p in tests:
        name = p.name.split(".")[0] if p.name.split(".")[0] not in frames else p.name
        frames[name] = read_labeled(p)
    _say(
        f"train {data} ({train_df.height} rows); test {', '.join(f'{k} ({v.height})' for k, v in frames.items()) or 'none'}"
    )
    return train_df, frames


def _base_config(features: str, seed: int, batch_size: int, epochs: int) -> TrainConfig:
    from features.encode import FEATURE_SETS
    from features.errors import InputError
    from model.train import TrainConfig

    if features not in FEATURE_SETS:
        raise InputError(f"--features must be one of {', '.join(FEATURE_SETS)}, not {features!r}")
    if epochs < 1 or batch_size == 1 or batch_size < 0:
        raise InputError(f"--epochs must be >= 1 and --batch-size 0 or >= 2 (got {epochs}, {batch_size})")
    cfg = TrainConfig(feature_set=features, seed=seed, epochs=epochs)
    return replace(cfg, batch_size=batch_size) if batch_size else cfg


def _train_all(
    train_df: pl.DataFrame,
    tests: dict[str, pl.DataFrame],
    runs: list[tuple[str, TrainConfig]],
    t0: float,
    save: Callable[[list[RunRecord]], object] | None = None,
) -> list[RunRecord]:
    from model.study import run_models

    def start(i: int, name: str, cfg: TrainConfig) -> None:
        _say(f"[{i + 1}/{len(runs)}] training {name} (seed {cfg.seed}, up to {cfg.epochs} epochs)")

    def epoch(name: str, row: dict[str, float]) -> None:
        _say(
            f"  {name} epoch {int(row['epoch'])}: train loss {row['train_loss']:.4f}, val loss {row['val_loss']:.4f},"
            f" val acc {row['val_acc']:.4f} ({row['seconds']:.0f} s; {time.perf_counter() - t0:.0f} s total)"
        )

    return run_models(train_df, tests, runs, on_start=start, on_epoch=epoch, on_done=save)


def _write_csv(rows: list[dict[str, object]], path: Path) -> None:
    import polars as pl

    from features.atomic import atomic_path

    with atomic_path(path) as tmp:
        pl.DataFrame(rows).write_csv(tmp, float_precision=5)


def _write_text(path: Path, text: str) -> None:
    from features.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(text + "\n")


def _write_config(runs: list[tuple[str, TrainConfig]], data: Path, tests: dict[str, pl.DataFrame], path: Path) -> None:
    """Every run's full training config, so a table can be traced to the exact settings that made it."""
    import json

    import torch

    from features.atomic import atomic_path

    doc = {
        "data": str(data),
        "tests": list(tests),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "runs": [{"name": n, **c.to_dict()} for n, c in runs],
    }
    with atomic_path(path) as tmp:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")


def _save_partial(records: list[RunRecord], out: Path, study: str) -> list[dict[str, object]]:
    """(Re)write the history and per-run tables with the runs finished so far; returns the run rows."""
    _write_history(records, out / f"{study}_history.csv")
    return _write_rows(records, out / (f"{study}_metrics.csv" if study == "depth" else f"{study}_runs.csv"))


def _write_history(records: list[RunRecord], path: Path) -> None:
    _write_csv([{"model": r.name, "seed": r.config.seed, **h} for r in records for h in r.history], path)


def _write_rows(records: list[RunRecord], path: Path) -> list[dict[str, object]]:
    from model.study import run_rows

    rows = run_rows(records)
    if rows:
        _write_csv(rows, path)
    return rows


def _plot_losses(records: list[RunRecord], path: Path, title: str) -> None:
    from analyzer import plots

    if not plots.available():
        _say(f"CSVs written; {plots.PLOTS_HINT}")
        return
    curves = {
        r.name: plots.Curve([h["train_loss"] for h in r.history], [h["val_loss"] for h in r.history]) for r in records
    }
    plots.loss_curves_figure(curves, path, title)


def _print_runs(rows: list[dict[str, object]], title: str) -> None:
    from rich.table import Table

    if not rows:
        _say("no --test data given: no test table (losses are in the CSVs)")
        return
    table = Table(title=title)
    cols = ["model", "test", "accuracy", "macro_f1", *(f"recall_{c}" for c in ("normal", "DoS", "Probe", "R2L", "U2R"))]
    cols += ["fpr_normal", "binary_accuracy", "train_seconds"]
    for c in cols:
        table.add_column(c.replace("recall_", "rec. "), justify="left" if c in ("model", "test") else "right")
    for row in rows:
        table.add_row(
            *(
                f"{row[c]:.4f}"
                if isinstance(row[c], float) and c != "train_seconds"
                else f"{row[c]:.0f}"
                if c == "train_seconds"
                else str(row[c])
                for c in cols
            )
        )
    _console().print(table)


def _print_summary(summary: list[dict[str, object]], title: str) -> None:
    from rich.table import Table

    if not summary:
        _say("no --test data given: no test table (validation losses are in compare_history.csv)")
        return
    table = Table(title=title)
    keys = ["accuracy", "macro_f1", *(f"recall_{c}" for c in ("normal", "DoS", "Probe", "R2L", "U2R")), "fpr_normal"]
    keys += ["train_seconds"]
    short = {"accuracy": "accuracy", "macro_f1": "macro-F1", "fpr_normal": "FPR", "train_seconds": "train s"}
    for c in ["model", "test", *keys]:
        head = short.get(c, c.replace("recall_", "rec. "))
        table.add_column(head, justify="left" if c in ("model", "test") else "right", no_wrap=True)
    for row in summary:
        cells = [str(row["model"]), str(row["test"])]
        for k in keys:
            m, s = float(row[f"{k}_mean"]), float(row[f"{k}_std"])  # type: ignore[arg-type]
            cells.append(f"{m:.0f}±{s:.0f}" if k == "train_seconds" else f"{m:.3f}±{s:.3f}")
        table.add_row(*cells)
    _console().print(table)


def _verdict_text(v: DepthVerdict, epochs: int, rows: int, data: Path) -> str:
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(study_app, name="study")
