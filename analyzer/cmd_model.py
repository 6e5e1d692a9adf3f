"""``nta train`` and ``nta evaluate``: train an MSMRNet (or a baseline) on labelled KDD features, and score it.

``nta train --data KDDTrain+.txt.gz [--data more.parquet ...] -o DIR`` trains on the rows of every ``--data``
file together (NSL-KDD text or labelled feature Parquet, e.g. ``nta features --label normal`` output) and writes DIR/weights.safetensors, DIR/metadata.json and
DIR/history.csv (one row per epoch). ``nta evaluate DIR --data KDDTest+.txt`` prints accuracy, macro-F1,
per-class precision/recall/F1, the confusion matrix and the false-positive rate on normal, for the
5-class and the binary (normal vs attack) view, and writes them as JSON with ``--json``.
The logic lives in ``model.train`` and ``model.evaluate``; these functions only parse, print and save.
"""

from __future__ import annotations

import enum
import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from analyzer.errors import guarded
from features.common import InputError, path_text


class FeatureSet(enum.StrEnum):
    capture = "capture"
    full = "full"


class Arch(enum.StrEnum):
    msmrnet = "msmrnet"
    msmnet = "msmnet"
    mlp = "mlp"
    cnn = "cnn"
    lstm = "lstm"


def register(app: typer.Typer) -> None:
    """Add this module's commands to the app."""
    app.command("train", help="Train a model on NSL-KDD text or labelled feature Parquet; writes a model folder.")(
        train
    )
    app.command("evaluate", help="Score a model folder on labelled data: 5-class and binary metrics.")(evaluate)
    app.command(
        "fit-support",
        help="Fit the support gate (model.support) of an existing model folder from its recorded training files.",
    )(fit_support)
    app.command(
        "confirm",
        help="Combine a model with networks of other seeds that vote on the flows it calls attacks (model.confirm).",
    )(confirm)


