"""Which classifier a scan uses: numpy's network on the CPU (no torch imported), torch's otherwise."""

from __future__ import annotations

import sys
from pathlib import Path

from model.classifier import ClassifierBase, NumpyClassifier
from model.numpy_net import supports
from model.weights import read_model

__all__ = ["cuda_present", "load_classifier"]


def cuda_present() -> bool:
    """Whether this machine may have a CUDA device, known without importing torch: on Linux NVIDIA's driver shows in
    /proc (no driver: torch finds no device either); macOS has no CUDA; elsewhere torch is asked."""
    if sys.platform.startswith("linux"):
        return Path("/proc/driver/nvidia/version").exists()
    return sys.platform != "darwin"


def load_classifier(model_dir: Path, device: str = "auto", threads: int | None = None) -> ClassifierBase:
    """A scan's classifier: ``NumpyClassifier`` on the CPU (``device`` cpu, or auto without CUDA) for MSMRNet, torch's
    ``model.infer.Classifier`` otherwise, its CPU threads chosen per inference (``model.forward.AUTO``) or
    ``threads`` exactly (``--threads N``: torch's threads limited to N from now on, ``model.infer.limit_threads``)."""
    if device == "cpu" or (device == "auto" and not cuda_present()):
        m = read_model(Path(model_dir))
        if supports(m.net_config):
            clf = NumpyClassifier.from_parts(m, Path(model_dir))
            clf.threads = threads
            return clf
    from model.forward import AUTO
    from model.infer import Classifier, limit_threads

    torch_clf = Classifier.load(model_dir, device=device)
    torch_clf.threads = AUTO if threads is None else limit_threads(threads)
    return torch_clf
