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

    def predict_gated(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """A gate that calls every row with x1 > 0.5 novel (attack, class 1)."""
        p = self.predict_proba(x, batch_size)
        novel = (p.argmax(axis=1) == 0) & (x[:, 1] > 0.5)
        return np.where(novel, 1, p.argmax(axis=1)), p, novel


def test_duplicates_are_predicted_once_and_mapped_back() -> None:
    rng = np.random.default_rng(0)
    distinct = rng.random((7, 3)).astype(np.float32)
    idx = rng.integers(0, 7, 5000)
    x = distinct[idx]  # (5000, 3), 7 distinct rows
    clf = Echo()
    seen: list[tuple[int, int]] = []
    p, gated = _predict(clf, x, batch_size=2, progress=lambda d, t: seen.append((d, t)))
    assert gated is None
    assert sum(clf.rows) == len(np.unique(idx))
    np.testing.assert_array_equal(p[:, 0], x[:, 0])
    assert seen[-1][0] == seen[-1][1] == len(np.unique(idx))


def test_gated_predictions_are_mapped_back_like_the_probabilities() -> None:
    rng = np.random.default_rng(1)
    distinct = rng.random((9, 3)).astype(np.float32)
    x = distinct[rng.integers(0, 9, 3000)]  # (3000, 3)
    clf = Echo()
    p, gated = _predict(clf, x, batch_size=4, progress=lambda d, t: None, novelty=True)
    assert gated is not None and sum(clf.rows) == 9
    pred, novel, unsupported = gated
    assert not unsupported.any()  # --novelty never applies the support gate
    want_novel = (x[:, 0] >= 0.5) & (x[:, 1] > 0.5)
    np.testing.assert_array_equal(novel, want_novel)
    np.testing.assert_array_equal(pred, np.where(want_novel, 1, p.argmax(axis=1)))
    np.testing.assert_array_equal(p[:, 0], x[:, 0])


def test_empty_input() -> None:
    p, gated = _predict(Echo(), np.zeros((0, 3), np.float32), 8, lambda d, t: None)
    assert p.shape == (0, 2) and gated is None
    p, gated = _predict(Echo(), np.zeros((0, 3), np.float32), 8, lambda d, t: None, novelty=True)
    assert p.shape == (0, 2) and gated is not None and gated[0].shape == gated[1].shape == (0,)


def test_progress_moves_once_per_batch() -> None:
    x = np.arange(1000, dtype=np.float32).reshape(500, 2) / 1000  # 500 distinct rows
    seen: list[tuple[int, int]] = []
    _predict(Echo(), x, batch_size=64, progress=lambda d, t: seen.append((d, t)))
    assert [d for d, _ in seen] == [*range(64, 500, 64), 500]  # 8 steps, not one at the end
    assert {t for _, t in seen} == {500}


class Supported(Echo):
    """Echo with a support gate: attack calls (x0 < 0.5) with x2 > 0.5 are set to normal."""

    support = object()  # only its presence matters to _predict

    def predict_supported(self, x: np.ndarray, batch_size: int = 4096) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.predict_proba(x, batch_size)
        off = (p.argmax(axis=1) == 1) & (x[:, 2] > 0.5)
        return np.where(off, 0, p.argmax(axis=1)), p, off


def test_the_support_gate_applies_by_default_and_not_in_hunting_mode() -> None:
    rng = np.random.default_rng(2)
    distinct = rng.random((11, 3)).astype(np.float32)
    x = distinct[rng.integers(0, 11, 2000)]  # (2000, 3)
    clf = Supported()
    p, gated = _predict(clf, x, batch_size=3, progress=lambda d, t: None)
    assert gated is not None and sum(clf.rows) == 11
    pred, novel, unsupported = gated
    want = (x[:, 0] < 0.5) & (x[:, 2] > 0.5)
    assert want.any() and not novel.any()
    np.testing.assert_array_equal(unsupported, want)
    np.testing.assert_array_equal(pred, np.where(want, 0, p.argmax(axis=1)))
    _, hunting = _predict(clf, x, batch_size=3, progress=lambda d, t: None, novelty=True)
    assert hunting is not None and not hunting[2].any()  # --novelty: the novelty gate alone
    p0, none = _predict(clf, x[:0], batch_size=3, progress=lambda d, t: None)
    assert p0.shape == (0, 2) and none is not None and all(len(a) == 0 for a in none)
