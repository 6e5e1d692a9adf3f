"""Fixtures for the scan tests: hand-made flow/verdict frames, the sample captures, a run helper."""

from __future__ import annotations

import datetime as dt
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest

from features.flows.schema import FLOW_SCHEMA

if str(Path(__file__).parent) not in sys.path:  # helpers beside the tests (paused.py)
    sys.path.insert(0, str(Path(__file__).parent))

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def _flow(i: int, orig: str, resp: str, dport: int | None, t: float, state: str, proto: str = "tcp") -> dict[str, Any]:
    ts = T0 + dt.timedelta(seconds=t)
    return {
        "flow_id": i, "uid": f"Ctest{i:013d}", "community_id": f"1:{i}", "source_file": "x.pcap", "ts": ts,
        "ts_end": ts + dt.timedelta(milliseconds=10), "duration_s": 0.01, "proto": proto,
        "ip_proto": 6 if proto == "tcp" else 17, "ip_version": 4, "vlan": None, "orig_h": orig,
        "orig_p": 40000 + i % 20000 if dport is not None else None, "resp_h": resp, "resp_p": dport,
        "icmp_type": None, "icmp_code": None, "orig_pkts": 1, "resp_pkts": 1, "orig_bytes": 0, "resp_bytes": 0,
        "orig_ip_bytes": 40, "resp_ip_bytes": 40, "conn_state": state, "history": "S", "land": False,
        "wrong_fragment": 0, "urgent": 0,
    }  # fmt: skip


@pytest.fixture
def make_flows() -> Callable[..., pl.DataFrame]:
    """Flows: 100-port scan 10.0.0.9 -> 10.0.0.5 over 1 s, spoofed SYN flood of 50 sources -> 10.0.0.7:80,
    and 20 benign web flows; a second scan burst 10 min later when ``second_scan``."""

    def make(second_scan: bool = False) -> pl.DataFrame:
        rows: list[dict[str, Any]] = []
        for k in range(100):
            rows.append(_flow(len(rows), "10.0.0.9", "10.0.0.5", 1 + k, k * 0.01, "S0" if k % 2 else "REJ"))
        for k in range(50):
            rows.append(_flow(len(rows), f"192.0.2.{k}", "10.0.0.7", 80, 5 + k * 0.001, "S0"))
        for k in range(20):
            rows.append(_flow(len(rows), "10.0.0.2", "10.0.0.80", 443, 1 + k, "SF"))
        if second_scan:
            for k in range(10):
                rows.append(_flow(len(rows), "10.0.0.9", "10.0.0.5", 2000 + k, 600 + k * 0.1, "S0"))
        df = pl.DataFrame(rows, schema=pl.Schema(FLOW_SCHEMA), orient="row")
        return df.sort("ts").with_columns(pl.int_range(pl.len(), dtype=pl.Int64).alias("flow_id"))

    return make


@pytest.fixture
def fake_proba() -> Callable[[pl.DataFrame], np.ndarray]:
    """Probabilities a perfect model would give the frame from ``make_flows``: scans Probe, the flood DoS."""

    def proba(flows: pl.DataFrame) -> np.ndarray:
        p = np.full((flows.height, 5), 0.01, np.float32)
        cls = np.where(
            flows["resp_h"].to_numpy() == "10.0.0.5", 2, np.where(flows["resp_h"].to_numpy() == "10.0.0.7", 1, 0)
        )
        p[np.arange(flows.height), cls] = 0.96
        return p

    return proba
