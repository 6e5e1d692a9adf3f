"""Benchmark: kdd_features on a synthetic flow table of N flows (default 1,000,000). Prints the time.

    python tests/benchmarks/bench_kdd.py [N]

The table mixes web clients, a SYN flood, a port scan and DNS over ~10 minutes, 5,000 hosts, so the
windows see both crowded and sparse keys. Only the feature stage is timed (the table is built first).
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from features.flows.schema import FLOW_SCHEMA
from features.kdd.frame import kdd_features


def synth_flows(n: int, seed: int = 0) -> pa.Table:
    """n flows in FLOW_SCHEMA, start times sorted, with a realistic-ish mix of protocols/ports/states."""
    rng = np.random.default_rng(seed)
    t0 = np.int64(1_700_000_000_000_000)  # µs
    ts = np.sort(t0 + rng.integers(0, 600_000_000, n))  # 10 minutes
    dur = rng.exponential(0.5, n)
    kind = rng.choice(4, n, p=[0.6, 0.2, 0.1, 0.1])  # web, flood, scan, dns
    proto = np.where(kind == 3, 17, 6).astype(np.uint8)
    resp_p = np.select(
        [kind == 0, kind == 1, kind == 2], [rng.choice([80, 443, 8080], n), 80, rng.integers(1, 65535, n)], 53
    ).astype(np.int32)
    state = np.select([kind == 0, kind == 1, kind == 2], ["SF", "S0", "REJ"], "SF")
    hosts = np.array([f"10.{i // 250}.{i % 250}.1" for i in range(5000)])
    resp_h = np.where(kind == 1, "10.0.0.1", hosts[rng.integers(0, 5000, n)])
    cols = {
        "flow_id": np.arange(n, dtype=np.int64),
        "uid": pa.nulls(n, pa.string()),  # nullable: uids are a hash of the capture, and there is none here
        "community_id": np.full(n, "1:x"),
        "source_file": np.full(n, "synth.pcap"),
        "ts": pa.array(ts, pa.timestamp("us", tz="UTC")),
        "ts_end": pa.array(ts + (dur * 1e6).astype(np.int64), pa.timestamp("us", tz="UTC")),
        "duration_s": dur,
        "proto": np.where(proto == 6, "tcp", "udp"),
        "ip_proto": proto,
        "ip_version": np.full(n, 4, np.uint8),
        "vlan": pa.nulls(n, pa.int32()),
        "tunnel": pa.nulls(n, pa.string()),
        "orig_h": hosts[rng.integers(0, 5000, n)],
        "orig_p": rng.integers(1024, 65535, n).astype(np.int32),
        "resp_h": resp_h,
        "resp_p": resp_p,
        "icmp_type": pa.nulls(n, pa.int16()),
        "icmp_code": pa.nulls(n, pa.int16()),
        "orig_pkts": rng.integers(1, 20, n),
        "resp_pkts": rng.integers(0, 20, n),
        "orig_bytes": rng.integers(0, 2000, n),
        "resp_bytes": rng.integers(0, 50000, n),
        "orig_ip_bytes": rng.integers(40, 3000, n),
        "resp_ip_bytes": rng.integers(0, 60000, n),
        "conn_state": state,
        "history": np.full(n, "ShADadFf"),
        "land": np.zeros(n, bool),
        "wrong_fragment": np.zeros(n, np.int32),
        "urgent": np.zeros(n, np.int32),
    }
    return pa.Table.from_pydict({k: cols[k] for k in FLOW_SCHEMA.names}, schema=FLOW_SCHEMA)


def main() -> None:
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    table = synth_flows(n)
    t = time.perf_counter()
    out = kdd_features(table)
    dt = time.perf_counter() - t
    print(f"kdd_features: {n:,} flows in {dt:.2f} s ({n / dt:,.0f} flows/s); output {out.shape}")
    print(f"max count {out['count'].max()!r}, max dst_host_count {out['dst_host_count'].max()!r}")


if __name__ == "__main__":
    main()
