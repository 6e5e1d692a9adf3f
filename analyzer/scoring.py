"""Class probabilities for a chunk of encoded flows, each distinct row computed once (both engines use it)."""

from __future__ import annotations

from typing import Any

import numpy as np


def predict(
    clf: Any, x: np.ndarray, batch_size: int, progress: Any, novelty: bool = False
) -> tuple[np.ndarray, tuple[np.ndarray, np.ndarray] | None]:
    """Class probabilities (n, K), computed once per distinct feature row, in chunks so the progress bar moves;
    with ``novelty``, also the gated class index (n,) and the novel flag (n,) (``Classifier.predict_gated``).

    Floods and scans repeat the same encoded row thousands of times (a SYN flood's flows differ only in
    addresses, which are not features), and inference is the slowest stage: deduplicating first makes
    attack-heavy captures cheap and costs one sort otherwise.
    """
    if len(x) == 0:
        empty = np.zeros((0, len(clf.classes)), np.float32)
        return empty, ((np.zeros(0, np.int64), np.zeros(0, bool)) if novelty else None)
    x = np.ascontiguousarray(x, dtype=np.float32)
    keys = x.view(np.dtype((np.void, x.itemsize * x.shape[1]))).ravel()  # (n,) one opaque key per row
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    xu = x[np.sort(first)]  # distinct rows in first-seen order, (u, F)
    order = np.argsort(np.argsort(first))  # unique-sorted index -> position in xu
    chunk = max(batch_size, 1)  # one progress step per batch: the bar moves every fraction of a second
    parts, preds, novels = [], [], []
    for start in range(0, len(xu), chunk):
        if novelty:
            pred, p, nov = clf.predict_gated(xu[start : start + chunk], batch_size=batch_size)
            preds.append(pred)
            novels.append(nov)
        else:
            p = clf.predict_proba(xu[start : start + chunk], batch_size=batch_size)
        parts.append(p)
        progress(min(start + chunk, len(xu)), len(xu))
    back = order[inverse.ravel()]  # (n,) row of xu for every flow
    proba_u = np.concatenate(parts).astype(np.float32)  # (u, K)
    if not novelty:
        return proba_u[back], None
    return proba_u[back], (np.concatenate(preds)[back], np.concatenate(novels)[back])
