"""Benchmark: capture reading and packet decoding alone (PacketSource), no flows.

Usage: python tests/benchmarks/bench_capture.py CAPTURE [--repeat 3] [--chunk-records 262144]

Prints records/s and decoded packets/s by wall time, and by the CPU time of the decoding thread
(the reader thread's hashing and inflation run beside it), so figures stay comparable when other
work shares the machine. Make a big capture with
``python ../shared/bench/gen_pcap.py /tmp/bench-1m.pcap --packets 1000000 --duration 300 --seed 1``.
"""

from __future__ import annotations

import argparse
import resource
import time
from pathlib import Path

from features.capture.source import PacketSource


def run(path: Path, chunk_records: int) -> dict[str, float]:
    """One pass over the capture; wall, main-thread CPU and process CPU seconds, counts."""
    wall0, thr0, cpu0 = time.perf_counter(), time.thread_time(), time.process_time()
    src = PacketSource(path, chunk_records=chunk_records)
    rows = payloads = batches = 0
    for b in src.batches():
        rows += len(b)
        payloads += len(b.payloads)
        batches += 1
    return {
        "wall": time.perf_counter() - wall0,
        "thread": time.thread_time() - thr0,
        "cpu": time.process_time() - cpu0,
        "records": src.records,
        "rows": rows,
        "payloads": payloads,
        "batches": batches,
        "bad": sum(src.bad.values()),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", type=Path)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--chunk-records", type=int, default=262_144)
    args = ap.parse_args()
    results = [run(args.capture, args.chunk_records) for _ in range(args.repeat)]
    best = min(results, key=lambda r: r["wall"])
    best_thr = min(r["thread"] for r in results)
    n = best["records"]
    print(f"capture      {args.capture} ({args.capture.stat().st_size / 1e6:.1f} MB)")
    print(f"records      {n:,}  rows {best['rows']:,}  payloads {best['payloads']:,}  bad {best['bad']:,}")
    print(f"batches      {best['batches']}")
    print(
        f"wall         {best['wall']:.2f} s  -> {n / best['wall']:,.0f} records/s, {best['rows'] / best['wall']:,.0f} packets/s"
    )
    print(f"decode CPU   {best_thr:.2f} s  -> {n / best_thr:,.0f} records/s (main thread only, best of {args.repeat})")
    print(f"process CPU  {best['cpu']:.2f} s (incl. the reader thread: read, sha256, gzip)")
    print(f"peak RSS     {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB")


if __name__ == "__main__":
    main()
