"""Tunnels, vectorised: which decoded packets carry another packet, where it starts and what link it has.

``features.capture.decode`` asks ``find`` about every packet it decoded; each tunnel packet's inner frame
is then decoded like any captured frame (its link type says how to start), and the inner packet's row
replaces the outer one, tagged with the tunnel. ``decode_ref`` writes the same rules out for one packet
at a time, and the tests require both to agree (and the inner packets to be those dpkt finds).

Rules (a packet is a tunnel only when its IP datagram is whole, not a fragment, and the tunnel header
is captured in full; otherwise it stays the outer packet):

* GRE (IP protocol 47), version 0 without routing: 4 bytes plus 4 for each of the checksum, key and
  sequence flags. Protocol 0x0800 / 0x86DD: IPv4 / IPv6 follows; 0x6558 (transparent Ethernet bridging):
  an Ethernet frame; 0x88BE: ERSPAN type II (8-byte header; type I when the sequence flag is clear: no
  header) then Ethernet; 0x22EB: ERSPAN type III (12 bytes, 8 more with the optional subheader flag)
  then Ethernet. Version 1 with protocol 0x880B (PPTP's enhanced GRE, key flag set): 8 bytes plus 4 for
  each of the sequence and acknowledgement flags, then a PPP frame; a packet without payload (an
  acknowledgement only) stays outer.
* IP-in-IP (protocol 4): IPv4 follows; protocol 41 (6in4, 6in6): IPv6 follows.
* UDP to port 4789 (VXLAN): 8-byte header with the I flag set, then Ethernet. UDP to port 6081 (Geneve,
  version 0): 8 bytes plus the options' length, then what the protocol field says (Ethernet, IPv4,
  IPv6). UDP from or to port 2152 (GTP-U version 1, message type 255, a user packet): 8 bytes, 4 more when
  any of the E/S/PN flags is set, then each extension header (its first byte counts 4-byte units, its
  last byte names the next one), then IPv4 or IPv6. UDP from or to port 3544 (Teredo): an optional
  authentication header and origin indication, then IPv6 whose payload length fills the datagram exactly
  (as Zeek checks). Teredo between a client and a relay or peer uses other ports: UDP on any port whose
  payload is such an IPv6 packet with a Teredo address (2001:0::/32) at either end is Teredo too (Zeek
  detects Teredo on any port as well). The first rule that matches wins, in this order.

A tunnel is recorded in the packet's ``tunnel`` column as a 64-bit id of (the kinds of tunnel from the
outermost in, the outermost tunnel's two endpoint addresses in canonical order), with its text form
(``"vxlan 10.0.0.1 10.0.0.2"``; nested kinds joined by ``/``) in ``PacketBatch.tunnels``: both directions
of a conversation through a tunnel share the id, so they make one flow.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable

import numpy as np

MAX_DEPTH = 3  # tunnels inside tunnels decapsulated at most this deep; deeper ones stay outer packets
KINDS = ("", "gre", "erspan", "pptp", "vxlan", "geneve", "ipip", "6in4", "teredo", "gtpu")
GRE, ERSPAN, PPTP, VXLAN, GENEVE, IPIP, SIXIN4, TEREDO, GTPU = range(1, 10)
LT_ETHERNET, LT_PPP, LT_RAW, LT_IPV4, LT_IPV6 = 1, 9, 101, 228, 229
MAX_GTP_EXT = 8
_GRE_PAYLOAD = {0x0800: LT_IPV4, 0x86DD: LT_IPV6, 0x6558: LT_ETHERNET}
_GENEVE_PAYLOAD = {0x6558: LT_ETHERNET, 0x0800: LT_IPV4, 0x86DD: LT_IPV6}
Add = Callable[[np.ndarray, np.ndarray, "np.ndarray | int", "np.ndarray | int"], None]


def _be16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    pos = np.minimum(pos, buf.shape[0] - 2)
    return (buf[pos].astype(np.int64) << 8) | buf[pos + 1]


def _u8(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return buf[np.minimum(pos, buf.shape[0] - 1)].astype(np.int64)


def find(
    buf: np.ndarray,
    base: np.ndarray,
    t_off: np.ndarray,
    cap_end: np.ndarray,
    ip_end: np.ndarray,
    proto: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    cand: np.ndarray,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Tunnel packets among the rows ``cand`` (bool): (row index, inner offset, inner link type, kind).

    Offsets are relative to each frame's first byte (``base``, absolute in ``buf``); ``t_off`` is where the
    transport header starts, ``cap_end`` the end of the captured bytes of the datagram, ``ip_end`` its end by
    the IP length field.
    """
    rows: list[np.ndarray] = []
    offs: list[np.ndarray] = []
    lts: list[np.ndarray] = []
    kinds: list[np.ndarray] = []

    def add(r: np.ndarray, off: np.ndarray, lt: np.ndarray | int, kind: np.ndarray | int) -> None:
        ok = off <= cap_end[r]
        rows.append(r[ok])
        offs.append(off[ok])
        lts.append(np.broadcast_to(np.asarray(lt, np.int64), r.shape)[ok])
        kinds.append(np.broadcast_to(np.asarray(kind, np.int64), r.shape)[ok])

    room = cap_end - t_off
    r = np.flatnonzero(cand & ((proto == 4) | (proto == 41)))
    if r.size:
        v4 = proto[r] == 4
        add(r, t_off[r], np.where(v4, LT_IPV4, LT_IPV6), np.where(v4, IPIP, SIXIN4))
    r = np.flatnonzero(cand & (proto == 47) & (room >= 4))
    if r.size:
        _gre(buf, base, t_off, cap_end, r, add)
    r = np.flatnonzero(cand & (proto == 17) & (room >= 16))  # a UDP header and 8 bytes of tunnel header
    if r.size:
        _udp(buf, base, t_off, cap_end, ip_end, sport, dport, r, add)
    if not rows:
        e = np.zeros(0, np.int64)
        return e, e, e, e
    return np.concatenate(rows), np.concatenate(offs), np.concatenate(lts), np.concatenate(kinds)


