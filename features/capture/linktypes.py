"""Link layers, vectorised: where each frame's IP header starts, its outer VLAN, or why it has none.

The rules are those of ``features.capture.decode_ref`` (Ethernet with VLAN stacks, MPLS and PPPoE; Linux SLL and
SLL2; Cisco HDLC; PPP and PPP in HDLC framing, with or without protocol-field compression; raw IP
101/12/14/228/229; BSD NULL/LOOP). A chunk of one link type (every classic pcap) is resolved with
whole-array operations; the variable-depth steps (VLAN tags, MPLS labels, PPPoE, PPP) work on index arrays
of the rows they concern, so rare encapsulations cost nothing when absent and a deep stack costs one pass
per layer. IEEE 802.11 frames (plain, radiotap, PPI) take the slow path, ``features.capture.slowpath``
(dpkt, frame by frame), which hands back each frame's EtherType and where its payload starts; the
EtherType machine here does the rest.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.capture.decode_ref import ETHERTYPE_LINKS, MAX_LABELS, MAX_VLAN, PPP_IP, RAW_LINKTYPES
from features.capture.slowpath import SLOW_LINKTYPES, locate

# Bad codes: index into BAD_NAMES. Codes >= KEEP still produce a row (the packet is usable).
BAD_NAMES = (
    "",
    "truncated_link",
    "non_ip",
    "unsupported_linktype",
    "truncated_ip",
    "bad_ip_header",
    "truncated_transport",
    "bad_tcp_header",
)
TRUNC_LINK, NON_IP, UNSUPPORTED, TRUNC_IP, BAD_IP, TRUNC_TRANSPORT, BAD_TCP = range(1, 8)
KEEP = TRUNC_TRANSPORT
HINT_ANY, HINT_GUESS = 0, 255

# EtherType classes, looked up in a 64 Ki table (cheaper than np.isin on every pass).
ET_OTHER, ET_VLAN, ET_MPLS, ET_PPPOE, ET_IPV4, ET_IPV6 = range(6)
_ET_CLASS = np.zeros(1 << 16, np.uint8)
_ET_CLASS[[0x8100, 0x88A8, 0x9100]] = ET_VLAN
_ET_CLASS[[0x8847, 0x8848]] = ET_MPLS
_ET_CLASS[0x8864] = ET_PPPOE
_ET_CLASS[0x0800] = ET_IPV4
_ET_CLASS[0x86DD] = ET_IPV6


def et_class(et: np.ndarray) -> np.ndarray:
    """EtherType class of each value; -1 (not in the EtherType machine) gives ET_OTHER but callers mask it."""
    return _ET_CLASS[et & 0xFFFF]


@dataclass
class Links:
    """Per-frame link-layer result, all (n,)."""

    ip_off: np.ndarray  # int64: IP header offset in the frame; -1 when there is no IP packet
    hint: np.ndarray  # uint8: 4, 6, HINT_ANY (raw: either) or HINT_GUESS (MPLS: either, else non-IP)
    vlan: np.ndarray  # int32: outermost VLAN id, -1 untagged
    bad: np.ndarray  # uint8: bad code, 0 when fine


def be16(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    """Big-endian uint16 at each absolute position (positions clipped into buf), as int64."""
    pos = np.minimum(pos, buf.shape[0] - 2)  # positions are never negative
    return (buf[pos].astype(np.int64) << 8) | buf[pos + 1]


def u8(buf: np.ndarray, pos: np.ndarray) -> np.ndarray:
    return buf[np.minimum(pos, buf.shape[0] - 1)].astype(np.int64)


def resolve(buf: np.ndarray, data_off: np.ndarray, caplen: np.ndarray, linktype: np.ndarray) -> Links:
    """Resolve the link layer of every frame (data_off/caplen/linktype: (n,) columns of a RecordChunk)."""
    n = data_off.shape[0]
    ip_off = np.full(n, -1, np.int64)
    hint = np.zeros(n, np.uint8)
    vlan = np.full(n, -1, np.int32)
    bad = np.zeros(n, np.uint8)
    et = np.full(n, -1, np.int64)  # EtherType of rows in the EtherType machine, -1 elsewhere
    eoff = np.zeros(n, np.int64)  # offset just after that EtherType's header
    uniform = n == 0 or bool((linktype == linktype[0]).all())  # classic pcap: always; cheaper than unique
    kinds = ([int(linktype[0])] if n else []) if uniform else np.unique(linktype).tolist()
    for lt in kinds:
        r = np.arange(n) if uniform else np.flatnonzero(linktype == lt)
        if lt in ETHERTYPE_LINKS and uniform:  # the common case, with whole-array operations
            et_at, after = ETHERTYPE_LINKS[lt]
            ok = caplen >= after
            bad[~ok] = TRUNC_LINK
            et = np.where(ok, be16(buf, data_off + et_at), -1)
            eoff[:] = after
        elif lt in ETHERTYPE_LINKS:
            et_at, after = ETHERTYPE_LINKS[lt]
            short = caplen[r] < after
            bad[r[short]] = TRUNC_LINK
            r = r[~short]
            et[r] = be16(buf, data_off[r] + et_at)
            eoff[r] = after
        elif lt in (0, 108):
            short = caplen[r] < 4
            bad[r[short]] = TRUNC_LINK
            r = r[~short]
            p = np.minimum(data_off[r], buf.shape[0] - 4)
            b = [buf[p + i].astype(np.int64) for i in range(4)]
            le = b[0] | b[1] << 8 | b[2] << 16 | b[3] << 24
            af = np.where(le > 0xFFFF, b[3] | b[2] << 8 | b[1] << 16 | b[0] << 24, le)
            et_ = np.where(af > 1500, af & 0xFFFF, -1)  # an EtherType in the header, as Wireshark reads it
            v4, v6 = (af == 2) | (et_ == 0x0800), np.isin(af, (24, 28, 30)) | (et_ == 0x86DD)
            ip_off[r[v4 | v6]] = 4
            hint[r[v4]], hint[r[v6]] = 4, 6
            bad[r[~(v4 | v6)]] = NON_IP
        elif lt in (9, 50):
            if lt == 50:  # Cisco framing (first byte 0x0f or 0x8f) carries an EtherType, as Cisco HDLC does
                b0 = u8(buf, data_off[r])
                cisco = ((b0 == 0x0F) | (b0 == 0x8F)) & (caplen[r] >= 1)
                ci, r = r[cisco], r[~cisco]
                short = caplen[ci] < 4
                bad[ci[short]] = TRUNC_LINK
                ci = ci[~short]
                et[ci] = be16(buf, data_off[ci] + 2)
                eoff[ci] = 4
            ppp(buf, data_off, caplen, r, np.zeros(r.size, np.int64), ip_off, hint, bad, framing=True)
        elif lt in SLOW_LINKTYPES:
            mv = buf.data
            frames = [bytes(mv[o : o + c]) for o, c in zip(data_off[r].tolist(), caplen[r].tolist(), strict=True)]
            for i, loc in zip(r.tolist(), locate(frames, lt), strict=True):
                if isinstance(loc, str):
                    bad[i] = BAD_NAMES.index(loc)
                else:
                    et[i], eoff[i] = loc
        elif lt in RAW_LINKTYPES or lt in (228, 229):
            ip_off[r] = 0
            hint[r] = {228: 4, 229: 6}.get(lt, HINT_ANY)
        else:
            bad[r] = UNSUPPORTED
    if (et >= 0).any():
        _ethertypes(buf, data_off, caplen, et, eoff, ip_off, hint, vlan, bad)
    return Links(ip_off, hint, vlan, bad)


def _ethertypes(
    buf: np.ndarray,
    data_off: np.ndarray,
    caplen: np.ndarray,
    et: np.ndarray,
    eoff: np.ndarray,
    ip_off: np.ndarray,
    hint: np.ndarray,
    vlan: np.ndarray,
    bad: np.ndarray,
) -> None:
    """Follow EtherTypes through VLAN tags to IP, MPLS or PPPoE; fills ip_off/hint/vlan/bad in place."""
    r = np.flatnonzero(et_class(et) == ET_VLAN)  # et -1 reads as class ET_OTHER
    for _ in range(MAX_VLAN):
        if not len(r):
            break
        short = caplen[r] < eoff[r] + 4
        bad[r[short]] = TRUNC_LINK
        et[r[short]] = -1
        r = r[~short]
        p = data_off[r] + eoff[r]
        first = r[vlan[r] == -1]
        vlan[first] = be16(buf, data_off[first] + eoff[first]) & 0x0FFF
        et[r] = be16(buf, p + 2)
        eoff[r] += 4
        r = r[et_class(et[r]) == ET_VLAN]
    bad[r] = NON_IP  # deeper than MAX_VLAN tags
    et[r] = -1
    cls = np.where(et >= 0, et_class(et), 255)  # (n,) class of the innermost EtherType; 255 outside

    r = np.flatnonzero(cls == ET_MPLS)
    for _ in range(MAX_LABELS):
        if not len(r):
            break
        short = caplen[r] < eoff[r] + 4
        bad[r[short]] = TRUNC_LINK
        r = r[~short]
        bos = u8(buf, data_off[r] + eoff[r] + 2) & 1
        eoff[r] += 4
        done = r[bos == 1]
        ip_off[done] = eoff[done]
        hint[done] = HINT_GUESS
        r = r[bos == 0]
    bad[r] = NON_IP  # no bottom of stack within MAX_LABELS

    r = np.flatnonzero(cls == ET_PPPOE)
    if r.size:
        ppp(buf, data_off, caplen, r, eoff[r] + 6, ip_off, hint, bad, framing=False)

    v4, v6 = cls == ET_IPV4, cls == ET_IPV6
    np.copyto(ip_off, eoff, where=v4 | v6)
    hint[v4], hint[v6] = 4, 6
    bad[cls == ET_OTHER] = NON_IP


def ppp(
    buf: np.ndarray,
    data_off: np.ndarray,
    caplen: np.ndarray,
    r: np.ndarray,
    pos: np.ndarray,
    ip_off: np.ndarray,
    hint: np.ndarray,
    bad: np.ndarray,
    *,
    framing: bool,
) -> None:
    """PPP frames of rows ``r`` whose PPP header starts ``pos`` bytes into the frame; fills ip_off/hint/bad.

    ``framing``: an address/control pair ff 03 may come first (RFC 1662; absent when compressed). The protocol
    field is two bytes, or one when compressed (RFC 1661 6.5: an odd first byte); 0x21 IPv4, 0x57 IPv6.
    """
    if framing:
        hdlc = (caplen[r] >= pos + 2) & (be16(buf, data_off[r] + pos) == 0xFF03)
        pos = pos + 2 * hdlc
    b0 = u8(buf, data_off[r] + pos)
    one = (b0 & 1) == 1
    width = np.where(one, 1, 2)
    short = caplen[r] < pos + width
    bad[r[short]] = TRUNC_LINK
    ok = ~short
    r, pos, one, b0, width = r[ok], pos[ok], one[ok], b0[ok], width[ok]
    proto = np.where(one, b0, be16(buf, data_off[r] + pos))
    for version, number in PPP_IP.items():
        m = proto == number
        ip_off[r[m]] = pos[m] + width[m]
        hint[r[m]] = version
    bad[r[(proto != PPP_IP[4]) & (proto != PPP_IP[6])]] = NON_IP
