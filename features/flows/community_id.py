"""Corelight Community ID v1 (seed 0) of flows, so analysts can pivot to Zeek and Suricata records.

The hash input is ``seed(2) . saddr . daddr . proto(1) . 0(1) . sport(2) . dport(2)`` in network byte
order, with the endpoints ordered so the smaller (address, port) comes first; the ID is
``"1:" + base64(sha1(input))``. Addresses are 4 bytes for IPv4, 16 for IPv6. ICMP and ICMPv6 use the
message type as the source "port" and, for request/reply types, the counterpart type as the
destination "port" (so an echo request and its reply get the same ID); other ICMP messages use the
code and are one-way (no endpoint reordering). Protocols other than TCP, UDP, SCTP and the ICMPs hash no
ports. Spec: https://github.com/corelight/community-id-spec.
"""

from __future__ import annotations

import base64
import hashlib
import struct

import numpy as np
import pyarrow as pa

# type -> counterpart type (ICMPv4 and ICMPv6), per the spec's reference implementation.
ICMP4_COUNTERPART: dict[int, int] = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 10: 9, 9: 10, 17: 18, 18: 17}
ICMP6_COUNTERPART: dict[int, int] = {
    128: 129,
    129: 128,
    130: 131,
    131: 130,
    133: 134,
    134: 133,
    135: 136,
    136: 135,
    139: 140,
    140: 139,
    144: 145,
    145: 144,
}
_PORT_PROTOS = frozenset({6, 17, 132})


def community_id(saddr: bytes, daddr: bytes, proto: int, sport: int | None, dport: int | None, seed: int = 0) -> str:
    """Community ID v1 of one flow. ``saddr``/``daddr`` are packed (4 or 16 bytes); for ICMP pass type, code."""
    one_way = False
    if proto in (1, 58) and sport is not None:
        table = ICMP4_COUNTERPART if proto == 1 else ICMP6_COUNTERPART
        mtype, mcode = sport, dport if dport is not None else 0
        if mtype in table:
            sport, dport = mtype, table[mtype]
        else:
            sport, dport, one_way = mtype, mcode, True
    with_ports = sport is not None and dport is not None and (proto in _PORT_PROTOS or proto in (1, 58))
    sp = sport if with_ports and sport is not None else 0
    dp = dport if with_ports and dport is not None else 0
    if not one_way and (saddr, sp) > (daddr, dp):
        saddr, daddr, sp, dp = daddr, saddr, dp, sp
    data = struct.pack("!H", seed) + saddr + daddr + struct.pack("!BB", proto, 0)
    if with_ports:
        data += struct.pack("!HH", sp, dp)
    return "1:" + base64.b64encode(hashlib.sha1(data).digest()).decode("ascii")


_CP4 = np.full(256, -1, np.int64)
_CP6 = np.full(256, -1, np.int64)
for _t, _c in ICMP4_COUNTERPART.items():
    _CP4[_t] = _c
for _t, _c in ICMP6_COUNTERPART.items():
    _CP6[_t] = _c


def _be_bytes(x: np.ndarray, dtype: str) -> np.ndarray:
    """(n, k) big-endian bytes of integer column ``x``."""
    return np.ascontiguousarray(x.astype(dtype)).view(np.uint8).reshape(x.size, -1)


def community_id_array(
    ip_version: np.ndarray,
    proto: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
) -> pa.StringArray:
    """Community IDs of n flows given as columns (ports -1 when absent; ICMP type/code in the port columns)."""
    n = proto.size
    p = proto.astype(np.int64)
    sp, dp = sport.astype(np.int64), dport.astype(np.int64)
    icmp = ((p == 1) | (p == 58)) & (sp >= 0)
    counter = np.where(p == 1, _CP4[np.clip(sp, 0, 255)], _CP6[np.clip(sp, 0, 255)])
    paired = icmp & (counter >= 0)
    one_way = icmp & ~paired
    dp = np.where(paired, counter, np.where(one_way & (dp < 0), 0, dp))
    ports = (np.isin(p, (6, 17, 132)) | icmp) & (sp >= 0) & (dp >= 0)
    sp, dp = np.where(ports, sp, 0), np.where(ports, dp, 0)
    v4 = ip_version == 4
    mask32 = np.uint64(0xFFFFFFFF)
    shi = np.where(v4, np.uint64(0), src_hi)
    slo = np.where(v4, src_lo & mask32, src_lo)
    dhi = np.where(v4, np.uint64(0), dst_hi)
    dlo = np.where(v4, dst_lo & mask32, dst_lo)
    gt = (shi > dhi) | ((shi == dhi) & ((slo > dlo) | ((slo == dlo) & (sp > dp))))
    swap = gt & ~one_way
    ahi, alo, bhi, blo = (np.where(swap, x, y) for x, y in ((dhi, shi), (dlo, slo), (shi, dhi), (slo, dlo)))
    ap, bp = np.where(swap, dp, sp), np.where(swap, sp, dp)
    text_all = np.zeros((n, 30), np.uint8)  # "1:" + 28 base64 characters per flow
    text_all[:, 0], text_all[:, 1] = ord("1"), ord(":")
    for is4 in (True, False):
        for with_ports in (True, False):
            idx = np.flatnonzero((v4 == is4) & (ports == with_ports))
            if idx.size == 0:
                continue
            parts = [np.zeros((idx.size, 2), np.uint8)]  # seed 0
            if is4:
                parts += [_be_bytes(alo[idx], ">u4"), _be_bytes(blo[idx], ">u4")]
            else:
                parts += [_be_bytes(ahi[idx], ">u8"), _be_bytes(alo[idx], ">u8")]
                parts += [_be_bytes(bhi[idx], ">u8"), _be_bytes(blo[idx], ">u8")]
            parts += [_be_bytes(p[idx], "u1"), np.zeros((idx.size, 1), np.uint8)]
            if with_ports:
                parts += [_be_bytes(ap[idx], ">u2"), _be_bytes(bp[idx], ">u2")]
            rows = np.ascontiguousarray(np.hstack(parts))  # (k, 16 | 12 | 40 | 36) hash inputs
            width = rows.shape[1]
            mv = memoryview(rows.tobytes())
            sha1 = hashlib.sha1
            digests = np.frombuffer(
                b"".join([sha1(mv[i : i + width]).digest() for i in range(0, len(mv), width)]), np.uint8
            ).reshape(idx.size, 20)
            padded = np.hstack([digests, np.zeros((idx.size, 1), np.uint8)])  # 21 bytes: whole base64 groups
            text = np.frombuffer(base64.b64encode(padded.tobytes()), np.uint8).reshape(idx.size, 28).copy()
            text[:, 27] = ord("=")
            text_all[idx, 2:] = text
    offsets = np.arange(0, 30 * n + 1, 30, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(text_all.tobytes()))
