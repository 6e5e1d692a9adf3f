"""Record chunks to PacketBatch: IP and transport headers decoded in bulk with numpy.

The rules are written out once, per packet, in ``features.capture.decode_ref``; this module applies them to
whole chunks (tests require identical output on real and generated frames). Header bytes are gathered
into small fixed-width matrices that start at each layer (link, IP, transport), so fields are column
slices; variable-depth walks (VLAN, MPLS, IPv6 extension headers) loop over the few rows that need them.
There is no per-packet Python except copying the payload bytes kept for content features (and the slow
path's link layers, ``features.capture.slowpath``).

Tunnels (``features.capture.tunnels``: GRE, ERSPAN, PPTP, IP-in-IP, 6in4, VXLAN, Geneve, Teredo, GTP-U) are
decapsulated: the inner frames of a chunk's tunnel packets are decoded as one more chunk (same buffer,
shifted offsets) and their rows replace the outer ones, tagged with the tunnel. ``decap=False`` keeps the
outer packets instead.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

import numpy as np

from features.capture.decode_ref import IPV6_EXT, MAX_EXT
from features.capture.linktypes import (
    BAD_IP,
    BAD_NAMES,
    BAD_TCP,
    HINT_ANY,
    HINT_GUESS,
    KEEP,
    NON_IP,
    TRUNC_IP,
    TRUNC_TRANSPORT,
    be16,
    resolve,
    u8,
)
from features.capture.packets import CONTENT_PORTS, CONTENT_SNAP, PACKET_COLUMNS, PacketBatch
from features.capture.pcap import RecordChunk, gather
from features.capture.tunnels import MAX_DEPTH, find, tunnel_ids, tunnel_text

_EXT = np.zeros(256, bool)  # lookup tables: cheaper than np.isin
_EXT[list(IPV6_EXT)] = True
_CONTENT = np.zeros(1 << 16, bool)
_CONTENT[list(CONTENT_PORTS)] = True
_TUNNEL_PORT = np.zeros(1 << 16, bool)  # UDP ports a tunnel may use (sport -1 reads as 65535: False)
_TUNNEL_PORT[[4789, 6081, 2152, 3544]] = True
_TUNNEL_PROTO = np.zeros(256, bool)  # IP protocols that carry tunnels: IP-in-IP, IPv6, GRE
_TUNNEL_PROTO[[4, 41, 47]] = True


def _be(m: np.ndarray, lo: int, hi: int) -> np.ndarray:
    """Big-endian unsigned int in bytes lo..hi-1 of each row of a C-contiguous (n, w) uint8 matrix, as int64.

    Every header field read this way is aligned to its own size from the start of its layer, so the
    matrix is reinterpreted as big-endian 2- or 4-byte columns instead of shifting byte by byte.
    """
    size = hi - lo
    assert lo % size == 0, "unaligned field"
    return m.view(f">u{size}")[:, lo // size].astype(np.int64)


@dataclass
class _Level:
    """Rows decoded from one set of frames (the captured ones, or the inner frames of tunnel packets)."""

    cols: dict[str, np.ndarray]  # PACKET_COLUMNS but "tunnel", rows in pkt_idx order
    bad: np.ndarray  # (len(BAD_NAMES),) counts
    payload_idx: np.ndarray
    payloads: list[bytes]
    chain: np.ndarray | None = None  # (rows,) uint64 tunnel kinds, outermost in the low byte; None: no tunnel
    ends: np.ndarray | None = None  # (rows, 4) uint64 the outermost tunnel's src_hi, src_lo, dst_hi, dst_lo


def decode_chunk(rc: RecordChunk, *, payloads: bool = True, decap: bool = True) -> PacketBatch:
    """Decode every frame of a chunk; one row per IP packet, bad frames counted by name.

    ``payloads=False`` skips copying payload snippets (``payload_idx``/``payloads`` stay empty);
    ``decap=False`` keeps tunnel packets as they are instead of decoding the packets inside.
    """
    n = len(rc)
    pkt_idx = rc.pkt_idx if rc.pkt_idx is not None else rc.first_idx + np.arange(n, dtype=np.int64)
    lvl = _decode(rc.buf, rc.data_off, rc.caplen, rc.wirelen, rc.ts_ns, rc.linktype, pkt_idx, payloads, decap, 0)
    cols = lvl.cols
    rows = cols["ts_ns"].shape[0]
    tunnel = np.zeros(rows, np.uint64)
    names: dict[int, str] = {}
    if lvl.chain is not None and lvl.ends is not None:
        has = np.flatnonzero(lvl.chain)
        tunnel[has] = tunnel_ids(lvl.chain[has], lvl.ends[has])
        uniq, first = np.unique(tunnel[has], return_index=True)
        for t, i in zip(uniq.tolist(), has[first].tolist(), strict=True):
            names[t] = tunnel_text(int(lvl.chain[i]), tuple(int(x) for x in lvl.ends[i]))  # type: ignore[arg-type]
    cols["tunnel"] = tunnel
    batch = PacketBatch({k: np.asarray(cols[k], dtype=dt) for k, dt in PACKET_COLUMNS.items()}, records=n)
    batch.bad = Counter({BAD_NAMES[i]: int(v) for i, v in enumerate(lvl.bad.tolist()) if i and v})
    batch.tunnels = names
    batch.payload_idx, batch.payloads = lvl.payload_idx, lvl.payloads
    return batch


def _decode(
    buf: np.ndarray,
    data_off: np.ndarray,
    caplen: np.ndarray,
    wirelen: np.ndarray,
    ts_ns: np.ndarray,
    linktype: np.ndarray,
    pkt_idx: np.ndarray,
    payloads: bool,
    decap: bool,
    depth: int,
) -> _Level:
    """Decode the frames at ``data_off`` (all (n,) columns); tunnel packets' inner frames one level deeper."""
    lk = resolve(buf, data_off, caplen, linktype)
    code = lk.bad.copy()  # (n,) final bad code per frame
    r = np.flatnonzero(lk.ip_off >= 0)  # frames with an IP header to read; below, arrays are (m,) over r
    base, cap, io = data_off[r], caplen[r], lk.ip_off[r]
    wire, hint = wirelen[r], lk.hint[r].astype(np.int64)
    avail = cap - io
    P = gather(buf, base + io, 40)  # (m, 40) the first 40 bytes from the IP header on
    ver = (P[:, 0] >> 4).astype(np.int64)
    okv = (ver == 4) | (ver == 6)
    is4, is6 = ver == 4, ver == 6
    ihl = (P[:, 0] & 15).astype(np.int64) * 4
    tot = _be(P, 2, 4)
    tot = np.where(tot == 0, np.maximum(ihl, wire - io), tot)
    plen, nh = _be(P, 4, 6), P[:, 6].astype(np.int64)
    len6 = np.where((plen == 0) & (nh != 59), np.maximum(40, wire - io), 40 + plen)
    c = np.select(
        [
            avail < 1,
            (hint == HINT_GUESS) & ~okv,
            (((hint == HINT_ANY) | (hint == HINT_GUESS)) & ~okv) | ((hint == 4) | (hint == 6)) & (ver != hint),
            is4 & (avail < 20),
            is4 & (ihl < 20),
            is4 & (avail < ihl),
            is4 & (tot < ihl),
            is6 & (avail < 40),
        ],
        [TRUNC_IP, NON_IP, BAD_IP, TRUNC_IP, BAD_IP, TRUNC_IP, BAD_IP, TRUNC_IP],
        0,
    )
    ip_len = np.where(is4, tot, len6)
    proto = np.where(is4, P[:, 9], nh)
    t_off = io + np.where(is4, ihl, 40)
    ff = _be(P, 6, 8)
    foff4, mf4 = (ff & 0x1FFF) * 8, (ff & 0x2000) > 0
    frag4 = is4 & ((foff4 > 0) | mf4)
    ip_id = np.where(frag4, _be(P, 4, 6), 0)
    frag_off = np.where(frag4, foff4, 0)
    more = frag4 & mf4
    nonfirst = frag4 & (foff4 > 0)
    stopped = np.zeros(len(r), bool)
    a6 = P.view(">u8")[:, 1:5].astype(np.uint64)  # (m, 4) src hi/lo, dst hi/lo
    v4map = np.uint64(0xFFFF_0000_0000)
    src_hi = np.where(is4, np.uint64(0), a6[:, 0])
    src_lo = np.where(is4, v4map | _be(P, 12, 16).astype(np.uint64), a6[:, 1])
    dst_hi = np.where(is4, np.uint64(0), a6[:, 2])
    dst_lo = np.where(is4, v4map | _be(P, 16, 20).astype(np.uint64), a6[:, 3])

    cur = np.flatnonzero((c == 0) & is6 & _EXT[proto])
    for _ in range(MAX_EXT):  # IPv6 extension headers, one layer per pass over the rows still inside them
        if not len(cur):
            break
        isfr = proto[cur] == 44
        f, o = cur[isfr], cur[~isfr]
        short = cap[f] < t_off[f] + 8
        stopped[f[short]] = True
        f = f[~short]
        pos = base[f] + t_off[f]
        fr = be16(buf, pos + 2)
        fo, mf = fr & 0xFFF8, fr & 1
        isf = (fo > 0) | (mf > 0)
        g = f[isf]
        ip_id[g] = (be16(buf, pos + 4) << 16 | be16(buf, pos + 6))[isf]
        frag_off[g], more[g] = fo[isf], mf[isf] > 0
        frag4[g] = True  # from here on: "is_frag" for both versions
        proto[f] = u8(buf, pos)
        t_off[f] += 8
        nonfirst[f[fo > 0]] = True
        short = cap[o] < t_off[o] + 2
        stopped[o[short]] = True
        o = o[~short]
        pos = base[o] + t_off[o]
        ln = u8(buf, pos + 1)
        hl = np.where(proto[o] == 51, (ln + 2) * 4, (ln + 1) * 8)
        proto[o] = u8(buf, pos)
        t_off[o] += hl
        cur = np.concatenate([f[fo == 0], o])
        cur = cur[_EXT[proto[cur]]]

    good = c == 0
    c[good & stopped] = TRUNC_TRANSPORT
    ip_end = io + ip_len
    a = np.minimum(cap, ip_end) - t_off  # transport bytes we may read
    T = gather(buf, base + t_off, 20)  # (m, 20) from the transport header on
    live = good & ~nonfirst & ~stopped
    tcp, udp = live & (proto == 6), live & (proto == 17)
    icmp = live & ((proto == 1) | (proto == 58))
    ports = (tcp | udp) & (a >= 4)
    sport = np.where(ports, _be(T, 0, 2), -1)
    dport = np.where(ports, _be(T, 2, 4), -1)
    ticm = icmp & (a >= 2)
    itype = np.where(ticm, T[:, 0].astype(np.int64), -1)
    icode = np.where(ticm, T[:, 1].astype(np.int64), -1)
    full = tcp & (a >= 20)
    flags = np.where(full, T[:, 13], 0)
    seq, ack = np.where(full, _be(T, 4, 8), 0), np.where(full, _be(T, 8, 12), 0)
    win = np.where(full, _be(T, 14, 16), 0)
    doff = (T[:, 12] >> 4).astype(np.int64)
    badtcp = full & (doff < 5)
    thl = np.select([full & ~badtcp, tcp, udp | icmp], [doff * 4, 20, 8], 0)
    c[(tcp & (a < 20)) | ((udp | icmp) & (a < 8))] = TRUNC_TRANSPORT
    c[badtcp] = BAD_TCP
    payload_len = np.maximum(0, ip_end - t_off - thl)

    code[r] = c
    keep = (c == 0) | (c >= KEEP)  # (m,)
    inner: _Level | None = None
    if decap and depth < MAX_DEPTH:
        udp = (proto == 17) & (_TUNNEL_PORT[sport & 0xFFFF] | _TUNNEL_PORT[dport & 0xFFFF] | (T[:, 8] >> 4 == 6))
        cand = (c == 0) & ~frag4 & (_TUNNEL_PROTO[proto] | udp)  # T: 20 bytes from the transport header on
        if cand.any():
            cap_end = np.minimum(cap, ip_end)
            tix, toff, tlt, tkind = find(buf, base, t_off, cap_end, ip_end, proto, sport, dport, cand)
            if tix.size:
                keep[tix] = False
                inner = _decode(
                    buf,
                    base[tix] + toff,
                    cap_end[tix] - toff,
                    ip_end[tix] - toff,
                    ts_ns[r[tix]],
                    tlt.astype(np.int32),
                    pkt_idx[r[tix]],
                    payloads,
                    decap,
                    depth + 1,
                )
                src = np.stack([src_hi, src_lo, dst_hi, dst_lo], axis=1)[tix]  # (t, 4) this level's tunnel ends
                outer_vlan = lk.vlan[r[tix]]
    cols = {
        "pkt_idx": pkt_idx[r],
        "ts_ns": ts_ns[r],
        "vlan": lk.vlan[r],
        "ip_version": ver,
        "proto": proto,
        "src_hi": src_hi,
        "src_lo": src_lo,
        "dst_hi": dst_hi,
        "dst_lo": dst_lo,
        "sport": sport,
        "dport": dport,
        "icmp_type": itype,
        "icmp_code": icode,
        "tcp_flags": flags,
        "tcp_seq": seq,
        "tcp_ack": ack,
        "tcp_win": win,
        "ip_len": ip_len,
        "payload_len": payload_len,
        "ip_id": ip_id,
        "frag_off": frag_off,
        "more_frags": more,
        "is_frag": frag4,
    }
    names = [k for k in PACKET_COLUMNS if k != "tunnel"]
    if keep.all():
        out = {k: np.asarray(cols[k], dtype=PACKET_COLUMNS[k]) for k in names}
    else:
        ki = np.flatnonzero(keep)
        out = {k: np.asarray(cols[k][ki], dtype=PACKET_COLUMNS[k]) for k in names}
    lvl = _Level(out, np.bincount(code, minlength=len(BAD_NAMES)), np.zeros(0, np.int64), [])

    if payloads:
        # Payload bytes for content features: TCP on CONTENT_PORTS with a complete header and captured data.
        want = full & ~badtcp & (_CONTENT[sport & 0xFFFF] | _CONTENT[dport & 0xFFFF])
        k = np.minimum(np.minimum(ip_end, cap) - t_off - thl, CONTENT_SNAP)
        sel = np.flatnonzero(want & (k > 0))
        if len(sel):
            starts = (base + t_off + thl)[sel].tolist()
            lvl.payload_idx = pkt_idx[r[sel]].astype(np.int64)
            mv = buf.data
            lvl.payloads = [bytes(mv[s : s + ln]) for s, ln in zip(starts, k[sel].tolist(), strict=True)]
    if inner is not None:
        _merge(lvl, inner, pkt_idx[r[tix]], tkind, src, outer_vlan)
    return lvl


