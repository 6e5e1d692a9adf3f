"""Train a network on labelled KDD-feature rows: ``train_model(df, TrainConfig(...)) -> TrainResult``.

Protocol: the frame is split into a stratified training part and a validation part (``val_fraction`` of
each class); the feature spec is fitted on the training part only; Adam on cross-entropy (optionally
class-weighted, label-smoothed) over shuffled mini-batches; after each epoch the validation loss decides
the learning-rate halving and early stopping, and the weights of the best validation epoch are kept.
With ``teachers`` (trained models: ``model.distill``) the training loss also pulls towards their mean
probabilities, on the rows and on points mixed between two rows; validation stays on the labels alone.
A fixed seed gives the same weights on the same CPU (seeded split, shuffling and init; deterministic
algorithms on while training). On CUDA (``device``) the training rows sit on the GPU, forward passes run
under bf16 autocast (weights and Adam state stay float32; bf16 needs no loss scaling), and runs are not
bit-reproducible (cuDNN's LSTM kernels are not deterministic); the trained network comes back on the CPU.
"""

from __future__ import annotations

import copy
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from features.common import InputError, ProgressFn, atomic_path, no_progress
from features.encode.spec import CAPTURE_ALIASES, DEFAULT_LOG1P, FEATURE_SETS, FeatureSpec
from model.artifacts import save_model
from model.baselines import ARCHS, build_network
from model.data import class_names, stratified_split, targets
from model.distill import Teachers
from model.evaluate import metrics
from model.infer import Classifier, resolve_device
from model.network import NetConfig
from model.novelty import QUANTILE, NormalProfile, fit_profile, representations
from model.support import SupportProfile, fit_support

__all__ = ["HISTORY_COLUMNS", "TrainConfig", "TrainResult", "class_weights", "train_model"]

HISTORY_COLUMNS = ("epoch", "train_loss", "val_loss", "val_acc", "val_macro_f1", "lr", "seconds")


@dataclass
class TrainConfig:
    """Every training choice (stored in metadata.json). Defaults are the shipped model's."""

    feature_set: str = "capture"  # capture (28 features) | full (41)
    n_classes: int = 5  # 5 | 2
    arch: str = "msmrnet"  # msmrnet | msmnet | mlp | cnn | lstm
    depth: int = 5
    residual: bool = True
    epochs: int = 30  # upper bound; early stopping usually ends sooner
    batch_size: int = 512
    lr: float = 2e-3
    weight_decay: float = 0.0
    seed: int = 0
    val_fraction: float = 0.1
    patience: int = 5  # epochs without a better validation loss before stopping
    # Tail averaging (SWA-style): the mean of the last N epochs' weights, batch-norm statistics recomputed over the
    # training rows, replaces the best epoch's weights when its validation loss is lower (0 or 1: off).
    average_last: int = 0
    class_weights: bool = True  # sqrt inverse-frequency weights (U2R has 52 training rows)
    label_smoothing: float = 0.0
    scaling: str = "minmax"
    log1p: tuple[str, ...] = DEFAULT_LOG1P
    patch: int = 16
    channels: int = 16
    branch_channels: int = 8
    dropout: float = 0.1
    max_minutes: float = 0.0  # stop after the epoch that passes this wall-clock budget (0: no budget)
    # model.novelty: the gate's threshold is this quantile of the validation split's normal rows' distances
    novelty_quantile: float = QUANTILE
    # model.novelty: 1 = one Gaussian over the normal rows; K > 1 = K k-means centres sharing one covariance
    novelty_clusters: int = 1
    # Capture features only: encode service http_443 as http (features.encode.spec.CAPTURE_ALIASES; NSL-KDD's 530
    # http_443 rows are all attacks). Off: http_443 stays its own value, to be learnt from benign captures.
    https_as_http: bool = True
    # model.distill: with teacher models, the loss is (1 - alpha) * cross-entropy on the labels + alpha * the
    # cross-entropy towards the teachers' mean probabilities (half on the batch's rows, half on points mixed
    # between two of them: distill_mix). ``teachers`` records the teachers' model ids (filled in by train_model).
    distill_alpha: float = 0.5
    distill_mix: float = 0.5  # mixed points per batch, as a share of the batch's rows
    teachers: tuple[str, ...] = ()

    def net_config(self, n_features: int) -> NetConfig:
        return NetConfig(
            n_features=n_features,
            n_classes=self.n_classes,
            arch=self.arch,
            depth=self.depth,
            residual=self.residual,
            patch=self.patch,
            channels=self.channels,
            branch_channels=self.branch_channels,
            dropout=self.dropout,
        )

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["log1p"] = list(self.log1p)
        d["teachers"] = list(self.teachers)
        return d


