"""Distillation (model.distill): the student learns the teachers' answers, weighed against the labels by alpha;
the teachers' mean is taken in each teacher's own encoding; their ids travel with the student."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
import torch

from features.common import InputError
from model.distill import Teachers
from model.infer import Classifier
from model.train import train_model

SWAP = {"DoS": "Probe", "Probe": "DoS"}


@pytest.fixture
def swapped_teacher(synthetic_df: pl.DataFrame, tiny_cfg: Any, tmp_path: Path) -> Path:
    """A saved model trained on the synthetic rows with DoS and Probe labels swapped."""
    res = train_model(synthetic_df.with_columns(pl.col("label5").replace(SWAP)), replace(tiny_cfg, epochs=30, seed=3))
    res.save(tmp_path / "teacher")
    return tmp_path / "teacher"


def _calls(clf: Classifier, df: pl.DataFrame, label: str) -> np.ndarray:
    rows = df.filter(pl.col("label5") == label)
    proba = clf.predict_proba(clf.encode(rows)[0])  # (n, K)
    return np.asarray(clf.classes)[proba.argmax(1)]


def test_student_follows_the_teacher_with_alpha_one_and_the_labels_with_alpha_zero(
    synthetic_df: pl.DataFrame, tiny_cfg: Any, swapped_teacher: Path
) -> None:
    teacher = Classifier.load(swapped_teacher, device="cpu")
    assert (_calls(teacher, synthetic_df, "DoS") == "Probe").mean() > 0.9  # the teacher learnt the swap
    follows = train_model(synthetic_df, replace(tiny_cfg, distill_alpha=1.0), teachers=[teacher]).classifier()
    labels = train_model(synthetic_df, replace(tiny_cfg, distill_alpha=0.0), teachers=[teacher]).classifier()
    assert (_calls(follows, synthetic_df, "DoS") == "Probe").mean() > 0.9
    assert (_calls(follows, synthetic_df, "Probe") == "DoS").mean() > 0.9
    assert (_calls(labels, synthetic_df, "DoS") == "DoS").mean() > 0.9
    assert (_calls(follows, synthetic_df, "normal") == "normal").mean() > 0.9  # where both agree, unchanged


def test_teacher_ids_recorded_and_targets_are_the_mean_in_each_teachers_encoding(
    synthetic_df: pl.DataFrame, tiny_cfg: Any, swapped_teacher: Path, tmp_path: Path
) -> None:
    teacher = Classifier.load(swapped_teacher, device="cpu")
    res = train_model(synthetic_df, replace(tiny_cfg, epochs=2), teachers=[teacher, teacher])
    assert res.config.teachers == (teacher.model_id, teacher.model_id)
    meta = res.save(tmp_path / "s")
    assert meta["train"]["config"]["teachers"] == [teacher.model_id] * 2
    assert meta["train"]["config"]["distill_alpha"] == 0.5

    ens = Teachers([teacher], synthetic_df, teacher.classes, "cpu")
    x = teacher.encode(synthetic_df)[0]  # (n, F)
    np.testing.assert_allclose(ens.rows.numpy(), teacher.predict_proba(x), atol=1e-5)
    rows, partners, lam = torch.tensor([0, 1]), torch.tensor([399, 200]), torch.tensor([[0.25], [1.0]])
    mixed = 0.25 * x[0] + 0.75 * x[399]  # (F,)
    got = ens.proba(rows, partners, lam).numpy()  # (2, K)
    np.testing.assert_allclose(got[0], teacher.predict_proba(mixed[None])[0], atol=1e-5)
    np.testing.assert_allclose(got[1], teacher.predict_proba(x[1:2])[0], atol=1e-5)


def test_teacher_with_other_classes_or_bad_weights_refused(
    synthetic_df: pl.DataFrame, tiny_cfg: Any, swapped_teacher: Path
) -> None:
    teacher = Classifier.load(swapped_teacher, device="cpu")
    with pytest.raises(InputError, match="has classes normal, DoS"):
        train_model(synthetic_df, replace(tiny_cfg, n_classes=2, epochs=1), teachers=[teacher])
    with pytest.raises(InputError, match="within"):
        train_model(synthetic_df, replace(tiny_cfg, distill_alpha=1.5, epochs=1), teachers=[teacher])
