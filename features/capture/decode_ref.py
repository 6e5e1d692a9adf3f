"""Per-packet reference decoder: the written-out specification the columnar decoder must equal.

``features.capture.decode`` decodes whole chunks with numpy and never calls this module on the hot path; the
tests run both on the same frames (real captures and hypothesis-generated ones) and require identical
output. Keep the two in step: a rule changed here must change there, and the differential test fails
until it does. It also serves single-packet diagnostics (``decode_frame(bytes, linktype, wirelen)``).

Rules, in order (every name counted in ``bad`` is listed in ``features.capture.linktypes.BAD_NAMES``):

* Link layer: Ethernet (1), Linux SLL (113), SLL2 (276) give an EtherType; up to ``MAX_VLAN`` VLAN tags
  (0x8100, 0x88a8, 0x9100) are skipped, the outermost id kept; MPLS (0x8847/0x8848) skips up to
  ``MAX_LABELS`` labels to the bottom of stack and guesses IPv4/IPv6 from the next nibble (anything
  else is ``non_ip``); PPPoE session (0x8864) carries PPP (below). Cisco HDLC (104) is an address and
  a control byte, then an EtherType. PPP (9) and PPP in HDLC framing (50) may start with the
  address/control pair ff 03 (RFC 1662); link type 50 whose first byte is 0x0f or 0x8f is Cisco framing,
  read as Cisco HDLC. A PPP protocol field is two bytes, or one when compressed (RFC 1661 6.5: an odd
  first byte): 0x21 is IPv4, 0x57 IPv6, anything else ``non_ip``. BSD NULL (0)
  and LOOP (108) carry an address family in either byte order (2 = IPv4; 24, 28, 30 = IPv6), or, as
  Wireshark reads it, an EtherType in the low 16 bits of a value above 1500. Raw IP
  (101, 12, 14) is IPv4 or IPv6 by the version nibble, 228 is IPv4, 229 is IPv6. IEEE 802.11 (105),
  radiotap (127) and PPI (192) frames are peeled by ``features.capture.slowpath`` (dpkt) to an EtherType.
  A frame too short for its link header is ``truncated_link``; any other link type is ``unsupported_linktype``.
* IP: the version must match what the link layer announced (``bad_ip_header``; for an MPLS guess a
  non-IP nibble is ``non_ip``). IPv4 needs IHL >= 5 and total length >= IHL (``bad_ip_header``); a
  header cut by the snap length is ``truncated_ip``. A zero IPv4 total length or IPv6 payload length
  (TSO captures, jumbograms) is replaced by the wire length. Checksums are not verified.
* IPv6 extension headers 0, 43, 60, 51 (AH) and 44 (fragment) are walked, at most ``MAX_EXT``; ESP (50),
  no-next (59) and anything else end the walk and become ``proto``.
* Fragments: ``is_frag`` when the offset is non-zero or more-fragments is set; then ``ip_id`` is the
  IPv4 id or the IPv6 fragment id (else 0). A non-first fragment has no transport fields.
* Transport: TCP needs 20 bytes, UDP 8, ICMP/ICMPv6 8, counted from the transport offset up to the end
  of the captured bytes or of the IP datagram, whichever comes first. When fewer are there the row is
  kept with what fits (ports from 4 bytes, ICMP type/code from 2) and counted ``truncated_transport``;
  a TCP data offset below 5 is ``bad_tcp_header`` (row kept). ``payload_len`` = IP end - transport
  offset - transport header length (TCP: data offset, else 20; UDP, ICMP: 8; others and non-first
  fragments: 0), never negative.

* Tunnels: a packet without any bad name, not a fragment, that matches a rule of
  ``features.capture.tunnels`` (GRE, ERSPAN, PPTP, IP-in-IP, 6in4, VXLAN, Geneve, GTP-U, Teredo; written out
  again below, one packet at a time) is replaced by the packet inside it, decoded from the inner link type on
  (its bad name, if any, is the frame's); at most ``MAX_DEPTH`` tunnels deep. The row keeps the outer frame's
  VLAN when it had one, and ``tunnel`` names the kinds (outermost first) and the outermost tunnel's endpoints.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from features.capture.packets import CONTENT_PORTS, CONTENT_SNAP
from features.capture.slowpath import SLOW_LINKTYPES, locate
from features.capture.tunnels import (
    ERSPAN,
    GENEVE,
    GRE,
    GTPU,
    IPIP,
    LT_ETHERNET,
    LT_IPV4,
    LT_IPV6,
    LT_PPP,
    LT_RAW,
    MAX_DEPTH,
    MAX_GTP_EXT,
    PPTP,
    SIXIN4,
    TEREDO,
    VXLAN,
    tunnel_ids,
    tunnel_text,
)

MAX_VLAN = 8
MAX_LABELS = 8
MAX_EXT = 8
VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
IPV6_EXT = frozenset({0, 43, 44, 51, 60})
AF_INET6 = frozenset({24, 28, 30})
RAW_LINKTYPES = frozenset({101, 12, 14})
ETHERTYPE_LINKS = {1: (12, 14), 113: (14, 16), 276: (0, 20), 104: (2, 4)}  # linktype -> (EtherType at, payload at)
PPP_IP = {4: 0x21, 6: 0x57}  # IP version -> PPP protocol number

_HINT_ANY, _HINT_GUESS = 0, 255


@dataclass
class RefPacket:
    """One decoded packet: the row's fields (``PACKET_COLUMNS`` minus pkt_idx/ts_ns), its bad name, payload."""

    fields: dict[str, int] | None  # None: no row for this frame
    bad: str  # "" when clean
    payload: bytes | None = None
    tunnel: str | None = None  # PacketBatch.tunnels' text of the row's tunnel