def _gre(buf: np.ndarray, base: np.ndarray, t_off: np.ndarray, cap_end: np.ndarray, r: np.ndarray, add: Add) -> None:
    p = base[r] + t_off[r]
    fl, ptype = _be16(buf, p), _be16(buf, p + 2)
    ver = fl & 7
    hl = 4 + 4 * ((fl & 0x8000) > 0) + 4 * ((fl & 0x2000) > 0) + 4 * ((fl & 0x1000) > 0)
    v0 = (ver == 0) & ((fl & 0x4000) == 0)
    for ptype_value, lt in _GRE_PAYLOAD.items():
        m = v0 & (ptype == ptype_value)
        add(r[m], t_off[r[m]] + hl[m], lt, GRE)
    m = v0 & (ptype == 0x88BE)  # ERSPAN II (sequence flag set) or I (no header)
    add(r[m], t_off[r[m]] + hl[m] + 8 * ((fl[m] & 0x1000) > 0), LT_ETHERNET, ERSPAN)
    m = np.flatnonzero(v0 & (ptype == 0x22EB) & (cap_end[r] >= t_off[r] + hl + 12))  # ERSPAN III
    sub = _u8(buf, p[m] + hl[m] + 11) & 1
    add(r[m], t_off[r[m]] + hl[m] + 12 + 8 * sub, LT_ETHERNET, ERSPAN)
    pptp = (ver == 1) & (ptype == 0x880B) & ((fl & 0x2000) > 0) & (cap_end[r] >= t_off[r] + 8)
    pptp &= _be16(buf, p + 4) > 0  # payload length: 0 is an acknowledgement only
    hl1 = 8 + 4 * ((fl & 0x1000) > 0) + 4 * ((fl & 0x0080) > 0)
    add(r[pptp], t_off[r[pptp]] + hl1[pptp], LT_PPP, PPTP)


