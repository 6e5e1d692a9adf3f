"""Labels, class sets and the stratified validation split shared by training, evaluation and comparison."""

from __future__ import annotations

import numpy as np
import polars as pl

from features.common import InputError, file_sha256
from features.encode import CLASSES

__all__ = ["BINARY_CLASSES", "class_names", "file_sha256", "stratified_split", "targets"]

BINARY_CLASSES: tuple[str, ...] = ("normal", "attack")


def class_names(n_classes: int) -> tuple[str, ...]:
    """The 5 NSL-KDD classes, or ``("normal", "attack")`` for the binary task."""
    if n_classes == 5:
        return CLASSES
    if n_classes == 2:
        return BINARY_CLASSES
    raise InputError(f"--classes must be 5 or 2, got {n_classes}")


def targets(df: pl.DataFrame, classes: tuple[str, ...]) -> np.ndarray:
    """Integer targets (n,) int64 for ``classes`` from the frame's ``label5`` column."""
    label5 = df.get_column("label5")
    if classes == BINARY_CLASSES:
        return (label5 != "normal").cast(pl.Int64).to_numpy()
    index = {c: i for i, c in enumerate(classes)}
    return label5.replace_strict(index, return_dtype=pl.Int64).to_numpy()


def stratified_split(y: np.ndarray, val_fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Row indices (train, val): ``val_fraction`` of every class held out (at least one row of a class with 2+).

    Deterministic for a seed; indices are sorted so batches are drawn by the training RNG alone.
    """
    if not 0.0 < val_fraction < 1.0:
        raise InputError(f"validation fraction must be in (0, 1), got {val_fraction}")
    rng = np.random.default_rng(seed)
    val: list[np.ndarray] = []
    for k in np.unique(y):
        idx = np.flatnonzero(y == k)
        rng.shuffle(idx)
        n_val = round(len(idx) * val_fraction)
        if len(idx) >= 2:
            n_val = min(max(n_val, 1), len(idx) - 1)
        val.append(idx[:n_val])
    val_idx = np.sort(np.concatenate(val)) if val else np.zeros(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[val_idx] = False
    return np.flatnonzero(mask), val_idx
