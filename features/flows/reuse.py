"""TCP connection reuse on an open flow, as Zeek's ``IsReuse`` and tshark decide it.

A packet with SYN and without ACK starts a new flow when its sequence number differs from the
originator's start sequence (a SYN retransmission keeps the same one). The start sequence of a flow is
that of its first packet with SYN, else it is inferred as Zeek does for partial connections: a flipped
flow's SYN-ACK acknowledges ISN + 1, a mid-stream first packet starts at ISN + 1. Within a flow every SYN that
did not start a new flow carries the current ISN, so the rule has a closed form: a SYN starts a new flow
iff its sequence number differs from the previous SYN's in the flow (or the start sequence).

Half-open reuse (backscatter): in a flow that began with a SYN-ACK, while the originator has sent
nothing, a SYN-ACK with a new sequence number from the responder starts a new flow too.

Carried across batches per open flow: ``isn`` (start sequence for the SYN rule), ``hsn`` (last SYN-ACK
sequence), ``hside`` (the SYN-ACK sender's key direction, -1 when the rule no longer applies).
"""

from __future__ import annotations

import numpy as np

from features.flows.segments import seg_cumsum, seg_ids

_SYN, _ACK = 0x02, 0x10
_FLIP_MASK = 0x01 | 0x02 | 0x04 | 0x10  # as features.flows.state.FLIP_MASK
_M32 = 0xFFFFFFFF


def _ffill_prev(has: np.ndarray) -> np.ndarray:
    """Index of the last row before each row (exclusive) where ``has`` is True; -1 if none."""
    idx = np.maximum.accumulate(np.where(has, np.arange(has.size), -1)) if has.size else has.astype(np.int64)
    out = np.full(has.size, -1, np.int64)
    out[1:] = idx[:-1]
    return out


def reuse_state(r: dict[str, np.ndarray], sub: np.ndarray, start: np.ndarray) -> dict[str, np.ndarray]:
    """Per row of ``sub`` (whole segments, ``start`` flags): reuse candidates and the values to carry."""
    fl = r["flags"][sub]
    seq, ack, d = r["seq"][sub], r["ack"][sub], r["dir"][sub]
    isv = r["is_v"][sub]
    syn = (fl & (_SYN | _ACK)) == _SYN
    synack = (fl & (_SYN | _ACK)) == (_SYN | _ACK)
    sid = seg_ids(start)
    first = start
    flip = (fl & _FLIP_MASK) == (_SYN | _ACK)  # a flow whose first packet is this was flipped
    hint = np.where(flip, ack - 1, np.where((fl & _SYN) > 0, seq, seq - 1)) & _M32
    val = np.where(first, np.where(isv, r["isn"][sub], hint), np.where(syn, seq, -1))
    prev = _ffill_prev(val >= 0)
    syn_new = syn & ~first & (seq != val[np.maximum(prev, 0)])

    # Half-open: SYN-ACKs from one side while the other side has sent nothing.
    f = np.flatnonzero(first)
    side_f = np.where(isv[f], r["hside"][sub][f], np.where(flip[f], d[f], -1))
    side = side_f[sid]
    other = ~isv & (side >= 0) & (d != side)
    quiet = seg_cumsum(other, start, inclusive=False) == 0
    sa = synack & (d == side) & quiet
    val2 = np.where(first, np.where(isv, r["hsn"][sub], seq), np.where(sa, seq, -1))
    prev2 = _ffill_prev(val2 >= 0)
    sa_new = sa & ~first & (side >= 0) & (seq != val2[np.maximum(prev2, 0)])

    # Values to carry, read at each segment's last row.
    last_isn = np.maximum.accumulate(np.where(val >= 0, np.arange(sub.size), 0)) if sub.size else prev
    last_hsn = np.maximum.accumulate(np.where(val2 >= 0, np.arange(sub.size), 0)) if sub.size else prev
    still_quiet = seg_cumsum(other, start) == 0
    return {
        "cand": syn_new | sa_new,
        "sa": sa_new,
        "isn": val[last_isn] if sub.size else val,
        "hsn": val2[last_hsn] if sub.size else val2,
        "hside": np.where(still_quiet, side, -1),
    }
