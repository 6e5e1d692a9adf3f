#!/usr/bin/env python3
"""Cut a lab capture at random instants, as analysts receive captures: flows start or end at the edges.

    python3 lab/cut.py IN.pcap OUTDIR --seed S --count N [--labels labels.csv] [--min-seconds 20] [--max-seconds M]

Writes OUTDIR/<stem>-cutNN.pcap (global header copied byte for byte, whole records only) for N random
[start, end) instants, plus OUTDIR/labels.csv (the run's labels, which apply unchanged: they are absolute UTC
windows) and OUTDIR/cuts.json (each cut's instants and record counts). Classic pcap only (either byte order,
micro- or nanosecond timestamps); stdlib only. The same seed always gives the same cuts.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import json
import mmap
import random
import shutil
import struct
import sys
from pathlib import Path

MAGICS = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6),
    b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9),
    b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}


def index(buf: bytes | mmap.mmap) -> tuple[bytes, list[float], list[int]]:
    """Global header, record timestamps and record start offsets (plus the end offset as a sentinel).

    A record cut short at the end of the file is dropped."""
    if len(buf) < 24 or bytes(buf[:4]) not in MAGICS:
        raise ValueError("not a classic pcap file (pcapng is not supported)")
    endian, scale = MAGICS[bytes(buf[:4])]
    hdr = struct.Struct(endian + "IIII")
    ts: list[float] = []
    offs: list[int] = []
    off, n = 24, len(buf)
    while off + 16 <= n:
        sec, frac, incl, _ = hdr.unpack_from(buf, off)
        end = off + 16 + incl
        if end > n:
            break
        ts.append(sec + frac * scale)
        offs.append(off)
        off = end
    offs.append(off)
    return bytes(buf[:24]), ts, offs


def plan_cuts(
    t0: float, t1: float, count: int, seed: int, min_seconds: float, max_seconds: float | None = None
) -> list[tuple[float, float]]:
    """`count` [start, end) instants inside [t0, t1], each min_seconds..max_seconds long (at most the span)."""
    rng = random.Random(seed)
    span = t1 - t0
    hi = span if max_seconds is None else min(max_seconds, span)
    out = []
    for _ in range(count):
        length = rng.uniform(min(min_seconds, hi), hi) if span > 0 else 0.0
        start = t0 + rng.uniform(0, span - length) if span > length else t0
        out.append((start, start + length))
    return out


def cut(
    path: Path,
    outdir: Path,
    seed: int,
    count: int,
    min_seconds: float = 20.0,
    labels: Path | None = None,
    max_seconds: float | None = None,
) -> list[dict]:
    outdir.mkdir(parents=True, exist_ok=True)
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        buf: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        gh, ts, offs = index(buf)
        if not ts:
            raise ValueError("capture holds no complete record")
        ordered = all(a <= b for a, b in itertools.pairwise(ts))
        cuts = plan_cuts(ts[0], ts[-1], count, seed, min_seconds, max_seconds)
        res = []
        for i, (s, e) in enumerate(cuts):
            name = f"{path.stem}-cut{i + 1:02d}.pcap"
            with open(outdir / name, "wb") as o:
                o.write(gh)
                if ordered:
                    lo, hi = bisect.bisect_left(ts, s), bisect.bisect_left(ts, e)
                    o.write(buf[offs[lo] : offs[hi]])
                    n = hi - lo
                else:
                    n = 0
                    for k, t in enumerate(ts):
                        if s <= t < e:
                            o.write(buf[offs[k] : offs[k + 1]])
                            n += 1
            res.append({"file": name, "start": s, "end": e, "records": n})
        if isinstance(buf, mmap.mmap):
            buf.close()
    if labels is None and (path.parent / "labels.csv").exists():
        labels = path.parent / "labels.csv"
    if labels is not None:
        shutil.copy(labels, outdir / "labels.csv")
    (outdir / "cuts.json").write_text(json.dumps({"source": str(path), "seed": seed, "cuts": res}, indent=1))
    return res


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap", type=Path)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--min-seconds", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=None, help="longest cut (default: the whole capture)")
    ap.add_argument("--labels", type=Path, default=None)
    a = ap.parse_args(argv)
    for c in cut(a.pcap, a.outdir, a.seed, a.count, a.min_seconds, a.labels, a.max_seconds):
        print(f"{c['file']}: {c['records']} records, {c['end'] - c['start']:.1f}s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
