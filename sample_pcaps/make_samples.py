#!/usr/bin/env python3
"""Write nta's small sample captures, byte for byte the same on every run.

Usage: ``python sample_pcaps/make_samples.py [OUTDIR]`` (default: the folder of this script).

Packets are built with dpkt from a fixed random seed and fixed timestamps starting at
2024-03-01T10:00:00Z, so regenerating changes nothing unless this script changes. Each file is
described in ``sample_pcaps/README.md``; tests (goldens, semantic checks, format tests) rely on
the file names and contents, so change them only together with those tests.
"""

from __future__ import annotations

import gzip
import io
import random
import socket
import struct
import sys
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import dpkt

BASE_S = 1709287200  # 2024-03-01T10:00:00Z
US = 1_000  # one microsecond in ns
MS = 1_000_000  # one millisecond in ns
S = 1_000_000_000  # one second in ns

LINKTYPE_ETHERNET = 1
LINKTYPE_PPP = 9
LINKTYPE_PPP_HDLC = 50
LINKTYPE_RAW = 101
LINKTYPE_C_HDLC = 104
LINKTYPE_IEEE802_11 = 105
LINKTYPE_LINUX_SLL = 113
LINKTYPE_RADIOTAP = 127
LINKTYPE_PPI = 192

ROUTER_MAC = bytes.fromhex("02005e0000fe")

# TCP flag sets used by the session scripts.
SYN, ACK, FIN, RST, PSH = dpkt.tcp.TH_SYN, dpkt.tcp.TH_ACK, dpkt.tcp.TH_FIN, dpkt.tcp.TH_RST, dpkt.tcp.TH_PUSH


@dataclass
class Pkt:
    """One IP packet and when it was seen (ns after BASE_S)."""

    t_ns: int
    ip: bytes  # IPv4 or IPv6 packet, no link header


@dataclass
class Cap:
    """A capture under construction: IP packets with times, sorted when written."""

    seed: int
    pkts: list[Pkt] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)
        self._ipid: dict[str, int] = {}

    def ipid(self, host: str) -> int:
        """Per-host incrementing IP id, as most stacks do."""
        v = self._ipid.get(host)
        if v is None:
            v = self.rng.randrange(1, 60000)
        self._ipid[host] = (v + 1) & 0xFFFF
        return v

    def add(self, t_ns: int, ip: bytes) -> None:
        self.pkts.append(Pkt(t_ns, ip))

    def sorted(self) -> list[Pkt]:
        # Stable: packets with equal times keep their creation order.
        return sorted(self.pkts, key=lambda p: p.t_ns)


def a4(host: str) -> bytes:
    return socket.inet_pton(socket.AF_INET, host)


def a6(host: str) -> bytes:
    return socket.inet_pton(socket.AF_INET6, host)


def ipv4(cap: Cap, src: str, dst: str, proto: int, data: dpkt.Packet | bytes, ttl: int = 64) -> bytes:
    ip = dpkt.ip.IP(src=a4(src), dst=a4(dst), p=proto, ttl=ttl, id=cap.ipid(src), data=data)
    ip.df = 1 if proto == dpkt.ip.IP_PROTO_TCP else 0
    return bytes(ip)


def ipv6(src: str, dst: str, nxt: int, data: dpkt.Packet) -> bytes:
    ip = dpkt.ip6.IP6(src=a6(src), dst=a6(dst), nxt=nxt, hlim=64, data=data)
    ip.plen = len(bytes(data))
    return bytes(ip)


# ---------------------------------------------------------------------------------------------
# TCP sessions