def _be16(b: bytes, o: int) -> int:
    return int(b[o]) << 8 | b[o + 1]


def _be32(b: bytes, o: int) -> int:
    return int(struct.unpack_from(">I", b, o)[0])


def _link(frame: bytes, linktype: int) -> tuple[int, int, int] | str:
    """Return (ip_off, version hint, vlan) or a bad name."""
    n = len(frame)
    if linktype in ETHERTYPE_LINKS:
        et_at, off = ETHERTYPE_LINKS[linktype]
        if n < off:
            return "truncated_link"
        return _ethertype(frame, _be16(frame, et_at), off)
    if linktype == 50 and n >= 1 and frame[0] in (0x0F, 0x8F):
        return _ethertype(frame, _be16(frame, 2), 4) if n >= 4 else "truncated_link"
    if linktype in (9, 50):
        return _ppp(frame, 0, True)
    if linktype in SLOW_LINKTYPES:
        loc = locate([frame], linktype)[0]
        return loc if isinstance(loc, str) else _ethertype(frame, *loc)
    if linktype in (0, 108):
        if n < 4:
            return "truncated_link"
        af = struct.unpack_from("<I", frame, 0)[0]
        if af > 0xFFFF:
            af = struct.unpack_from(">I", frame, 0)[0]
        if af == 2 or (af > 1500 and af & 0xFFFF == 0x0800):
            return 4, 4, -1
        if af in AF_INET6 or (af > 1500 and af & 0xFFFF == 0x86DD):
            return 4, 6, -1
        return "non_ip"
    if linktype in RAW_LINKTYPES:
        return 0, _HINT_ANY, -1
    if linktype == 228:
        return 0, 4, -1
    if linktype == 229:
        return 0, 6, -1
    return "unsupported_linktype"


def _ethertype(frame: bytes, et: int, off: int) -> tuple[int, int, int] | str:
    """Follow an EtherType whose payload starts at ``off`` through VLAN tags to IP, MPLS or PPPoE."""
    n = len(frame)
    vlan = -1
    depth = 0
    while et in VLAN_TYPES:
        if depth == MAX_VLAN:
            return "non_ip"
        if n < off + 4:
            return "truncated_link"
        if vlan == -1:
            vlan = _be16(frame, off) & 0x0FFF
        et = _be16(frame, off + 2)
        off += 4
        depth += 1
    if et in (0x8847, 0x8848):
        for _ in range(MAX_LABELS):
            if n < off + 4:
                return "truncated_link"
            bos = frame[off + 2] & 1
            off += 4
            if bos:
                return off, _HINT_GUESS, vlan
        return "non_ip"
    if et == 0x8864:
        got = _ppp(frame, off + 6, False)
        return got if isinstance(got, str) else (got[0], got[1], vlan)
    if et == 0x0800:
        return off, 4, vlan
    if et == 0x86DD:
        return off, 6, vlan
    return "non_ip"