@dataclass
class TrainResult:
    """The trained network (best validation epoch) and everything needed to save or evaluate it."""

    net: nn.Module
    net_config: NetConfig
    spec: FeatureSpec
    classes: tuple[str, ...]
    config: TrainConfig
    history: list[dict[str, float]]
    best_epoch: int
    val_metrics: dict[str, Any]
    seconds: float
    n_train: int
    n_val: int
    extra: dict[str, Any] = field(default_factory=dict)
    novelty: NormalProfile | None = None  # model.novelty: fitted on the training/validation split's normal rows
    support: SupportProfile | None = None  # model.support: fitted on the training/validation split's encoded rows
    device: str = "cpu"  # where it was trained

    def classifier(self) -> Classifier:
        """An in-memory Classifier (CPU) for evaluation without saving."""
        return Classifier(
            net=self.net.eval(),
            net_config=self.net_config,
            spec=self.spec,
            classes=self.classes,
            metadata={"feature_set": self.config.feature_set},
            novelty=self.novelty,
            support=self.support,
        )

    def history_frame(self) -> pl.DataFrame:
        return pl.DataFrame(self.history, schema=list(HISTORY_COLUMNS), orient="row")

    def save(self, model_dir: Path, extra: dict[str, Any] | None = None) -> dict[str, Any]:
        """Write weights.safetensors + metadata.json + history.csv into ``model_dir``; return the metadata."""
        meta = {
            "feature_set": self.config.feature_set,
            "train": {
                **self.extra,
                "config": self.config.to_dict(),
                "rows_train": self.n_train,
                "rows_val": self.n_val,
                "epochs_run": len(self.history),
                "best_epoch": self.best_epoch,
                "seconds": round(self.seconds, 1),
                "torch_threads": torch.get_num_threads(),
                "device": self.device,
            },
            "metrics": {"val": self.val_metrics},
            **(extra or {}),
        }
        meta = save_model(
            model_dir, self.net, self.net_config, self.spec, self.classes, meta, self.novelty, self.support
        )
        with atomic_path(Path(model_dir) / "history.csv") as tmp:
            self.history_frame().write_csv(tmp)
        return meta


def _tail_average(
    net: nn.Module,
    states: list[dict[str, torch.Tensor]],
    best_loss: float,
    x_tr: torch.Tensor,
    x_va: torch.Tensor,
    y_va: torch.Tensor,
    loss_fn: nn.Module,
    batch_size: int,
) -> tuple[nn.Module, dict[str, Any]]:
    """The mean of ``states`` (the last epochs' weights) with batch-norm statistics recomputed over the training
    rows, if its validation loss is below ``best_loss`` (else ``net``, the best epoch, unchanged); and what happened.

    Why: one training's weights are partly its seed's (docs/results/seed-variance.md); averaging the weights of the
    last epochs, where the learning rate has been halved on the plateau, lands in a flatter region than any one
    epoch (Izmailov et al. 2018, "Averaging Weights Leads to Wider Optima"), at no cost in inference, where an
    ensemble of seeds would run several networks. The averaged batch-norm running statistics are not those of the
    averaged weights, hence one pass over the training rows with them (cumulative averages, no gradient)."""
    avg = copy.deepcopy(net)
    mean = {
        k: torch.stack([s[k].float() for s in states]).mean(0).to(v.dtype) if v.is_floating_point() else v
        for k, v in states[-1].items()
    }
    avg.load_state_dict(mean)
    norms = [m for m in avg.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    for m in norms:
        m.reset_running_stats()
        m.momentum = None  # cumulative average over the pass
    avg.train()
    with torch.no_grad(), _autocast(x_tr):
        for s in range(0, len(x_tr), batch_size):
            if len(x_tr) - s >= 2:  # batch norm needs two rows
                avg(x_tr[s : s + batch_size])  # (b, K), for the statistics only
    for m, ref in zip(norms, (m for m in net.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)), strict=True):
        m.momentum = ref.momentum
    loss, _ = _epoch_eval(avg, x_va, y_va, loss_fn)
    kept = loss < best_loss
    return (avg if kept else net), {"val_loss": loss, "best_val_loss": best_loss, "kept": "average" if kept else "best"}


