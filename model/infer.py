"""Batched inference with a model directory: ``Classifier.load(dir).predict_proba(x)``.

The caller encodes features with ``classifier.spec.transform(df)`` (or ``classifier.encode(df)``), so
the matrix is the one the model was trained on; ``check_columns`` refuses any other column list.
Inference runs in large batches under ``torch.inference_mode``; on CUDA the batches are copied from
pinned memory without blocking and run under bf16 autocast (probabilities come back as float32).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import torch
from torch import nn

from features.common import ModelError
from features.encode.spec import FeatureSpec
from model.artifacts import load_model
from model.files import default_full_model_dir, default_model_dir
from model.forward import device_batches, forward_pass
from model.network import NetConfig
from model.novelty import NormalProfile
from model.support import SupportProfile

__all__ = ["Classifier", "default_full_model_dir", "default_model_dir", "limit_threads", "resolve_device"]


def limit_threads(threads: int) -> int:
    """At most ``threads`` torch CPU threads from now on (``nta scan --threads N``; inference then uses
    exactly N: ``Classifier.threads``); returns the number in force. Fewer than the cores is the right call on
    a machine other jobs share: torch's OpenMP threads spin waiting for a busy core."""
    torch.set_num_threads(max(1, threads))
    return torch.get_num_threads()


