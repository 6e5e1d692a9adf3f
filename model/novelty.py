"""Normal-profile novelty gate: rows the network calls normal but that look unlike any normal training row.

Why: NSL-KDD's test files hold 17 attack types never seen in training (SOURCE.md). A softmax classifier
must put each of them in a known class, and most land in "normal" (on KDDTest+ the shipped full model sent
2,359 of 2,754 R2L rows there). The network's own representation of a row (the input of its last Linear
layer: for MSMRNet the flattened module output, C * L values) is what its decision rests on; the Mahalanobis
distance of that representation to the normal training rows' (Lee et al., NeurIPS 2018, "A Simple Unified
Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks") says how unlike the learnt
normal traffic the row is. A row predicted normal whose squared distance exceeds the ``quantile`` (0.99) of
the validation split's normal rows becomes its most probable attack class.

Every number here comes from the training file: the mean and covariance from the training split's normal
rows, the threshold from the validation split's normal rows (so about 1% of unseen normal rows are flagged,
by construction). ``nta train`` fits it after training; it is stored beside the weights (tensors
``novelty.*`` in ``weights.safetensors``, covered by the weights sha256); ``nta evaluate`` reports the
network with and without it; ``nta scan --novelty`` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from features.errors import ModelError
from model.forward import forward_pass, last_linear

PREFIX = "novelty."
QUANTILE = 0.99  # chosen before any test figure was seen, not tuned since
RIDGE = 1e-3  # covariance += RIDGE * mean variance * I: representations can be rank-deficient (ReLU zeros)

__all__ = [
    "PREFIX",
    "QUANTILE",
    "NormalProfile",
    "fit_class_gaussians",
    "fit_profile",
    "gate_by_distance",
    "last_linear",
    "nearest_class",
    "representations",
]


@dataclass(frozen=True)
class NormalProfile:
    """Mean and precision of normal rows' representations, and the distance above which a row is novel."""

    mean: np.ndarray  # (D,) float64
    precision: np.ndarray  # (D, D) float64: inverse of the regularised covariance
    threshold: float  # squared Mahalanobis distance
    quantile: float  # of the validation normal rows' distances, that gave ``threshold``

    @property
    def dims(self) -> int:
        return int(self.mean.shape[0])

    def distance(self, z: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the normal profile: (n, D) -> (n,) float64."""
        d = np.asarray(z, dtype=np.float64) - self.mean  # (n, D)
        return np.einsum("ij,ij->i", d @ self.precision, d)

    def gate(self, proba: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class index (n,), novel (n,) bool): argmax, except novel rows predicted normal (class 0) get the
        most probable other class."""
        return gate_by_distance(proba, self.distance(z), self.threshold)

    def to_tensors(self) -> dict[str, torch.Tensor]:
        return {
            PREFIX + "mean": torch.from_numpy(self.mean.astype(np.float64)),
            PREFIX + "precision": torch.from_numpy(np.ascontiguousarray(self.precision, dtype=np.float64)),
            PREFIX + "threshold": torch.tensor([self.threshold], dtype=torch.float64),
            PREFIX + "quantile": torch.tensor([self.quantile], dtype=torch.float64),
        }

    @classmethod
    def from_tensors(cls, t: dict[str, torch.Tensor], where: str) -> NormalProfile:
        """Rebuild from ``novelty.*`` tensors; ModelError naming ``where`` when they do not fit together."""
        names = ("mean", "precision", "threshold", "quantile")
        missing = [n for n in names if PREFIX + n not in t]
        if missing:
            raise ModelError(f"{where}: novelty profile lacks {', '.join(PREFIX + n for n in missing)}")
        mean = t[PREFIX + "mean"].double().numpy()
        prec = t[PREFIX + "precision"].double().numpy()
        if mean.ndim != 1 or prec.shape != (mean.shape[0], mean.shape[0]):
            raise ModelError(f"{where}: novelty profile shapes {tuple(mean.shape)} and {tuple(prec.shape)} do not fit")
        thr, q = float(t[PREFIX + "threshold"].reshape(-1)[0]), float(t[PREFIX + "quantile"].reshape(-1)[0])
        return cls(mean=mean, precision=prec, threshold=thr, quantile=q)


def gate_by_distance(proba: np.ndarray, dist: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The gate on precomputed squared distances (n,): (class index (n,), novel (n,) bool)."""
    pred = proba.argmax(axis=1)
    novel = (pred == 0) & (dist > threshold)
    if proba.shape[1] > 1:
        pred = np.where(novel, proba[:, 1:].argmax(axis=1) + 1, pred)
    return pred, novel


def fit_profile(
    z_train_normal: np.ndarray, z_val_normal: np.ndarray, quantile: float = QUANTILE, ridge: float = RIDGE
) -> NormalProfile:
    """Profile from the training split's normal representations; threshold from the validation split's."""
    z = np.asarray(z_train_normal, dtype=np.float64)  # (n, D)
    if z.shape[0] < 2 or len(z_val_normal) < 1:
        raise ValueError(f"need normal rows in both splits (got {z.shape[0]} and {len(z_val_normal)})")
    mean = z.mean(axis=0)
    cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])  # (D, D)
    cov += np.eye(z.shape[1]) * ridge * max(float(np.mean(np.diag(cov))), 1e-12)
    prof = NormalProfile(mean=mean, precision=np.linalg.inv(cov), threshold=np.inf, quantile=quantile)
    thr = float(np.quantile(prof.distance(z_val_normal), quantile))
    return NormalProfile(mean=mean, precision=prof.precision, threshold=thr, quantile=quantile)


def fit_class_gaussians(z: np.ndarray, y: np.ndarray, k: int, ridge: float = RIDGE) -> tuple[np.ndarray, np.ndarray]:
    """Class means (k, D) (NaN rows for absent classes) and the precision (D, D) of their tied covariance.

    Lee et al. 2018's class-conditional form: one covariance pooled over the class-centred rows.
    """
    z = np.asarray(z, dtype=np.float64)  # (n, D)
    means = np.full((k, z.shape[1]), np.nan)
    centred = z.copy()
    for c in range(k):
        rows = y == c
        if rows.any():
            means[c] = z[rows].mean(axis=0)
            centred[rows] -= means[c]
    cov = centred.T @ centred / max(len(z) - 1, 1)  # (D, D)
    cov += np.eye(z.shape[1]) * ridge * max(float(np.mean(np.diag(cov))), 1e-12)
    return means, np.linalg.inv(cov)


def nearest_class(z: np.ndarray, means: np.ndarray, precision: np.ndarray, allowed: np.ndarray) -> np.ndarray:
    """(n,) index of the nearest class mean (squared Mahalanobis) among the ``allowed`` (k,) bool classes."""
    z = np.asarray(z, dtype=np.float64)  # (n, D)
    dist = np.full((len(z), len(means)), np.inf)  # (n, k)
    for c in np.flatnonzero(allowed & ~np.isnan(means).any(axis=1)):
        d = z - means[c]
        dist[:, c] = np.einsum("ij,ij->i", d @ precision, d)
    return dist.argmin(axis=1)


def representations(
    net: nn.Module, x: np.ndarray, batch_size: int = 8192, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, K) float32, representations (n, D) float32): ``model.forward.forward_pass``."""
    proba, reps = forward_pass(net, x, batch_size, device, keep_reps=True)
    assert reps is not None
    return proba, reps
