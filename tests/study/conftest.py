"""Study fixtures: a small synthetic frame with the KDD schema and labels, as NSL-KDD text and as Parquet."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.kdd.columns import KDD_FEATURES, KDD_SCHEMA

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"

# attack name -> (protocol, service, flag, serror_rate, same_srv_rate, src_bytes centre)
_PROFILES: dict[str, tuple[str, str, str, float, float, float]] = {
    "normal": ("tcp", "http", "SF", 0.0, 1.0, 300.0),
    "neptune": ("tcp", "private", "S0", 1.0, 0.05, 0.0),
    "smurf": ("icmp", "ecr_i", "SF", 0.0, 1.0, 1032.0),
    "portsweep": ("tcp", "private", "REJ", 0.0, 0.1, 0.0),
    "ipsweep": ("icmp", "eco_i", "SF", 0.0, 1.0, 8.0),
    "guess_passwd": ("tcp", "telnet", "RSTO", 0.0, 1.0, 125.0),
    "buffer_overflow": ("tcp", "telnet", "SF", 0.0, 1.0, 1500.0),
}


def need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"needs {p} (../shared beside the checkout), which is missing")
    return p


def synthetic_kdd(n: int = 600, seed: int = 0) -> pl.DataFrame:
    """``n`` rows in the NSL-KDD reader's shape (41 features + label), classes separable but noisy."""
    rng = np.random.default_rng(seed)
    names = list(_PROFILES)
    # Mostly normal and neptune, a few of each rarer class (U2R/R2L are rare in NSL-KDD too).
    weights = np.array([0.45, 0.25, 0.1, 0.07, 0.07, 0.04, 0.02])
    labels = rng.choice(names, size=n, p=weights / weights.sum())
    cols: dict[str, object] = {}
    for c in KDD_FEATURES:
        if KDD_SCHEMA[c] == pl.String():
            idx = {"protocol_type": 0, "service": 1, "flag": 2}[c]
            cols[c] = [_PROFILES[lab][idx] for lab in labels]
        else:
            cols[c] = rng.random(n) * 0.05
    prof = np.array([_PROFILES[lab][3:] for lab in labels])  # (n, 3)
    cols["serror_rate"] = np.clip(prof[:, 0] + rng.normal(0, 0.05, n), 0, 1)
    cols["same_srv_rate"] = np.clip(prof[:, 1] + rng.normal(0, 0.05, n), 0, 1)
    cols["src_bytes"] = np.maximum(prof[:, 2] * rng.lognormal(0, 0.3, n), 0).round()
    cols["count"] = np.where(labels == "neptune", rng.integers(100, 500, n), rng.integers(1, 20, n)).astype(float)
    cols["label"] = labels
    return pl.DataFrame(cols).with_columns(pl.col(c).cast(t) for c, t in KDD_SCHEMA.items())


def write_nslkdd_text(df: pl.DataFrame, path: Path) -> Path:
    """Write ``df`` as NSL-KDD text: no header, 41 features, label, difficulty."""
    out = df.select(*KDD_FEATURES, "label").with_columns(pl.lit(15).alias("difficulty"))
    out.write_csv(path, include_header=False)
    return path


@pytest.fixture
def kdd_frame() -> pl.DataFrame:
    return synthetic_kdd()


@pytest.fixture
def kdd_parquet(tmp_path: Path, kdd_frame: pl.DataFrame) -> Path:
    """A features Parquet as ``nta features`` would write plus a label column (and a flow id, dropped on read)."""
    p = tmp_path / "features.parquet"
    kdd_frame.with_columns(pl.int_range(kdd_frame.height).alias("flow_id")).write_parquet(p)
    return p


@pytest.fixture
def kdd_text(tmp_path: Path, kdd_frame: pl.DataFrame) -> Path:
    return write_nslkdd_text(kdd_frame, tmp_path / "train.txt")