def _fit_novelty(
    net: nn.Module, x_tr: np.ndarray, y_tr: np.ndarray, x_va: np.ndarray, y_va: np.ndarray, cfg: TrainConfig
) -> NormalProfile | None:
    """``model.novelty`` profile of the trained network (None without normal rows in both splits)."""
    if (y_tr == 0).sum() < 2 or (y_va == 0).sum() < 1:
        return None
    _, z_tr = representations(net, x_tr[y_tr == 0])  # (n_normal_train, D)
    _, z_va = representations(net, x_va[y_va == 0])  # (n_normal_val, D)
    return fit_profile(z_tr, z_va, cfg.novelty_quantile, clusters=cfg.novelty_clusters)


def class_weights(y: np.ndarray, k: int) -> np.ndarray:
    """Sqrt inverse-frequency weights (k,), scaled so the average weight over the rows is 1.

    Full inverse frequency gives U2R (52 of 113k rows) a weight near 500 and the network then calls many
    normal rows U2R; the square root (about 22) keeps rare classes visible without that.
    """
    counts = np.bincount(y, minlength=k).astype(float)
    w = np.where(counts > 0, np.sqrt(counts.sum() / np.maximum(counts, 1) / k), 1.0)
    return w / (w[y].mean() if len(y) else 1.0)


def _autocast(x: torch.Tensor) -> torch.autocast:
    """bf16 autocast where ``x`` lives on CUDA; a no-op on the CPU."""
    return torch.autocast("cuda", dtype=torch.bfloat16, enabled=x.is_cuda)


def _distill_loss(
    net: nn.Module,
    ens: Teachers,
    x_tr: torch.Tensor,
    y_tr: torch.Tensor,
    idx: torch.Tensor,
    weight: torch.Tensor,
    loss_fn: nn.Module,
    cfg: TrainConfig,
    gen: torch.Generator,
) -> torch.Tensor:
    """(1 - alpha) * the labels' cross-entropy + alpha * the mean of the soft cross-entropies towards the teachers
    on the batch's rows ``idx`` (b,) and on m = ceil(b * distill_mix) points mixed between the first m rows and a
    shuffle of the batch (``model.distill``). Soft terms are weighted per row like the hard one (a mixed point's
    weight mixed with the same ``lam``). Fewer mixed points than rows: each one costs a forward pass per teacher."""
    b = len(idx)
    m = max(1, math.ceil(b * cfg.distill_mix))
    first = idx[:m]  # (m,)
    partners = idx[torch.randperm(b, generator=gen)[:m].to(idx.device)]  # (m,)
    lam = torch.rand(m, 1, generator=gen).to(x_tr.device)  # (m, 1), uniform: anywhere between the two rows
    x_mix = lam * x_tr[first] + (1 - lam) * x_tr[partners]  # (m, F)
    with _autocast(x_tr):
        logits = net(torch.cat([x_tr[idx], x_mix])).float()  # (b + m, K): rows, then mixed points
    logp = torch.log_softmax(logits, dim=1)  # (b + m, K)
    target = torch.cat([ens.rows[idx], ens.proba(first, partners, lam)])  # (b + m, K)
    y = y_tr[idx]  # (b,)
    w = torch.cat([weight[y], lam[:, 0] * weight[y_tr[first]] + (1 - lam[:, 0]) * weight[y_tr[partners]]])  # (b + m,)
    soft = -(target * logp).sum(1) * w  # (b + m,)
    soft_loss = 0.5 * (soft[:b].sum() / w[:b].sum() + soft[b:].sum() / w[b:].sum())
    hard = loss_fn(logits[:b], y)
    return (1 - cfg.distill_alpha) * hard + cfg.distill_alpha * soft_loss


