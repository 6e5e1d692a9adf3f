"""Speed of reading Zeek conn logs (features.zeeklog): records per second for TSV and JSON, plain and gzipped.

    python tests/benchmarks/bench_zeeklog.py [--copies N]

The log is nta's own conn.log of sample_pcaps/demo-mixed.pcap (944 connections) repeated N times with the
times shifted, so every copy is a new stretch of traffic. Prints one line per format.
"""

from __future__ import annotations

import argparse
import gzip
import tempfile
import time
from pathlib import Path

import polars as pl

from features.flows.extract import extract_flows
from features.flows.zeek import CONN_LOG, conn_frame, json_lines, tsv_lines
from features.zeeklog.stream import read_conn_logs

DEMO = Path(__file__).resolve().parents[2] / "sample_pcaps" / "demo-mixed.pcap"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--copies", type=int, default=500)
    args = ap.parse_args()
    flows = pl.from_arrow(extract_flows([DEMO]).flows)
    assert isinstance(flows, pl.DataFrame)
    one = conn_frame(flows)
    frame = pl.concat([one.with_columns(pl.col("ts") + pl.duration(seconds=60 * i)) for i in range(args.copies)])
    with tempfile.TemporaryDirectory() as d:
        for name, json in (("tsv", False), ("json", True)):
            path = Path(d) / f"conn.{name}"
            lines = json_lines(CONN_LOG, frame) if json else tsv_lines(CONN_LOG, frame, None, None)
            path.write_text("".join(lines))
            packed = Path(d) / f"conn.{name}.gz"
            packed.write_bytes(gzip.compress(path.read_bytes(), 6))
            for p in (path, packed):
                t0 = time.perf_counter()
                ext = read_conn_logs([p])
                s = time.perf_counter() - t0
                mb = p.stat().st_size / 1e6
                print(
                    f"{p.name:14} {ext.flows.num_rows:>9,} records {mb:8.1f} MB {s:6.2f} s "
                    f"{ext.flows.num_rows / s:>10,.0f} records/s"
                )


if __name__ == "__main__":
    main()
