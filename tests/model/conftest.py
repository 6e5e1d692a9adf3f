"""Fixtures for the model tests (the inline NSL-KDD sample, ``sample_file``, is in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest


@pytest.fixture(autouse=True)
def one_torch_thread() -> Iterator[None]:
    """Model tests run torch on one thread: on a shared 2-core machine spinning threads are far slower."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def sample_df(sample_file: Path) -> pl.DataFrame:
    from features.kdd.nslkdd import read_nslkdd

    return read_nslkdd(sample_file)


@pytest.fixture
def synthetic_df(sample_file: Path) -> pl.DataFrame:
    """400 seeded rows: 5 separable classes drawn around the sample rows (for the training tests)."""
    from features.kdd.nslkdd import read_nslkdd

    base = read_nslkdd(sample_file)
    rng = np.random.default_rng(0)
    # rows 0, 2, 4, 5, 6 are normal, DoS, Probe, R2L, U2R
    picks = np.repeat(np.array([0, 2, 4, 5, 6]), 80)
    df = base[picks]
    jitter = rng.random(len(df))
    df = df.with_columns(
        (pl.col("count") + pl.Series(np.round(jitter * 5))).alias("count"),
        (pl.col("src_bytes") * pl.Series(1 + jitter)).round(0).alias("src_bytes"),
    )
    return df


@pytest.fixture
def tiny_cfg() -> Any:
    from model.train import TrainConfig

    return TrainConfig(
        feature_set="full", epochs=40, patience=40, batch_size=64, lr=3e-3, depth=2, channels=8,
        branch_channels=4, dropout=0.0, val_fraction=0.2,
    )  # fmt: skip
