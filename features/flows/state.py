"""Flow state as columns: packet keys, the sorted row table, per-flow reduction, and the output frame.

A flow state table is a dict of equal-length numpy arrays (``STATE_COLUMNS``) plus ``hist`` (object
array of str). Direction 0/1 is relative to the key's canonical endpoint order (``a`` = the smaller
(address, port)); ``odir`` says which key direction the originator sends in.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from features.capture.streams import file_of
from features.flows.history import NONE, DirState, tcp_letters
from features.flows.reuse import reuse_state
from features.flows.segments import bool_cumsum, last_of_seg, seg_cumsum, seg_ids
from features.flows.tcpstate import packet_class

NO_END = np.iinfo(np.int64).max
FLIP_MASK = 0x01 | 0x02 | 0x04 | 0x10  # FIN SYN RST ACK: only SYN+ACK among them flips a flow (not SYN+ACK+FIN...)
_FIN, _SYN, _RST, _ACK, _URG = 0x01, 0x02, 0x04, 0x10, 0x20
KEY_COLUMNS = ("vlan", "tun", "proto", "ipv", "a_hi", "a_lo", "a_port", "b_hi", "b_lo", "b_port")
_DTYPES: dict[str, type] = {
    "h": np.uint64,
    "vlan": np.int32,
    "tun": np.uint64,  # tunnel id (features.capture.tunnels), 0 when none
    "proto": np.uint8,
    "ipv": np.uint8,
    "a_hi": np.uint64,
    "a_lo": np.uint64,
    "a_port": np.int32,
    "b_hi": np.uint64,
    "b_lo": np.uint64,
    "b_port": np.int32,
    "uid": np.int64,
    "src": np.int64,  # file of the flow's first packet in its stream (features.capture.streams.file_of)
    "odir": np.int64,
    "flip": np.bool_,
    "ts0": np.int64,
    "ts1": np.int64,
    "urg": np.int64,
    "wf": np.int64,
    "end": np.int64,
    "isn": np.int64,  # features.flows.reuse: start sequence for the SYN rule
    "hsn": np.int64,  # features.flows.reuse: last SYN-ACK sequence while the other side is quiet
    "hside": np.int64,  # features.flows.reuse: SYN-ACK sender's direction, -1 when the rule no longer applies
}
for _d in (0, 1):
    for _c in ("pk", "by", "ib", "mask", "lsyn", "lfin", "lrst", "base", "mx", "tc", "wc"):
        _DTYPES[f"{_c}{_d}"] = np.int64
    for _c in ("fin", "rst"):
        _DTYPES[f"{_c}{_d}"] = np.bool_
STATE_COLUMNS = (*_DTYPES, "hist")


def empty_state() -> dict[str, np.ndarray]:
    st: dict[str, np.ndarray] = {k: np.zeros(0, t) for k, t in _DTYPES.items()}
    st["hist"] = np.zeros(0, object)
    return st


def take(st: dict[str, np.ndarray], idx: np.ndarray) -> dict[str, np.ndarray]:
    return {k: v[idx] for k, v in st.items()}


def concat(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    return {k: np.concatenate([p[k] for p in parts]) for k in STATE_COLUMNS}


def _mix(h: np.ndarray, x: np.ndarray) -> np.ndarray:
    """One splitmix64 round of ``h ^ x`` (uint64 arithmetic wraps by design: callers hold ``np.errstate``)."""
    z = (h ^ x.astype(np.uint64)) + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return z ^ (z >> np.uint64(31))


def key_hash(k: dict[str, np.ndarray]) -> np.ndarray:
    """64-bit hash of each key; the tunnel id joins the mix only where there is one (nothing to pay without)."""
    h = np.zeros(k["a_hi"].shape, np.uint64)
    with np.errstate(over="ignore"):  # once, not per round: entering it costs more than a small batch's rounds
        for c in KEY_COLUMNS:
            if c == "tun":
                continue
            h = _mix(h, k[c].astype(np.int64).view(np.uint64) if k[c].dtype != np.uint64 else k[c])
        tun = k["tun"]
        if tun.any():
            h = np.where(tun != 0, _mix(h, tun), h)
    return h


def packet_keys(c: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Canonical flow key of each packet: endpoints ordered (a < b), direction 0 when the sender is ``a``.

    ICMP/ICMPv6 are one-way records keyed (src, type) -> (dst, code) with direction 0.
    """
    icmp = (c["proto"] == 1) | (c["proto"] == 58)
    sp = np.where(icmp, c["icmp_type"].astype(np.int32), c["sport"])
    dp = np.where(icmp, c["icmp_code"].astype(np.int32), c["dport"])
    sh, sl, dh, dl = c["src_hi"], c["src_lo"], c["dst_hi"], c["dst_lo"]
    src_first = (sh < dh) | ((sh == dh) & ((sl < dl) | ((sl == dl) & (sp <= dp))))
    fwd = src_first | icmp
    k = {
        "vlan": c["vlan"],
        "tun": c["tunnel"],
        "proto": c["proto"],
        "ipv": c["ip_version"],
        "a_hi": np.where(fwd, sh, dh),
        "a_lo": np.where(fwd, sl, dl),
        "a_port": np.where(fwd, sp, dp).astype(np.int32),
        "b_hi": np.where(fwd, dh, sh),
        "b_lo": np.where(fwd, dl, sl),
        "b_port": np.where(fwd, dp, sp).astype(np.int32),
    }
    k["dir"] = (~fwd).astype(np.int64)
    k["h"] = key_hash(k)
    return k


