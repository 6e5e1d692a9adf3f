"""Flag mapping, and the serror/rerror sets derived from NSL-KDD's own rows."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from features.kdd.columns import FLAGS
from features.kdd.flags import FLAG_FROM_STATE, RERROR_FLAGS, SERROR_FLAGS
from features.kdd.frame import kdd_features


@pytest.mark.parametrize(
    ("proto", "state", "expected"),
    [
        *[("tcp", f, f) for f in FLAGS],
        ("tcp", "SHR", "OTH"),
        ("tcp", "RSTRH", "OTH"),
        ("tcp", "BOGUS", "OTH"),
        ("udp", "S0", "SF"),
        ("udp", "SHR", "SF"),
        ("udp", "OTH", "SF"),
        ("icmp", "OTH", "SF"),
        ("icmp6", "S0", "SF"),
        ("gre", "OTH", "SF"),
    ],
)
def test_flag_from_conn_state(flow: Any, flows_table: Any, proto: str, state: str, expected: str) -> None:
    assert kdd_features(flows_table([flow(0, proto=proto, conn_state=state)]))["flag"][0] == expected


def test_only_nslkdd_flags() -> None:
    assert set(FLAG_FROM_STATE.values()) <= set(FLAGS)
    assert not SERROR_FLAGS & RERROR_FLAGS


def test_udp_icmp_are_sf_in_nslkdd(kdd_train: pl.DataFrame) -> None:
    assert set(kdd_train.filter(pl.col("protocol_type") != "tcp")["flag"]) == {"SF"}


def test_error_sets_from_lone_records(kdd_train: pl.DataFrame) -> None:
    """Rows whose 2 s window holds only themselves (count == 1): their serror/rerror rate is their own flag's."""
    lone = kdd_train.filter(pl.col("count") == 1)
    assert lone.height == 27763
    per_flag = lone.group_by("flag").agg(pl.col("serror_rate").mean(), pl.col("rerror_rate").mean())
    serr = {r[0] for r in per_flag.iter_rows() if r[1] == 1.0}
    rerr = {r[0] for r in per_flag.iter_rows() if r[2] == 1.0}
    assert serr == set(SERROR_FLAGS) == {"S0", "S1", "S2", "S3", "SH"}
    assert rerr == set(RERROR_FLAGS) == {"REJ", "RSTO", "RSTR", "RSTOS0"}
    neither = {r[0] for r in per_flag.iter_rows() if r[1] == 0.0 and r[2] == 0.0}
    assert neither == {"SF", "OTH"}
