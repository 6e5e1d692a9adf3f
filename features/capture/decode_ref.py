"""Per-packet reference decoder: the written-out specification the columnar decoder must equal.

``features.capture.decode`` decodes whole chunks with numpy and never calls this module on the hot path; the
tests run both on the same frames (real captures and hypothesis-generated ones) and require identical
output. Keep the two in step: a rule changed here must change there, and the differential test fails
until it does. It also serves single-packet diagnostics (``decode_frame(bytes, linktype, wirelen)``).

Rules, in order (every name counted in ``bad`` is listed in ``features.capture.linktypes.BAD_NAMES``):

* Link layer: Ethernet (1), Linux SLL (113), SLL2 (276) give an EtherType; up to ``MAX_VLAN`` VLAN tags
  (0x8100, 0x88a8, 0x9100) are skipped, the outermost id kept; MPLS (0x8847/0x8848) skips up to
  ``MAX_LABELS`` labels to the bottom of stack and guesses IPv4/IPv6 from the next nibble (anything
  else is ``non_ip``); PPPoE session (0x8864) carries PPP 0x0021 (IPv4) or 0x0057 (IPv6). BSD NULL (0)
  and LOOP (108) carry an address family in either byte order (2 = IPv4; 24, 28, 30 = IPv6), or, as
  Wireshark reads it, an EtherType in the low 16 bits of a value above 1500. Raw IP
  (101, 12, 14) is IPv4 or IPv6 by the version nibble, 228 is IPv4, 229 is IPv6. A frame too short for
  its link header is ``truncated_link``; any other link type is ``unsupported_linktype``.
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

Tunnels (GRE, VXLAN, Teredo, IP-in-IP) are not decapsulated: the outer IP packet is the row.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from features.capture.packets import CONTENT_PORTS, CONTENT_SNAP

MAX_VLAN = 8
MAX_LABELS = 8
MAX_EXT = 8
VLAN_TYPES = frozenset({0x8100, 0x88A8, 0x9100})
IPV6_EXT = frozenset({0, 43, 44, 51, 60})
AF_INET6 = frozenset({24, 28, 30})
RAW_LINKTYPES = frozenset({101, 12, 14})
ETHERTYPE_LINKS = {1: (12, 14), 113: (14, 16), 276: (0, 20)}  # linktype -> (EtherType offset, payload offset)

_HINT_ANY, _HINT_GUESS = 0, 255


@dataclass
class RefPacket:
    """One decoded packet: the row's fields (``PACKET_COLUMNS`` minus pkt_idx/ts_ns), its bad name, payload."""

    fields: dict[str, int] | None  # None: no row for this frame
    bad: str  # "" when clean
    payload: bytes | None = None


def _be16(b: bytes, o: int) -> int:
    return int(b[o]) << 8 | b[o + 1]


def _be32(b: bytes, o: int) -> int:
    return int(struct.unpack_from(">I", b, o)[0])


def _link(frame: bytes, linktype: int) -> tuple[int, int, int] | str:
    """Return (ip_off, version hint, vlan) or a bad name."""
    n = len(frame)
    vlan = -1
    if linktype in ETHERTYPE_LINKS:
        et_at, off = ETHERTYPE_LINKS[linktype]
        if n < off:
            return "truncated_link"
        et = _be16(frame, et_at)
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
            if n < off + 8:
                return "truncated_link"
            ppp = _be16(frame, off + 6)
            if ppp == 0x0021:
                return off + 8, 4, vlan
            if ppp == 0x0057:
                return off + 8, 6, vlan
            return "non_ip"
        if et == 0x0800:
            return off, 4, vlan
        if et == 0x86DD:
            return off, 6, vlan
        return "non_ip"
    if linktype in (0, 108):
        if n < 4:
            return "truncated_link"
        af = struct.unpack_from("<I", frame, 0)[0]
        if af > 0xFFFF:
            af = struct.unpack_from(">I", frame, 0)[0]
        if af == 2 or (af > 1500 and af & 0xFFFF == 0x0800):
            return 4, 4, vlan
        if af in AF_INET6 or (af > 1500 and af & 0xFFFF == 0x86DD):
            return 4, 6, vlan
        return "non_ip"
    if linktype in RAW_LINKTYPES:
        return 0, _HINT_ANY, vlan
    if linktype == 228:
        return 0, 4, vlan
    if linktype == 229:
        return 0, 6, vlan
    return "unsupported_linktype"


def decode_frame(frame: bytes, linktype: int, wirelen: int) -> RefPacket:
    """Decode one captured frame (``caplen = len(frame)``) the way ``features.capture.decode`` does in bulk."""
    link = _link(frame, linktype)
    if isinstance(link, str):
        return RefPacket(None, link)
    ip_off, hint, vlan = link
    n = len(frame)
    if n < ip_off + 1:
        return RefPacket(None, "truncated_ip")
    ver = frame[ip_off] >> 4
    if hint == _HINT_GUESS and ver not in (4, 6):
        return RefPacket(None, "non_ip")
    if (hint in (_HINT_ANY, _HINT_GUESS) and ver not in (4, 6)) or (hint in (4, 6) and ver != hint):
        return RefPacket(None, "bad_ip_header")
    f: dict[str, int] = dict.fromkeys(("tcp_flags", "tcp_seq", "tcp_ack", "tcp_win", "ip_id", "frag_off"), 0)
    f.update(vlan=vlan, ip_version=ver, sport=-1, dport=-1, icmp_type=-1, icmp_code=-1, more_frags=0, is_frag=0)
    nonfirst = stopped = False
    if ver == 4:
        if n < ip_off + 20:
            return RefPacket(None, "truncated_ip")
        ihl = (frame[ip_off] & 15) * 4
        if ihl < 20:
            return RefPacket(None, "bad_ip_header")
        if n < ip_off + ihl:
            return RefPacket(None, "truncated_ip")
        ip_len = _be16(frame, ip_off + 2)
        if ip_len == 0:
            ip_len = max(ihl, wirelen - ip_off)
        if ip_len < ihl:
            return RefPacket(None, "bad_ip_header")
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
            return RefPacket(None, "truncated_ip")
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
    return RefPacket(f, bad, payload)
