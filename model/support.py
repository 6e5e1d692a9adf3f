"""The support gate: an attack verdict stands only where training rows of that class support it.

Why: a ReLU network gives confident verdicts far from its training data (Hein et al., CVPR 2019, "Why ReLU
networks yield high-confidence predictions far away from the training data"). On captures from other networks
the capture model called browsers' HTTP flows to many hosts Probe with probability 0.99-1.00 although their
nearest training rows were all normal (0.4-0.9 away in the encoded input) and the nearest Probe row 1.2-1.7 away
(docs/results/support-gate-preregistration.md). The network's own representation cannot show this (it maps such
rows into the class's region: that is the mistake), so the gate measures in the encoded input the network reads.

Per class, k-means centres (``model.novelty.kmeans``) of the class's training-split rows; a row's distance to a
class is its Euclidean distance to the nearest of them, and a class's radius is the ``QUANTILE`` (0.99) of its
validation-split rows' distances. A flow the network calls an attack class is set to normal (``unsupported``)
when it is outside that class's radius, inside normal's, and nearer to normal than to that class. Flows outside
every class's support keep the network's verdict: nothing is known there either way.

"Inside normal's support" also needs every encoded value of the flow within the range of the normal training
rows' values in that column (version 2, docs/results/support-gate-v2-preregistration.md): a distance over 112
columns drowns the one that says "attack" (no normal training row has ``wrong_fragment`` above 0, and version 1
set a teardrop aimed at an unusual port to normal). Profiles fitted before that have no ranges and skip the test.

Every number comes from the training file: centres from the training split, radii from the validation split.
Stored as ``support.*`` tensors in ``weights.safetensors`` (covered by the weights sha256).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from features.common import ModelError
from model.files import SUPPORT_PREFIX
from model.novelty import QUANTILE, kmeans

PREFIX = SUPPORT_PREFIX
CENTRES = 256  # k-means centres per class, at most (fixed in the preregistration, not tuned)
FIT_ROWS = 50_000  # training rows per class the centres are fitted on, at most (drawn with seed 0)
CHUNK_ROWS = 2048  # rows per distance chunk: two (chunk, M) float64 temporaries, 20 MB each with 1,245 centres

__all__ = ["CENTRES", "FIT_ROWS", "PREFIX", "SupportProfile", "fit_support"]


@dataclass(frozen=True)
class SupportProfile:
    """Centres of every class's training rows in the encoded input, and each class's radius."""

    centres: np.ndarray  # (M, F) float64: all classes' centres
    owner: np.ndarray  # (M,) int64: the class index of each centre
    radius: np.ndarray  # (K,) float64: per class, Euclidean; 0 for a class without validation rows (no support)
    quantile: float  # of the validation rows' distances, that gave ``radius``
    normal_lo: np.ndarray | None = None  # (F,) float64: each column's minimum over the normal training rows
    normal_hi: np.ndarray | None = None  # (F,) float64: and its maximum (None: a version-1 profile, no range test)

    def distances(self, x: np.ndarray) -> np.ndarray:
        """Euclidean distance of each row to the nearest centre of each class: (n, F) -> (n, K) float64."""
        k = len(self.radius)
        out = np.full((len(x), k), np.inf)
        c2 = (self.centres * self.centres).sum(1)  # (M,)
        for lo in range(0, len(x), CHUNK_ROWS):
            b = np.asarray(x[lo : lo + CHUNK_ROWS], dtype=np.float64)  # (b, F)
            d2 = (b * b).sum(1)[:, None] - 2.0 * (b @ self.centres.T) + c2[None, :]  # (b, M)
            for c in range(k):
                cols = self.owner == c
                if cols.any():
                    out[lo : lo + len(b), c] = np.sqrt(np.maximum(d2[:, cols].min(axis=1), 0.0))
        return out

    def unsupported(self, pred: np.ndarray, x: np.ndarray) -> np.ndarray:
        """(n,) bool: rows called an attack class (``pred`` > 0) that the gate sets to normal (class 0)."""
        out = np.zeros(len(pred), dtype=bool)
        rows = np.flatnonzero(np.asarray(pred) > 0)
        if len(rows) == 0:
            return out
        xr = np.asarray(x[rows])  # (r, F)
        d = self.distances(xr)  # (r, K)
        p = np.asarray(pred)[rows]
        d_own = d[np.arange(len(rows)), p]
        near_normal = d[:, 0] <= self.radius[0]
        if self.normal_lo is not None and self.normal_hi is not None:
            near_normal &= ((xr >= self.normal_lo) & (xr <= self.normal_hi)).all(axis=1)
        out[rows] = (d_own > self.radius[p]) & near_normal & (d[:, 0] < d_own)
        return out

    def to_tensors(self) -> dict[str, np.ndarray]:
        """The ``support.*`` tensors of the weights file (``model.artifacts.save_model`` writes them)."""
        arrays = {
            "centres": self.centres,
            "radius": self.radius,
            "normal_lo": self.normal_lo,
            "normal_hi": self.normal_hi,
        }
        out = {PREFIX + k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items() if v is not None}
        out[PREFIX + "owner"] = np.ascontiguousarray(self.owner, dtype=np.int64)
        out[PREFIX + "quantile"] = np.array([self.quantile], dtype=np.float64)
        return out

    @classmethod
    def from_tensors(cls, t: dict[str, Any], where: str, n_features: int, n_classes: int) -> SupportProfile:
        """Rebuild from ``support.*`` tensors; ModelError naming ``where`` when they do not fit the network."""
        names = ("centres", "owner", "radius", "quantile")
        missing = [n for n in names if PREFIX + n not in t]
        if missing:
            raise ModelError(f"{where}: support profile lacks {', '.join(PREFIX + n for n in missing)}")
        centres = np.asarray(t[PREFIX + "centres"], dtype=np.float64)  # numpy arrays or CPU tensors
        owner = np.asarray(t[PREFIX + "owner"]).astype(np.int64)
        radius = np.asarray(t[PREFIX + "radius"], dtype=np.float64)
        if centres.ndim != 2 or centres.shape[1] != n_features or owner.shape != (len(centres),):
            raise ModelError(
                f"{where}: support profile shapes {tuple(centres.shape)} and {tuple(owner.shape)} do not fit a "
                f"network of {n_features} inputs"
            )
        if radius.shape != (n_classes,) or (len(owner) and (owner.min() < 0 or owner.max() >= n_classes)):
            raise ModelError(f"{where}: support profile does not fit a {n_classes}-class network")
        if not np.isfinite(radius).all() or (radius < 0).any() or not np.isfinite(centres).all():
            raise ModelError(f"{where}: support profile radii and centres must be finite, radii non-negative")
        q = float(t[PREFIX + "quantile"].reshape(-1)[0])
        lo, hi = (
            np.asarray(t[PREFIX + n], dtype=np.float64) if PREFIX + n in t else None for n in ("normal_lo", "normal_hi")
        )
        if (lo is None) != (hi is None):
            raise ModelError(f"{where}: support profile has one of normal_lo and normal_hi without the other")
        if lo is not None and hi is not None:
            if lo.shape != (n_features,) or hi.shape != (n_features,):
                raise ModelError(
                    f"{where}: support profile's normal ranges do not fit a network of {n_features} inputs"
                )
            if np.isnan(lo).any() or np.isnan(hi).any():
                raise ModelError(f"{where}: support profile's normal ranges hold NaN")
        return cls(centres=centres, owner=owner, radius=radius, quantile=q, normal_lo=lo, normal_hi=hi)


def fit_support(
    x_tr: np.ndarray,
    y_tr: np.ndarray,
    x_va: np.ndarray,
    y_va: np.ndarray,
    n_classes: int,
    quantile: float = QUANTILE,
    centres: int = CENTRES,
    fit_rows: int = FIT_ROWS,
) -> SupportProfile:
    """The profile of encoded rows: centres and normal's column ranges from the training split (float32 (n, F),
    labels (n,)), radii from the validation split. Deterministic: the row draws and the k-means start use seed 0,
    classes in index order."""
    rng = np.random.default_rng(0)
    parts, owners, radius = [], [], np.zeros(n_classes)
    for c in range(n_classes):
        rows = np.flatnonzero(y_tr == c)
        if len(rows) == 0:
            continue
        if len(rows) > fit_rows:
            rows = np.sort(rng.choice(rows, fit_rows, replace=False))
        cen, _ = kmeans(x_tr[rows], centres)  # (k, F) float64
        parts.append(cen)
        owners.append(np.full(len(cen), c, dtype=np.int64))
    prof = SupportProfile(
        centres=np.concatenate(parts) if parts else np.zeros((0, x_tr.shape[1])),
        owner=np.concatenate(owners) if owners else np.zeros(0, np.int64),
        radius=radius,
        quantile=quantile,
    )
    d = prof.distances(x_va)  # (n_va, K)
    for c in range(n_classes):
        val = y_va == c
        if val.any() and np.isfinite(d[val, c]).all():
            radius[c] = float(np.quantile(d[val, c], quantile))
    normal = x_tr[y_tr == 0]  # (n0, F): every normal training row, not the k-means sample
    lo = normal.min(axis=0).astype(np.float64) if len(normal) else None
    hi = normal.max(axis=0).astype(np.float64) if len(normal) else None
    return SupportProfile(prof.centres, prof.owner, radius, quantile, normal_lo=lo, normal_hi=hi)
