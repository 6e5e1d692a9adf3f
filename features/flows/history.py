"""Zeek history letters for TCP packets, vectorised per (flow, direction), continuing across batches.

Per packet at most three letters, in Zeek's order: the main letter (``S H A D F R I Q``), ``w`` (zero
window) and ``t`` (retransmitted payload). Rules, as Zeek's TCP analyzer applies them:

* ``A D I Q`` at most once per direction;
* ``S H`` (one shared SYN mask), ``F`` and ``R`` again only when the sequence number differs from the
  previous packet of the same mask in that direction (``F`` compares seq + payload length), so pure
  retransmissions never repeat a letter;
* ``t`` when a packet with payload ends at or before the highest sequence end already seen in that
  direction, ``w`` for a zero window (not on RST, not after the peer's FIN or this side's RST); both
  logarithmic: the letter is added at the 1st, 10th, 100th ... event.

``c`` (bad checksum) and ``g`` (content gap) are not produced: checksums are not verified and
acknowledged-but-unseen data is not tracked. Sequence numbers are compared within +-2 GiB of the
direction's first sequence number.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from features.flows.segments import prev_in_seg, seg_cummax, seg_cumsum, seg_ids
from features.flows.tcpstate import _MASK_BIT, FIN_BIT, LETTERS, RST_BIT, SYN_BIT

NONE = -(1 << 62)  # "no value yet" for sequence state
_POW10 = np.array([10**k for k in range(19)], np.int64)
_FIN, _SYN, _RST = 0x01, 0x02, 0x04


@dataclass
class DirState:
    """History state of each (flow, direction) group, as arrays indexed by group (2 * flow + direction)."""

    mask: np.ndarray  # bits of the letter masks already seen
    last_syn: np.ndarray  # seq of the last SYN-mask packet (valid when the SYN bit is set)
    last_fin: np.ndarray  # seq + len of the last FIN
    last_rst: np.ndarray  # seq of the last RST
    base: np.ndarray  # first sequence number seen (-1: none)
    max_end: np.ndarray  # highest relative sequence end seen (NONE: none)
    t_cnt: np.ndarray  # retransmissions so far
    w_cnt: np.ndarray  # zero windows so far

    @staticmethod
    def empty(n: int) -> DirState:
        z = np.zeros(n, np.int64)
        return DirState(z.copy(), z.copy(), z.copy(), z.copy(), np.full(n, -1, np.int64), np.full(n, NONE), z.copy(), z)


def _log_hit(count_incl: np.ndarray, event: np.ndarray) -> np.ndarray:
    """True where an event brings its running count to 1, 10, 100, ... (only event rows are tested)."""
    hit = np.zeros(event.shape, bool)
    idx = np.flatnonzero(event)
    hit[idx] = np.isin(count_incl[idx], _POW10)
    return hit


def tcp_letters(
    group: np.ndarray,
    cls: np.ndarray,
    from_orig: np.ndarray,
    flags: np.ndarray,
    seq: np.ndarray,
    plen: np.ndarray,
    win: np.ndarray,
    peer_fin_before: np.ndarray,
    own_rst_before: np.ndarray,
    init: DirState,
) -> tuple[np.ndarray, DirState]:
    """Letters for n TCP packets in time order; returns ((n, 3) uint8 letters, 0 = none) and the new group state.

    ``group`` is 2 * flow + direction (an index into ``init``'s arrays, which are updated copies in the
    result). ``cls`` comes from ``features.flows.tcpstate.packet_class``.
    """
    n = group.size
    out = np.zeros((n, 3), np.uint8)
    st = DirState(**{k: v.copy() for k, v in vars(init).items()})
    if n == 0:
        return out, st
    o = np.argsort(group, kind="stable")  # (n,) rows grouped by (flow, direction), time order inside
    g = group[o]
    start = np.ones(n, bool)
    start[1:] = g[1:] != g[:-1]
    last = np.ones(n, bool)
    last[:-1] = start[1:]
    c = cls[o]
    bit = _MASK_BIT[c]
    s = seq[o].astype(np.int64)
    ln = plen[o].astype(np.int64)
    f = flags[o].astype(np.int64)
    rst = (f & _RST) > 0

    qualify = np.zeros(n, bool)
    for b in (1, 2, 4, 8, 16, 32, 64):
        member = bit == b
        if not member.any():
            continue
        first = member & (seg_cumsum(member, start, inclusive=False) == 0) & ((st.mask[g] & b) == 0)
        qualify |= first
        if b in (SYN_BIT, FIN_BIT, RST_BIT):
            mi = np.flatnonzero(member)
            gm = g[mi]
            val = (s[mi] + ln[mi]) & 0xFFFFFFFF if b == FIN_BIT else s[mi]
            store = {SYN_BIT: st.last_syn, FIN_BIT: st.last_fin, RST_BIT: st.last_rst}[b]
            firstm = np.ones(mi.size, bool)
            firstm[1:] = gm[1:] != gm[:-1]
            prev = np.empty_like(val)
            prev[1:] = val[:-1]
            prev[firstm] = store[gm[firstm]]
            had = ~firstm | ((st.mask[gm] & b) > 0)
            qualify[mi] |= ~had | (val != prev)
            lastm = np.ones(mi.size, bool)
            lastm[:-1] = firstm[1:]
            store[gm[lastm]] = val[lastm]
        st.mask[g[member]] |= b
    fo = from_orig[o]
    main = np.where(qualify, LETTERS[c], 0).astype(np.uint8)
    main = np.where(fo | (main == 0), main, main + 32).astype(np.uint8)  # lower case for the responder

    # Retransmissions: payload ending at or before the highest sequence end already seen.
    base = st.base[g]
    first_seq = s[np.flatnonzero(start)][seg_ids(start)]
    base = np.where(base >= 0, base, first_seq)
    seg_end = (s + ln + ((f & _SYN) > 0) + ((f & _FIN) > 0)) & 0xFFFFFFFF
    rel = ((seg_end - base + (1 << 31)) & 0xFFFFFFFF) - (1 << 31)
    cm = seg_cummax(rel, start)
    prior = np.maximum(prev_in_seg(cm, start, NONE), st.max_end[g])
    rx = (ln > 0) & ~rst & (prior != NONE) & (rel <= prior)
    t_cnt = seg_cumsum(rx, start) + st.t_cnt[g]
    zw = (win[o] == 0) & ~rst & ~peer_fin_before[o] & ~own_rst_before[o]
    w_cnt = seg_cumsum(zw, start) + st.w_cnt[g]
    lower = np.where(fo, 0, 32).astype(np.uint8)
    w_l = np.where(_log_hit(w_cnt, zw), ord("W") + lower, 0).astype(np.uint8)
    t_l = np.where(_log_hit(t_cnt, rx), ord("T") + lower, 0).astype(np.uint8)

    gl = g[last]
    st.base[gl] = base[last]
    st.max_end[gl] = np.maximum(st.max_end[gl], cm[last])
    st.t_cnt[gl] = t_cnt[last]
    st.w_cnt[gl] = w_cnt[last]

    out[o, 0] = main
    out[o, 1] = w_l
    out[o, 2] = t_l
    return out, st