@guarded
def train(
    data: Annotated[
        list[Path],
        typer.Option("--data", help="Training data: NSL-KDD text (.gz or not) or labelled Parquet; repeat to add."),
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Model folder to write.")],
    features: Annotated[
        FeatureSet, typer.Option("--features", help="capture: the 28 features captures give; full: all 41.")
    ] = FeatureSet.capture,
    classes: Annotated[
        int, typer.Option("--classes", help="5 (normal, DoS, Probe, R2L, U2R) or 2 (normal/attack).")
    ] = 5,
    arch: Annotated[Arch, typer.Option("--arch", help="Network: msmrnet, msmnet, or a baseline.")] = Arch.msmrnet,
    depth: Annotated[int, typer.Option("--depth", min=1, max=64, help="Stacked multi-scale memory modules.")] = 5,
    residual: Annotated[bool, typer.Option("--residual/--no-residual", help="Shortcuts (off: MSMNet).")] = True,
    epochs: Annotated[int, typer.Option("--epochs", min=1, help="Epoch budget (early stopping may end sooner).")] = 30,
    patience: Annotated[int, typer.Option("--patience", min=1, help="Epochs without a better val loss.")] = 5,
    average_last: Annotated[
        int,
        typer.Option(
            "--average-last",
            min=0,
            help="Average the last N epochs' weights (kept if its val loss beats the best epoch's; 0: off).",
        ),
    ] = 0,
    batch_size: Annotated[int, typer.Option("--batch-size", min=2)] = 512,
    lr: Annotated[float, typer.Option("--lr", min=0.0, help="Adam learning rate.")] = 2e-3,
    seed: Annotated[int, typer.Option("--seed", help="Seed for split, shuffling and initialisation.")] = 0,
    class_weights: Annotated[
        bool, typer.Option("--class-weights/--no-class-weights", help="Sqrt inverse-frequency class weights.")
    ] = True,
    label_smoothing: Annotated[float, typer.Option("--label-smoothing", min=0.0, max=0.5)] = 0.0,
    val_fraction: Annotated[float, typer.Option("--val-fraction", min=0.01, max=0.5)] = 0.1,
    max_minutes: Annotated[
        float, typer.Option("--max-minutes", min=0.0, help="Stop after the epoch that passes this budget (0: none).")
    ] = 0.0,
    novelty_quantile: Annotated[
        float,
        typer.Option(
            "--novelty-quantile",
            min=0.5,
            max=0.9999,
            help="Novelty gate threshold: this quantile of the validation normal rows' distances.",
        ),
    ] = 0.99,
    novelty_clusters: Annotated[
        int,
        typer.Option(
            "--novelty-clusters",
            min=1,
            max=1024,
            help="Novelty gate: k-means centres of the normal rows (1: one Gaussian).",
        ),
    ] = 1,
    https_as_http: Annotated[
        bool,
        typer.Option(
            "--https-as-http/--no-https-as-http",
            help="Capture features: encode service http_443 as http (NSL-KDD's http_443 rows are all attacks).",
        ),
    ] = True,
    distill: Annotated[
        list[Path] | None,
        typer.Option(
            "--distill",
            help="A trained model folder to learn from as well as the labels (repeat: their mean probabilities).",
        ),
    ] = None,
    distill_alpha: Annotated[
        float, typer.Option("--distill-alpha", min=0.0, max=1.0, help="Weight of the teachers against the labels.")
    ] = 0.5,
    threads: Annotated[int, typer.Option("--threads", min=0, help="CPU threads for torch (0: torch's default).")] = 1,
    device: Annotated[
        str,
        typer.Option("--device", help="auto (CUDA if present), cpu or cuda. Same seed, same weights: on the CPU only."),
    ] = "auto",
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing model folder.")] = False,
    quiet: Annotated[bool, typer.Option("-q", "--quiet", help="No progress output.")] = False,
) -> None:
    """Train with a stratified validation split and early stopping; save the best-validation weights."""
    import torch

    from analyzer.progress import make_stages
    from model.artifacts import METADATA
    from model.data import file_sha256
    from model.infer import Classifier
    from model.train import TrainConfig, train_model

    if (output / METADATA).exists() and not force:
        raise InputError(f"{output}: already holds a model; use --force to overwrite it")
    if output.exists() and not output.is_dir():
        raise InputError(f"{output}: is a file; -o names a model folder")
    if threads:
        # One thread by default: on a shared 2-core machine, torch's spinning OpenMP threads ran 30x slower.
        torch.set_num_threads(threads)
    cfg = TrainConfig(
        feature_set=features.value,
        n_classes=classes,
        arch=arch.value,
        depth=depth,
        residual=residual and arch is not Arch.msmnet,
        epochs=epochs,
        patience=patience,
        average_last=average_last,
        batch_size=batch_size,
        lr=lr,
        seed=seed,
        class_weights=class_weights,
        label_smoothing=label_smoothing,
        val_fraction=val_fraction,
        max_minutes=max_minutes,
        novelty_quantile=novelty_quantile,
        novelty_clusters=novelty_clusters,
        https_as_http=https_as_http,
        distill_alpha=distill_alpha,
    )
    teachers = [Classifier.load(p, device="cpu") for p in distill or []]

    def show(row: dict[str, float]) -> None:
        if not quiet:
            print(
                f"nta: epoch {int(row['epoch']):3d}  train loss {row['train_loss']:.4f}  val loss "
                f"{row['val_loss']:.4f}  val acc {row['val_acc']:.4f}  val macro-F1 {row['val_macro_f1']:.4f}  "
                f"{row['seconds']:.0f} s",
                file=sys.stderr,
                flush=True,
            )

    with make_stages(quiet) as stages:
        with stages.stage("reading"):
            frames, df = _read_training(data)
            files = [
                {"file": path_text(p.name), "sha256": file_sha256(p), "rows": f.height}
                for p, f in zip(data, frames, strict=True)
            ]
        with stages.stage("training") as progress:
            result = train_model(df, cfg, progress=progress, on_epoch=show, device=device, teachers=teachers)
    # "data"/"data_sha256" name the first file, as before several files were allowed; "data_files" lists all.
    result.extra.update(
        {"data": files[0]["file"], "data_sha256": files[0]["sha256"], "data_files": files, "rows": df.height}
    )
    result.save(output)
    v = result.val_metrics
    print(
        f"nta: trained {cfg.arch} ({cfg.feature_set} features, {len(result.classes)} classes) in "
        f"{result.seconds:.0f} s on {result.device}, best epoch {result.best_epoch}/{len(result.history)}: validation accuracy "
        f"{v['accuracy']:.4f}, macro-F1 {v['macro_f1']:.4f}; wrote {path_text(output)}",
        file=sys.stderr,
    )


@guarded
def evaluate(
    model_dir: Annotated[Path, typer.Argument(help="Model folder (weights.safetensors + metadata.json).")],
    data: Annotated[Path, typer.Option("--data", help="Labelled data: NSL-KDD text (.gz or not) or Parquet.")],
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write the metrics as JSON here.")] = None,
    record: Annotated[
        bool, typer.Option("--record", help="Store the metrics in the model's metadata.json under metrics.test.")
    ] = False,
    device: Annotated[str, typer.Option("--device", help="auto, cpu or cuda.")] = "auto",
    threads: Annotated[int, typer.Option("--threads", min=0, help="CPU threads for torch (0: default).")] = 0,
) -> None:
    """Print the metrics table; optionally write JSON and record it in the model folder."""
    import torch

    from features.common import atomic_path
    from features.kdd.nslkdd import read_labeled
    from model.artifacts import write_metadata
    from model.data import file_sha256
    from model.evaluate import evaluate as run_evaluate
    from model.infer import Classifier

    if threads:
        torch.set_num_threads(threads)
    clf = Classifier.load(model_dir, device=device)
    df = read_labeled(data)
    result: dict[str, Any] = {
        "model": path_text(model_dir),
        "model_id": clf.model_id,
        "data": path_text(data.name),
        "data_sha256": file_sha256(data),
        **run_evaluate(clf, df),
    }
    _print_report(result)
    if json_out is not None:
        with atomic_path(json_out) as tmp:
            tmp.write_text(json.dumps(result, indent=1) + "\n")
    if record:
        meta = dict(clf.metadata)
        meta.setdefault("metrics", {}).setdefault("test", {})[path_text(data.name)] = {
            k: result[k] for k in ("data_sha256", "multiclass", "binary", "novelty_gate", "support_gate") if k in result
        }
        write_metadata(model_dir, meta)


@guarded
def fit_support(
    model_dir: Annotated[Path, typer.Argument(help="Model folder (weights.safetensors + metadata.json); rewritten.")],
    data: Annotated[
        list[Path],
        typer.Option("--data", help="The model's training files, in the order its metadata records them."),
    ],
) -> None:
    """Fit the support gate from the model's own training split and store it in the model folder.

    The files must be those the model was trained on (names and sha256 as recorded in its metadata, same order):
    the split is rebuilt with the recorded seed and validation fraction. The weights file gains ``support.*``
    tensors, so the model id changes; the network's own tensors stay as they are.
    """

    from model.artifacts import save_model
    from model.data import file_sha256, stratified_split, targets
    from model.infer import Classifier
    from model.support import fit_support as fit

    clf = Classifier.load(model_dir, device="cpu")
    if clf.confirmers:
        raise InputError(
            f"{path_text(model_dir)}: holds confirmers (nta model confirm); fit the support gate of its primary "
            "model, then combine again"
        )
    train_meta = clf.metadata.get("train", {})
    want = train_meta.get("data_files") or []
    got = [{"file": path_text(p.name), "sha256": file_sha256(p)} for p in data]
    if [(w.get("file"), w.get("sha256")) for w in want] != [(g["file"], g["sha256"]) for g in got]:
        names = ", ".join(str(w.get("file")) for w in want) or "none recorded"
        raise InputError(
            f"{path_text(model_dir)}: --data must be the model's training files in their recorded order ({names}), "
            "byte for byte"
        )
    cfg = train_meta.get("config", {})
    _, df = _read_training(data)
    y = targets(df, clf.classes)
    tr, va = stratified_split(y, float(cfg.get("val_fraction", 0.1)), int(cfg.get("seed", 0)))
    x, _ = clf.encode(df)  # (n, F)
    support = fit(x[tr], y[tr], x[va], y[va], len(clf.classes))
    meta = save_model(model_dir, clf.net, clf.net_config, clf.spec, clf.classes, clf.metadata, clf.novelty, support)
    radii = ", ".join(f"{c} {r:.3f}" for c, r in zip(clf.classes, support.radius, strict=True))
    print(
        f"nta: fitted the support gate of {path_text(model_dir)} on {len(tr):,} training and {len(va):,} validation "
        f"rows ({len(support.centres):,} centres; radii {radii}); model id {clf.model_id} -> "
        f"{meta['weights_sha256'][:12]}",
        file=sys.stderr,
    )


@guarded
def confirm(
    primary: Annotated[Path, typer.Argument(help="The model folder whose network computes every flow.")],
    confirmers: Annotated[
        list[Path], typer.Argument(help="Model folders of the same network, classes and encoding (other seeds).")
    ],
    output: Annotated[Path, typer.Option("-o", "--output", help="Combined model folder to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing model folder.")] = False,
) -> None:
    """Write a model folder in which PRIMARY labels every flow and, for the flows it calls an attack class, the
    class is the one with the largest mean probability over PRIMARY and every CONFIRMER (``model.confirm``)."""
    from model.confirm import combine
    from model.files import METADATA

    if (output / METADATA).exists() and not force:
        raise InputError(f"{path_text(output)}: already holds a model; use --force to overwrite it")

    meta = combine(primary, confirmers, output)
    print(
        f"nta: wrote {path_text(output)}: model {meta['weights_sha256'][:12]} = {meta['confirm']['primary'][:12]} "
        f"confirmed by {', '.join(s[:12] for s in meta['confirm']['sources'])}",
        file=sys.stderr,
    )


def _read_training(data: list[Path]) -> tuple[list[Any], Any]:
    """The ``--data`` files' labelled frames and their concatenation, in the given order (train, fit-support)."""
    import polars as pl

    from features.kdd.nslkdd import read_labeled

    frames = [read_labeled(p) for p in data]
    return frames, (pl.concat(frames) if len(frames) > 1 else frames[0])


def _print_report(result: dict[str, Any]) -> None:
    """Rich tables on stdout: headline numbers, per-class metrics and the confusion matrix per view, for the
    network and (when the model holds one) with its novelty gate."""
    from rich.console import Console

    console = Console()
    if not console.is_terminal:
        console = Console(width=120)  # a pipe or CI log: do not squeeze the matrix into 80 columns
    views: list[tuple[str, dict[str, Any]]] = [("", result)]
    if "novelty_gate" in result:
        views.append((" + novelty gate", result["novelty_gate"]))
    if "support_gate" in result:
        views.append((" + support gate", result["support_gate"]))
    for gate_name, res in views:
        _print_views(console, result["data"] + gate_name, res)
    if "novelty_gate" in result:
        console.print(
            f"novelty gate: {result['novelty_gate']['flagged']:,} rows predicted normal were unlike the normal "
            "training rows and became their most probable attack class"
        )
    if "support_gate" in result:
        console.print(
            f"support gate: {result['support_gate']['relabelled']:,} rows called an attack class far from its "
            "training rows and near normal ones were set to normal"
        )
    if result.get("outside_spec"):
        outside = ", ".join(f"{k}: {v}" for k, v in result["outside_spec"].items())
        console.print(f"values outside the model's feature spec (encoded as 'other'/minimum): {outside}")


def _print_views(console: Any, name: str, result: dict[str, Any]) -> None:
    """One table per view (5-class, binary): headline in the title, per-class metrics, confusion matrix."""
    from rich.table import Table

    for view in ("multiclass", "binary"):
        m = result[view]
        if view == "binary" and result["multiclass"]["classes"] == m["classes"]:
            continue
        title = (
            f"{name} - {'5-class' if view == 'multiclass' else 'binary (normal vs attack)'}: "
            f"accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, FPR on normal {m['fpr_normal']:.4f}"
        )
        table = Table(title=title, title_justify="left")
        table.add_column("true \\ predicted")
        for c in m["classes"]:
            table.add_column(c, justify="right")
        for col in ("precision", "recall", "F1", "rows"):
            table.add_column(col, justify="right")
        for c, row in zip(m["classes"], m["confusion"], strict=True):
            pc = m["per_class"][c]
            table.add_row(
                c,
                *(str(v) for v in row),
                f"{pc['precision']:.4f}",
                f"{pc['recall']:.4f}",
                f"{pc['f1']:.4f}",
                str(pc["support"]),
            )
        console.print(table)
