"""Distillation targets: the mean class probabilities of several trained networks (teachers) on training rows
and on points mixed between two training rows, for ``model.train`` (``TrainConfig.distill_alpha``).

Why: trainings that differ only in their seed disagree on traffic unlike their training data (round 8's three
seeds called 7.8%, 19.4% and 7.8% of the corpus's benign flows attacks: docs/results/round8.md). Their mean is
steadier than any one of them, but running all of them would multiply the scan's inference time. A student
trained towards the mean (Hinton et al. 2015, "Distilling the Knowledge in a Neural Network") runs as one
network. Matching the teachers on the training rows alone says little about the space between them, where
unfamiliar traffic lands, so the student is also taught on mixed points ``lam * a + (1 - lam) * b`` of two random
training rows (as mixup, Zhang et al. 2018, forms its inputs; here the targets are the teachers' answers there,
not mixed labels).

Each teacher keeps its own feature spec (fitted on its own training split: its one-hot columns and min-max
ranges may differ from the student's), so every row is encoded once per teacher and a mixed point is mixed in
each teacher's encoding with the same pair and weight. Min-max scaling and one-hot encoding are per-column affine
maps of the clipped raw value, so the points coincide wherever no column was clipped.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import polars as pl
import torch
from torch import nn

from features.common import InputError
from model.infer import Classifier

__all__ = ["Teachers"]


class Teachers:
    """Several trained classifiers with the training rows encoded for each; their mean probabilities."""

    def __init__(self, teachers: Sequence[Classifier], df: pl.DataFrame, classes: tuple[str, ...], device: str):
        if not teachers:
            raise InputError("distillation needs at least one teacher model")
        for t in teachers:
            if tuple(t.classes) != tuple(classes):
                raise InputError(
                    f"teacher {t.model_id} has classes {', '.join(t.classes)}; the student has {', '.join(classes)}"
                )
        self.ids = [t.model_id for t in teachers]
        self.nets: list[nn.Module] = [t.net.to(device).eval() for t in teachers]
        # one encoding per teacher: (n, F_t), F_t its own spec's width
        self.x = [torch.from_numpy(np.ascontiguousarray(t.spec.transform(df)[0])).to(device) for t in teachers]
        # the rows' targets once (n, K): they do not change while the student trains
        self.rows = self.proba_all(torch.arange(df.height, device=device))

    @torch.no_grad()
    def proba(
        self, rows: torch.Tensor, partners: torch.Tensor | None = None, lam: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Mean teacher probabilities (b, K) at ``rows`` (b,), or at ``lam * row + (1 - lam) * partner`` with
        ``partners`` (b,) and ``lam`` (b, 1). No gradient: these are targets."""
        total: torch.Tensor | None = None
        for net, x in zip(self.nets, self.x, strict=True):
            xb = x[rows]  # (b, F_t)
            if partners is not None and lam is not None:
                xb = lam * xb + (1 - lam) * x[partners]
            p = torch.softmax(net(xb).float(), dim=1)  # (b, K)
            total = p if total is None else total + p
        assert total is not None
        return total / len(self.nets)

    def proba_all(self, rows: torch.Tensor, batch_size: int = 4096) -> torch.Tensor:
        """``proba`` over many rows (n,) in batches: (n, K). ``self.rows`` holds it for every row."""
        return torch.cat([self.proba(rows[s : s + batch_size]) for s in range(0, len(rows), batch_size)])