def _ppp(frame: bytes, off: int, framing: bool) -> tuple[int, int, int] | str:
    """A PPP header at ``off`` (``framing``: ff 03 may come first); protocol field of one or two bytes."""
    n = len(frame)
    if framing and n >= off + 2 and frame[off] == 0xFF and frame[off + 1] == 0x03:
        off += 2
    if n < off + 1:
        return "truncated_link"
    if frame[off] & 1:
        proto, off = frame[off], off + 1
    elif n < off + 2:
        return "truncated_link"
    else:
        proto, off = _be16(frame, off), off + 2
    for version, number in PPP_IP.items():
        if proto == number:
            return off, version, -1
    return "non_ip"


def decode_frame(frame: bytes, linktype: int, wirelen: int, *, decap: bool = True) -> RefPacket:
    """Decode one captured frame (``caplen = len(frame)``) the way ``features.capture.decode`` does in bulk."""
    pkt, chain, ends = _decode(frame, linktype, wirelen, MAX_DEPTH if not decap else 0)
    if pkt.fields is not None:
        pkt.fields["tunnel"] = 0
        if chain:
            pkt.fields["tunnel"] = int(tunnel_ids(np.array([chain], np.uint64), np.array([ends], np.uint64))[0])
            pkt.tunnel = tunnel_text(chain, ends)
    return pkt


_NO_ENDS = (0, 0, 0, 0)


