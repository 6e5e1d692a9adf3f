"""Hand-made PacketBatch columns for flow tests: one dict per packet, then columns."""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np

from features.capture.packets import PACKET_COLUMNS, PacketBatch

FIN, SYN, RST, PSH, ACK, URG = 0x01, 0x02, 0x04, 0x08, 0x10, 0x20
T0 = 1_700_000_000 * 10**9


def addr(a: str) -> tuple[int, int, int]:
    ip = ipaddress.ip_address(a)
    v = int(ipaddress.IPv6Address(f"::ffff:{a}")) if ip.version == 4 else int(ip)
    return v >> 64, v & ((1 << 64) - 1), ip.version


def pkt(
    t: float,
    src: str,
    dst: str,
    sport: int = -1,
    dport: int = -1,
    *,
    proto: int = 6,
    flags: int = 0,
    seq: int = 0,
    ack: int = 0,
    win: int = 1000,
    plen: int = 0,
    icmp: tuple[int, int] | None = None,
    vlan: int = -1,
    ip_id: int = 0,
    frag_off: int = 0,
    mf: bool = False,
    ip_len: int | None = None,
) -> dict[str, Any]:
    sh, sl, v = addr(src)
    dh, dl, _ = addr(dst)
    is_frag = frag_off > 0 or mf
    hdr = (20 if v == 4 else 40) + (20 if proto == 6 else 8 if proto in (17, 1, 58) else 0)
    if frag_off > 0:
        hdr = 20 if v == 4 else 48
        sport = dport = -1
    return {
        "ts_ns": T0 + round(t * 1e9),
        "vlan": vlan,
        "ip_version": v,
        "proto": proto,
        "src_hi": sh,
        "src_lo": sl,
        "dst_hi": dh,
        "dst_lo": dl,
        "sport": sport if proto in (6, 17) else -1,
        "dport": dport if proto in (6, 17) else -1,
        "icmp_type": icmp[0] if icmp and frag_off == 0 else -1,
        "icmp_code": icmp[1] if icmp and frag_off == 0 else -1,
        "tcp_flags": flags if proto == 6 and frag_off == 0 else 0,
        "tcp_seq": seq % (1 << 32) if proto == 6 else 0,
        "tcp_ack": ack % (1 << 32) if proto == 6 else 0,
        "tcp_win": win if proto == 6 else 0,
        "ip_len": ip_len if ip_len is not None else hdr + plen,
        "payload_len": plen,
        "ip_id": ip_id if is_frag else 0,
        "frag_off": frag_off,
        "more_frags": mf,
        "is_frag": is_frag,
    }


def batch(packets: list[dict[str, Any]], first_idx: int = 0) -> PacketBatch:
    cols = {}
    for k, dt in PACKET_COLUMNS.items():
        if k == "pkt_idx":
            cols[k] = np.arange(first_idx, first_idx + len(packets), dtype=dt)
        else:
            cols[k] = np.array([p.get(k, 0) for p in packets], dtype=dt) if packets else np.zeros(0, dt)
    return PacketBatch(cols, records=len(packets))
