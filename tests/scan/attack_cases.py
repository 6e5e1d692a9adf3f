"""Hand-made attack rows and a hypothesis strategy for them (shared by the incident tests)."""

from __future__ import annotations

import datetime as dt

import numpy as np
import polars as pl
from hypothesis import strategies as st

from analyzer.incidents import IncidentConfig

T0 = dt.datetime(2024, 5, 1, 12, 0, 0, tzinfo=dt.UTC)


def attack_rows(rows: list[tuple[int, int, int, int, int, float]]) -> pl.DataFrame:
    """(label, source, target, port, proto, start seconds) -> attack rows in start order, flow_id = row."""
    rows = sorted(rows, key=lambda r: r[5])
    n = len(rows)
    ts = [T0 + dt.timedelta(seconds=r[5]) for r in rows]
    return pl.DataFrame(
        {
            "flow_id": np.arange(n, dtype=np.int64),
            "ts": ts,
            "ts_end": [t + dt.timedelta(seconds=0.5) for t in ts],
            "orig_h": [f"10.0.0.{r[1]}" for r in rows],
            "resp_h": [f"192.0.2.{r[2]}" for r in rows],
            "resp_p": pl.Series([None if r[3] == 0 else r[3] for r in rows], dtype=pl.Int32),
            "proto": [("tcp", "udp", "icmp")[r[4]] for r in rows],
            "conn_state": ["S0"] * n,
            "service": ["private"] * n,
            "label": [("DoS", "Probe", "normal")[r[0]] for r in rows],
            "confidence": np.linspace(0.5, 1.0, n),
            "orig_bytes": np.zeros(n, np.int64),
            "resp_bytes": np.zeros(n, np.int64),
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "ts_end": pl.Datetime("us", "UTC")},
    )


CONFIGS = [IncidentConfig(), IncidentConfig(gap_s=2.0, minor_flows=2, spread_sources=2), IncidentConfig(minor_flows=3)]

flow = st.tuples(
    st.integers(0, 2),  # label: DoS, Probe, normal
    st.integers(1, 12),  # source
    st.integers(1, 4),  # target
    st.sampled_from([0, 22, 53, 80]),  # responder port (0: none)
    st.integers(0, 2),  # proto
    st.floats(0, 400, allow_nan=False),  # start, seconds
)
