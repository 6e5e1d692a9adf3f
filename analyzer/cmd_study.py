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
from features.common import make_parent

if TYPE_CHECKING:
    import polars as pl
    from rich.console import Console

    from features.encode.pca import PcaStudy
    from model.study import RunRecord

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
    from features.common import InputError
    from features.encode.pca import read_study_frame, run_pca_study
    from features.encode.spec import FEATURE_SETS

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

    from analyzer import plots
    from features.encode import CLASSES
    from features.encode.pca import write_pca_tables

    n = write_pca_tables(study, out)
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
    from model import study_files as files
    from model.study import depth_runs, depth_verdict

    runs = depth_runs(files.base_config(features, seed, batch_size, epochs), epochs)
    _set_threads(threads)
    t0 = time.perf_counter()
    train_df, tests = _load_train_test(data, test or [], train_rows, seed)
    make_parent(out / "depth_config.json")
    files.write_config(runs, data, tests, out / "depth_config.json")
    records = files.train_all(train_df, tests, runs, _say, save=lambda recs: files.save_partial(recs, out, "depth"))
    rows = files.save_partial(records, out, "depth")
    first_test = next(iter(tests), None)
    verdict = files.depth_verdict_text(depth_verdict(records, first_test), epochs, train_df.height, data)
    files.write_text(out / "depth_verdict.txt", verdict)
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
    from features.common import InputError
    from model import study_files as files
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
    base = files.base_config(features, 0, batch_size, epochs)
    runs = compare_runs(replace(base, patience=patience) if patience else base, range(seeds), archs)
    _set_threads(threads)
    t0 = time.perf_counter()
    train_df, tests = _load_train_test(data, test or [], train_rows, 0)
    make_parent(out / "compare_config.json")
    files.write_config(runs, data, tests, out / "compare_config.json")
    records = files.train_all(train_df, tests, runs, _say, save=lambda recs: files.save_partial(recs, out, "compare"))
    rows = files.save_partial(records, out, "compare")
    summary = aggregate(rows)
    files.write_csv(summary, out / "compare_summary.csv")
    _print_summary(summary, f"Comparison over {seeds} seed(s), {data.name} ({train_df.height} rows), mean +/- std")
    _say(f"compare: wrote {out} in {time.perf_counter() - t0:.0f} s")


# --- shared pieces of depth/compare ---------------------------------------------------------------------


def _set_threads(threads: int) -> None:
    from model.study_files import set_threads

    _say(f"torch threads: {set_threads(threads)}")


def _load_train_test(
    data: Path, tests: list[Path], train_rows: int, seed: int
) -> tuple[pl.DataFrame, dict[str, pl.DataFrame]]:
    import numpy as np

    from features.common import InputError
    from features.kdd.nslkdd import read_labeled

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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(study_app, name="study")
