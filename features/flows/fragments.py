"""IP fragments: attribute non-first fragments to their datagram's flow and flag wrong fragments.

A datagram is identified by (VLAN, src, dst, protocol, IP id). A non-first fragment takes the ports
(ICMP type/code) of the nearest first fragment of its datagram id at or before it, else the next one
after it, within ``FRAG_WINDOW_S`` (so it is held back across batches until that first fragment can
no longer arrive); with none, it stays an orphan and forms a flow without ports.

A fragment is *wrong* (NSL-KDD's ``wrong_fragment``) when it reaches past 65,535 bytes (ping of death) or
overlaps an earlier fragment of the same datagram without being its exact duplicate (teardrop and
kin). A datagram instance starts at a first fragment that follows a last fragment (MF clear) of the
same id, so IP ids reused by later datagrams are not compared with old ones. Only the previous
``_MAX_PAIRS`` fragments of an instance are compared, which bounds the work on fragment floods.
Extents: non-first fragments carry ``payload_len`` bytes; a first fragment carries its transport header
too (8 bytes UDP/ICMP, at least 20 TCP: options are not known here, so overlaps hidden in them are missed).
"""

from __future__ import annotations

import numpy as np

from features.capture.packets import PACKET_COLUMNS

FRAG_WINDOW_S = 30.0  # Linux's ipfrag_time: a datagram's fragments arrive within this
_NS = 1_000_000_000
_MAX_PAIRS = 64
_DKEY = ("vlan", "tunnel", "src_hi", "src_lo", "dst_hi", "dst_lo", "proto", "ip_id")
_PORTS = ("sport", "dport", "icmp_type", "icmp_code")


def _empty() -> dict[str, np.ndarray]:
    return {k: np.zeros(0, dt) for k, dt in PACKET_COLUMNS.items()}


def _cat(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([a[k], b[k]]) for k in a}


def _take(c: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in c.items()}


class FragmentTracker:
    """Per capture file: fragments seen in the last window (context) and non-first fragments held back."""

    def __init__(self, window_s: float = FRAG_WINDOW_S) -> None:
        self.window = int(window_s * _NS)
        self._seen = _empty() | {"wrong": np.zeros(0, np.int32)}  # fragments already passed on (context)
        self._held = _empty()  # unresolved non-first fragments, not yet passed on
        self._watermark = np.iinfo(np.int64).min

    def held_ts(self) -> np.ndarray:
        """Timestamps of the non-first fragments held back (they may still start flows)."""
        return self._held["ts_ns"]

    def resolve(self, cols: dict[str, np.ndarray] | None, final: bool) -> dict[str, np.ndarray]:
        """Return the packets to build flows from: ``cols`` plus released held fragments, with two more columns.

        ``frag_tail`` (bool): a non-first fragment (no transport header of its own); ``wrong`` (int32): 1 for
        a wrong fragment. Non-first fragments get their datagram's ports; unresolved ones may be held back.
        """
        c = _empty() if cols is None else cols
        if c["ts_ns"].size:
            self._watermark = max(self._watermark, int(c["ts_ns"].max()))
        held_n = self._held["ts_ns"].size
        if held_n:
            c = _cat(self._held, c)
            self._held = _empty()
        n = c["ts_ns"].size
        out = dict(c)
        for k in _PORTS:
            out[k] = c[k].copy()  # filled in below; never write into the caller's batch
        out["frag_tail"] = c["is_frag"] & (c["frag_off"] > 0)
        out["wrong"] = np.zeros(n, np.int32)
        fidx = np.flatnonzero(c["is_frag"])
        if fidx.size == 0:
            return out
        ctx_n = self._seen["ts_ns"].size
        f = _cat({k: self._seen[k] for k in c}, _take(c, fidx))
        is_ctx = np.arange(f["ts_ns"].size) < ctx_n
        order = np.lexsort((f["ts_ns"], *(f[k] for k in reversed(_DKEY))))
        f = _take(f, order)
        is_ctx = is_ctx[order]
        row = np.full(order.size, -1, np.int64)  # index into c for new rows
        row[~is_ctx] = fidx[order[~is_ctx] - ctx_n]
        m = order.size
        kstart = np.ones(m, bool)
        for k in _DKEY:
            kstart[1:] &= f[k][1:] == f[k][:-1]
        kstart = ~kstart
        kstart[0] = True
        kid = np.cumsum(kstart) - 1
        off = f["frag_off"].astype(np.int64)
        first = off == 0
        ts = f["ts_ns"]
        # Ports from the nearest first fragment before (else after) within the window.
        idx = np.arange(m)
        before = np.maximum.accumulate(np.where(first, idx, -1))
        after = np.minimum.accumulate(np.where(first, idx, m)[::-1])[::-1]
        bi, ai = np.maximum(before, 0), np.minimum(after, m - 1)
        ok_b = (before >= 0) & (kid[bi] == kid) & (ts - ts[bi] <= self.window)
        ok_a = (after < m) & (kid[ai] == kid) & (ts[ai] - ts <= self.window)
        src = np.where(ok_b, bi, np.where(ok_a, ai, -1))
        tail = ~first
        for k in _PORTS:
            f[k] = np.where(tail & (src >= 0), f[k][np.maximum(src, 0)], f[k])
        # Wrong fragments: past 65,535 bytes, or overlapping an earlier fragment of the same instance.
        thl = np.select([f["proto"] == 6, (f["proto"] == 17) | (f["proto"] == 1) | (f["proto"] == 58)], [20, 8], 0)
        end = off + f["payload_len"].astype(np.int64) + np.where(first, thl, 0)
        prev_last = np.zeros(m, bool)
        prev_last[1:] = ~f["more_frags"][:-1]
        gap = np.zeros(m, np.int64)
        gap[1:] = ts[1:] - ts[:-1]
        inst_start = kstart | (first & prev_last) | (gap > self.window)
        inst = np.cumsum(inst_start) - 1
        pos = idx - np.flatnonzero(inst_start)[inst]
        npair = np.minimum(pos, _MAX_PAIRS)
        rep_i = np.repeat(idx, npair)
        t = np.arange(rep_i.size) - np.repeat(np.cumsum(npair) - npair, npair) + 1
        j = rep_i - t
        hit = (off[j] < end[rep_i]) & (off[rep_i] < end[j]) & ~((off[j] == off[rep_i]) & (end[j] == end[rep_i]))
        overlap = np.bincount(rep_i[hit], minlength=m) > 0
        wrong = (overlap | (end > 65535)).astype(np.int32)
        f["wrong"] = wrong
        new = ~is_ctx
        for k in _PORTS:
            out[k][row[new]] = f[k][new]
        out["wrong"][row[new]] = wrong[new]
        # Hold unresolved tails while their first fragment may still arrive.
        unresolved = new & tail & (src < 0)
        wait = unresolved & (not final) & (self._watermark - ts <= self.window)
        held_rows = row[wait]
        keep = np.ones(n, bool)
        keep[held_rows] = False
        self._held = _take(c, np.sort(held_rows))
        # Context for later batches: fragments passed on in the last window (held ones come back later).
        passed = (is_ctx | ~wait) & (ts >= self._watermark - self.window)
        self._seen = {k: f[k][passed] for k in (*PACKET_COLUMNS, "wrong")}
        return _take(out, np.flatnonzero(keep))
