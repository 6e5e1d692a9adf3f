"""The slow path: link layers the columnar decoder does not cover, peeled frame by frame with dpkt.

IEEE 802.11 captures (link type 105), with a radiotap header (127) or a PPI header (192) in front, vary
in too many ways for whole-array code to pay off (radiotap's optional fields, 802.11's address layouts,
QoS and HT control fields, protected frames) and are rare on a sensor, so their frames go through dpkt
in bulk: ``locate`` takes every such frame of a chunk and returns, per frame, the EtherType the frame
carries and where the bytes after it start, or the name of the reason it carries none. From there the
columnar decoder takes over (VLAN tags, IP, transport, tunnels), so the rules after the link layer are
the same on both paths.

Rules (``features.capture.decode_ref`` calls this module for the same link types, so the reference and
the columnar decoder agree by construction; the tests check the offsets against hand-made frames):

* PPI (192): version 0, an 8-byte header giving its own length (little-endian) and the link type of the
  frame after it: 105 (802.11) or 1 (Ethernet: EtherType at 12); any other is ``unsupported_linktype``.
* Radiotap (127): the header's length field says where the 802.11 frame starts; its flags field says
  whether the frame ends with a 4-byte FCS.
* 802.11 (105): only data frames (plain or QoS) that are not protected carry IP: management, control,
  null-data, encrypted and A-MSDU frames are ``non_ip``. QoS data frames with the Order bit carry a
  4-byte HT Control field (which dpkt does not skip, so we do). The payload must start with an
  LLC/SNAP header (AA AA 03, OUI, EtherType): the EtherType follows it.
* A frame too short for what its headers announce is ``truncated_link``.
"""

from __future__ import annotations

import struct
from collections.abc import Sequence

SLOW_LINKTYPES = frozenset({105, 127, 192})
_ETHERNET = 1

Located = tuple[int, int] | str  # (EtherType, offset just after it) or a bad name


def locate(frames: Sequence[bytes], linktype: int) -> list[Located]:
    """For each frame of ``linktype`` (one of ``SLOW_LINKTYPES``): (EtherType, offset after it) or a bad name."""
    one = _LINKS[linktype]
    return [one(f) for f in frames]


def _ppi(frame: bytes) -> Located:
    if len(frame) < 8:
        return "truncated_link"
    version, _flags, length, dlt = struct.unpack_from("<BBHI", frame)
    if version != 0 or length < 8:
        return "non_ip"
    if len(frame) < length:
        return "truncated_link"
    if dlt == 105:
        return _shift(_ieee80211(frame[length:], False), length)
    if dlt == _ETHERNET:
        if len(frame) < length + 14:
            return "truncated_link"
        return struct.unpack_from(">H", frame, length + 12)[0], length + 14
    return "unsupported_linktype"


def _radiotap(frame: bytes) -> Located:
    import dpkt  # here, not at the top: only these rare link types need it, and it costs every scan ~50 ms to load

    if len(frame) < 8:
        return "truncated_link"
    try:
        rt = dpkt.radiotap.Radiotap(frame[: min(len(frame), struct.unpack_from("<H", frame, 2)[0])])
    except (dpkt.UnpackError, struct.error, IndexError):
        return "truncated_link"
    length = int(rt.length)
    if length < 8 or len(frame) < length:
        return "truncated_link"
    fcs = bool(rt.flags_present and rt.flags.fcs)
    return _shift(_ieee80211(frame[length:], fcs), length)


def _plain80211(frame: bytes) -> Located:
    return _ieee80211(frame, False)


def _ieee80211(buf: bytes, fcs: bool) -> Located:
    """(EtherType, offset after it) of an 802.11 frame (FCS at its end when ``fcs``), or a bad name."""
    import dpkt

    if len(buf) < 2:
        return "truncated_link"
    fc = buf[0]
    if (fc >> 2) & 3 != dpkt.ieee80211.DATA_TYPE:
        return "non_ip"  # management and control frames carry no IP
    try:
        w = dpkt.ieee80211.IEEE80211(buf, fcs=fcs)
    except dpkt.NeedData:
        return "truncated_link"
    except (dpkt.UnpackError, struct.error, IndexError):
        return "non_ip"
    if w.subtype not in (dpkt.ieee80211.D_DATA, dpkt.ieee80211.D_QOS_DATA) or w.wep:
        return "non_ip"  # null data, CF-only and protected (encrypted) frames
    body = len(buf) - (4 if fcs else 0) - len(w.data)  # dpkt strips the header (and the FCS) from .data
    if w.subtype == dpkt.ieee80211.D_QOS_DATA:
        qos = buf[body - 2] if body >= 2 else 0
        if qos & 0x80:
            return "non_ip"  # A-MSDU: several subframes, each with its own header
        if w.order:
            body += 4  # HT Control
    if len(buf) - (4 if fcs else 0) < body + 8:
        return "truncated_link"
    if buf[body : body + 3] != b"\xaa\xaa\x03":
        return "non_ip"
    return struct.unpack_from(">H", buf, body + 6)[0], body + 8


def _shift(loc: Located, by: int) -> Located:
    return loc if isinstance(loc, str) else (loc[0], loc[1] + by)


_LINKS = {105: _plain80211, 127: _radiotap, 192: _ppi}
