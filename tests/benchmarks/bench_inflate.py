"""Time and peak RSS of ``nta scan`` on 1 GiB-inflating ``.pcap.gz`` files: a gzip bomb and a real capture repeated.

    python tests/benchmarks/bench_inflate.py [--gib 1] [--keep DIR]

Builds, in a temporary folder: ``zeros.pcap.gz`` (a pcap header, then GIB GiB of zeros: deflate's ceiling,
~1030x), ``repeated.pcap.gz`` (``sample_pcaps/demo-mixed.pcap``'s records repeated to GIB GiB, ~4x) and
``repeated.pcap`` (the same, not compressed: what a normal scan of that much data costs). Runs
``python -m analyzer scan`` on each under ``/usr/bin/time -v``: the bomb with the default guard
(``--max-inflate 100``: stopped, exit 2) and with the guard off (read through), the other two with the
defaults. Prints exit code, wall seconds and the peak RSS of the largest process (the main one or the forked
reader). A measurement, not a test.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sample_pcaps" / "demo-mixed.pcap"
MiB = 1 << 20


def zeros(path: Path, size: int) -> None:
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as f:
        f.write(c.compress(DEMO.read_bytes()[:24]))  # demo's pcap header: Ethernet, microseconds
        chunk = bytes(MiB)
        for _ in range(size // MiB):
            f.write(c.compress(chunk))
        f.write(c.flush())


def repeated(gz: Path, plain: Path, size: int) -> None:
    raw = DEMO.read_bytes()
    head, body = raw[:24], raw[24:]
    reps = max(1, size // len(body))
    block = body * max(1, (16 * MiB) // len(body))
    per = len(block) // len(body)
    c = zlib.compressobj(6, zlib.DEFLATED, 31)
    with gz.open("wb") as g, plain.open("wb") as p:
        for data in (head,):
            g.write(c.compress(data))
            p.write(data)
        done = 0
        while done < reps:
            part = block if reps - done >= per else body * (reps - done)
            g.write(c.compress(part))
            p.write(part)
            done += len(part) // len(body)
        g.write(c.flush())


def measure(*args: str | Path) -> tuple[int, float, float, str]:
    """(exit code, wall seconds, peak RSS MiB, last stderr line) of ``python -m analyzer ARGS``."""
    cmd = ["/usr/bin/time", "-v", sys.executable, "-m", "analyzer", *map(str, args)]
    p = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, check=False)
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (?:(\d+):)?(\d+):([\d.]+)", p.stderr)
    rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr)
    assert wall and rss, p.stderr[-2000:]
    h, m, s = wall.groups()
    seconds = int(h or 0) * 3600 + int(m) * 60 + float(s)
    nta_lines = [line for line in p.stderr.splitlines() if line.startswith("nta:")]
    code = int(re.search(r"Exit status: (\d+)", p.stderr).group(1))  # type: ignore[union-attr]
    return code, seconds, int(rss.group(1)) / 1024, (nta_lines[-1] if nta_lines else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--gib", type=float, default=1.0, help="inflated size of each capture, GiB")
    ap.add_argument("--keep", type=Path, help="build the captures here and keep them (default: a temporary folder)")
    a = ap.parse_args()
    size = int(a.gib * (1 << 30))
    with tempfile.TemporaryDirectory(prefix="nta-bench-inflate-") as tmp:
        d = a.keep or Path(tmp)
        d.mkdir(parents=True, exist_ok=True)
        zeros(d / "zeros.pcap.gz", size)
        repeated(d / "repeated.pcap.gz", d / "repeated.pcap", size)
        for f in ("zeros.pcap.gz", "repeated.pcap.gz", "repeated.pcap"):
            print(f"{f}: {(d / f).stat().st_size / MiB:,.1f} MiB on disk")
        runs = [
            ("zeros.pcap.gz, default guard", d / "zeros.pcap.gz", []),
            ("zeros.pcap.gz, --max-inflate 0", d / "zeros.pcap.gz", ["--max-inflate", "0"]),
            ("repeated.pcap.gz, default guard", d / "repeated.pcap.gz", []),
            ("repeated.pcap (plain, normal scan)", d / "repeated.pcap", []),
        ]
        print(f"{'nta scan of':38} {'exit':>4} {'seconds':>8} {'peak RSS MiB':>12}  last line")
        for name, path, extra in runs:
            code, secs, rss, last = measure("scan", path, "-o", d / "out", "--force", *extra)
            print(f"{name:38} {code:4d} {secs:8.1f} {rss:12,.0f}  {last[:110]}")


if __name__ == "__main__":
    main()
