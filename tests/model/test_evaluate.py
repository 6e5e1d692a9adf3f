"""Metrics against a confusion matrix computed by hand."""

from __future__ import annotations

import numpy as np
import pytest

from model.evaluate import binary_view, confusion, metrics

CLASSES = ("normal", "DoS", "Probe")
# true: 4 normal, 3 DoS, 3 Probe
Y_TRUE = np.array([0, 0, 0, 0, 1, 1, 1, 2, 2, 2])
Y_PRED = np.array([0, 0, 0, 1, 1, 1, 0, 2, 1, 2])


def test_confusion_rows_true_columns_predicted() -> None:
    assert confusion(Y_TRUE, Y_PRED, 3).tolist() == [[3, 1, 0], [1, 2, 0], [0, 1, 2]]


def test_metrics_match_hand_computation() -> None:
    m = metrics(Y_TRUE, Y_PRED, CLASSES)
    assert m["accuracy"] == pytest.approx(7 / 10)
    assert m["per_class"]["normal"] == pytest.approx({"precision": 3 / 4, "recall": 3 / 4, "f1": 3 / 4, "support": 4})
    # DoS: tp 2, predicted 4, true 3 -> p 0.5, r 2/3, f1 = 2*0.5*(2/3)/(0.5+2/3) = 4/7
    assert m["per_class"]["DoS"]["precision"] == pytest.approx(0.5)
    assert m["per_class"]["DoS"]["recall"] == pytest.approx(2 / 3)
    assert m["per_class"]["DoS"]["f1"] == pytest.approx(4 / 7)
    # Probe: tp 2, predicted 2, true 3 -> p 1, r 2/3, f1 0.8
    assert m["per_class"]["Probe"]["f1"] == pytest.approx(0.8)
    assert m["macro_f1"] == pytest.approx((0.75 + 4 / 7 + 0.8) / 3)
    assert m["fpr_normal"] == pytest.approx(1 / 4)


def test_binary_view_merges_attack_classes() -> None:
    b = binary_view(Y_TRUE, Y_PRED)
    # normal vs attack: [[3, 1], [1, 5]]
    assert b["confusion"] == [[3, 1], [1, 5]]
    assert b["accuracy"] == pytest.approx(8 / 10)
    assert b["detection_rate"] == pytest.approx(5 / 6)
    assert b["fpr_normal"] == pytest.approx(1 / 4)


def test_absent_class_left_out_of_macro_f1() -> None:
    m = metrics(np.array([0, 1]), np.array([0, 1]), ("normal", "DoS", "U2R"))
    assert m["macro_f1"] == pytest.approx(1.0) and m["per_class"]["U2R"]["support"] == 0
