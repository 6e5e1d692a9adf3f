"""model.forward's CPU thread choice: the probabilities never depend on it, and it follows the machine's load."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from model import forward
from model.files import default_model_dir
from model.infer import Classifier


@pytest.fixture(scope="module")
def clf_x() -> tuple[Classifier, np.ndarray]:
    clf = Classifier.load(default_model_dir(), device="cpu")
    x = np.random.default_rng(0).random((3000, clf.net_config.n_features), dtype=np.float32)  # (n, F)
    return clf, x


def test_auto_threads_give_the_same_probabilities(clf_x: tuple[Classifier, np.ndarray]) -> None:
    clf, x = clf_x
    fixed = clf.predict_proba(x, batch_size=256)
    clf.threads = forward.AUTO
    try:
        auto = clf.predict_proba(x, batch_size=256)
        _, p, _ = clf.predict_gated(x, batch_size=256)
    finally:
        clf.threads = None
    assert np.array_equal(auto, fixed) and np.array_equal(p, fixed)
    assert torch.get_num_threads() == 1  # restored after the pass


def test_the_choice_is_one_thread_or_every_core_and_is_measured_again(
    clf_x: tuple[Classifier, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    clf, x = clf_x
    assert forward.pick_threads(clf.net, x, force=True) in (1, forward.usable_cores())
    monkeypatch.setattr(forward, "usable_cores", lambda: 1)
    assert forward.pick_threads(clf.net, x, force=True) == 1
    calls: list[bool] = []

    def pick_one(net: torch.nn.Module, xb: np.ndarray, force: bool = False) -> int:
        calls.append(force)
        return 1

    monkeypatch.setattr(forward, "pick_threads", pick_one)
    monkeypatch.setattr(forward, "REPICK_S", 0.0)  # every batch
    forward.forward_pass(clf.net, x, 1000, "cpu", False, forward.AUTO)
    assert len(calls) == 3