def _decode(frame: bytes, linktype: int, wirelen: int, depth: int) -> tuple[RefPacket, int, tuple[int, int, int, int]]:
    """The packet of one frame, its tunnel kinds (outermost in the low byte) and outermost tunnel endpoints."""
    link = _link(frame, linktype)
    if isinstance(link, str):
        return RefPacket(None, link), 0, _NO_ENDS
    ip_off, hint, vlan = link
    n = len(frame)
    if n < ip_off + 1:
        return RefPacket(None, "truncated_ip"), 0, _NO_ENDS
    ver = frame[ip_off] >> 4
    if hint == _HINT_GUESS and ver not in (4, 6):
        return RefPacket(None, "non_ip"), 0, _NO_ENDS
    if (hint in (_HINT_ANY, _HINT_GUESS) and ver not in (4, 6)) or (hint in (4, 6) and ver != hint):
        return RefPacket(None, "bad_ip_header"), 0, _NO_ENDS
    f: dict[str, int] = dict.fromkeys(("tcp_flags", "tcp_seq", "tcp_ack", "tcp_win", "ip_id", "frag_off"), 0)
    f.update(vlan=vlan, ip_version=ver, sport=-1, dport=-1, icmp_type=-1, icmp_code=-1, more_frags=0, is_frag=0)
    nonfirst = stopped = False
    if ver == 4:
        if n < ip_off + 20:
            return RefPacket(None, "truncated_ip"), 0, _NO_ENDS
        ihl = (frame[ip_off] & 15) * 4
        if ihl < 20:
            return RefPacket(None, "bad_ip_header"), 0, _NO_ENDS
        if n < ip_off + ihl:
            return RefPacket(None, "truncated_ip"), 0, _NO_ENDS
        ip_len = _be16(frame, ip_off + 2)
        if ip_len == 0:
            ip_len = max(ihl, wirelen - ip_off)
        if ip_len < ihl:
            return RefPacket(None, "bad_ip_header"), 0, _NO_ENDS
        ff = _be16(frame, ip_off + 6)
        foff, mf = (ff & 0x1FFF) * 8, bool(ff & 0x2000)
        if foff or mf:
            f.update(ip_id=_be16(frame, ip_off + 4), frag_off=foff, more_frags=int(mf), is_frag=1)
        nonfirst = foff > 0
        proto = frame[ip_off + 9]
        f.update(src_hi=0, src_lo=0xFFFF_0000_0000 | _be32(frame, ip_off + 12))
        f.update(dst_hi=0, dst_lo=0xFFFF_0000_0000 | _be32(frame, ip_off + 16))
        t_off = ip_off + ihl
    else:
        if n < ip_off + 40:
            return RefPacket(None, "truncated_ip"), 0, _NO_ENDS
        plen, proto = _be16(frame, ip_off + 4), frame[ip_off + 6]
        ip_len = 40 + plen if plen or proto == 59 else max(40, wirelen - ip_off)
        hi_lo = struct.unpack_from(">4Q", frame, ip_off + 8)
        f.update(src_hi=hi_lo[0], src_lo=hi_lo[1], dst_hi=hi_lo[2], dst_lo=hi_lo[3])
        t_off = ip_off + 40
        for _ in range(MAX_EXT):
            if proto not in IPV6_EXT:
                break
            if proto == 44:
                if n < t_off + 8:
                    stopped = True
                    break
                fr = _be16(frame, t_off + 2)
                foff6, mf6 = fr & 0xFFF8, fr & 1
                if foff6 or mf6:
                    f.update(ip_id=_be32(frame, t_off + 4), frag_off=foff6, more_frags=mf6, is_frag=1)
                proto = frame[t_off]
                t_off += 8
                if foff6:
                    nonfirst = True
                    break
            else:
                if n < t_off + 2:
                    stopped = True
                    break
                hl = (frame[t_off + 1] + 2) * 4 if proto == 51 else (frame[t_off + 1] + 1) * 8
                proto = frame[t_off]
                t_off += hl
    f.update(proto=proto, ip_len=ip_len)
    ip_end = ip_off + ip_len
    bad, thl, payload = "", 0, None
    if stopped:
        bad = "truncated_transport"
    elif not nonfirst and proto in (1, 6, 17, 58):
        avail = min(n, ip_end) - t_off
        if proto == 6:
            thl = 20
            if avail >= 20:
                sp, dp, seq, ack, offb, flags, win = struct.unpack_from(">HHIIBBH", frame, t_off)
                f.update(sport=sp, dport=dp, tcp_seq=seq, tcp_ack=ack, tcp_flags=flags, tcp_win=win)
                if offb >> 4 < 5:
                    bad = "bad_tcp_header"
                else:
                    thl = (offb >> 4) * 4
                    if sp in CONTENT_PORTS or dp in CONTENT_PORTS:
                        k = min(ip_end - t_off - thl, n - t_off - thl, CONTENT_SNAP)
                        payload = frame[t_off + thl : t_off + thl + k] if k > 0 else None
            else:
                bad = "truncated_transport"
                if avail >= 4:
                    f.update(sport=_be16(frame, t_off), dport=_be16(frame, t_off + 2))
        elif proto == 17:
            thl = 8
            if avail < 8:
                bad = "truncated_transport"
            if avail >= 4:
                f.update(sport=_be16(frame, t_off), dport=_be16(frame, t_off + 2))
        else:
            thl = 8
            if avail < 8:
                bad = "truncated_transport"
            if avail >= 2:
                f.update(icmp_type=frame[t_off], icmp_code=frame[t_off + 1])
    f["payload_len"] = max(0, ip_end - t_off - thl)
    if depth < MAX_DEPTH and not bad and not f["is_frag"]:
        cap_end = min(n, ip_end)
        found = _tunnel(frame, t_off, cap_end, ip_end, proto, f["sport"], f["dport"])
        if found is not None:
            off, lt, kind = found
            inner, deeper, _ = _decode(frame[off:cap_end], lt, ip_end - off, depth + 1)
            if inner.fields is not None and vlan >= 0:
                inner.fields["vlan"] = vlan
            ends = (f["src_hi"], f["src_lo"], f["dst_hi"], f["dst_lo"])
            return inner, kind | deeper << 8, ends
    return RefPacket(f, bad, payload), 0, _NO_ENDS


