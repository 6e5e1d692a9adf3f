"""Metrics for a classifier on labelled rows: 5-class and binary (normal vs attack) views.

``metrics(y_true, y_pred, classes)`` computes everything from the confusion matrix (rows = true class,
columns = predicted), so the numbers can be checked by hand; ``evaluate(classifier, df)`` encodes the
frame with the classifier's spec, predicts, and returns both views as one JSON-ready dict.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import polars as pl

from features.encode.spec import FeatureSpec
from model.data import BINARY_CLASSES, targets

__all__ = ["binary_view", "confusion", "evaluate", "metrics"]


class _Predicts(Protocol):
    spec: FeatureSpec
    classes: tuple[str, ...]

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray: ...


def confusion(y_true: np.ndarray, y_pred: np.ndarray, k: int) -> np.ndarray:
    """(k, k) int64 counts, rows = true class, columns = predicted class."""
    return np.bincount(np.asarray(y_true) * k + np.asarray(y_pred), minlength=k * k).reshape(k, k)


def _div(a: float, b: float) -> float:
    return float(a / b) if b else 0.0


def metrics(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """Accuracy, macro-F1, per-class precision/recall/F1/support, confusion matrix, FPR on class 0 (normal).

    ``fpr_normal`` = share of true-normal rows predicted as anything else (false alarms). Classes with no
    support still count in macro-F1 (with F1 0) only if something was predicted as them; classes absent
    from both truth and prediction are left out of the macro average.
    """
    k = len(classes)
    cm = confusion(y_true, y_pred, k)
    tp = np.diag(cm).astype(float)
    pred_n = cm.sum(axis=0).astype(float)
    true_n = cm.sum(axis=1).astype(float)
    per_class: dict[str, dict[str, float]] = {}
    f1s: list[float] = []
    for i, c in enumerate(classes):
        p, r = _div(tp[i], pred_n[i]), _div(tp[i], true_n[i])
        f1 = _div(2 * p * r, p + r)
        per_class[c] = {"precision": p, "recall": r, "f1": f1, "support": int(true_n[i])}
        if true_n[i] or pred_n[i]:
            f1s.append(f1)
    return {
        "classes": list(classes),
        "n": int(cm.sum()),
        "accuracy": _div(tp.sum(), cm.sum()),
        "macro_f1": float(np.mean(f1s)) if f1s else 0.0,
        "fpr_normal": _div(true_n[0] - tp[0], true_n[0]),
        "per_class": per_class,
        "confusion": cm.tolist(),
    }


def binary_view(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """Normal (class 0) vs attack (any other class) metrics, plus detection rate (attack recall)."""
    m = metrics((np.asarray(y_true) != 0).astype(np.int64), (np.asarray(y_pred) != 0).astype(np.int64), BINARY_CLASSES)
    m["detection_rate"] = m["per_class"]["attack"]["recall"]
    return m


def evaluate(classifier: _Predicts, df: pl.DataFrame, batch_size: int = 4096) -> dict[str, Any]:
    """Predict ``df`` (features + ``label5``) and return {"multiclass": ..., "binary": ..., "outside_spec": ...}.

    When the classifier holds a ``model.novelty`` profile, ``novelty_gate`` holds the same two views with
    the gate applied, plus how many rows it flagged; with a ``model.support`` profile, ``support_gate`` holds
    them with that gate applied, plus how many attack calls it set to normal.

    For a 2-class model ``multiclass`` is the same as ``binary``. Works with ``model.infer.Classifier`` or
    anything with ``spec``, ``classes`` and ``predict_proba``.
    """
    x, outside = classifier.spec.transform(df)  # (n, F)
    y_true = targets(df, classifier.classes)
    gated = getattr(classifier, "predict_gated", None)
    if gated is None or getattr(classifier, "novelty", None) is None:
        proba = classifier.predict_proba(x, batch_size)
        out = {**_views(y_true, proba.argmax(axis=1), classifier.classes), "outside_spec": outside}
    else:
        g_pred, proba, novel = gated(x, batch_size)  # one pass: the plain view is its argmax
        out = {**_views(y_true, proba.argmax(axis=1), classifier.classes), "outside_spec": outside}
        out["novelty_gate"] = {**_views(y_true, g_pred, classifier.classes), "flagged": int(novel.sum())}
    support = getattr(classifier, "support", None)
    if support is not None:  # model.support on the same probabilities
        pred = proba.argmax(axis=1)
        off = support.unsupported(pred, x)
        out["support_gate"] = {
            **_views(y_true, np.where(off, 0, pred), classifier.classes),
            "relabelled": int(off.sum()),
        }
    return out


def _views(y_true: np.ndarray, y_pred: np.ndarray, classes: tuple[str, ...]) -> dict[str, Any]:
    """{"multiclass", "binary"}; for a 2-class model both are the binary view."""
    binary = binary_view(y_true, y_pred)
    multi = binary if classes == BINARY_CLASSES else metrics(y_true, y_pred, classes)
    return {"multiclass": multi, "binary": binary}
