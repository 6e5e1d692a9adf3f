"""Narrowing a read to the evidence: a time window, hosts or networks, ports; applied while reading.

``PacketFilter`` is what ``--since``/``--until``/``--host``/``--port`` ask for. ``PacketSource`` applies it
as early as each test allows: the time window on the record headers, before a frame is decoded; hosts and
ports on the decoded columns, before any flow is built. A packet passes when its time is in
``[since, until)`` and, when hosts are given, either address is in one of them, and, when ports are given,
either TCP/UDP port is one of them (a non-first IP fragment, which has no ports, passes the port test: it
joins its datagram's flow). For a tunnelled packet the inner packet is tested. Flows are built from the
packets that pass, so a flow that crosses the window's edge is cut there.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from features.common import InputError

_V4_MAPPED = 0xFFFF_0000_0000  # ::ffff:0:0/96 in the low 64 bits: how PacketBatch stores IPv4


def parse_time(text: str, option: str) -> int:
    """ISO 8601 time (``2024-03-01T10:00:05Z``, offsets allowed; no zone means UTC) as ns since the epoch."""
    try:
        t = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise InputError(f"{option}: {text!r} is not an ISO 8601 time (e.g. 2024-03-01T10:00:05Z)") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.UTC)
    delta = t - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def parse_net(text: str, option: str = "--host") -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    """An address or a CIDR network (host bits allowed: 10.0.0.7/24 is 10.0.0.0/24)."""
    try:
        return ipaddress.ip_network(text.strip(), strict=False)
    except ValueError:
        raise InputError(f"{option}: {text!r} is not an IP address or CIDR network") from None


def net_mask(net: ipaddress.IPv4Network | ipaddress.IPv6Network) -> tuple[int, int, int, int, int]:
    """(IP version, hi, lo, hi_mask, lo_mask) of a network in PacketBatch's 128-bit layout (IPv4 as ::ffff:a.b.c.d).

    An IPv6 network matches IPv6 packets only (``::/0`` is every IPv6 packet, no IPv4 one).
    """
    if net.version == 4:
        value, bits = _V4_MAPPED | int(net.network_address), 96 + net.prefixlen
    else:
        value, bits = int(net.network_address), net.prefixlen
    mask = ((1 << 128) - 1) ^ ((1 << (128 - bits)) - 1)
    return net.version, value >> 64, value & (2**64 - 1), mask >> 64, mask & (2**64 - 1)


@dataclass(frozen=True)
class PacketFilter:
    """Which packets to read: a time window [since, until) in ns, networks, ports; empty parts do not filter."""

    since_ns: int | None = None
    until_ns: int | None = None
    nets: tuple[tuple[int, int, int, int, int], ...] = ()  # net_mask() of each --host
    ports: tuple[int, ...] = ()
    text: tuple[str, ...] = ()  # what was asked, for the report

    @staticmethod
    def build(
        since: str | None = None, until: str | None = None, hosts: Sequence[str] = (), ports: Sequence[int] = ()
    ) -> PacketFilter:
        """The filter the options ask for; ``InputError`` (one line) for a bad time, address, port or window."""
        s = parse_time(since, "--since") if since else None
        u = parse_time(until, "--until") if until else None
        if s is not None and u is not None and u <= s:
            raise InputError(f"--until {until} is not after --since {since}")
        nets = tuple(net_mask(parse_net(h)) for h in hosts)
        for p in ports:
            if not 0 <= p <= 65535:
                raise InputError(f"--port: {p} is not a port (0-65535)")
        text = [f"since {since}"] * bool(since) + [f"until {until}"] * bool(until)
        text += [f"host {h}" for h in hosts] + [f"port {p}" for p in ports]
        return PacketFilter(s, u, nets, tuple(sorted(set(ports))), tuple(text))

    @property
    def active(self) -> bool:
        return bool(self.since_ns is not None or self.until_ns is not None or self.nets or self.ports)

    @property
    def by_time(self) -> bool:
        return self.since_ns is not None or self.until_ns is not None

    @property
    def by_packet(self) -> bool:
        return bool(self.nets or self.ports)

    def time_mask(self, ts_ns: np.ndarray) -> np.ndarray:
        """(n,) bool: records whose time is inside the window."""
        keep = np.ones(ts_ns.shape, bool)
        if self.since_ns is not None:
            keep &= ts_ns >= self.since_ns
        if self.until_ns is not None:
            keep &= ts_ns < self.until_ns
        return keep

    def packet_mask(self, cols: dict[str, np.ndarray]) -> np.ndarray:
        """(n,) bool: decoded packets (PacketBatch columns) with a host and a port asked for."""
        n = cols["ts_ns"].shape[0]
        keep = np.ones(n, bool)
        if self.nets:
            hit = np.zeros(n, bool)
            for version, hi, lo, mh, ml in self.nets:
                same = cols["ip_version"] == version
                for side in ("src", "dst"):
                    h, low = cols[f"{side}_hi"], cols[f"{side}_lo"]
                    hit |= same & ((h & np.uint64(mh)) == np.uint64(hi)) & ((low & np.uint64(ml)) == np.uint64(lo))
            keep &= hit
        if self.ports:
            wanted = np.zeros(1 << 16, bool)
            wanted[list(self.ports)] = True
            sp, dp = cols["sport"].astype(np.int64), cols["dport"].astype(np.int64)
            hit = (sp >= 0) & wanted[sp & 0xFFFF] | (dp >= 0) & wanted[dp & 0xFFFF]
            keep &= hit | (cols["is_frag"] & (sp < 0))  # non-first fragments: no ports of their own
        return keep