def resolve_device(device: str) -> str:
    """``auto`` -> ``cuda`` when available, else ``cpu``; an unavailable explicit device is a ModelError."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ModelError(f"device {device!r} requested but CUDA is not available (use --device cpu or auto)")
    if not (device == "cpu" or device.startswith("cuda")):
        raise ModelError(f"unknown device {device!r} (expected auto, cpu or cuda[:N])")
    return device


@dataclass
class Classifier:
    """A loaded network with its feature spec and class names; probabilities and attributions in batches."""

    net: nn.Module
    net_config: NetConfig
    spec: FeatureSpec
    classes: tuple[str, ...]
    metadata: dict[str, Any] = field(default_factory=dict)
    device: str = "cpu"
    novelty: NormalProfile | None = None  # model.novelty profile, when the model directory holds one
    support: SupportProfile | None = None  # model.support profile, when the model directory holds one
    threads: int | None = None  # CPU threads for inference: None torch's setting, AUTO (0) model.forward.pick_threads

    @classmethod
    def load(cls, model_dir: Path, device: str = "auto") -> Classifier:
        """Load and check a model directory (ModelError, one line, when missing/corrupt/tampered/mismatched)."""
        dev = resolve_device(device)
        m = load_model(Path(model_dir))
        return cls(
            net=m.net.to(dev),
            net_config=m.net_config,
            spec=m.spec,
            classes=m.classes,
            metadata=m.metadata,
            device=dev,
            novelty=m.novelty,
            support=m.support,
        )

    @property
    def model_id(self) -> str:
        """A short stable id: the first 12 hex digits of the weights' sha256."""
        return str(self.metadata.get("weights_sha256", "unsaved"))[:12]

    @property
    def feature_set(self) -> str:
        """``capture`` or ``full`` (what the model was trained on)."""
        return str(self.metadata.get("feature_set", "full" if "hot" in self.spec.columns else "capture"))

    def encode(self, df: pl.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """``spec.transform``: float32 (n, F) and the per-column count of values outside the spec."""
        return self.spec.transform(df)

    def check_columns(self, encoded_columns: list[str]) -> None:
        """ModelError naming the first differences when ``encoded_columns`` is not the spec's list."""
        want = self.spec.encoded_columns
        if list(encoded_columns) == want:
            return
        extra = [c for c in encoded_columns if c not in set(want)]
        missing = [c for c in want if c not in set(encoded_columns)]
        detail = f"missing {missing[:3]}, unexpected {extra[:3]}" if extra or missing else "same columns, other order"
        raise ModelError(
            f"feature columns do not match model {self.model_id}: got {len(encoded_columns)}, model expects "
            f"{len(want)}; {detail}"
        )

    def _check_x(self, x: np.ndarray) -> np.ndarray:
        if x.ndim != 2 or x.shape[1] != self.net_config.n_features:
            raise ModelError(
                f"input has shape {x.shape}, model {self.model_id} expects (n, {self.net_config.n_features})"
            )
        return np.ascontiguousarray(x, dtype=np.float32)

    def _forward(self, x: np.ndarray, batch_size: int, keep_reps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        """``model.forward.forward_pass`` on this classifier's device: the plain and the gated predictions
        rest on the same logits on every device (bf16 autocast on CUDA). Non-finite probabilities (NaN or
        infinity inside the network) are a ``ModelError``: an argmax would quietly turn them into "normal"."""
        proba, z = forward_pass(self.net, self._check_x(x), batch_size, self.device, keep_reps, self.threads)
        bad = ~np.isfinite(proba).all(axis=1)
        if bad.any():
            raise ModelError(
                f"model {self.model_id}: class probabilities are NaN or infinite for {int(bad.sum()):,} of "
                f"{len(proba):,} rows (the network overflows or holds NaN); no verdict is given"
            )
        return proba, z

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Class probabilities: float32 (n, F) -> float32 (n, K), columns in ``classes`` order."""
        return self._forward(x, batch_size, keep_reps=False)[0]

    def predict(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray]:
        """(class index (n,) int64, probabilities (n, K) float32)."""
        p = self.predict_proba(x, batch_size)
        return p.argmax(axis=1), p

    def predict_gated(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class index (n,), probabilities (n, K), novel (n,) bool) with the ``model.novelty`` gate applied.

        ModelError when the model holds no novelty profile. The same pass as ``predict_proba`` (on CUDA
        under bf16 autocast; the representation is cast to float32 for the distance), so a row the gate
        leaves alone keeps exactly the class ``predict_proba`` gives it.
        """
        if self.novelty is None:
            raise ModelError(f"model {self.model_id} has no novelty profile (train it again with this nta)")
        proba, z = self._forward(x, batch_size, keep_reps=True)  # (n, K), (n, D)
        assert z is not None
        pred, novel = self.novelty.gate(proba, z)
        return pred, proba, novel

    def predict_supported(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(class index (n,), probabilities (n, K), unsupported (n,) bool) with the ``model.support`` gate: rows
        called an attack class far from that class's training rows and near normal ones get class 0 (normal).

        Without a support profile: argmax, nothing unsupported. The probabilities are ``predict_proba``'s.
        """
        proba = self.predict_proba(x, batch_size)  # (n, K)
        pred = proba.argmax(axis=1)
        if self.support is None:
            return pred, proba, np.zeros(len(pred), dtype=bool)
        off = self.support.unsupported(pred, self._check_x(x))
        return np.where(off, 0, pred), proba, off

    def attribute(self, x: np.ndarray, target: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Gradient x input of the ``target`` class logit per encoded feature: float32 (n, F).

        Sum over ``spec.source_feature`` groups for a per-KDD-feature attribution. Runs in float32 (no
        autocast); on CUDA with cuDNN off, because cuDNN's LSTM has no backward in eval mode.
        """
        x = self._check_x(x)
        tgt = np.asarray(target, dtype=np.int64).reshape(-1)
        if len(tgt) != len(x):
            raise ModelError(f"attribute: {len(tgt)} targets for {len(x)} rows")
        out = np.empty_like(x)  # (n, F)
        self.net.eval()
        with torch.backends.cudnn.flags(enabled=False):
            for start, t in device_batches(x, batch_size, self.device):
                t = t.clone().requires_grad_(True)
                logits = self.net(t)  # (b, K)
                idx = torch.from_numpy(tgt[start : start + len(t)]).to(self.device)
                (grad,) = torch.autograd.grad(logits.gather(1, idx[:, None]).sum(), t)
                out[start : start + len(t)] = (grad * t).detach().cpu().numpy()
        return out