def _merge(
    lvl: _Level, inner: _Level, outer_idx: np.ndarray, kind: np.ndarray, ends: np.ndarray, outer_vlan: np.ndarray
) -> None:
    """Add the rows decoded inside tunnel packets to ``lvl``, each tagged with its tunnel, in pkt_idx order.

    ``outer_idx``, ``kind``, ``ends``, ``outer_vlan``: (t,) pkt_idx, tunnel kind, (t, 4) endpoints and VLAN of the
    tunnel packets at this level.
    """
    order = np.argsort(outer_idx)
    at = order[np.searchsorted(outer_idx[order], inner.cols["pkt_idx"])]  # (k,) tunnel packet of each inner row
    deeper = inner.chain if inner.chain is not None else np.zeros(at.size, np.uint64)
    chain = kind[at].astype(np.uint64) | (deeper << np.uint64(8))
    inner.cols["vlan"] = np.where(outer_vlan[at] >= 0, outer_vlan[at], inner.cols["vlan"]).astype(np.int32)
    rows = lvl.cols["pkt_idx"].shape[0]
    merged = {k: np.concatenate([v, inner.cols[k]]) for k, v in lvl.cols.items()}
    sort = np.argsort(merged["pkt_idx"], kind="stable")
    lvl.cols = {k: v[sort] for k, v in merged.items()}
    lvl.chain = np.concatenate([np.zeros(rows, np.uint64), chain])[sort]
    lvl.ends = np.concatenate([np.zeros((rows, 4), np.uint64), ends[at].astype(np.uint64)])[sort]
    lvl.bad = lvl.bad + inner.bad
    if inner.payloads:
        idx = np.concatenate([lvl.payload_idx, inner.payload_idx])
        pays = lvl.payloads + inner.payloads
        o = np.argsort(idx, kind="stable")
        lvl.payload_idx = idx[o]
        lvl.payloads = [pays[i] for i in o.tolist()]
