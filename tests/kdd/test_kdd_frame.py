"""The feature frame: schema against the NSL-KDD reader, identity columns, row order, intrinsic features."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import polars as pl
import pytest

from features.kdd.columns import KDD_FEATURES, KDD_SCHEMA
from features.kdd.frame import IDENTITY_COLUMNS, kdd_features
from features.kdd.nslkdd import read_nslkdd
from features.kdd.nslkdd_text import write_nslkdd

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def test_schema_equals_the_nslkdd_readers(flow: Any, flows_table: Any, need: Any) -> None:
    got = kdd_features(flows_table([flow(0), flow(1, proto="udp", resp_p=53)]))
    assert got.columns == [*IDENTITY_COLUMNS, *KDD_FEATURES]
    assert dict(got.select(KDD_FEATURES).schema) == KDD_SCHEMA
    nsl = read_nslkdd(need(SHARED / "data" / "nsl-kdd" / "KDDTest+.txt"))
    assert dict(nsl.select(KDD_FEATURES).schema) == dict(got.select(KDD_FEATURES).schema)


def test_nslkdd_text_round_trips_through_the_reader(flow: Any, flows_table: Any, tmp_path: Path) -> None:
    recs = [
        flow(0, duration_s=2.7, orig_bytes=491, resp_bytes=0),
        flow(0.5, conn_state="S0", resp_p=5000),
        flow(0.7, proto="icmp", icmp_type=0, icmp_code=0),
        flow(0.9, proto="gre"),
    ]
    feats = kdd_features(flows_table(recs))
    out = tmp_path / "x.txt"
    written, left_out = write_nslkdd(feats, out)
    assert (written, left_out) == (3, 1)
    text = out.read_text()
    first = text.splitlines()[0].split(",")
    assert len(first) == 41 and text.endswith("\n") and "\r" not in text
    assert first[:6] == ["2", "tcp", "http", "SF", "491", "0"]
    assert first[KDD_FEATURES.index("same_srv_rate")] == "1.00"
    assert first[KDD_FEATURES.index("serror_rate")] == "0.00"
    labelled = tmp_path / "labelled.txt"
    labelled.write_text("".join(f"{line},normal,21\n" for line in text.splitlines()))
    back = read_nslkdd(labelled)
    kept = feats.filter(pl.col("protocol_type") != "gre").select(KDD_FEATURES)
    assert back.select(KDD_FEATURES).equals(kept)


def test_row_order_and_identity_are_the_flows(flow: Any, flows_table: Any) -> None:
    recs = [flow(3.0, orig_h="10.9.9.9"), flow(1.0), flow(2.0, proto="udp", resp_p=123)]
    table = flows_table(recs)
    got = kdd_features(table)
    identity = pl.from_arrow(table.select(list(IDENTITY_COLUMNS)))
    assert isinstance(identity, pl.DataFrame)  # a table converts to a frame (a Series only from an array)
    assert got.select(IDENTITY_COLUMNS).equals(identity)
    assert got["orig_h"][0] == "10.9.9.9" and got["service"].to_list() == ["http", "http", "ntp_u"]
    # A polars frame in gives the same result as the Arrow table.
    frame = pl.from_arrow(table)
    assert isinstance(frame, pl.DataFrame)
    assert kdd_features(frame).equals(got)


@pytest.mark.parametrize(("dur", "expected"), [(0.0, 0), (0.999, 0), (1.0, 1), (1.5, 1), (59.99, 59)])
def test_duration_is_truncated(flow: Any, flows_table: Any, dur: float, expected: int) -> None:
    assert kdd_features(flows_table([flow(0, duration_s=dur)]))["duration"][0] == expected


def test_duration_in_nslkdd_is_whole_seconds(kdd_train: pl.DataFrame) -> None:
    assert kdd_train.filter(pl.col("duration") % 1 != 0).height == 0
    normal = kdd_train.filter(pl.col("label") == "normal")
    zero = normal.group_by("service").agg((pl.col("duration") == 0).mean().alias("z"))
    z = dict(zero.iter_rows())
    assert z["http"] > 0.99 and z["domain_u"] > 0.96  # short exchanges are 0 s: truncation, not rounding up


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"proto": "tcp"}, "tcp"),
        ({"proto": "udp"}, "udp"),
        ({"proto": "icmp"}, "icmp"),
        ({"proto": "icmp6", "icmp_type": 128}, "icmp"),
        ({"proto": "gre"}, "gre"),
    ],
)
def test_protocol_type(flow: Any, flows_table: Any, kw: dict[str, Any], expected: str) -> None:
    assert kdd_features(flows_table([flow(0, **kw)]))["protocol_type"][0] == expected


def test_intrinsic_counts_come_from_the_flow(flow: Any, flows_table: Any) -> None:
    rec = flow(0, orig_bytes=1480, resp_bytes=0, land=True, wrong_fragment=3, urgent=2, conn_state="S0")
    got = kdd_features(flows_table([rec])).row(0, named=True)
    assert (got["src_bytes"], got["dst_bytes"], got["land"], got["wrong_fragment"], got["urgent"]) == (
        1480,
        0,
        1,
        3,
        2,
    )


def test_empty_flow_table(flows_table: Any) -> None:
    got = kdd_features(flows_table([]))
    assert got.height == 0 and got.columns == [*IDENTITY_COLUMNS, *KDD_FEATURES]