class Tcp:
    """One TCP connection between a client and a server; tracks sequence numbers both ways."""

    def __init__(self, cap: Cap, cli: str, cport: int, srv: str, sport: int, *, win: int = 64240) -> None:
        self.cap, self.ends = cap, ((cli, cport), (srv, sport))
        self.nxt = [cap.rng.randrange(1 << 32), cap.rng.randrange(1 << 32)]  # next seq of client, server
        self.win = win
        self.v6 = ":" in cli

    def send(self, t_ns: int, from_srv: bool, flags: int, data: bytes = b"", urp: int = 0) -> None:
        d = int(from_srv)
        (src, sp), (dst, dp) = self.ends[d], self.ends[1 - d]
        ack = self.nxt[1 - d] if flags & ACK else 0
        seg = dpkt.tcp.TCP(sport=sp, dport=dp, seq=self.nxt[d], ack=ack, flags=flags, win=self.win, urp=urp, data=data)
        if flags & SYN:
            # MSS option, as real stacks send on SYN and SYN-ACK.
            seg.opts = b"\x02\x04\x05\xb4"
            seg.off = 6
        if self.v6:
            self.cap.add(t_ns, ipv6(src, dst, dpkt.ip.IP_PROTO_TCP, seg))
        else:
            self.cap.add(t_ns, ipv4(self.cap, src, dst, dpkt.ip.IP_PROTO_TCP, seg))
        self.nxt[d] = (self.nxt[d] + len(data) + (1 if flags & SYN else 0) + (1 if flags & FIN else 0)) & 0xFFFFFFFF

    def handshake(self, t: int, rtt: int) -> int:
        self.send(t, False, SYN)
        self.send(t + rtt // 2, True, SYN | ACK)
        self.send(t + rtt, False, ACK)
        return t + rtt

    def data(self, t: int, from_srv: bool, payload: bytes, rtt: int, mss: int = 1448) -> int:
        """Send payload in MSS-sized segments; the peer ACKs after the last one."""
        for i in range(0, len(payload), mss):
            t += 200 * US
            self.send(t, from_srv, ACK | PSH, payload[i : i + mss])
        t += rtt // 2
        self.send(t, not from_srv, ACK)
        return t

    def close(self, t: int, rtt: int, srv_first: bool = False) -> int:
        """Normal close: FIN from one side, FIN-ACK back, final ACK."""
        self.send(t, srv_first, FIN | ACK)
        self.send(t + rtt // 2, not srv_first, FIN | ACK)
        self.send(t + rtt, srv_first, ACK)
        return t + rtt


def tcp_exchange(
    cap: Cap, t: int, cli: str, cport: int, srv: str, sport: int, turns: Iterable[tuple[bool, bytes]], rtt: int
) -> int:
    """Handshake, the given (from_server, payload) turns, and a normal FIN close. Returns the end time."""
    c = Tcp(cap, cli, cport, srv, sport)
    t = c.handshake(t, rtt)
    for from_srv, payload in turns:
        t = c.data(t + 2 * MS, from_srv, payload, rtt)
    return c.close(t + 5 * MS, rtt)


def http_get(cap: Cap, t: int, cli: str, cport: int, srv: str, path: str, body_len: int, rtt: int = 20 * MS) -> int:
    req = f"GET {path} HTTP/1.1\r\nHost: {srv}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n".encode()
    body = bytes(cap.rng.randrange(32, 127) for _ in range(body_len))
    resp = (
        f"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Type: text/html\r\nContent-Length: {body_len}\r\n\r\n"
    ).encode() + body
    return tcp_exchange(cap, t, cli, cport, srv, 80, [(False, req), (True, resp)], rtt)


def tls_session(cap: Cap, t: int, cli: str, cport: int, srv: str, sizes: list[tuple[bool, int]], rtt: int) -> int:
    """An HTTPS-like session: TLS-record-shaped random payloads of the given sizes."""
    turns = []
    for from_srv, n in sizes:
        body = cap.rng.randbytes(n - 5)
        turns.append((from_srv, bytes([0x17, 0x03, 0x03]) + struct.pack(">H", n - 5) + body))
    turns[0] = (False, b"\x16\x03\x01" + turns[0][1][3:])  # ClientHello record type
    return tcp_exchange(cap, t, cli, cport, srv, 443, turns, rtt)


def ssh_session(cap: Cap, t: int, cli: str, cport: int, srv: str, rounds: int, rtt: int = 10 * MS) -> int:
    turns: list[tuple[bool, bytes]] = [
        (True, b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13\r\n"),
        (False, b"SSH-2.0-OpenSSH_9.7\r\n"),
        (False, cap.rng.randbytes(1392)),
        (True, cap.rng.randbytes(1080)),
    ]
    for _ in range(rounds):
        turns.append((False, cap.rng.randbytes(cap.rng.choice([36, 52, 68]))))
        turns.append((True, cap.rng.randbytes(cap.rng.choice([36, 52, 116, 500]))))
    return tcp_exchange(cap, t, cli, cport, srv, 22, turns, rtt)


# ---------------------------------------------------------------------------------------------
# UDP and ICMP


def udp(cap: Cap, t: int, src: str, sp: int, dst: str, dp: int, payload: bytes) -> None:
    u = dpkt.udp.UDP(sport=sp, dport=dp, data=payload)
    u.ulen = 8 + len(payload)
    if ":" in src:
        cap.add(t, ipv6(src, dst, dpkt.ip.IP_PROTO_UDP, u))
    else:
        cap.add(t, ipv4(cap, src, dst, dpkt.ip.IP_PROTO_UDP, u))


def dns_exchange(cap: Cap, t: int, cli: str, srv: str, name: str, answer: str, rtt: int = 3 * MS) -> int:
    qid = cap.rng.randrange(1 << 16)
    q = dpkt.dns.DNS(id=qid, rd=1, qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)])
    sport = cap.rng.randrange(32768, 61000)
    udp(cap, t, cli, sport, srv, 53, bytes(q))
    r = dpkt.dns.DNS(
        id=qid,
        qr=1,
        rd=1,
        ra=1,
        qd=[dpkt.dns.DNS.Q(name=name, type=dpkt.dns.DNS_A)],
        an=[dpkt.dns.DNS.RR(name=name, type=dpkt.dns.DNS_A, ttl=300, rdata=a4(answer))],
    )
    udp(cap, t + rtt, srv, 53, cli, sport, bytes(r))
    return t + rtt


def ntp_exchange(cap: Cap, t: int, cli: str, srv: str) -> int:
    udp(cap, t, cli, 123, srv, 123, b"\x23" + bytes(47))
    udp(cap, t + 15 * MS, srv, 123, cli, 123, b"\x24\x02" + cap.rng.randbytes(46))
    return t + 15 * MS


def icmp_echo(cap: Cap, t: int, src: str, dst: str, ident: int, seq: int, typ: int = 8) -> None:
    echo = dpkt.icmp.ICMP.Echo(id=ident, seq=seq, data=bytes(range(0x10, 0x38)))
    cap.add(t, ipv4(cap, src, dst, dpkt.ip.IP_PROTO_ICMP, dpkt.icmp.ICMP(type=typ, code=0, data=echo)))


def ping(cap: Cap, t: int, src: str, dst: str, ident: int, count: int, reply: bool = True) -> int:
    for s in range(count):
        icmp_echo(cap, t, src, dst, ident, s + 1, 8)
        if reply:
            icmp_echo(cap, t + 800 * US, dst, src, ident, s + 1, 0)
        t += S
    return t


def icmp_unreach(cap: Cap, t: int, src: str, quoted_ip: bytes, code: int = 3) -> None:
    """ICMP destination unreachable quoting the IP header + 8 bytes of the offending packet."""
    dst = socket.inet_ntop(socket.AF_INET, quoted_ip[12:16])
    ihl = (quoted_ip[0] & 0x0F) * 4
    un = dpkt.icmp.ICMP.Unreach(data=quoted_ip[: ihl + 8])
    cap.add(t, ipv4(cap, src, dst, dpkt.ip.IP_PROTO_ICMP, dpkt.icmp.ICMP(type=3, code=code, data=un)))


def ip_fragment(cap: Cap, t: int, src: str, dst: str, proto: int, ipid: int, off: int, mf: bool, data: bytes) -> None:
    """One IPv4 fragment carrying ``data`` at byte offset ``off`` (a multiple of 8)."""
    ip = dpkt.ip.IP(src=a4(src), dst=a4(dst), p=proto, ttl=64, id=ipid, data=data)
    ip.offset = off >> 3  # the header field counts 8-byte units
    ip.mf = 1 if mf else 0
    cap.add(t, bytes(ip))


# ---------------------------------------------------------------------------------------------
# Traffic mixes

WEB = "10.0.0.10"
DNS = "10.0.0.53"
SSH = "10.0.0.22"
NTP = "10.0.0.123"
EXT_WEB = "93.184.216.34"
CLIENTS = ["192.168.1.21", "192.168.1.34", "192.168.1.57", "10.0.0.101", "10.0.0.102"]
ATTACKER = "192.168.56.66"


def benign(cap: Cap, t0: int, n_web: int, n_tls: int, n_dns: int, ssh_rounds: int, span_s: int) -> None:
    """Benign traffic spread over span_s seconds from t0."""
    rng = cap.rng
    names = ["www.example.com", "intranet.corp.lan", "updates.vendor.net", "mail.corp.lan", "cdn.jsdelivr.net"]
    for _ in range(n_dns):
        t = t0 + rng.randrange(span_s * S)
        dns_exchange(cap, t, rng.choice(CLIENTS), DNS, rng.choice(names), f"10.0.0.{rng.randrange(2, 250)}")
    for _ in range(n_web):
        t = t0 + rng.randrange(span_s * S)
        path = rng.choice(["/", "/index.html", "/static/app.js", "/api/status", "/img/logo.png"])
        http_get(cap, t, rng.choice(CLIENTS), rng.randrange(40000, 60000), WEB, path, rng.randrange(200, 5000))
    for _ in range(n_tls):
        t = t0 + rng.randrange(span_s * S)
        sizes = [
            (False, 517),
            (True, 2900),
            (False, 126),
            (False, rng.randrange(200, 700)),
            (True, rng.randrange(500, 6000)),
        ]
        tls_session(cap, t, rng.choice(CLIENTS), rng.randrange(40000, 60000), EXT_WEB, sizes, 30 * MS)
    if ssh_rounds:
        ssh_session(cap, t0 + S, "192.168.1.34", 51022, SSH, ssh_rounds)


def syn_portscan(cap: Cap, t0: int, target: str, ports: list[int], open_ports: set[int], sport: int = 61234) -> int:
    """nmap -sS style: one SYN per port; closed ports answer RST-ACK, open ones SYN-ACK, then the scanner RSTs."""
    t = t0
    for p in ports:
        c = Tcp(cap, ATTACKER, sport, target, p, win=1024)
        c.send(t, False, SYN)
        if p in open_ports:
            c.send(t + 300 * US, True, SYN | ACK)
            c.send(t + 400 * US, False, RST)
        else:
            c.send(t + 250 * US, True, RST | ACK)
        t += 1 * MS
    return t


def syn_flood(cap: Cap, t0: int, victim: str, n: int, answered: int, span_ns: int) -> int:
    """Spoofed-source SYNs to victim:80; the victim answers the first ``answered`` with SYN-ACKs nobody completes."""
    rng = cap.rng
    for i in range(n):
        t = t0 + i * span_ns // n
        src = f"{rng.choice([45, 77, 103, 185, 198])}.{rng.randrange(256)}.{rng.randrange(256)}.{rng.randrange(1, 255)}"
        c = Tcp(cap, src, rng.randrange(1024, 65535), victim, 80, win=512)
        c.send(t, False, SYN)
        if i < answered:
            c.send(t + 100 * US, True, SYN | ACK)
    return t0 + span_ns


def ping_sweep(cap: Cap, t0: int, net: str, alive: set[int]) -> int:
    t = t0
    for h in range(1, 255):
        dst = f"{net}.{h}"
        icmp_echo(cap, t, ATTACKER, dst, 0x4D2, h, 8)
        if h in alive:
            icmp_echo(cap, t + 400 * US, dst, ATTACKER, 0x4D2, h, 0)
        t += 2 * MS
    return t


# ---------------------------------------------------------------------------------------------
# Samples


def demo_mixed() -> Cap:
    cap = Cap(seed=1)
    benign(cap, 0, n_web=30, n_tls=8, n_dns=40, ssh_rounds=12, span_s=60)
    ntp_exchange(cap, 5 * S, "10.0.0.101", NTP)
    ping(cap, 7 * S, "192.168.1.21", WEB, 0x77, 3)
    rng = cap.rng
    ports = list(range(1, 301))
    rng.shuffle(ports)
    syn_portscan(cap, 12 * S, "10.0.0.20", ports, {22, 80, 111})
    syn_flood(cap, 25 * S, WEB, 300, 20, 2 * S)
    ping_sweep(cap, 40 * S, "10.0.0", {1, 10, 20, 22, 53, 101, 102, 123})
    return cap


def benign_only() -> Cap:
    cap = Cap(seed=2)
    benign(cap, 0, n_web=12, n_tls=4, n_dns=16, ssh_rounds=8, span_s=30)
    ntp_exchange(cap, 2 * S, "10.0.0.101", NTP)
    ntp_exchange(cap, 20 * S, "10.0.0.102", NTP)
    ping(cap, 3 * S, "192.168.1.21", WEB, 0x51, 4)
    ping(cap, 9 * S, "10.0.0.101", "10.0.0.1", 0x52, 2)
    return cap


def syn_flood_only() -> Cap:
    cap = Cap(seed=3)
    http_get(cap, 0, "192.168.1.21", 50001, WEB, "/", 1200)  # one normal request before the flood
    syn_flood(cap, 1 * S, WEB, 800, 40, 2500 * MS)
    return cap


def portscan_only() -> Cap:
    cap = Cap(seed=4)
    ports = list(range(1, 1001))
    cap.rng.shuffle(ports)
    syn_portscan(cap, 0, "10.0.0.20", ports, {21, 22, 25, 80, 111, 443, 631})
    return cap


def ping_sweep_only() -> Cap:
    cap = Cap(seed=5)
    ping_sweep(cap, 0, "10.0.0", {1, 10, 20, 22, 53})
    return cap


def udp_flood_only() -> Cap:
    cap = Cap(seed=6)
    rng = cap.rng
    victim, src = "10.0.0.30", "203.0.113.77"
    t = 0
    for i in range(600):  # random high ports: one flow per port; Linux answers some with port unreachable
        pkt_t = t + i * 2 * MS
        sp, dp = rng.randrange(1024, 65535), rng.randrange(1024, 65535)
        u = dpkt.udp.UDP(sport=sp, dport=dp, data=rng.randbytes(64))
        u.ulen = 72
        raw = ipv4(cap, src, victim, dpkt.ip.IP_PROTO_UDP, u)
        cap.add(pkt_t, raw)
        if i % 50 == 0:
            icmp_unreach(cap, pkt_t + 50 * US, victim, raw)
    t = 1500 * MS
    for i in range(400):  # one port: a single long flow
        udp(cap, t + i * 1 * MS, src, 40000, victim, 9999, rng.randbytes(512))
    return cap


def teardrop() -> Cap:
    cap = Cap(seed=7)
    src, dst = "192.168.56.66", "10.0.0.40"
    rng = cap.rng
    t = 0
    # Teardrop: UDP datagram whose second fragment starts inside the first (overlap), five times.
    for k in range(5):
        ipid = 0x3A00 + k
        u = dpkt.udp.UDP(sport=31337, dport=53, data=b"\x00" * 28)
        u.ulen = 36
        first = bytes(u)  # 36 bytes: 8 UDP header + 28 data
        ip_fragment(cap, t, src, dst, dpkt.ip.IP_PROTO_UDP, ipid, 0, True, first)
        ip_fragment(cap, t + 10 * US, src, dst, dpkt.ip.IP_PROTO_UDP, ipid, 24, False, b"\x41" * 4)
        t += 100 * MS
    # Ping of death: an ICMP echo whose fragments reach past 65,535 bytes.
    ipid = 0x5EAD
    echo = bytes(dpkt.icmp.ICMP(type=8, code=0, data=dpkt.icmp.ICMP.Echo(id=1, seq=1, data=b"\x00" * 1472)))
    ip_fragment(cap, t, src, dst, dpkt.ip.IP_PROTO_ICMP, ipid, 0, True, echo)
    off = 1480
    while off < 65528:
        last = off + 1480 > 65528
        ip_fragment(cap, t + off // 10 * US, src, dst, dpkt.ip.IP_PROTO_ICMP, ipid, off, not last, b"\x00" * 1480)
        off += 1480
    # off is now past the last fragment, whose data ends beyond 65,535.
    t += 500 * MS
    # A well-formed fragmented UDP datagram (fragments sent out of order) for contrast: no wrong_fragment.
    payload = rng.randbytes(3000)
    u = dpkt.udp.UDP(sport=40123, dport=5001, data=payload)
    u.ulen = 8 + len(payload)
    whole = bytes(dpkt.ip.IP(src=a4("10.0.0.101"), dst=a4("10.0.0.102"), p=17, data=u))[20:]  # with UDP checksum
    for i, off in enumerate([1480, 0, 2960]):
        chunk = whole[off : off + 1480]
        ip_fragment(cap, t + i * 50 * US, "10.0.0.101", "10.0.0.102", 17, 0x1234, off, off + 1480 < len(whole), chunk)
    return cap


def land() -> Cap:
    cap = Cap(seed=8)
    victim = "10.0.0.25"
    http_get(cap, 0, "192.168.1.21", 50100, WEB, "/", 800)
    for k in range(3):
        c = Tcp(cap, victim, 139, victim, 139, win=2048)
        c.send(1 * S + k * 10 * MS, False, SYN)
    return cap


def ftp_bruteforce() -> Cap:
    cap = Cap(seed=9)
    srv, rtt = "10.0.0.21", 4 * MS
    words = ["123456", "password", "admin", "letmein", "qwerty", "dragon", "monkey", "abc123", "111111", "iloveyou"]
    t, port = 0, 52000
    for conn in range(8):
        c = Tcp(cap, ATTACKER, port + conn, srv, 21)
        t = c.handshake(t, rtt)
        t = c.data(t + MS, True, b"220 (vsFTPd 3.0.5)\r\n", rtt)
        for k in range(3):
            pw = words[(conn * 3 + k) % len(words)]
            t = c.data(t + MS, False, b"USER admin\r\n", rtt)
            t = c.data(t + MS, True, b"331 Please specify the password.\r\n", rtt)
            t = c.data(t + MS, False, f"PASS {pw}\r\n".encode(), rtt)
            t = c.data(t + 500 * MS, True, b"530 Login incorrect.\r\n", rtt)
        t = c.close(t + MS, rtt, srv_first=True)
        t += 300 * MS
    c = Tcp(cap, ATTACKER, port + 8, srv, 21)
    t = c.handshake(t, rtt)
    for from_srv, line in [
        (True, b"220 (vsFTPd 3.0.5)\r\n"),
        (False, b"USER admin\r\n"),
        (True, b"331 Please specify the password.\r\n"),
        (False, b"PASS s3cr3t!\r\n"),
        (True, b"230 Login successful.\r\n"),
        (False, b"SYST\r\n"),
        (True, b"215 UNIX Type: L8\r\n"),
        (False, b"PWD\r\n"),
        (True, b'257 "/home/admin" is the current directory\r\n'),
        (False, b"QUIT\r\n"),
        (True, b"221 Goodbye.\r\n"),
    ]:
        t = c.data(t + MS, from_srv, line, rtt)
    t = c.close(t + MS, rtt, srv_first=True)
    # A telnet session: one failed login, one success as root, a few commands at the "#" prompt.
    t += S
    c = Tcp(cap, ATTACKER, 52100, "10.0.0.23", 23)
    t = c.handshake(t, rtt)
    for from_srv, line in [
        (True, b"\xff\xfd\x18\xff\xfd\x20\xff\xfd\x23\xff\xfd\x27"),
        (False, b"\xff\xfc\x18\xff\xfc\x20\xff\xfc\x23\xff\xfc\x27"),
        (True, b"Ubuntu 22.04.4 LTS\r\nweb01 login: "),
        (False, b"root\r\n"),
        (True, b"Password: "),
        (False, b"toor\r\n"),
        (True, b"\r\nLogin incorrect\r\nweb01 login: "),
        (False, b"root\r\n"),
        (True, b"Password: "),
        (False, b"Winter2024!\r\n"),
        (True, b"\r\nLast login: Thu Feb 29 09:12:01 2024\r\nroot@web01:~# "),
        (False, b"id\r\n"),
        (True, b"uid=0(root) gid=0(root) groups=0(root)\r\nroot@web01:~# "),
        (False, b"echo x > /tmp/.x; cat /etc/shadow\r\n"),
        (True, b"root:$6$Qf3...:19700:0:99999:7:::\r\nroot@web01:~# "),
        (False, b"exit\r\n"),
        (True, b"logout\r\n"),
    ]:
        t = c.data(t + 50 * MS, from_srv, line, rtt)
    c.close(t + MS, rtt, srv_first=True)
    return cap


def format_flows() -> Cap:
    """The small benign flow set that every odd-format file carries (IPv4 and IPv6)."""
    cap = Cap(seed=10)
    http_get(cap, 0, "192.168.1.21", 50200, WEB, "/", 600)
    dns_exchange(cap, 100 * MS, "192.168.1.21", DNS, "www.example.com", "93.184.216.34")
    ping(cap, 200 * MS, "192.168.1.21", WEB, 0x99, 2)
    q = dpkt.dns.DNS(id=7, rd=1, qd=[dpkt.dns.DNS.Q(name="example.com", type=dpkt.dns.DNS_AAAA)])
    udp(cap, 300 * MS, "2001:db8::21", 40053, "2001:db8::53", 53, bytes(q))
    udp(cap, 302 * MS, "2001:db8::53", 53, "2001:db8::21", 40053, bytes(q)[:2] + b"\x81\x80" + bytes(q)[4:])
    c = Tcp(cap, "2001:db8::21", 50300, "2001:db8::10", 443)
    t = c.handshake(400 * MS, 10 * MS)
    t = c.data(t, False, b"\x16\x03\x01" + bytes(200), 10 * MS)
    c.close(t + MS, 10 * MS)
    return cap


# ---------------------------------------------------------------------------------------------
# Link layers and file formats


def mac_of(addr: bytes) -> bytes:
    """Hosts of 10.0.0.0/8 and 192.168.0.0/16 get their own MAC; everything else is behind the router."""
    if len(addr) == 4 and addr[0] in (10, 192):
        return b"\x02\x00" + addr
    return ROUTER_MAC


def ether(ip: bytes, vlans: tuple[int, ...] = ()) -> bytes:
    """Ethernet frame around an IP packet, with optional VLAN tags (outermost first: 0x88a8 then 0x8100)."""
    v6 = ip[0] >> 4 == 6
    src, dst = (mac_of(ip[8:24]), mac_of(ip[24:40])) if v6 else (mac_of(ip[12:16]), mac_of(ip[16:20]))
    if dst == src:
        dst = ROUTER_MAC
    tags = b""
    for i, vid in enumerate(vlans):
        tpid = 0x88A8 if i == 0 and len(vlans) > 1 else 0x8100
        tags += struct.pack(">HH", tpid, vid)
    return dst + src + tags + struct.pack(">H", 0x86DD if v6 else 0x0800) + ip


def sll(ip: bytes, outgoing: bool) -> bytes:
    """Linux cooked capture v1 header: packet type, ARPHRD_ETHER, address length 6, address, protocol."""
    v6 = ip[0] >> 4 == 6
    return (
        struct.pack(
            ">HHH8sH", 4 if outgoing else 0, 1, 6, b"\x02\x00\x0a\x00\x00\x15\x00\x00", 0x86DD if v6 else 0x0800
        )
        + ip
    )


def ts_split(t_ns: int, nano: bool) -> tuple[int, int]:
    sec, frac = divmod(t_ns, S)
    return BASE_S + sec, frac if nano else frac // US


def write_pcap(
    path: Path,
    frames: list[tuple[int, bytes]],
    *,
    linktype: int = LINKTYPE_ETHERNET,
    nano: bool = False,
    big_endian: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """Classic pcap. Little-endian microsecond files go through dpkt's Writer; the other variants use struct."""
    buf = io.BytesIO()
    if not big_endian and snaplen == 65535:
        w = dpkt.pcap.Writer(buf, snaplen=snaplen, linktype=linktype, nano=nano)
        for t, fr in frames:
            sec, frac = ts_split(t, nano)
            # A Decimal timestamp keeps nanoseconds exact (a float would round them).
            w.writepkt_time(fr, Decimal(sec) + Decimal(frac).scaleb(-9 if nano else -6))
    else:
        e = ">" if big_endian else "<"
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        buf.write(struct.pack(e + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))
        for t, fr in frames:
            sec, frac = ts_split(t, nano)
            cap = fr[:snaplen]
            buf.write(struct.pack(e + "IIII", sec, frac, len(cap), len(fr)) + cap)
    data = buf.getvalue()
    path.write_bytes(data)
    return data


def write_pcap_modified(path: Path, frames: list[tuple[int, bytes]]) -> None:
    """The 'modified' (Kuznetzov) pcap: magic a1b2cd34, 24-byte record headers with ifindex/protocol/pkt_type."""
    buf = io.BytesIO()
    buf.write(struct.pack("<IHHiIII", 0xA1B2CD34, 2, 4, 0, 0, 65535, LINKTYPE_ETHERNET))
    for t, fr in frames:
        sec, usec = ts_split(t, False)
        buf.write(struct.pack("<IIIIiHBx", sec, usec, len(fr), len(fr), 2, 0x0800, 0) + fr)
    path.write_bytes(buf.getvalue())


def _block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = 12 + len(body)
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


def write_pcapng_two_sections(path: Path, pkts: list[Pkt]) -> None:
    """pcapng with two sections; each has two interfaces: 0 Ethernet, 1 raw IP. Packets alternate interfaces.

    The first half of the packets goes into section 1, the rest into section 2, so a reader must reset its
    interface table at the second section header.
    """
    out = io.BytesIO()
    half = len(pkts) // 2
    for sect in (pkts[:half], pkts[half:]):
        # SHB: byte-order magic, version 1.0, section length unknown (-1), an shb_userappl option.
        opt = b"nta make_samples"
        opts = struct.pack("<HH", 4, len(opt)) + opt + b"\x00" * (-len(opt) % 4) + struct.pack("<HH", 0, 0)
        out.write(_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1) + opts))
        for lt in (LINKTYPE_ETHERNET, LINKTYPE_RAW):
            # if_tsresol = 6 (microseconds) explicitly, then end of options.
            tsopt = struct.pack("<HHB3x", 9, 1, 6) + struct.pack("<HH", 0, 0)
            out.write(_block(0x00000001, struct.pack("<HHI", lt, 0, 65535) + tsopt))
        for i, p in enumerate(sect):
            iface = i % 2
            frame = ether(p.ip) if iface == 0 else p.ip
            ts_us = (BASE_S * S + p.t_ns) // US
            body = struct.pack("<IIIII", iface, ts_us >> 32, ts_us & 0xFFFFFFFF, len(frame), len(frame)) + frame
            out.write(_block(0x00000006, body))
    path.write_bytes(out.getvalue())


# ---------------------------------------------------------------------------------------------
# More link layers: PPP, PPPoE, Cisco HDLC, 802.11 (plain, radiotap, PPI)


def is_v6(ip: bytes) -> bool:
    return ip[0] >> 4 == 6


def from_client(ip: bytes) -> bool:
    """Whether the format set's packet comes from its client (192.168.1.21 or 2001:db8::21)."""
    return ip[8:24] == a6("2001:db8::21") if is_v6(ip) else ip[12:16] == a4("192.168.1.21")


def ppp_proto(ip: bytes, compressed: bool) -> bytes:
    """The PPP protocol field for IPv4/IPv6: one byte when compressed (RFC 1661 6.5), else two."""
    p = 0x57 if is_v6(ip) else 0x21
    return bytes([p]) if compressed else struct.pack(">H", p)


LCP_CONF_REQ = struct.pack(">HBBH", 0xC021, 1, 1, 4)  # PPP LCP Configure-Request, no options: not IP


def pppoe_session(body: bytes, session: int = 0x2A) -> bytes:
    """Ethernet + PPPoE session header (version/type 0x11, code 0) around a PPP frame (protocol + data)."""
    hdr = struct.pack(">BBHH", 0x11, 0, session, len(body))
    return b"\x02\x00\x0a\x00\x00\x01" + b"\x02\x00\xc0\xa8\x01\x15" + b"\x88\x64" + hdr + body


def ieee80211_data(ip: bytes, i: int) -> bytes:
    """An 802.11 data frame with LLC/SNAP around an IP packet: every other one QoS data, one with HT Control.

    Client to AP (To DS) or AP to client (From DS), as a Wi-Fi sniffer sees a station talk to the network.
    """
    to_ds = from_client(ip)
    qos = i % 2 == 1
    htc = i == 3
    fc0 = 0x88 if qos else 0x08  # type data, subtype QoS data / data
    fc1 = (0x01 if to_ds else 0x02) | (0x80 if htc else 0)
    sta, ap, far = b"\x02\x00\xc0\xa8\x01\x15", b"\x02\x00\x0a\x00\x00\xfe", ROUTER_MAC
    a1, a2, a3 = (ap, sta, far) if to_ds else (sta, ap, far)
    hdr = struct.pack("<BBH6s6s6sH", fc0, fc1, 44, a1, a2, a3, (i << 4) & 0xFFF0)
    if qos:
        hdr += struct.pack("<H", 0) + (b"\0\0\0\0" if htc else b"")
    et = 0x86DD if is_v6(ip) else 0x0800
    return hdr + b"\xaa\xaa\x03\x00\x00\x00" + struct.pack(">H", et) + ip


AP_MAC = b"\x02\x00\x0a\x00\x00\xfe"
BEACON = struct.pack("<BBH6s6s6sH", 0x80, 0, 0, b"\xff" * 6, AP_MAC, AP_MAC, 0) + bytes(8) + b"\x64\0\x01\x04\0\x04nta0"
PROTECTED = struct.pack("<BBH6s6s6sH", 0x08, 0x41, 44, b"\2" * 6, b"\4" * 6, b"\6" * 6, 0) + bytes(40)  # WPA: not IP


def radiotap(frame: bytes, fcs: bool) -> bytes:
    """Radiotap header (flags and rate fields) before an 802.11 frame; with ``fcs`` the frame ends with its CRC."""
    hdr = struct.pack("<BBHIBB", 0, 0, 10, 0x06, 0x10 if fcs else 0, 0x6C)  # present: flags, rate (54 Mb/s)
    return hdr + frame + (struct.pack("<I", zlib.crc32(frame)) if fcs else b"")


def ppi(frame: bytes) -> bytes:
    """PPI header (version 0, no fields) before an 802.11 frame."""
    return struct.pack("<BBHI", 0, 0, 8, LINKTYPE_IEEE802_11) + frame


def link_samples(out: Path, fmt: Cap) -> None:
    """The format flow set under each link layer that is not Ethernet, with a non-IP frame or two where they occur."""
    pkts = fmt.sorted()
    t_ctl = pkts[0].t_ns - 10 * MS  # control frames before the first packet
    pppoe = [(t_ctl, pppoe_session(LCP_CONF_REQ))]
    pppoe += [(p.t_ns, pppoe_session(ppp_proto(p.ip, True) + p.ip)) for p in pkts]
    write_pcap(out / "fmt-pppoe-pfc.pcap", pppoe)
    ppp = [(t_ctl, b"\xff\x03" + LCP_CONF_REQ)]
    ppp += [(p.t_ns, (b"" if i % 2 else b"\xff\x03") + ppp_proto(p.ip, i % 3 == 0) + p.ip) for i, p in enumerate(pkts)]
    write_pcap(out / "fmt-ppp.pcap", ppp, linktype=LINKTYPE_PPP)
    hdlc = [(t_ctl, b"\xff\x03" + LCP_CONF_REQ)] + [(p.t_ns, b"\xff\x03" + ppp_proto(p.ip, False) + p.ip) for p in pkts]
    write_pcap(out / "fmt-ppp-hdlc.pcap", hdlc, linktype=LINKTYPE_PPP_HDLC)
    chdlc = [(t_ctl, b"\x8f\x00\x80\x35" + bytes(20))]  # SLARP keepalive: not IP
    chdlc += [(p.t_ns, (b"\x8f" if i == 0 else b"\x0f") + b"\x00" + struct.pack(">H", 0x86DD if is_v6(p.ip) else 0x0800) + p.ip) for i, p in enumerate(pkts)]  # fmt: skip
    write_pcap(out / "fmt-cisco-hdlc.pcap", chdlc, linktype=LINKTYPE_C_HDLC)
    wifi = [(t_ctl, BEACON), (t_ctl + MS, PROTECTED)] + [(p.t_ns, ieee80211_data(p.ip, i)) for i, p in enumerate(pkts)]
    write_pcap(out / "fmt-80211.pcap", wifi, linktype=LINKTYPE_IEEE802_11)
    write_pcap(out / "fmt-80211-radiotap.pcap", [(t, radiotap(f, i % 2 == 0)) for i, (t, f) in enumerate(wifi)], linktype=LINKTYPE_RADIOTAP)  # fmt: skip
    write_pcap(out / "fmt-80211-ppi.pcap", [(t, ppi(f)) for t, f in wifi], linktype=LINKTYPE_PPI)


# ---------------------------------------------------------------------------------------------
# Tunnels: the format flow set (or an attack) inside GRE, ERSPAN, IP-in-IP/6in4, VXLAN, Geneve, GTP-U, Teredo


class Outer:
    """Builds outer IPv4 packets between two tunnel endpoints, with their own IP ids."""

    def __init__(self, a: str, b: str) -> None:
        self.a, self.b = a, b
        self.ids = {a: 0x100, b: 0x800}

    def ip(self, forward: bool, proto: int, payload: bytes) -> bytes:
        src, dst = (self.a, self.b) if forward else (self.b, self.a)
        self.ids[src] += 1
        return bytes(dpkt.ip.IP(src=a4(src), dst=a4(dst), p=proto, ttl=62, id=self.ids[src], data=payload))

    def udp(self, forward: bool, sport: int, dport: int, payload: bytes) -> bytes:
        seg = dpkt.udp.UDP(sport=sport, dport=dport, data=payload)
        seg.ulen = 8 + len(payload)
        return self.ip(forward, dpkt.ip.IP_PROTO_UDP, bytes(seg))


def entropy_port(ip: bytes) -> int:
    """A VXLAN/Geneve-style source port from a hash of the inner addresses (the same for both directions)."""
    a, b = (ip[8:24], ip[24:40]) if is_v6(ip) else (ip[12:16], ip[16:20])
    return 49152 + (zlib.crc32(min(a, b) + max(a, b)) & 0x3FFF)


def tunnel_samples(out: Path, fmt: Cap) -> None:
    pkts = fmt.sorted()
    et = {False: 0x0800, True: 0x86DD}
    gre = Outer("172.16.0.1", "172.16.0.2")
    frames = [(p.t_ns, ether(gre.ip(from_client(p.ip), 47, struct.pack(">HHI", 0x2000, et[is_v6(p.ip)], 1001) + p.ip))) for p in pkts]  # fmt: skip
    write_pcap(out / "tunnel-gre.pcap", frames)
    # ERSPAN: a switch mirrors both directions to a collector, one way only; type II then type III.
    span = Outer("10.9.9.1", "10.9.9.2")
    frames = []
    for i, p in enumerate(pkts):
        if i % 2 == 0:
            body = struct.pack(">HHI", 0x1000, 0x88BE, i) + struct.pack(">II", 0x10000000 | 7, 0) + ether(p.ip)
        else:
            body = (
                struct.pack(">HHI", 0x1000, 0x22EB, i)
                + struct.pack(">III", 0x20000000 | 7, i, 0x00000000)
                + ether(p.ip)
            )
        frames.append((p.t_ns, ether(span.ip(True, 47, body), (30,))))
    write_pcap(out / "tunnel-erspan.pcap", frames)
    ipip = Outer("172.16.4.1", "172.16.4.2")
    frames = [(p.t_ns, ether(ipip.ip(from_client(p.ip), 41 if is_v6(p.ip) else 4, p.ip))) for p in pkts]
    write_pcap(out / "tunnel-ipip-6in4.pcap", frames)
    vx = Outer("192.168.56.11", "192.168.56.12")
    frames = [(p.t_ns, ether(vx.udp(from_client(p.ip), entropy_port(p.ip), 4789, struct.pack(">II", 0x08000000, 5001 << 8) + ether(p.ip, (7,))))) for p in pkts]  # fmt: skip
    write_pcap(out / "tunnel-vxlan.pcap", frames)
    gen = Outer("192.168.57.11", "192.168.57.12")
    opt = struct.pack(">HBBI", 0x0102, 0x80, 1, 0xC0FFEE)  # one 8-byte option
    frames = [(p.t_ns, ether(gen.udp(from_client(p.ip), entropy_port(p.ip), 6081, struct.pack(">BBHI", len(opt) // 4, 0, 0x6558, 77 << 8) + opt + ether(p.ip)))) for p in pkts]  # fmt: skip
    write_pcap(out / "tunnel-geneve.pcap", frames)
    gtp = Outer("172.16.8.1", "172.16.8.2")  # eNodeB, SGW
    frames = []
    for i, p in enumerate(pkts):
        if is_v6(p.ip):
            continue
        up = from_client(p.ip)
        ext = b""
        flags = 0x30
        if i % 2:  # with a PDU session container extension header (type 0x85)
            flags |= 0x04
            ext = struct.pack(">HBB", 0, 0, 0x85) + bytes([1, 0x10 if up else 0x00, 9, 0])
        hdr = struct.pack(">BBHI", flags, 0xFF, len(ext) + len(p.ip), 0x1000 + up) + ext
        frames.append((p.t_ns, ether(gtp.udp(up, 2152, 2152, hdr + p.ip))))
    write_pcap(out / "tunnel-gtpu.pcap", frames)
    write_pcap(out / "tunnel-teredo.pcap", teredo_frames())
    write_pcap(out / "tunnel-gre-portscan.pcap", [(p.t_ns, ether(gre.ip(from_scanner(p.ip), 47, struct.pack(">HH", 0, 0x0800) + p.ip))) for p in portscan_small().sorted()])  # fmt: skip


TEREDO_CLIENT = "2001:0:4136:e378:8000:63bf:3f57:fdf2"  # a Teredo address (2001::/32)


def teredo_frames() -> list[tuple[int, bytes]]:
    """A Teredo client: router solicitation/advertisement with its server on UDP 3544 (the advertisement with an
    origin indication), then an HTTP exchange over IPv6 through a relay on ordinary ports."""
    cap = Cap(seed=30)
    rs = dpkt.icmp6.ICMP6(type=133, code=0, data=bytes(4))
    ra = dpkt.icmp6.ICMP6(type=134, code=0, data=bytes(12))
    solicit = ipv6("fe80::8000:ffff:ffff:fffd", "ff02::2", dpkt.ip.IP_PROTO_ICMP6, rs)
    advert = ipv6("fe80::8000:f227:bec8:61af", "fe80::8000:ffff:ffff:fffd", dpkt.ip.IP_PROTO_ICMP6, ra)
    http_get(cap, 100 * MS, TEREDO_CLIENT, 50400, "2001:db8::10", "/", 900)
    srv, relay = Outer("192.168.1.21", "198.51.100.1"), Outer("192.168.1.21", "203.0.113.5")
    origin = b"\x00\x00" + struct.pack(">H", 40000 ^ 0xFFFF) + bytes(a ^ 0xFF for a in a4("192.0.2.45"))
    frames = [
        (0, ether(srv.udp(True, 40000, 3544, solicit))),
        (20 * MS, ether(srv.udp(False, 3544, 40000, origin + advert))),
    ]
    for p in cap.sorted():
        up = p.ip[8:24] == a6(TEREDO_CLIENT)
        frames.append((p.t_ns, ether(relay.udp(up, 40000 if up else 61001, 61001 if up else 40000, p.ip))))
    return frames


def portscan_small() -> Cap:
    """A SYN scan of ports 1-120 of 10.0.0.20 (22 and 80 open), the attack to hide in a tunnel."""
    cap = Cap(seed=31)
    syn_portscan(cap, 0, "10.0.0.20", list(range(1, 121)), {22, 80})
    return cap


def from_scanner(ip: bytes) -> bool:
    return ip[12:16] == a4("192.168.56.66")


# ---------------------------------------------------------------------------------------------


def eth_frames(cap: Cap, vlans: Callable[[int], tuple[int, ...]] = lambda i: ()) -> list[tuple[int, bytes]]:
    return [(p.t_ns, ether(p.ip, vlans(i))) for i, p in enumerate(cap.sorted())]


def main(out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    simple: dict[str, Callable[[], Cap]] = {
        "demo-mixed.pcap": demo_mixed,
        "benign-web-dns-ssh.pcap": benign_only,
        "syn-flood.pcap": syn_flood_only,
        "syn-portscan.pcap": portscan_only,
        "ping-sweep.pcap": ping_sweep_only,
        "udp-flood.pcap": udp_flood_only,
        "teardrop.pcap": teardrop,
        "land.pcap": land,
        "ftp-bruteforce.pcap": ftp_bruteforce,
    }
    for name, make in simple.items():
        write_pcap(out / name, eth_frames(make()))

    fmt = format_flows()
    frames = eth_frames(fmt)
    write_pcap(out / "fmt-pcap-be-usec.pcap", frames, big_endian=True)
    write_pcap(out / "fmt-pcap-le-nsec.pcap", frames, nano=True)
    write_pcap(out / "fmt-pcap-be-nsec.pcap", frames, nano=True, big_endian=True)
    write_pcap_modified(out / "fmt-pcap-modified.pcap", frames)
    write_pcapng_two_sections(out / "fmt-pcapng-2sections.pcapng", fmt.sorted())
    sll_frames = [(p.t_ns, sll(p.ip, outgoing=p.ip[12:16] == a4("192.168.1.21"))) for p in fmt.sorted()]
    write_pcap(out / "fmt-linux-sll.pcap", sll_frames, linktype=LINKTYPE_LINUX_SLL)
    write_pcap(out / "fmt-raw-ip.pcap", [(p.t_ns, p.ip) for p in fmt.sorted()], linktype=LINKTYPE_RAW)
    # VLANs: the whole set once in 802.1Q VLAN 10, once in QinQ 100/20 (outer 100), 1 s later: two copies of
    # every flow, told apart only by the VLAN id in the key.
    tagged = [(t, ether(ip, (10,))) for t, ip in ((p.t_ns, p.ip) for p in fmt.sorted())]
    tagged += [(t + S, ether(ip, (100, 20))) for t, ip in ((p.t_ns, p.ip) for p in fmt.sorted())]
    write_pcap(out / "fmt-vlan-qinq.pcap", tagged)
    write_pcap(out / "fmt-snaplen-64.pcap", frames, snaplen=64)
    plain = write_pcap(out / "truncated.pcap", frames)
    # Cut mid-record: keep every record but the last, plus half of the last record's bytes.
    last_len = len(frames[-1][1]) + 16
    (out / "truncated.pcap").write_bytes(plain[: len(plain) - last_len // 2])
    gz = gzip.compress(plain, compresslevel=9, mtime=0)
    (out / "fmt-gzip.pcap.gz").write_bytes(gz)
    (out / "fmt-gzip-no-suffix.pcap").write_bytes(gz)
    link_samples(out, fmt)
    tunnel_samples(out, fmt)


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent)
