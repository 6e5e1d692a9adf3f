"""Seed inputs for each fuzz target, built from ``sample_pcaps/`` (the captures the goldens are made of).

``seeds(target)`` returns {name: bytes}. Captures are cut after whole records at ``MAX_LEN`` so that a mutation
costs little; pcapng seeds are the pcapng sample plus every classic sample rewritten as pcapng (both byte
orders, one with two interfaces of different link types); gzip seeds are gzipped pcap and pcapng seeds; frame
seeds (``link``, ``ip``) are the samples' frames in the layout ``targets.py`` reads.
"""

from __future__ import annotations

import functools
import gzip
import struct
from pathlib import Path

import numpy as np

from features.capture.linktypes import resolve
from features.capture.source import PacketSource

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
CUT = 3000  # bytes of records kept per capture seed
FRAMES = 6  # frames per frame seed


@functools.cache
def _records() -> dict[str, tuple[bytes, list[tuple[int, int, bytes]]]]:
    """{sample: (its first 24 bytes or b"" for pcapng, [(linktype, ts_ns, frame)...])} for every sample capture."""
    out = {}
    for p in sorted(SAMPLES.iterdir()):
        if p.suffix not in (".pcap", ".pcapng", ".gz"):
            continue
        src = PacketSource(p)
        src.keep_records = True
        recs: list[tuple[int, int, bytes]] = []
        for b in src.batches():
            rc = b.chunk
            if rc is None:
                continue
            cols = (rc.data_off.tolist(), rc.caplen.tolist(), rc.ts_ns.tolist(), rc.linktype.tolist())
            for o, c, t, lt in zip(*cols, strict=True):
                recs.append((lt, t, bytes(rc.buf[o : o + c])))
            if len(recs) > 400:
                break
        raw = p.read_bytes()
        head = (
            b"" if src.format.startswith("pcapng") else (gzip.decompress(raw) if raw[:2] == b"\x1f\x8b" else raw)[:24]
        )
        out[p.name] = (head, recs)
    return out


def _pcap(head: bytes, recs: list[tuple[int, int, bytes]]) -> bytes:
    e = "<" if head[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1", b"\x34\xcd\xb2\xa1") else ">"
    ns = head[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d")
    modified = head[:4] in (b"\x34\xcd\xb2\xa1", b"\xa1\xb2\xcd\x34")
    out = bytearray(head)
    for _, t, f in recs:
        frac = t % 10**9 if ns else (t % 10**9) // 1000
        out += struct.pack(e + "IIII", t // 10**9, frac, len(f), len(f)) + f
        if modified:
            out += bytes(8)
        if len(out) > CUT:
            break
    return bytes(out)


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += bytes(-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def _pcapng(recs: list[tuple[int, int, bytes]], e: str = "<", two_ifaces: bool = False) -> bytes:
    out = bytearray(_block(e, 0x0A0D0D0A, struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1)))
    lts = sorted({lt for lt, _, _ in recs}) or [1]
    if two_ifaces:
        lts = [*lts, 101]
    for lt in lts:
        tsresol = struct.pack(e + "HH", 9, 1) + b"\x09" + bytes(3) + bytes(4)  # if_tsresol = 9 (ns), end of options
        out += _block(e, 1, struct.pack(e + "HHI", lt, 0, 0) + tsresol)
    for i, (lt, t, f) in enumerate(recs):
        iface = lts.index(lt) if not (two_ifaces and i % 3 == 2) else len(lts) - 1
        out += _block(e, 6, struct.pack(e + "IIIII", iface, t >> 32, t & 0xFFFFFFFF, len(f), len(f)) + f)
        if len(out) > CUT:
            break
    return bytes(out)


def _frames(recs: list[tuple[int, int, bytes]], index: int, mixed: bool) -> bytes:
    from targets import LINKTYPES

    out = bytearray([index | (0x80 if mixed else 0)])
    for lt, _, f in recs[:FRAMES]:
        if mixed:
            out.append(LINKTYPES.index(lt) if lt in LINKTYPES else 0)
        f = f[:255]
        out += bytes([len(f)]) + f
    return bytes(out)


def _ip_packets(recs: list[tuple[int, int, bytes]]) -> list[bytes]:
    if not recs:
        return []
    frames = [f for _, _, f in recs]
    offs = np.cumsum([0] + [len(f) for f in frames[:-1]]).astype(np.int64)
    buf = np.frombuffer(b"".join(frames) + bytes(64), np.uint8).copy()
    links = resolve(
        buf, offs, np.array([len(f) for f in frames], np.int64), np.array([lt for lt, _, _ in recs], np.int32)
    )
    return [f[o:] for f, o in zip(frames, links.ip_off.tolist(), strict=True) if o >= 0]


def seeds(target: str) -> dict[str, bytes]:
    from targets import LINKTYPES

    out: dict[str, bytes] = {}
    for name, (head, recs) in _records().items():
        if target == "pcap" and head:
            out[name] = _pcap(head, recs)
        elif target == "pcapng":
            out[f"{name}.le.pcapng"] = _pcapng(recs)
            if len(out) % 4 == 0:
                out[f"{name}.be.pcapng"] = _pcapng(recs, ">")
            if len({lt for lt, _, _ in recs}) == 1 and len(out) % 5 == 0:
                out[f"{name}.2if.pcapng"] = _pcapng(recs, two_ifaces=True)
        elif target == "gzip":
            out[f"{name}.gz"] = gzip.compress(_pcap(head, recs) if head else _pcapng(recs), 6)
        elif target == "link" and recs:
            lt = recs[0][0]
            idx = LINKTYPES.index(lt) if lt in LINKTYPES else 0
            for i in range(0, min(len(recs), 4 * FRAMES), FRAMES):
                out[f"{name}.{i}"] = _frames(recs[i:], idx, mixed=False)
            out[f"{name}.mixed"] = _frames(recs[::3], idx, mixed=True)
        elif target == "ip":
            pkts = _ip_packets(recs)
            for i in range(0, min(len(pkts), 4 * FRAMES), FRAMES):
                out[f"{name}.{i}"] = b"".join(struct.pack(">H", len(p)) + p for p in pkts[i : i + FRAMES])
    return out
