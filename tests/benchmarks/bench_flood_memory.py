"""Peak RSS per flow of ``nta scan`` and ``nta flows`` on captures of N one-packet flows (a spoofed SYN flood).

    python tests/benchmarks/bench_flood_memory.py [--flows 100000 300000 1000000] [--commands scan flows]

For each N it writes a classic pcap of N TCP SYNs, each from its own source address and port to one target
(so every packet is a flow: the worst case for memory per packet), runs ``python -m analyzer`` on it under
``/usr/bin/time -v`` and reads the peak RSS of the main process (the forked reader is smaller). It prints the
peak per N and the marginal cost per flow between consecutive N (the slope, without the ~400 MB of
imports and model that every run pays). A measurement, not a test (figures: docs/scan.md, Reliability).
"""

from __future__ import annotations

import argparse
import itertools
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[2]


def flood_pcap(path: Path, n: int) -> None:
    """N records of a 54-byte Ethernet/IPv4/TCP SYN: source 10.(i>>16).(i>>8).i:(1024 + i % 60000), 1 us apart."""
    i = np.arange(n, dtype=np.uint64)
    rec = np.zeros((n, 16 + 54), np.uint8)
    ts_us = 1_700_000_000 * 1_000_000 + i
    hdr = np.zeros((n, 4), "<u4")
    hdr[:, 0], hdr[:, 1], hdr[:, 2], hdr[:, 3] = ts_us // 1_000_000, ts_us % 1_000_000, 54, 54
    rec[:, :16] = hdr.view(np.uint8).reshape(n, 16)
    frame = rec[:, 16:]
    frame[:, 12:14] = (8, 0)  # EtherType IPv4
    frame[:, 14:24] = (0x45, 0, 0, 40, 0, 0, 0x40, 0, 64, 6)  # IPv4, 40 bytes, DF, TTL 64, TCP
    frame[:, 26] = 10
    frame[:, 27], frame[:, 28], frame[:, 29] = (i >> 16) & 255, (i >> 8) & 255, i & 255
    frame[:, 30:34] = (192, 0, 2, 1)
    sport = 1024 + i % 60000
    frame[:, 34], frame[:, 35] = sport >> 8, sport & 255
    frame[:, 36:38] = (0, 80)
    frame[:, 46] = 0x50  # data offset 5
    frame[:, 47] = 0x02  # SYN
    frame[:, 48:50] = (0x20, 0)  # window 8192
    glob = np.array([0xA1B2C3D4, 0x00040002, 0, 0, 65535, 1], "<u4").view(np.uint8)
    with path.open("wb") as f:
        f.write(glob.tobytes())
        f.write(rec.tobytes())


def peak_rss_mib(cmd: list[str]) -> tuple[float, float]:
    """(peak RSS in MiB, wall seconds) of ``cmd`` under /usr/bin/time -v; exits on failure."""
    t0 = time.perf_counter()
    res = subprocess.run(["/usr/bin/time", "-v", *cmd], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t0
    m = re.search(r"Maximum resident set size \(kbytes\): (\d+)", res.stderr)
    if res.returncode not in (0, 1) or m is None:
        sys.exit(f"{' '.join(cmd)} failed ({res.returncode}): {res.stderr[-2000:]}")
    return int(m.group(1)) / 1024, wall


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--flows", type=int, nargs="+", default=[100_000, 300_000, 1_000_000])
    ap.add_argument("--commands", nargs="+", default=["scan", "flows"], choices=["scan", "flows", "features"])
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="nta-flood-") as tmp:
        rows: dict[str, list[tuple[int, float, float]]] = {c: [] for c in args.commands}
        for n in sorted(args.flows):
            cap = Path(tmp) / f"flood-{n}.pcap"
            flood_pcap(cap, n)
            for c in args.commands:
                out = Path(tmp) / f"out-{c}-{n}" if c == "scan" else Path(tmp) / f"out-{c}-{n}.parquet"
                cmd = [sys.executable, "-m", "analyzer", c, str(cap), "-o", str(out), "-q"]
                rss, wall = peak_rss_mib(cmd + (["--format", "json"] if c == "scan" else []))
                rows[c].append((n, rss, wall))
                print(f"nta {c:<8} {n:>10,} flows: peak RSS {rss:8.0f} MiB, {wall:6.1f} s", flush=True)
            cap.unlink()
        print()
        for c, r in rows.items():
            for (n0, m0, _), (n1, m1, _) in itertools.pairwise(r):
                per = (m1 - m0) * 1024 * 1024 / (n1 - n0)
                print(f"nta {c:<8} {n0:,} -> {n1:,} flows: {per:,.0f} bytes per flow (marginal)")
            n, m, _ = r[-1]
            print(f"nta {c:<8} at {n:,} flows: {m * 1024 * 1024 / n:,.0f} bytes per flow (whole process)")


if __name__ == "__main__":
    main()