def build_rows(
    c: dict[str, np.ndarray], k: dict[str, np.ndarray], carried: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Real packet rows plus one virtual row per carried flow, sorted by (key, virtual first, time)."""
    n, m = c["ts_ns"].size, carried["h"].size
    tcp = c["proto"] == 6
    # The decoder zeroes flags, seq, ack and window when the TCP header was not captured (snaplen): such
    # packets count in packets and bytes but move no TCP state and add no history letter, as in Zeek.
    unknown_hdr = (c["tcp_flags"] == 0) & (c["tcp_seq"] == 0) & (c["tcp_ack"] == 0) & (c["tcp_win"] == 0)
    hist_ok = tcp & ~c["frag_tail"] & ~unknown_hdr
    fl = np.where(hist_ok, c["tcp_flags"], 0).astype(np.int64)
    d = k["dir"]
    fin = (fl & _FIN) > 0
    rst = (fl & _RST) > 0
    real: dict[str, np.ndarray] = {col: k[col] for col in (*KEY_COLUMNS, "h", "dir")}
    real |= {
        "ts": c["ts_ns"],
        "is_v": np.zeros(n, bool),
        "cidx": np.full(n, -1, np.int64),
        "flags": fl,
        "tcp": tcp,
        "hist_ok": hist_ok,
        "seq": c["tcp_seq"].astype(np.int64),
        "ack": c["tcp_ack"].astype(np.int64),
        "win": c["tcp_win"].astype(np.int64),
        "plen": c["payload_len"].astype(np.int64),
        "iplen": c["ip_len"].astype(np.int64),
        "wrong": c["wrong"].astype(np.int64),
        "pkt_idx": c["pkt_idx"],
        "inp": np.arange(n, dtype=np.int64),  # row number in the input columns
        "syn_only": (fl & (_SYN | _ACK)) == _SYN,
        "isn": np.zeros(n, np.int64),
        "hsn": np.zeros(n, np.int64),
        "hside": np.full(n, -1, np.int64),
        "fin0": fin & (d == 0),
        "fin1": fin & (d == 1),
        "rst0": rst & (d == 0),
        "rst1": rst & (d == 1),
        "endts": c["ts_ns"],
    }
    z = np.zeros(m, np.int64)
    names = (*KEY_COLUMNS, "h", "fin0", "fin1", "rst0", "rst1", "isn", "hsn", "hside")
    virt: dict[str, np.ndarray] = {col: carried[col] for col in names}
    virt |= {
        "dir": z,
        "ts": carried["ts1"],
        "is_v": np.ones(m, bool),
        "cidx": np.arange(m, dtype=np.int64),
        "flags": z,
        "tcp": carried["proto"] == 6,
        "hist_ok": np.zeros(m, bool),
        "seq": z,
        "ack": z,
        "win": z + 1,
        "plen": z,
        "iplen": z,
        "wrong": z,
        "pkt_idx": z - 1,
        "inp": z - 1,
        "syn_only": np.zeros(m, bool),
        "endts": carried["end"],
    }
    h = np.concatenate([virt["h"], real["h"]])
    ts_sort = np.concatenate([np.full(m, np.iinfo(np.int64).min, np.int64), real["ts"]])  # virtual rows first
    order = np.lexsort((ts_sort, h))
    rows: dict[str, np.ndarray] = {}
    for col, v in virt.items():  # gather both parts in sorted order (np.take beats a two-part scatter here)
        rows[col] = np.take(np.concatenate([v, real[col].astype(v.dtype, copy=False)]), order)
    same_h = np.zeros(n + m, bool)
    same_h[1:] = rows["h"][1:] == rows["h"][:-1]
    diff = _key_diff(rows)
    if (same_h & diff).any():  # a 64-bit hash collision: sort by the full key instead (exact, slower)
        ts_sort = np.where(rows["is_v"], np.iinfo(np.int64).min, rows["ts"])
        order = np.lexsort((ts_sort, *(rows[col] for col in reversed(KEY_COLUMNS))))
        rows = {col: v[order] for col, v in rows.items()}
        rows["key_start"] = _key_diff(rows)
    else:
        rows["key_start"] = diff | ~same_h
    return rows


def _key_diff(rows: dict[str, np.ndarray]) -> np.ndarray:
    """True where a row's full key differs from the previous row's (and on the first row)."""
    diff = np.zeros(rows["h"].size, bool)
    diff[0:1] = True
    for col in KEY_COLUMNS:
        diff[1:] |= rows[col][1:] != rows[col][:-1]
    return diff


def _init_dirs(carried: dict[str, np.ndarray], cid: np.ndarray) -> DirState:
    """History state of each (segment, direction) group: carried for continuing segments, empty for new ones."""
    st = DirState.empty(2 * cid.size)
    cont = np.flatnonzero(cid >= 0)
    names = {"mask": "mask", "last_syn": "lsyn", "last_fin": "lfin", "last_rst": "lrst", "base": "base"}
    names |= {"max_end": "mx", "t_cnt": "tc", "w_cnt": "wc"}
    for d in (0, 1):
        for attr, col in names.items():
            getattr(st, attr)[2 * cont + d] = carried[f"{col}{d}"][cid[cont]]
    return st


def reduce_segments(
    r: dict[str, np.ndarray],
    start: np.ndarray,
    ended: np.ndarray,
    end_time: np.ndarray,
    carried: dict[str, np.ndarray],
    next_uid: int,
    reuse: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """One state row per flow segment: carried values merged with this batch's packets.

    ``reuse``: ``features.flows.reuse.reuse_state`` of the TCP rows under ``start``, when already computed.
    """
    n = start.size
    first = np.flatnonzero(start)
    ns = first.size
    lastrow = np.append(first[1:], n) - 1
    seg = seg_ids(start)
    cid = np.where(r["is_v"][first], r["cidx"][first], -1)
    cont = cid >= 0
    cc = np.maximum(cid, 0)
    out: dict[str, np.ndarray] = {col: r[col][first] for col in (*KEY_COLUMNS, "h")}
    ks = np.append(r["key_start"], True)
    out["_key_last"] = ks[lastrow + 1]
    fl0 = r["flags"][first]
    flip_new = r["tcp"][first] & ((fl0 & FLIP_MASK) == (_SYN | _ACK))  # a plain SYN-ACK first: flip
    out["flip"] = np.where(cont, carried["flip"][cc] if carried["flip"].size else False, flip_new & ~cont)
    odir_new = r["dir"][first] ^ flip_new.astype(np.int64)
    out["odir"] = np.where(cont, carried["odir"][cc] if carried["odir"].size else 0, odir_new)
    new_rank = bool_cumsum(~cont) - 1
    out["uid"] = np.where(cont, carried["uid"][cc] if carried["uid"].size else 0, next_uid + new_rank)
    out["src"] = np.where(cont, carried["src"][cc] if carried["src"].size else 0, file_of(r["pkt_idx"][first]))
    out["_new_uids"] = np.array([int((~cont).sum())])
    real = ~r["is_v"]
    k2 = seg * 2 + r["dir"]

    def per_dir(w: np.ndarray, name: str) -> None:
        s = np.bincount(k2[real], weights=w[real], minlength=2 * ns).astype(np.int64).reshape(ns, 2)
        for d in (0, 1):
            out[f"{name}{d}"] = s[:, d] + np.where(
                cont, carried[f"{name}{d}"][cc] if cc.size and carried["h"].size else 0, 0
            )

    per_dir(np.ones(n), "pk")
    per_dir(r["plen"].astype(np.float64), "by")
    per_dir(r["iplen"].astype(np.float64), "ib")
    has_c = carried["h"].size > 0
    urgf = (r["flags"] & _URG) > 0
    out["urg"] = np.bincount(seg[real], weights=urgf[real], minlength=ns).astype(np.int64)
    out["wf"] = np.bincount(seg, weights=r["wrong"], minlength=ns).astype(np.int64)
    if has_c:
        out["urg"] += np.where(cont, carried["urg"][cc], 0)
        out["wf"] += np.where(cont, carried["wf"][cc], 0)
    ts_min = np.where(r["is_v"], carried["ts0"][np.maximum(r["cidx"], 0)] if has_c else 0, r["ts"])
    out["ts0"] = np.minimum.reduceat(ts_min, first) if ns else np.zeros(0, np.int64)
    out["ts1"] = np.maximum.reduceat(r["ts"], first) if ns else np.zeros(0, np.int64)
    for col in ("fin0", "fin1", "rst0", "rst1"):
        out[col] = np.bincount(seg, weights=r[col], minlength=ns) > 0
    out["end"] = np.where(ended[lastrow], end_time[lastrow], NO_END) if ns else np.zeros(0, np.int64)
    out["isn"], out["hsn"], out["hside"] = np.zeros(ns, np.int64), np.zeros(ns, np.int64), np.full(ns, -1, np.int64)
    tcp = np.flatnonzero(r["tcp"])  # whole segments
    if tcp.size:
        ru = reuse if reuse is not None else reuse_state(r, tcp, start[tcp])
        tcp_last = np.flatnonzero(last_of_seg(start[tcp]))  # positions in ``tcp`` of TCP segments' last rows
        tseg = seg[tcp[tcp_last]]
        for col in ("isn", "hsn", "hside"):
            out[col][tseg] = ru[col][tcp_last]

    letters = np.zeros((n, 3), np.uint8)
    init = _init_dirs(carried, cid)
    hrows = np.flatnonzero(r["hist_ok"] & real)
    if hrows.size:
        cum = {col: seg_cumsum(r[col], start, inclusive=False) for col in ("fin0", "fin1", "rst0", "rst1")}
        dh = r["dir"][hrows]
        peer_fin = np.where(dh == 0, cum["fin1"][hrows], cum["fin0"][hrows]) > 0
        own_rst = np.where(dh == 0, cum["rst0"][hrows], cum["rst1"][hrows]) > 0
        sh = seg[hrows]
        fl = r["flags"][hrows]
        lt, init = tcp_letters(
            sh * 2 + dh,
            packet_class(fl, r["plen"][hrows]),
            dh == out["odir"][sh],
            fl,
            r["seq"][hrows],
            r["plen"][hrows],
            r["win"][hrows],
            peer_fin,
            own_rst,
            init,
        )
        letters[hrows] = lt
    urows = np.flatnonzero(real & (r["proto"] == 17))
    if urows.size:
        g = k2[urows]
        _, fi = np.unique(g, return_index=True)
        fr = urows[fi]
        carried_pk = np.where(r["dir"][fr] == 0, out["pk0"][seg[fr]], out["pk1"][seg[fr]])
        new_pk = np.bincount(k2[urows], minlength=2 * ns)[k2[fr]]
        fr = fr[carried_pk == new_pk]  # no packet of that direction in an earlier batch
        fo = r["dir"][fr] == out["odir"][seg[fr]]
        letters[fr, 0] = np.where(fo, ord("D"), ord("d"))
    for d in (0, 1):
        out[f"mask{d}"] = init.mask[d::2]
        out[f"lsyn{d}"] = init.last_syn[d::2]
        out[f"lfin{d}"] = init.last_fin[d::2]
        out[f"lrst{d}"] = init.last_rst[d::2]
        out[f"base{d}"] = init.base[d::2]
        out[f"mx{d}"] = init.max_end[d::2]
        out[f"tc{d}"] = init.t_cnt[d::2]
        out[f"wc{d}"] = init.w_cnt[d::2]
    out["hist"] = _histories(letters, seg, ns, out["flip"], cont, cc, carried["hist"])
    return out


def _histories(
    letters: np.ndarray, seg: np.ndarray, ns: int, flip: np.ndarray, cont: np.ndarray, cc: np.ndarray, old: np.ndarray
) -> np.ndarray:
    flat = letters.reshape(-1)
    nz = np.flatnonzero(flat)
    counts = np.bincount(seg[nz // 3], minlength=ns)
    offsets = np.zeros(ns + 1, np.int32)
    np.cumsum(counts, out=offsets[1:])
    arr = pa.StringArray.from_buffers(ns, pa.py_buffer(offsets.tobytes()), pa.py_buffer(flat[nz].tobytes()))
    new = arr.to_pylist()
    prev = old[cc] if old.size else np.full(ns, "", object)
    res = np.empty(ns, object)
    res[:] = [
        (p if c else ("^" if f else "")) + s
        for p, c, f, s in zip(prev.tolist(), cont.tolist(), flip.tolist(), new, strict=True)
    ]
    return res


_ = NONE  # re-exported for callers that build states by hand
