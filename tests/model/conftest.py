"""Fixtures for the model tests: a small inline NSL-KDD sample and the shared data files (skip if missing)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
NSLKDD = SHARED / "data" / "nsl-kdd"

# Eight real-looking NSL-KDD rows (the first rows of KDDTrain+ plus hand-picked attack rows).
SAMPLE = """\
0,tcp,ftp_data,SF,491,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,0.00,150,25,0.17,0.03,0.17,0.00,0.00,0.00,0.05,0.00,normal,20
0,udp,other,SF,146,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,13,1,0.00,0.00,0.00,0.00,0.08,0.15,0.00,255,1,0.00,0.60,0.88,0.00,0.00,0.00,0.00,0.00,normal,15
0,tcp,private,S0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,123,6,1.00,1.00,0.00,0.00,0.05,0.07,0.00,255,26,0.10,0.05,0.00,0.00,1.00,1.00,0.00,0.00,neptune,19
0,tcp,http,SF,232,8153,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,5,5,0.20,0.20,0.00,0.00,1.00,0.00,0.00,30,255,1.00,0.00,0.03,0.04,0.03,0.01,0.00,0.01,normal,21
0,icmp,eco_i,SF,18,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,1,1,0.00,0.00,0.00,0.00,1.00,0.00,0.00,1,16,1.00,0.00,1.00,1.00,0.00,0.00,0.00,0.00,ipsweep,18
0,tcp,ftp_data,SF,334,0,0,0,0,0,0,1,0,0,0,0,0,0,0,0,0,0,2,2,0.00,0.00,0.00,0.00,1.00,0.00,0.00,2,20,1.00,0.00,1.00,0.20,0.00,0.00,0.00,0.00,warezclient,15
25,tcp,telnet,SF,269,2333,0,0,0,0,0,1,0,1,0,2,1,0,0,0,0,0,1,1,0.00,0.00,0.00,0.00,1.00,0.00,0.00,2,1,0.50,1.00,0.50,0.00,0.00,0.00,0.00,0.00,rootkit,7
0,tcp,private,REJ,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,0,136,1,0.00,0.00,1.00,1.00,0.01,0.06,0.00,255,1,0.00,0.06,0.00,0.00,0.00,0.00,1.00,1.00,neptune,21
"""


@pytest.fixture
def sample_file(tmp_path: Path) -> Path:
    p = tmp_path / "sample.txt"
    p.write_text(SAMPLE)
    return p


@pytest.fixture
def nslkdd_dir() -> Path:
    """../shared/data/nsl-kdd, or skip the test naming the missing path."""
    if not NSLKDD.exists():
        pytest.skip(f"needs {NSLKDD} (../shared beside the checkout), which is missing")
    return NSLKDD


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
    from features.nslkdd import read_nslkdd

    return read_nslkdd(sample_file)


@pytest.fixture
def synthetic_df() -> pl.DataFrame:
    """400 seeded rows: 5 separable classes drawn around the sample rows (for the training tests)."""
    base = read_nslkdd_text(SAMPLE)
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


def read_nslkdd_text(text: str) -> pl.DataFrame:
    import tempfile

    from features.nslkdd import read_nslkdd

    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.txt"
        p.write_text(text)
        return read_nslkdd(p)


@pytest.fixture
def tiny_cfg() -> Any:
    from model.train import TrainConfig

    return TrainConfig(
        feature_set="full", epochs=40, patience=40, batch_size=64, lr=3e-3, depth=2, channels=8,
        branch_channels=4, dropout=0.0, val_fraction=0.2,
    )  # fmt: skip
