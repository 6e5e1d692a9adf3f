"""Fixtures for the KDD feature tests: hand-built flow tables in FLOW_SCHEMA, and paths to ../shared."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import polars as pl
import pyarrow as pa
import pytest

from features.flows.schema import FLOW_SCHEMA

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
SAMPLES = REPO / "sample_pcaps"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
_PROTO = {"tcp": 6, "udp": 17, "icmp": 1, "icmp6": 58, "gre": 47}


def _need(p: Path) -> Path:
    """The path, or skip the test naming it."""
    if not p.exists():
        pytest.skip(f"needs {p} (../shared beside the checkout, or sample_pcaps/), which is missing")
    return p


def _flow(t: float = 0.0, **kw: Any) -> dict[str, Any]:
    """One flow record with defaults: a TCP SF flow 10.0.0.1:40000 -> 10.0.0.2:80 starting t seconds after T0."""
    proto = kw.pop("proto", "tcp")
    dur = kw.pop("duration_s", 0.1)
    rec: dict[str, Any] = {
        "flow_id": 0,
        "community_id": "1:x",
        "source_file": "hand.pcap",
        "ts": T0 + timedelta(seconds=t),
        "ts_end": T0 + timedelta(seconds=t + dur),
        "duration_s": dur,
        "proto": proto,
        "ip_proto": _PROTO.get(proto, 255),
        "ip_version": 4,
        "vlan": None,
        "orig_h": "10.0.0.1",
        "orig_p": 40000 if proto in ("tcp", "udp") else None,
        "resp_h": "10.0.0.2",
        "resp_p": 80 if proto in ("tcp", "udp") else None,
        "icmp_type": 8 if proto.startswith("icmp") else None,
        "icmp_code": 0 if proto.startswith("icmp") else None,
        "orig_pkts": 5,
        "resp_pkts": 5,
        "orig_bytes": 100,
        "resp_bytes": 1000,
        "orig_ip_bytes": 300,
        "resp_ip_bytes": 1200,
        "conn_state": "SF" if proto == "tcp" else "S0",
        "history": "ShADadFf",
        "land": False,
        "wrong_fragment": 0,
        "urgent": 0,
    }
    rec.update(kw)
    return rec


def _flows_table(records: list[dict[str, Any]]) -> pa.Table:
    """A FLOW_SCHEMA table from records; flow_id is the row number."""
    for i, r in enumerate(records):
        r["flow_id"] = i
    return pa.Table.from_pylist(records, schema=FLOW_SCHEMA)


FlowFn = Callable[..., dict[str, Any]]
TableFn = Callable[[list[dict[str, Any]]], pa.Table]


@pytest.fixture
def flow() -> FlowFn:
    """``flow(t, **columns)``: one FLOW_SCHEMA record with defaults."""
    return _flow


@pytest.fixture
def flows_table() -> TableFn:
    """``flows_table(records)``: a FLOW_SCHEMA Arrow table, flow_id = row number."""
    return _flows_table


@pytest.fixture
def need() -> Callable[[Path], Path]:
    """``need(path)``: the path, or skip the test naming it."""
    return _need


@pytest.fixture(scope="session")
def kdd_train() -> pl.DataFrame:
    """KDDTrain+ through the NSL-KDD reader (skips without ../shared)."""
    from features.kdd.nslkdd import read_nslkdd

    return read_nslkdd(_need(SHARED / "data" / "nsl-kdd" / "KDDTrain+.txt.gz"))
