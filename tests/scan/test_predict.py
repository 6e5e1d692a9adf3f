"""Inference runs once per distinct feature row and maps the probabilities back to every flow."""

from __future__ import annotations

import numpy as np

from analyzer.pipeline import _predict


class Echo:
    """Probabilities that reveal which row they came from: (x0, 1 - x0)."""

    classes = ("normal", "DoS")

    def __init__(self) -> None:
        self.rows: list[int] = []

    def predict_proba(self, x: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        self.rows.append(len(x))
        return np.stack([x[:, 0], 1 - x[:, 0]], axis=1)


def test_duplicates_are_predicted_once_and_mapped_back() -> None:
    rng = np.random.default_rng(0)
    distinct = rng.random((7, 3)).astype(np.float32)
    idx = rng.integers(0, 7, 5000)
    x = distinct[idx]  # (5000, 3), 7 distinct rows
    clf = Echo()
    seen: list[tuple[int, int]] = []
    p = _predict(clf, x, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert sum(clf.rows) == len(np.unique(idx))
    np.testing.assert_array_equal(p[:, 0], x[:, 0])
    assert seen[-1][0] == seen[-1][1] == len(np.unique(idx))


def test_empty_input() -> None:
    assert _predict(Echo(), np.zeros((0, 3), np.float32), 8, lambda d, t: None).shape == (0, 2)
