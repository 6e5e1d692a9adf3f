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


def _packed(hi: int, lo: int, v4: bool) -> bytes:
    if v4:
        return struct.pack("!I", lo & 0xFFFFFFFF)
    return struct.pack("!QQ", hi, lo)


def community_ids(
    ip_version: np.ndarray,
    proto: np.ndarray,
    src_hi: np.ndarray,
    src_lo: np.ndarray,
    dst_hi: np.ndarray,
    dst_lo: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
) -> list[str]:
    """Community IDs of n flows given as columns (ports -1 when absent; ICMP type/code in the port columns)."""
    out: list[str] = []
    for v, p, sh, sl, dh, dl, sp, dp in zip(
        ip_version.tolist(),
        proto.tolist(),
        src_hi.tolist(),
        src_lo.tolist(),
        dst_hi.tolist(),
        dst_lo.tolist(),
        sport.tolist(),
        dport.tolist(),
        strict=True,
    ):
        v4 = v == 4
        out.append(
            community_id(
                _packed(sh, sl, v4),
                _packed(dh, dl, v4),
                p,
                None if sp < 0 else sp,
                None if dp < 0 else dp,
            )
        )
    return out
