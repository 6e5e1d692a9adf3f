"""Batched inference with torch's network: ``Classifier.load(dir).predict_proba(x)``.

What every classifier does (the gates, the checks) is ``model.classifier.ClassifierBase``; a scan on the CPU uses
``model.classifier.NumpyClassifier`` instead, which never imports torch (``model.scan_classifier.load_classifier``).

The caller encodes features with ``classifier.spec.transform(df)`` (or ``classifier.encode(df)``), so
the matrix is the one the model was trained on; ``check_columns`` refuses any other column list.
Inference runs in large batches under ``torch.inference_mode``; on CUDA the batches are copied from
pinned memory without blocking and run under bf16 autocast (probabilities come back as float32).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from features.common import ModelError
from model.artifacts import load_model
from model.classifier import ClassifierBase
from model.files import default_full_model_dir, default_model_dir
from model.forward import device_batches, forward_pass

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
class Classifier(ClassifierBase):
    """torch's network (``model.network``, ``model.baselines``) on its device. ``threads``: None leaves torch's
    setting, AUTO (0) lets ``model.forward.pick_threads`` choose, N uses N."""

    net: nn.Module

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
            confirmers=[c.to(dev) for c in m.confirmers],
        )

    def _pass(self, x: np.ndarray, batch_size: int, keep_reps: bool) -> tuple[np.ndarray, np.ndarray | None]:
        return forward_pass(self.net, x, batch_size, self.device, keep_reps, self.threads)

    def _confirm_pass(self, net: Any, x: np.ndarray, batch_size: int) -> np.ndarray:
        return forward_pass(net, x, batch_size, self.device, False, self.threads)[0]

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
