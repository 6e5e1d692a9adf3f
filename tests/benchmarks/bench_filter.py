"""Benchmark: what narrowing the read saves (``nta flows`` with --since/--until, --host, --port vs none).

Usage: ``python tests/benchmarks/bench_filter.py [CAPTURE] [--repeat 3]`` (default /tmp/bench-1m.pcap, made by
``python ../shared/bench/gen_pcap.py /tmp/bench-1m.pcap --packets 1000000 --duration 300 --seed 1``).

Each run is a fresh ``nta flows`` process timed by ``/usr/bin/time`` (wall, user + system CPU); the median
of ``--repeat`` runs is shown with the packets kept and the flows written. The time window is the middle
10% of the capture's span; the host is the busiest address; the port is 443. The time filter is applied
to record headers before decoding, the host and port filters to the decoded columns before flows are
built, so the saving is the decoding (time) and the flow building (all three). Reading and hashing the
file is not saved: every byte is still read (the sha256 covers the whole file). Prints figures; asserts nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import dpkt


def _span_and_busiest(path: Path, sample: int = 200_000) -> tuple[float, float, str]:
    """First and last timestamps of the capture, and the busiest address in its first ``sample`` packets."""
    first = last = 0.0
    hosts: Counter[bytes] = Counter()
    with path.open("rb") as f:
        for i, (ts, buf) in enumerate(dpkt.pcap.Reader(f)):
            first = first or float(ts)
            last = float(ts)
            if i < sample:
                eth = dpkt.ethernet.Ethernet(buf)
                if isinstance(eth.data, dpkt.ip.IP):
                    hosts[eth.data.src] += 1
                    hosts[eth.data.dst] += 1
    busiest = hosts.most_common(1)[0][0]
    return first, last, ".".join(str(b) for b in busiest)


def _run(capture: Path, args: list[str]) -> dict[str, float | int]:
    nta = shutil.which("nta") or str(Path(sys.executable).with_name("nta"))
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [
            "/usr/bin/time",
            "-f",
            "TIME %e %U %S",
            nta,
            "flows",
            str(capture),
            "-o",
            f"{tmp}/f.parquet",
            "-q",
            *args,
        ]
        p = subprocess.run(cmd, capture_output=True, text=True, check=True)
    m = re.search(r"TIME ([\d.]+) ([\d.]+) ([\d.]+)", p.stderr)
    assert m, p.stderr
    read = re.search(r"([\d,]+) packets -> ([\d,]+) flows", p.stdout)
    skipped = re.search(r"([\d,]+) packets outside the filters", p.stdout)
    assert read, p.stdout
    packets = int(read.group(1).replace(",", ""))
    out = int(skipped.group(1).replace(",", "")) if skipped else 0
    return {
        "wall": float(m.group(1)),
        "cpu": float(m.group(2)) + float(m.group(3)),
        "kept": packets - out,
        "flows": int(read.group(2).replace(",", "")),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("capture", nargs="?", type=Path, default=Path("/tmp/bench-1m.pcap"))
    ap.add_argument("--repeat", type=int, default=3)
    a = ap.parse_args()
    first, last, host = _span_and_busiest(a.capture)
    span = last - first
    iso = lambda t: dt.datetime.fromtimestamp(t, dt.UTC).isoformat()  # noqa: E731
    runs = {
        "no filter": [],
        "--since/--until (middle 10% of the span)": [
            "--since",
            iso(first + 0.45 * span),
            "--until",
            iso(first + 0.55 * span),
        ],
        f"--host {host} (busiest address)": ["--host", host],
        "--port 443": ["--port", "443"],
    }
    print(f"capture {a.capture}, span {span:.0f} s; median of {a.repeat} runs of `nta flows`")
    print(f"{'filter':46} {'wall s':>7} {'CPU s':>7} {'packets kept':>13} {'flows':>8}")
    base = None
    for name, args in runs.items():
        rs = [_run(a.capture, args) for _ in range(a.repeat)]
        wall = statistics.median(r["wall"] for r in rs)
        cpu = statistics.median(r["cpu"] for r in rs)
        base = base or (wall, cpu)
        note = "" if name == "no filter" else f"  (wall {wall / base[0] - 1:+.0%}, CPU {cpu / base[1] - 1:+.0%})"
        print(f"{name:46} {wall:7.2f} {cpu:7.2f} {rs[0]['kept']:13,} {rs[0]['flows']:8,}{note}")


if __name__ == "__main__":
    main()
