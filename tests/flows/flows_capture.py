"""``write_capture``: a small classic pcap of an HTTP exchange and a DNS query/answer (shared by the flow tests)."""

from __future__ import annotations

from pathlib import Path

import dpkt

T0 = 1_700_000_000.0


def _tcp(src: bytes, dst: bytes, sp: int, dp: int, flags: int, seq: int, data: bytes = b"") -> bytes:
    tcp = dpkt.tcp.TCP(sport=sp, dport=dp, seq=seq, ack=1, flags=flags, win=65535, data=data)
    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_TCP, data=tcp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def _udp(src: bytes, dst: bytes, sp: int, dp: int, data: bytes) -> bytes:
    udp = dpkt.udp.UDP(sport=sp, dport=dp, data=data)
    udp.ulen = len(udp)
    ip = dpkt.ip.IP(src=src, dst=dst, p=dpkt.ip.IP_PROTO_UDP, data=udp)
    ip.len = len(ip)
    return bytes(dpkt.ethernet.Ethernet(src=b"\x02" * 6, dst=b"\x04" * 6, data=ip))


def write_capture(path: Path, t0: float = T0) -> Path:
    """An HTTP exchange (SF, with payload for content features) and a DNS query/answer, from ``t0``."""
    c, s, r = bytes([10, 0, 0, 1]), bytes([10, 0, 0, 2]), bytes([10, 0, 0, 53])
    F, S, R, P, A = dpkt.tcp.TH_FIN, dpkt.tcp.TH_SYN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH, dpkt.tcp.TH_ACK
    del R
    pkts = [
        _udp(c, r, 5353, 53, b"q" * 30),
        _udp(r, c, 53, 5353, b"a" * 60),
        _tcp(c, s, 40000, 80, S, 100),
        _tcp(s, c, 80, 40000, S | A, 500),
        _tcp(c, s, 40000, 80, A, 101),
        _tcp(c, s, 40000, 80, P | A, 101, b"GET / HTTP/1.0\r\n\r\n"),
        _tcp(s, c, 80, 40000, P | A, 501, b"HTTP/1.0 200 OK\r\n\r\nhello"),
        _tcp(c, s, 40000, 80, F | A, 119),
        _tcp(s, c, 80, 40000, F | A, 526),
        _tcp(c, s, 40000, 80, A, 120),
    ]
    with path.open("wb") as f:
        w = dpkt.pcap.Writer(f)
        for i, p in enumerate(pkts):
            w.writepkt(p, ts=t0 + i * 0.01)
    return path