def _epoch_eval(net: nn.Module, x: torch.Tensor, y: torch.Tensor, loss_fn: nn.Module) -> tuple[float, np.ndarray]:
    """Mean validation loss and predictions (n,), in eval mode, batches of 4096."""
    net.eval()
    total, preds = 0.0, []
    with torch.inference_mode(), _autocast(x):
        for s in range(0, len(x), 4096):
            logits = net(x[s : s + 4096]).float()  # (b, K)
            total += float(loss_fn(logits, y[s : s + 4096])) * len(logits)
            preds.append(logits.argmax(1).cpu().numpy())
    return total / max(len(x), 1), np.concatenate(preds) if preds else np.zeros(0, dtype=np.int64)


def train_model(
    df: pl.DataFrame,
    cfg: TrainConfig,
    progress: ProgressFn = no_progress,
    on_epoch: Callable[[dict[str, float]], None] | None = None,
    device: str = "cpu",
    teachers: Sequence[Classifier] = (),
) -> TrainResult:
    """Train ``cfg.arch`` on ``df`` (KDD features + ``label5``); see the module docstring for the protocol.

    ``teachers``: trained classifiers to distil (``model.distill``; ``cfg.distill_alpha`` weighs them against the
    labels); their model ids are recorded in the returned config.

    ``progress(done, total)`` counts mini-batches over the epoch budget; ``on_epoch`` receives each history
    row (the ``HISTORY_COLUMNS``) as it is written. ``device``: cpu, cuda[:N] or auto (model.infer.resolve_device).

    Raises:
        InputError: unknown feature set / arch / class count, or too few rows to split.
    """
    if cfg.feature_set not in FEATURE_SETS:
        raise InputError(f"unknown feature set {cfg.feature_set!r} (expected capture or full)")
    if cfg.arch not in ARCHS:
        raise InputError(f"unknown architecture {cfg.arch!r} (expected one of {', '.join(ARCHS)})")
    classes = class_names(cfg.n_classes)
    y_all = targets(df, classes)
    tr_idx, va_idx = stratified_split(y_all, cfg.val_fraction, cfg.seed)
    if len(tr_idx) == 0 or len(va_idx) == 0:
        raise InputError(f"need rows for both training and validation, got {df.height} rows")
    t0 = time.perf_counter()
    aliases = CAPTURE_ALIASES if cfg.feature_set == "capture" and cfg.https_as_http else None  # features.encode.spec
    spec = FeatureSpec.fit(df[tr_idx], FEATURE_SETS[cfg.feature_set], cfg.scaling, cfg.log1p, aliases)
    x_all, _ = spec.transform(df)  # (n, F)
    dev = resolve_device(device)
    x_tr, y_tr = torch.from_numpy(x_all[tr_idx]).to(dev), torch.from_numpy(y_all[tr_idx]).to(dev)  # (n, F), (n,)
    x_va, y_va = torch.from_numpy(x_all[va_idx]).to(dev), torch.from_numpy(y_all[va_idx]).to(dev)

    if not 0.0 <= cfg.distill_alpha <= 1.0 or not 0.0 < cfg.distill_mix <= 1.0:
        raise InputError(
            f"distillation weight must be within [0, 1] and its mixed share within (0, 1], got "
            f"{cfg.distill_alpha} and {cfg.distill_mix}"
        )
    ens = Teachers(teachers, df[tr_idx], classes, dev) if teachers else None
    if ens is not None:
        cfg = replace(cfg, teachers=tuple(ens.ids))
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.use_deterministic_algorithms(dev == "cpu")
    try:
        torch.manual_seed(cfg.seed)
        net_cfg = cfg.net_config(x_all.shape[1])
        net = build_network(net_cfg).to(dev)
        weight = torch.tensor(class_weights(y_all[tr_idx], len(classes)), dtype=torch.float32, device=dev)
        loss_fn = nn.CrossEntropyLoss(weight=weight if cfg.class_weights else None, label_smoothing=cfg.label_smoothing)
        opt = torch.optim.Adam(net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, factor=0.5, patience=max(cfg.patience // 2 - 1, 0))
        gen = torch.Generator().manual_seed(cfg.seed)
        n_batches = -(-len(x_tr) // cfg.batch_size)
        total = cfg.epochs * n_batches
        history: list[dict[str, float]] = []
        best = (float("inf"), 0, copy.deepcopy(net.state_dict()))
        tail: deque[dict[str, torch.Tensor]] = deque(maxlen=max(cfg.average_last, 1))
        for epoch in range(1, cfg.epochs + 1):
            t_epoch = time.perf_counter()
            net.train()
            perm = torch.randperm(len(x_tr), generator=gen)
            run_loss = 0.0
            for b in range(n_batches):
                idx = perm[b * cfg.batch_size : (b + 1) * cfg.batch_size].to(dev)
                if len(idx) < 2:  # batch norm needs two rows
                    continue
                opt.zero_grad(set_to_none=True)
                if ens is None:
                    with _autocast(x_tr):
                        logits = net(x_tr[idx])  # (b, K)
                    loss = loss_fn(logits.float(), y_tr[idx])
                else:
                    w = weight if cfg.class_weights else torch.ones_like(weight)
                    loss = _distill_loss(net, ens, x_tr, y_tr, idx, w, loss_fn, cfg, gen)
                loss.backward()
                opt.step()
                run_loss += float(loss.detach()) * len(idx)
                progress((epoch - 1) * n_batches + b + 1, total)
            val_loss, pred = _epoch_eval(net, x_va, y_va, loss_fn)
            m = metrics(y_va.cpu().numpy(), pred, classes)
            row = {
                "epoch": epoch,
                "train_loss": run_loss / len(x_tr),
                "val_loss": val_loss,
                "val_acc": m["accuracy"],
                "val_macro_f1": m["macro_f1"],
                "lr": opt.param_groups[0]["lr"],
                "seconds": time.perf_counter() - t_epoch,
            }
            history.append(row)
            if on_epoch is not None:
                on_epoch(row)
            if cfg.average_last > 1:
                tail.append({k: v.detach().clone() for k, v in net.state_dict().items()})
            sched.step(val_loss)
            if val_loss < best[0]:
                best = (val_loss, epoch, copy.deepcopy(net.state_dict()))
            elif epoch - best[1] >= cfg.patience:
                break
            if cfg.max_minutes and time.perf_counter() - t0 > 60 * cfg.max_minutes:
                break
        progress(total, total)
        net.load_state_dict(best[2])
        averaging: dict[str, Any] = {}
        if cfg.average_last > 1 and len(tail) > 1:
            net, averaging = _tail_average(net, list(tail), best[0], x_tr, x_va, y_va, loss_fn, cfg.batch_size)
            averaging["epochs"] = [len(history) - len(tail) + 1, len(history)]
        net.eval()
        _, pred = _epoch_eval(net, x_va, y_va, loss_fn)
        net = net.cpu()  # the profile and everything after it on the CPU, in float32
        x_tr, y_tr, x_va, y_va = x_tr.cpu(), y_tr.cpu(), x_va.cpu(), y_va.cpu()
        profile = _fit_novelty(net, x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy(), cfg)
        support = fit_support(x_tr.numpy(), y_tr.numpy(), x_va.numpy(), y_va.numpy(), len(classes))
    finally:
        torch.use_deterministic_algorithms(deterministic)
    return TrainResult(
        net=net,
        net_config=net_cfg,
        spec=spec,
        classes=classes,
        config=cfg,
        history=history,
        best_epoch=best[1],
        val_metrics=metrics(y_va.numpy(), pred, classes),
        seconds=time.perf_counter() - t0,
        n_train=len(tr_idx),
        n_val=len(va_idx),
        novelty=profile,
        support=support,
        device=dev,
        extra={"averaging": averaging} if averaging else {},
    )
