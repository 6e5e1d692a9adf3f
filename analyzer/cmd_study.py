"""`nta study pca|depth|compare`: the MSMRNet paper's experiments, rerunnable on NSL-KDD or on captures.

Each command writes CSV tables (always) and PNG figures (when matplotlib, the ``plots`` extra, is
installed) into ``-o DIR``, and prints its table and a plain verdict.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from analyzer.errors import guarded

if TYPE_CHECKING:
    from rich.console import Console

    from features.pca import PcaStudy

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
OutOpt = Annotated[Path, typer.Option("-o", "--out", help="Output folder (created).")]


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
    for col in ("variant", "PC1+PC2 var", "binary acc", "binary bal.", "5-class acc", "5-class bal.", "majority"):
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


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.add_typer(study_app, name="study")
