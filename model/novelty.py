"""Normal-profile novelty gate: rows the network calls normal but that look unlike any normal training row.

Why: NSL-KDD's test files hold 17 attack types never seen in training (SOURCE.md). A softmax classifier
must put each of them in a known class, and most land in "normal" (on KDDTest+ the shipped full model sent
2,359 of 2,754 R2L rows there). The network's own representation of a row (the input of its last Linear
layer: for MSMRNet the flattened module output, C * L values) is what its decision rests on; the Mahalanobis
distance of that representation to the normal training rows' (Lee et al., NeurIPS 2018, "A Simple Unified
Framework for Detecting Out-of-Distribution Samples and Adversarial Attacks") says how unlike the learnt
normal traffic the row is. A row predicted normal whose squared distance exceeds the ``quantile`` (0.99 by
default) of the validation split's normal rows becomes its most probable attack class.

Normal traffic is many kinds of traffic (http, smtp, ftp_data, private, ...), and one Gaussian over all of
them is wide: a novel row can sit inside its hull yet far from every kind. ``clusters`` K > 1 fits K k-means
centres to the normal rows with one covariance of the cluster-centred rows, and a row's distance is to the
nearest centre. On novel-type folds within KDDTrain+ (tests/benchmarks/novel_type_validation.py) 128 centres
caught more held-out attack types at the same share of normal rows flagged (docs/results/novel-type-validation.md).

Every number here comes from the training file: the mean and covariance from the training split's normal
rows, the threshold from the validation split's normal rows (so about 1% of unseen normal rows are flagged,
by construction). ``nta train`` fits it after training; it is stored beside the weights (tensors
``novelty.*`` in ``weights.safetensors``, covered by the weights sha256); ``nta evaluate`` reports the
network with and without it; ``nta scan --novelty`` applies it.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

import numpy as np

from features.common import ModelError
from model.files import NOVELTY_PREFIX

if TYPE_CHECKING:  # torch only where a torch network is used: a scan on the CPU loads profiles without it
    from torch import nn

PREFIX = NOVELTY_PREFIX
QUANTILE = 0.99  # chosen before any test figure was seen, not tuned since
CHUNK_ROWS = 16_384  # rows per distance chunk: (chunk, K) float64 temporaries
RIDGE = 1e-3  # covariance += RIDGE * mean variance * I: representations can be rank-deficient (ReLU zeros)

__all__ = [
    "PREFIX",
    "QUANTILE",
    "NormalProfile",
    "fit_class_gaussians",
    "fit_profile",
    "gate_by_distance",
    "kmeans",
    "last_linear",
    "nearest_class",
    "representations",
]


@dataclass(frozen=True)
class NormalProfile:
    """Centres and tied precision of normal rows' representations, and the distance above which a row is novel.

    One centre is the single Gaussian of Lee et al.; several (``fit_profile(clusters=K)``) are k-means centres
    of the normal rows sharing one covariance, and a row's distance is to the nearest centre.
    """

    centres: np.ndarray  # (K, D) float64
    precision: np.ndarray  # (D, D) float64: inverse of the regularised (tied) covariance
    threshold: float  # squared Mahalanobis distance
    quantile: float  # of the validation normal rows' distances, that gave ``threshold``

    @property
    def dims(self) -> int:
        return int(self.centres.shape[1])

    @property
    def clusters(self) -> int:
        return int(self.centres.shape[0])

    def distance(self, z: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance to the nearest centre: (n, D) -> (n,) float64.

        In row chunks, so the float64 temporaries stay a few tens of MB however many flows a scan holds.
        """
        out = np.empty(len(z), dtype=np.float64)
        for lo in range(0, len(z), CHUNK_ROWS):
            out[lo : lo + CHUNK_ROWS] = self._distance(np.asarray(z[lo : lo + CHUNK_ROWS], dtype=np.float64))
        return out

    def _distance(self, z: np.ndarray) -> np.ndarray:
        if self.clusters == 1:
            d = z - self.centres[0]  # (n, D)
            return np.einsum("ij,ij->i", d @ self.precision, d)
        chol, c = self._whitening
        w = z @ chol  # (n, D)
        d2 = (w * w).sum(1)[:, None] - 2.0 * (w @ c.T) + (c * c).sum(1)[None, :]  # (n, K)
        return np.maximum(d2.min(axis=1), 0.0)

    @cached_property
    def _whitening(self) -> tuple[np.ndarray, np.ndarray]:
        # precision = L L^T, so d P d^T = |d L|^2: whiten once, then plain squared distances to the K centres
        chol = np.linalg.cholesky(self.precision)  # (D, D) lower
        return chol, self.centres @ chol  # (D, D), (K, D)

    def gate(self, proba: np.ndarray, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(class index (n,), novel (n,) bool): argmax, except novel rows predicted normal (class 0) get the
        most probable other class."""
        return gate_by_distance(proba, self.distance(z), self.threshold)

    def to_tensors(self) -> dict[str, np.ndarray]:
        """The ``novelty.*`` tensors of the weights file (``model.artifacts.save_model`` writes them)."""
        # one centre is stored as a (D,) mean, as before several centres existed: such files stay byte-identical
        mean = self.centres[0] if self.clusters == 1 else self.centres
        return {
            PREFIX + "mean": np.ascontiguousarray(mean, dtype=np.float64),
            PREFIX + "precision": np.ascontiguousarray(self.precision, dtype=np.float64),
            PREFIX + "threshold": np.array([self.threshold], dtype=np.float64),
            PREFIX + "quantile": np.array([self.quantile], dtype=np.float64),
        }

    @classmethod
    def from_tensors(cls, t: dict[str, Any], where: str) -> NormalProfile:
        """Rebuild from ``novelty.*`` tensors; ModelError naming ``where`` when they do not fit together."""
        names = ("mean", "precision", "threshold", "quantile")
        missing = [n for n in names if PREFIX + n not in t]
        if missing:
            raise ModelError(f"{where}: novelty profile lacks {', '.join(PREFIX + n for n in missing)}")
        centres = np.asarray(t[PREFIX + "mean"], dtype=np.float64)  # numpy arrays or CPU tensors
        centres = centres.reshape(1, -1) if centres.ndim == 1 else centres  # (K, D)
        prec = np.asarray(t[PREFIX + "precision"], dtype=np.float64)
        if centres.ndim != 2 or prec.shape != (centres.shape[1], centres.shape[1]):
            raise ModelError(
                f"{where}: novelty profile shapes {tuple(t[PREFIX + 'mean'].shape)} and {tuple(prec.shape)} do not fit"
            )
        thr, q = float(t[PREFIX + "threshold"].reshape(-1)[0]), float(t[PREFIX + "quantile"].reshape(-1)[0])
        return cls(centres=centres, precision=prec, threshold=thr, quantile=q)


def gate_by_distance(proba: np.ndarray, dist: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """The gate on precomputed squared distances (n,): (class index (n,), novel (n,) bool)."""
    pred = proba.argmax(axis=1)
    novel = (pred == 0) & (dist > threshold)
    if proba.shape[1] > 1:
        pred = np.where(novel, proba[:, 1:].argmax(axis=1) + 1, pred)
    return pred, novel


def kmeans(z: np.ndarray, k: int, seed: int = 0, iters: int = 100) -> tuple[np.ndarray, np.ndarray]:
    """(centres (k, D), assignment (n,)): Lloyd's algorithm from a k-means++ start; deterministic for a seed.

    Stops when no assignment changes or after ``iters`` rounds; a centre that loses all its rows stays put.
    """
    z = np.asarray(z, dtype=np.float64)  # (n, D)
    k = min(k, len(z))
    rng = np.random.default_rng(seed)
    sq = (z * z).sum(1)  # (n,)
    centres = np.empty((k, z.shape[1]))
    centres[0] = z[rng.integers(len(z))]
    near = ((z - centres[0]) ** 2).sum(1)  # (n,) squared distance to the nearest chosen centre
    for j in range(1, k):
        total = near.sum()
        i = int(rng.choice(len(z), p=near / total)) if total > 0 else int(rng.integers(len(z)))
        centres[j] = z[i]
        near = np.minimum(near, ((z - centres[j]) ** 2).sum(1))
    assign = np.full(len(z), -1)
    for _ in range(iters):
        d2 = sq[:, None] - 2.0 * (z @ centres.T) + (centres * centres).sum(1)[None, :]  # (n, k)
        new = d2.argmin(axis=1)
        if np.array_equal(new, assign):
            break
        assign = new
        for j in range(k):
            rows = assign == j
            if rows.any():
                centres[j] = z[rows].mean(axis=0)
    return centres, assign


def fit_profile(
    z_train_normal: np.ndarray,
    z_val_normal: np.ndarray,
    quantile: float = QUANTILE,
    ridge: float = RIDGE,
    clusters: int = 1,
) -> NormalProfile:
    """Profile from the training split's normal representations; threshold from the validation split's.

    ``clusters`` > 1: k-means centres (seed 0) with the covariance of the cluster-centred rows.
    """
    z = np.asarray(z_train_normal, dtype=np.float64)  # (n, D)
    if z.shape[0] < 2 or len(z_val_normal) < 1:
        raise ValueError(f"need normal rows in both splits (got {z.shape[0]} and {len(z_val_normal)})")
    if clusters == 1:
        centres = z.mean(axis=0, keepdims=True)  # (1, D)
        # np.cov, as single-Gaussian profiles were always fitted: retraining gives them bit for bit
        cov = np.cov(z, rowvar=False).reshape(z.shape[1], z.shape[1])  # (D, D)
    else:
        centres, assign = kmeans(z, clusters)  # (K, D), (n,)
        centred = z - centres[assign]
        cov = centred.T @ centred / (len(z) - 1)  # (D, D): tied over the clusters
    cov += np.eye(z.shape[1]) * ridge * max(float(np.mean(np.diag(cov))), 1e-12)
    prof = NormalProfile(centres=centres, precision=np.linalg.inv(cov), threshold=np.inf, quantile=quantile)
    thr = float(np.quantile(prof.distance(z_val_normal), quantile))
    return NormalProfile(centres=centres, precision=prof.precision, threshold=thr, quantile=quantile)


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


def last_linear(net: nn.Module) -> nn.Linear:
    """``model.forward.last_linear`` (imported when asked: it needs torch)."""
    from model.forward import last_linear as last

    return last(net)


def representations(
    net: nn.Module, x: np.ndarray, batch_size: int = 8192, device: str = "cpu"
) -> tuple[np.ndarray, np.ndarray]:
    """(probabilities (n, K) float32, representations (n, D) float32): ``model.forward.forward_pass``."""
    from model.forward import forward_pass

    proba, reps = forward_pass(net, x, batch_size, device, keep_reps=True)
    assert reps is not None
    return proba, reps
