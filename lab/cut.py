#!/usr/bin/env python3
"""Cut a lab capture at random instants, as analysts receive captures: flows start or end at the edges.

    python3 lab/cut.py IN.pcap OUTDIR --seed S --count N [--labels labels.csv] [--min-seconds 20] [--max-seconds M]
                       [--hosts lab-meta.json]

Writes OUTDIR/<stem>-cutNN.pcap (global header copied byte for byte, whole records only) for N random
[start, end) instants, plus OUTDIR/labels.csv (the run's labels, which apply unchanged: they are absolute UTC
windows) and OUTDIR/cuts.json (each cut's instants and record counts). Classic pcap only (either byte order,
micro- or nanosecond timestamps); stdlib only. The same seed always gives the same cuts.

``--hosts META`` (the run's ``lab-meta.json``) writes host cuts instead, ``<stem>-hostNN.pcap``: captures are
also handed over filtered to one address (``tcpdump host A``) or one conversation (``host A and host B``), so
most of a network's flows are missing around the ones kept. Each cut takes a random window as above, then one
lab host address seen in it, drawn uniformly (not by packet count: floods would win every draw), and, half of
the time, one of the addresses it exchanged packets with in the window; a window holding no lab address gives
no cut, so fewer than N may be written. Ethernet (one 802.1Q tag allowed) with IPv4 or IPv6 only; frames of any
other kind are left out, as a host filter would.
"""

from __future__ import annotations

import argparse
import bisect
import contextlib
import ipaddress
import itertools
import json
import mmap
import random
import shutil
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import NamedTuple

sys.path.insert(0, str(Path(__file__).resolve().parent))  # lab/'s scripts are not a package
from check import decode  # the label self-check's frame decoder: the same addresses

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


class Indexed(NamedTuple):
    """A capture mapped read-only: its path, bytes, global header, record timestamps and offsets (``index``)."""

    path: Path
    buf: bytes | mmap.mmap
    gh: bytes
    ts: list[float]
    offs: list[int]


@contextlib.contextmanager
def _indexed(path: Path) -> Iterator[Indexed]:
    """The capture mapped read-only, with ``index``'s global header, timestamps and offsets; unmapped after."""
    with open(path, "rb") as f:
        size = f.seek(0, 2)
        buf: bytes | mmap.mmap = mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) if size else b""
        try:
            gh, ts, offs = index(buf)
            if not ts:
                raise ValueError("capture holds no complete record")
            yield Indexed(path, buf, gh, ts, offs)
        finally:
            if isinstance(buf, mmap.mmap):
                buf.close()


def cut(
    path: Path,
    outdir: Path,
    seed: int,
    count: int,
    min_seconds: float = 20.0,
    labels: Path | None = None,
    max_seconds: float | None = None,
    hosts: dict | None = None,
) -> list[dict]:
    """``count`` cuts of ``path`` into ``outdir`` (see the module docstring); returns what each holds. With
    ``hosts`` (a run's ``lab-meta.json``), host cuts."""
    outdir.mkdir(parents=True, exist_ok=True)
    with _indexed(path) as cap:
        t0, t1 = cap.ts[0], cap.ts[-1]
        if hosts is None:
            res = _time_cuts(cap, outdir, plan_cuts(t0, t1, count, seed, min_seconds, max_seconds))
        else:
            rng = random.Random(seed)
            plan = plan_cuts(t0, t1, count, rng.randrange(1 << 30), min_seconds, max_seconds)
            res = _host_cuts(cap, outdir, plan, lab_addresses(hosts), rng)
    _finish(path, outdir, seed, res, labels)
    return res


def _time_cuts(cap: Indexed, outdir: Path, plan: list[tuple[float, float]]) -> list[dict]:
    path, buf, gh, ts, offs = cap
    ordered = all(a <= b for a, b in itertools.pairwise(ts))
    res = []
    for i, (s, e) in enumerate(plan):
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
    return res


LINKTYPE_ETHERNET = 1


def lab_addresses(meta: dict) -> set[str]:
    """Every address a lab host owns (``lab-meta.json``'s hosts: router, servers, clients, attackers), as text."""
    return {
        str(ipaddress.ip_address(a)) for h in meta["hosts"].values() for fam in ("v4", "v6") for a in h.get(fam, [])
    }


def _packed(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


def _host_cuts(
    cap: Indexed, outdir: Path, plan: list[tuple[float, float]], hosts: set[str], rng: random.Random
) -> list[dict]:
    path, buf, gh, ts, offs = cap
    endian = MAGICS[bytes(gh[:4])][0]
    if struct.unpack_from(endian + "I", gh, 20)[0] & 0x0FFFFFFF != LINKTYPE_ETHERNET:
        raise ValueError("host cuts need an Ethernet capture")
    res = []
    for i, (s, e) in enumerate(plan):
        inside = [k for k, t in enumerate(ts) if s <= t < e]
        ends = {k: (d[:2] if (d := decode(buf[offs[k] + 16 : offs[k + 1]])) else None) for k in inside}
        seen = sorted({a for p in ends.values() if p for a in p} & hosts, key=_packed)  # drawn in address order
        if not seen:
            continue
        a = rng.choice(seen)
        peers = sorted({p[1] if p[0] == a else p[0] for p in ends.values() if p and a in p} - {a}, key=_packed)
        b = rng.choice(peers) if peers and rng.random() < 0.5 else None
        keep = [k for k in inside if (p := ends[k]) and a in p and (b is None or b in p)]
        name = f"{path.stem}-host{i + 1:02d}.pcap"
        with open(outdir / name, "wb") as o:
            o.write(gh)
            for k in keep:
                o.write(buf[offs[k] : offs[k + 1]])
        kept = [x for x in (a, b) if x is not None]
        res.append({"file": name, "start": s, "end": e, "hosts": kept, "records": len(keep)})
    return res


def _finish(path: Path, outdir: Path, seed: int, res: list[dict], labels: Path | None) -> None:
    if labels is None and (path.parent / "labels.csv").exists():
        labels = path.parent / "labels.csv"
    if labels is not None:
        shutil.copy(labels, outdir / "labels.csv")
    (outdir / "cuts.json").write_text(json.dumps({"source": str(path), "seed": seed, "cuts": res}, indent=1))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("pcap", type=Path)
    ap.add_argument("outdir", type=Path)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--min-seconds", type=float, default=20.0)
    ap.add_argument("--max-seconds", type=float, default=None, help="longest cut (default: the whole capture)")
    ap.add_argument("--labels", type=Path, default=None)
    ap.add_argument("--hosts", type=Path, default=None, help="the run's lab-meta.json: host cuts instead")
    a = ap.parse_args(argv)
    meta = json.loads(a.hosts.read_text()) if a.hosts is not None else None
    got = cut(a.pcap, a.outdir, a.seed, a.count, a.min_seconds, a.labels, a.max_seconds, meta)
    for c in got:
        print(f"{c['file']}: {c['records']} records, {c['end'] - c['start']:.1f}s {' '.join(c.get('hosts', []))}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