def _udp(
    buf: np.ndarray,
    base: np.ndarray,
    t_off: np.ndarray,
    cap_end: np.ndarray,
    ip_end: np.ndarray,
    sport: np.ndarray,
    dport: np.ndarray,
    r: np.ndarray,
    add: Add,
) -> None:
    u = t_off[r] + 8  # tunnel header, relative to the frame
    p = base[r] + u
    b0, b1 = _u8(buf, p), _u8(buf, p + 1)
    sp, dp = sport[r], dport[r]
    left = np.ones(r.size, bool)  # rows no rule has taken yet

    m = left & (dp == 4789) & ((b0 & 0x08) > 0)
    add(r[m], u[m] + 8, LT_ETHERNET, VXLAN)
    left &= ~m

    ptype = _be16(buf, p + 2)
    for ptype_value, lt in _GENEVE_PAYLOAD.items():
        m = left & (dp == 6081) & ((b0 >> 6) == 0) & (ptype == ptype_value)
        add(r[m], u[m] + 8 + (b0[m] & 0x3F) * 4, lt, GENEVE)
        left &= ~m

    m = np.flatnonzero(left & ((sp == 2152) | (dp == 2152)) & ((b0 >> 5) == 1) & ((b0 & 0x10) > 0) & (b1 == 0xFF))
    if m.size:
        left[m] = False
        hl = 8 + 4 * ((b0[m] & 0x07) > 0)
        nxt = np.where((b0[m] & 0x04) > 0, _u8(buf, p[m] + 11), 0)
        ok = np.ones(m.size, bool)
        for _ in range(MAX_GTP_EXT):
            go = ok & (nxt != 0)
            if not go.any():
                break
            g = np.flatnonzero(go)
            at = u[m[g]] + hl[g]
            ln = _u8(buf, base[r[m[g]]] + at) * 4
            bad = (ln == 0) | (cap_end[r[m[g]]] < at + np.maximum(ln, 1))
            ok[g[bad]] = False
            g, ln = g[~bad], ln[~bad]
            nxt[g] = _u8(buf, base[r[m[g]]] + u[m[g]] + hl[g] + ln - 1)
            hl[g] += ln
        ok &= nxt == 0
        add(r[m[ok]], u[m[ok]] + hl[ok], LT_RAW, GTPU)

    m = np.flatnonzero(left & ((sp == 3544) | (dp == 3544)))
    other = np.flatnonzero(left & (sp != 3544) & (dp != 3544) & ((b0 >> 4) == 6) & (cap_end[r] >= u + 40))
    if other.size:  # any port: no Teredo headers, a Teredo address at either end
        pa, pb = base[r[other]] + u[other] + 8, base[r[other]] + u[other] + 24
        teredo = ((_be16(buf, pa) == 0x2001) & (_be16(buf, pa + 2) == 0)) | (
            (_be16(buf, pb) == 0x2001) & (_be16(buf, pb + 2) == 0)
        )
        exact = ip_end[r[other]] - u[other] == 40 + _be16(buf, base[r[other]] + u[other] + 4)
        ok = teredo & exact
        add(r[other[ok]], u[other[ok]], LT_IPV6, TEREDO)
    if m.size:
        q = u[m].copy()
        auth = _be16(buf, base[r[m]] + q) == 1
        q += np.where(auth, 13 + _u8(buf, base[r[m]] + q + 2) + _u8(buf, base[r[m]] + q + 3), 0)
        origin = _be16(buf, base[r[m]] + q) == 0
        q += np.where(origin, 8, 0)
        fits = cap_end[r[m]] >= q + 40
        v6 = (_u8(buf, base[r[m]] + q) >> 4) == 6
        exact = ip_end[r[m]] - q == 40 + _be16(buf, base[r[m]] + q + 4)
        ok = fits & v6 & exact
        add(r[m[ok]], q[ok], LT_IPV6, TEREDO)


def _mix(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One splitmix64 round of ``h ^ x`` (uint64 arithmetic wraps by design)."""
    with np.errstate(over="ignore"):
        z = (h ^ x) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def tunnel_ids(chain: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """(n,) uint64 id (never 0) of each (kind chain, (n, 4) outer src_hi, src_lo, dst_hi, dst_lo) pair."""
    src, dst = ends[:, :2], ends[:, 2:]
    src_first = (src[:, 0] < dst[:, 0]) | ((src[:, 0] == dst[:, 0]) & (src[:, 1] <= dst[:, 1]))
    a = np.where(src_first[:, None], src, dst)
    b = np.where(src_first[:, None], dst, src)
    with np.errstate(over="ignore"):
        h = _mix(np.zeros(chain.shape, np.uint64), chain.astype(np.uint64))
        for col in (a[:, 0], a[:, 1], b[:, 0], b[:, 1]):
            h = _mix(h, col.astype(np.uint64))
    return h | np.uint64(1)


def tunnel_text(chain: int, ends: tuple[int, int, int, int]) -> str:
    """``"gre 10.0.0.1 10.0.0.2"``: the kinds from the outermost in, then the outer endpoints in canonical order."""
    kinds = []
    while chain:
        kinds.append(KINDS[chain & 0xFF])
        chain >>= 8
    a, b = sorted([(ends[0], ends[1]), (ends[2], ends[3])])
    return f"{'/'.join(kinds)} {_addr(*a)} {_addr(*b)}"


def _addr(hi: int, lo: int) -> str:
    if hi == 0 and lo >> 32 == 0xFFFF:
        return str(ipaddress.IPv4Address(lo & 0xFFFFFFFF))
    return ipaddress.IPv6Address(hi << 64 | lo).compressed


def tunnel_id_of(text: str) -> int:
    """The id of a tunnel from its text form (``tunnel_text``'s inverse, for matching flows to packets)."""
    kinds, a, b = text.split(" ")
    chain = 0
    for i, k in enumerate(kinds.split("/")):
        chain |= KINDS.index(k) << (8 * i)
    ends = []
    for addr in (a, b):
        ip = ipaddress.ip_address(addr)
        v = (0xFFFF << 32 | int(ip)) if ip.version == 4 else int(ip)
        ends += [v >> 64, v & (2**64 - 1)]
    return int(tunnel_ids(np.array([chain], np.uint64), np.array([ends], np.uint64))[0])
