"""Class probabilities for a chunk of encoded flows, each distinct row computed once (both engines use it)."""

from __future__ import annotations

from typing import Any

import numpy as np

Gated = tuple[np.ndarray, np.ndarray, np.ndarray]  # class index (n,), novel (n,) bool, unsupported (n,) bool


def predict(
    clf: Any, x: np.ndarray, batch_size: int, progress: Any, novelty: bool = False
) -> tuple[np.ndarray, Gated | None]:
    """Class probabilities (n, K), computed once per distinct feature row, in chunks so the progress bar moves;
    and the verdicts' class index (n,) with the novel (n,) and unsupported (n,) flags where a gate applies:
    with ``novelty``, the novelty gate (``Classifier.predict_gated``); otherwise the model's support gate
    when it has one (``Classifier.predict_supported``); None when neither does (the argmax stands).

    Floods and scans repeat the same encoded row thousands of times (a SYN flood's flows differ only in
    addresses, which are not features), and inference is the slowest stage: deduplicating first makes
    attack-heavy captures cheap and costs one sort otherwise.
    """
    supported = not novelty and getattr(clf, "support", None) is not None
    if len(x) == 0:
        empty = np.zeros((0, len(clf.classes)), np.float32)
        no = np.zeros(0, bool)
        return empty, ((np.zeros(0, np.int64), no, no) if novelty or supported else None)
    x = np.ascontiguousarray(x, dtype=np.float32)
    keys = x.view(np.dtype((np.void, x.itemsize * x.shape[1]))).ravel()  # (n,) one opaque key per row
    _, first, inverse = np.unique(keys, return_index=True, return_inverse=True)
    xu = x[np.sort(first)]  # distinct rows in first-seen order, (u, F)
    order = np.argsort(np.argsort(first))  # unique-sorted index -> position in xu
    chunk = max(batch_size, 1)  # one progress step per batch: the bar moves every fraction of a second
    parts, preds, novels, offs = [], [], [], []
    for start in range(0, len(xu), chunk):
        if novelty:
            pred, p, nov = clf.predict_gated(xu[start : start + chunk], batch_size=batch_size)
            preds.append(pred)
            novels.append(nov)
        elif supported:
            pred, p, off = clf.predict_supported(xu[start : start + chunk], batch_size=batch_size)
            preds.append(pred)
            offs.append(off)
        else:
            p = clf.predict_proba(xu[start : start + chunk], batch_size=batch_size)
        parts.append(p)
        progress(min(start + chunk, len(xu)), len(xu))
    back = order[inverse.ravel()]  # (n,) row of xu for every flow
    proba_u = np.concatenate(parts).astype(np.float32)  # (u, K)
    if not (novelty or supported):
        return proba_u[back], None
    pred_u = np.concatenate(preds)[back]
    none = np.zeros(len(back), bool)
    if novelty:
        return proba_u[back], (pred_u, np.concatenate(novels)[back], none)
    return proba_u[back], (pred_u, none, np.concatenate(offs)[back])