def _tunnel(
    frame: bytes, t_off: int, cap_end: int, ip_end: int, proto: int, sport: int, dport: int
) -> tuple[int, int, int] | None:
    """(inner offset, inner link type, kind) of a tunnel packet, or None (the rules: ``features.capture.tunnels``)."""
    found = _tunnel_header(frame, t_off, cap_end, ip_end, proto, sport, dport)
    return found if found is not None and found[0] <= cap_end else None


def _tunnel_header(
    frame: bytes, t: int, end: int, ip_end: int, proto: int, sport: int, dport: int
) -> tuple[int, int, int] | None:
    if proto == 4:
        return t, LT_IPV4, IPIP
    if proto == 41:
        return t, LT_IPV6, SIXIN4
    if proto == 47 and end - t >= 4:
        fl, ptype = _be16(frame, t), _be16(frame, t + 2)
        if fl & 7 == 0 and not fl & 0x4000:
            hl = 4 + 4 * bool(fl & 0x8000) + 4 * bool(fl & 0x2000) + 4 * bool(fl & 0x1000)
            inner = {0x0800: LT_IPV4, 0x86DD: LT_IPV6, 0x6558: LT_ETHERNET}.get(ptype)
            if inner is not None:
                return t + hl, inner, GRE
            if ptype == 0x88BE:
                return t + hl + (8 if fl & 0x1000 else 0), LT_ETHERNET, ERSPAN
            if ptype == 0x22EB and end >= t + hl + 12:
                return t + hl + 12 + 8 * (frame[t + hl + 11] & 1), LT_ETHERNET, ERSPAN
        elif fl & 7 == 1 and ptype == 0x880B and fl & 0x2000 and end >= t + 8 and _be16(frame, t + 4) > 0:
            return t + 8 + 4 * bool(fl & 0x1000) + 4 * bool(fl & 0x0080), LT_PPP, PPTP
        return None
    if proto != 17 or end - t < 16:
        return None
    u = t + 8
    b0, b1 = frame[u], frame[u + 1]
    if dport == 4789 and b0 & 0x08:
        return u + 8, LT_ETHERNET, VXLAN
    geneve = {0x6558: LT_ETHERNET, 0x0800: LT_IPV4, 0x86DD: LT_IPV6}.get(_be16(frame, u + 2))
    if dport == 6081 and b0 >> 6 == 0 and geneve is not None:
        return u + 8 + (b0 & 0x3F) * 4, geneve, GENEVE
    if 2152 in (sport, dport) and b0 >> 5 == 1 and b0 & 0x10 and b1 == 0xFF:
        hl = 8 + (4 if b0 & 0x07 else 0)
        nxt = frame[u + 11] if b0 & 0x04 and end >= u + 12 else 0
        if b0 & 0x04 and end < u + 12:
            return None
        for _ in range(MAX_GTP_EXT):
            if nxt == 0:
                break
            at = u + hl
            if end < at + 1 or frame[at] == 0 or end < at + frame[at] * 4:
                return None
            ln = frame[at] * 4
            nxt = frame[at + ln - 1]
            hl += ln
        return (u + hl, LT_RAW, GTPU) if nxt == 0 else None
    if 3544 not in (sport, dport):
        teredo_addr = b"\x20\x01\x00\x00" in (frame[u + 8 : u + 12], frame[u + 24 : u + 28])
        if b0 >> 4 == 6 and end >= u + 40 and ip_end - u == 40 + _be16(frame, u + 4) and teredo_addr:
            return u, LT_IPV6, TEREDO
        return None
    if 3544 in (sport, dport):
        q = u
        if end >= q + 2 and _be16(frame, q) == 1:
            if end < q + 4:
                return None
            q += 13 + frame[q + 2] + frame[q + 3]
        if end >= q + 2 and _be16(frame, q) == 0:
            q += 8
        if end >= q + 40 and frame[q] >> 4 == 6 and ip_end - q == 40 + _be16(frame, q + 4):
            return q, LT_IPV6, TEREDO
    return None
