"""Packets to bidirectional flow records, batch by batch, carrying only open flows' state between batches.

The flow definition is ``features.flows.schema``'s docstring. Per batch, all work is columnar: packets are keyed
(canonical endpoint order + a 64-bit hash, verified against the full key), sorted by (key, time) with
one "virtual" row per open flow of the same key in front, cut into flows (idle gaps; TCP ends after
both FINs or a RST, then a new SYN or anything after the close delay starts a new flow), and reduced per
flow with numpy. Memory is bounded by the number of open flows, not by the capture's size: a flow
leaves the state as soon as no later packet can join it (superseded by a newer flow of its key, idle
past its timeout, or ended past the close delay, judged against the highest timestamp seen so far).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import polars as pl

from features.capture.packets import PacketBatch
from features.flows import records as fr
from features.flows import state as fs
from features.flows.fragments import FragmentTracker
from features.flows.reuse import reuse_state
from features.flows.segments import prev_in_seg, seg_cumsum, seg_ids

_FIN, _SYN, _RST, _ACK, _URG = 0x01, 0x02, 0x04, 0x10, 0x20
_NS = 1_000_000_000
_MAX_VECTOR_PASSES = 24


@dataclass(frozen=True)
class FlowConfig:
    """Flow timeouts in seconds of capture time (Zeek's defaults) and the close delay after FINs/RST."""

    tcp_idle_s: float = 300.0
    udp_idle_s: float = 60.0
    icmp_idle_s: float = 60.0
    other_idle_s: float = 60.0
    close_delay_s: float = 5.0
    # At most this many flows open at once. A flood of one-packet flows (spoofed SYNs microseconds apart) keeps
    # every flow open until its idle timeout, so open flows, not the capture, would set the memory (~1.3 KB a
    # flow): past the cap the longest-idle tenth is ended early (as if timed out) and counted (``ended_early``).
    # Real captures stay far below it (the 10M-packet gen_pcap.py capture: 884,150 flows, at most 13,479 open).
    max_open_flows: int = 1_000_000

    @property
    def longest_idle_ns(self) -> int:
        """The longest idle timeout (ns): past a gap this long no flow continues, so files further apart are not
        read as one stream and do not share window features (``features.capture.streams``)."""
        return int(max(self.tcp_idle_s, self.udp_idle_s, self.icmp_idle_s, self.other_idle_s) * _NS)

    def idle_ns(self, proto: np.ndarray) -> np.ndarray:
        """Idle timeout in ns for each IP protocol number in ``proto``."""
        t = np.full(proto.shape, int(self.other_idle_s * _NS), np.int64)
        t[proto == 6] = int(self.tcp_idle_s * _NS)
        t[proto == 17] = int(self.udp_idle_s * _NS)
        t[(proto == 1) | (proto == 58)] = int(self.icmp_idle_s * _NS)
        return t


DEFAULT_CONFIG = FlowConfig()


class FlowBuilder:
    """Builds the flows of one packet stream (a capture file, or files joined: ``features.capture.streams``)
    from its batches, in capture order. A flow's ``source_file`` is the file of its first packet: file
    ``pkt_idx >> FILE_SHIFT`` of ``sources`` (``add_source`` appends one as the stream reaches it)."""

    def __init__(
        self, source_file: str | Sequence[str], config: FlowConfig = DEFAULT_CONFIG, *, payloads: bool = True
    ) -> None:
        self.sources: list[str] = [source_file] if isinstance(source_file, str) else list(source_file)
        self.keep_payloads = payloads  # link PacketBatch.payloads to flows (content features need them)
        self.config = config
        self._delay = int(config.close_delay_s * _NS)
        self._state = fs.empty_state()
        self._frags = FragmentTracker()
        self._next_uid = 0
        self._watermark = np.iinfo(np.int64).min
        self._payloads: list[pl.DataFrame] = []
        self._tunnels: dict[int, str] = {}  # tunnel id -> text, from the batches (features.capture.tunnels)
        self.ended_early = 0  # flows ended before their timeout because more than max_open_flows were open

    # ------------------------------------------------------------------ public
    def add_source(self, name: str) -> int:
        """Append a file to the stream; returns its file number (to tag its batches with)."""
        self.sources.append(name)
        return len(self.sources) - 1

    def add(self, batch: PacketBatch) -> pl.DataFrame:
        """Consume one batch; return the flows that are finished for sure (``flow_id`` is builder-local)."""
        self._tunnels.update(batch.tunnels)
        cols = self._frags.resolve(batch.cols, final=False)
        if cols["ts_ns"].size:
            self._watermark = max(self._watermark, int(batch.cols["ts_ns"].max()))
        done = self._process(cols, batch, final=False)
        if self._state["ts1"].size > self.config.max_open_flows:
            done = fs.concat([done, self._end_longest_idle()])
        return fr.to_frame(done, self.sources, self._tunnels)

    def finish(self) -> pl.DataFrame:
        """Flush every open flow at the end of the capture."""
        cols = self._frags.resolve(None, final=True)
        done = self._process(cols, None, final=True)
        return fr.to_frame(done, self.sources, self._tunnels)

    def floor(self) -> int | None:
        """The earliest start (ns) a flow not yet returned can have, as far as this builder knows: its open
        flows' and held fragments' earliest timestamps (None: nothing open). Flows of packets not yet added
        start at those packets' timestamps."""
        starts = [int(a.min()) for a in (self._state["ts0"], self._frags.held_ts()) if a.size]
        return min(starts) if starts else None

    def take_payloads(self) -> pl.DataFrame:
        """Payload snippets linked so far (flow_id = builder-local id, ts_ns, from_orig, payload); clears them."""
        out = pl.concat(self._payloads) if self._payloads else fr.empty_payloads()
        self._payloads = []
        return out

    # ------------------------------------------------------------------ internals
    def _process(self, cols: dict[str, np.ndarray], batch: PacketBatch | None, final: bool) -> dict[str, np.ndarray]:
        keys = fs.packet_keys(cols)
        state = self._state
        touched = _member(state["h"], keys["h"])
        untouched = np.flatnonzero(~touched)  # state rows no packet of this batch can join
        carried = fs.take(state, np.flatnonzero(touched))
        rows = fs.build_rows(cols, keys, carried)
        start, ended, end_time, reuse = self._segment(rows)
        segs = fs.reduce_segments(rows, start, ended, end_time, carried, self._next_uid, reuse)
        self._next_uid += int(segs.pop("_new_uids")[0])
        if batch is not None and batch.payloads and self.keep_payloads:
            self._link_payloads(rows, start, segs, batch)
        key_last = segs.pop("_key_last").astype(bool)
        finished = ~key_last | final | self._expired(segs)
        # Gather untouched rows straight from the state (one take each for staying and leaving rows).
        exp = {col: state[col][untouched] for col in ("ts1", "proto", "end")}
        stay = np.zeros(untouched.size, bool) if final else ~self._expired(exp)
        self._state = fs.concat([fs.take(state, untouched[stay]), fs.take(segs, np.flatnonzero(~finished))])
        return fs.concat([fs.take(state, untouched[~stay]), fs.take(segs, np.flatnonzero(finished))])

    def _end_longest_idle(self) -> dict[str, np.ndarray]:
        """Take the longest-idle open flows out of the state, down to 90% of the cap (so a flood does not pay
        this sort on every batch); returns them, finished. A later packet of one starts a new flow, as after a
        timeout. Ties in last-packet time go to the older flow (lower uid) first: deterministic."""
        st = self._state
        keep = int(self.config.max_open_flows * 0.9)
        order = np.lexsort((st["uid"], st["ts1"]))  # by last packet, then by uid
        out, stay = order[: st["ts1"].size - keep], np.sort(order[st["ts1"].size - keep :])
        self.ended_early += int(out.size)
        self._state = fs.take(st, stay)
        return fs.take(st, np.sort(out))

    def _expired(self, st: dict[str, np.ndarray]) -> np.ndarray:
        w = self._watermark
        idle = (w - st["ts1"]) > self.config.idle_ns(st["proto"])
        closed = (st["end"] != fs.NO_END) & (w > st["end"] + self._delay)
        return idle | closed

    def _segment(
        self, r: dict[str, np.ndarray]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray] | None]:
        """Flow starts over the (key, time)-sorted rows, each row's TCP "ended" flag and end time, and
        the reuse state of the TCP rows when the first pass already had the final starts (else None)."""
        n = r["ts"].size
        key_start = r["key_start"]
        real = ~r["is_v"]
        gap = r["ts"] - prev_in_seg(r["ts"], key_start, 0)
        start = key_start | (real & ~key_start & (gap > self.config.idle_ns(r["proto"])))
        ended = np.zeros(n, bool)
        end_time = np.full(n, fs.NO_END, np.int64)
        tcp = np.flatnonzero(r["tcp"])  # whole keys, so whole segments: only TCP flows end or get reused
        if tcp.size == 0:
            return start, ended, end_time, None
        new, e, t, ru = self._splits(r, tcp, start[tcp])
        if new.size == 0:  # the common case: nothing to cut, the first pass's results are final
            ended[tcp], end_time[tcp] = e, t
            return start, ended, end_time, ru
        sub = tcp
        for _ in range(_MAX_VECTOR_PASSES):
            start[new] = True
            sub = _rows_of_segments_from(new, start)
            new = self._splits(r, sub, start[sub])[0]
            if new.size == 0:
                break
        else:
            self._splits_python(r, sub, start)
        ended[tcp], end_time[tcp] = self._ended(r, tcp, start[tcp])
        return start, ended, end_time, None

    def _ended(self, r: dict[str, np.ndarray], sub: np.ndarray, start: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        c0 = seg_cumsum(r["fin0"][sub], start)
        c1 = seg_cumsum(r["fin1"][sub], start)
        cr = seg_cumsum(r["rst0"][sub] | r["rst1"][sub], start)
        ended = (cr > 0) | ((c0 > 0) & (c1 > 0))
        first_end = ended & (start | ~prev_in_seg(ended, start, False))
        ff = np.maximum.accumulate(np.where(first_end, np.arange(sub.size), 0))
        end_time = np.where(ended, r["endts"][sub][ff], fs.NO_END)
        return ended, end_time

    def _splits(
        self, r: dict[str, np.ndarray], sub: np.ndarray, start: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Rows (indices into ``r``) that start a new TCP flow inside the segments of ``sub``.

        After an end (both FINs or a RST): a SYN, or any packet after the close delay. Anywhere: a SYN with
        a new ISN (``features.flows.reuse``). A segment with an end or half-open candidate gets only its first
        candidate (the rest depends on it, next pass); one without gets all its SYN splits at once (final).
        """
        ended, end_time = self._ended(r, sub, start)
        ended_prev = prev_in_seg(ended, start, False)
        end_prev = prev_in_seg(end_time, start, fs.NO_END)
        with np.errstate(over="ignore"):
            late = (r["ts"][sub] > end_prev + self._delay) & (end_prev != fs.NO_END)
        endc = ~start & ended_prev & (r["syn_only"][sub] | late)
        ru = reuse_state(r, sub, start)
        reuse = ru["cand"]
        cand = endc | reuse
        first = cand & (seg_cumsum(cand, start, inclusive=False) == 0)
        # Later candidates depend on the first split when it is an end or a half-open SYN-ACK reuse: the new
        # flow starting there may not be flipped, which changes the half-open rule for the rows after it.
        dependent = endc | ru["sa"]
        has_dep = np.bincount(seg_ids(start), weights=dependent, minlength=int(start.sum())) > 0
        take = first | (reuse & ~has_dep[seg_ids(start)])
        return sub[take], ended, end_time, ru

    def _splits_python(self, r: dict[str, np.ndarray], sub: np.ndarray, start: np.ndarray) -> None:
        """Sequential fallback for keys reused many times in one batch (e.g. SYN/RST floods on one tuple)."""
        col = {k: r[k][sub].tolist() for k in ("fin0", "fin1", "rst0", "rst1", "ts", "endts", "syn_only", "is_v")}
        col |= {k: r[k][sub].tolist() for k in ("flags", "seq", "ack", "dir", "isn", "hsn", "hside")}
        st = start[sub].tolist()
        f0 = f1 = rs = False
        end = isn = hsn = side = 0
        for i in range(len(st)):
            fl, seq, d = col["flags"][i], col["seq"][i], col["dir"][i]
            syn, synack = (fl & 0x12) == 0x02, (fl & 0x12) == 0x12
            if not st[i]:
                ended = (f0 and f1) or rs
                after_end = ended and (col["syn_only"][i] or col["ts"][i] > end + self._delay)
                reused = (syn and seq != isn) or (synack and side >= 0 and d == side and seq != hsn)
                st[i] = after_end or reused
            if st[i]:
                f0 = f1 = rs = False
                end = fs.NO_END
                if col["is_v"][i]:
                    f0, f1, rs = col["fin0"][i], col["fin1"][i], col["rst0"][i] or col["rst1"][i]
                    end, isn, hsn, side = col["endts"][i], col["isn"][i], col["hsn"][i], col["hside"][i]
                    continue
                flip = (fl & fs.FLIP_MASK) == 0x12
                isn = ((col["ack"][i] - 1) if flip else seq if fl & 0x02 else (seq - 1)) & 0xFFFFFFFF
                hsn, side = seq, (d if flip else -1)
            else:
                if syn:
                    isn = seq
                if synack and side >= 0 and d == side:
                    hsn = seq
                if side >= 0 and d != side:
                    side = -1
            was = (f0 and f1) or rs
            f0, f1 = f0 or col["fin0"][i], f1 or col["fin1"][i]
            rs = rs or col["rst0"][i] or col["rst1"][i]
            if not was and ((f0 and f1) or rs):
                end = col["endts"][i]
        start[sub] = st

    def _link_payloads(
        self, r: dict[str, np.ndarray], start: np.ndarray, segs: dict[str, np.ndarray], batch: PacketBatch
    ) -> None:
        real = np.flatnonzero(~r["is_v"])
        where = np.empty(real.size, np.int64)  # input row -> sorted row
        where[r["inp"][real]] = real
        pidx = np.empty(real.size, np.int64)  # pkt_idx in input order
        pidx[r["inp"][real]] = r["pkt_idx"][real]
        want = np.asarray(batch.payload_idx, np.int64)
        ordered = bool(np.all(pidx[1:] >= pidx[:-1]))
        order = np.arange(pidx.size) if ordered else np.argsort(pidx, kind="stable")
        spidx = pidx[order]
        if spidx.size == 0:
            return
        pos = np.minimum(np.searchsorted(spidx, want), spidx.size - 1)
        ok = spidx[pos] == want
        if not ok.any():
            return
        rows = where[order[pos[ok]]]
        seg = np.searchsorted(np.flatnonzero(start), rows, side="right") - 1
        from_orig = r["dir"][rows] == segs["odir"][seg]
        self._payloads.append(
            pl.DataFrame(
                {
                    "flow_id": segs["uid"][seg].astype(np.int64),
                    "ts_ns": r["ts"][rows].astype(np.int64),
                    "from_orig": from_orig,
                    "payload": [p for p, k in zip(batch.payloads, ok.tolist(), strict=True) if k],
                },
                schema=fr.PAYLOAD_SCHEMA,
            )
        )


def _member(x: np.ndarray, of: np.ndarray) -> np.ndarray:
    """``np.isin(x, of)`` for uint64 hashes: one sort of ``of`` and a binary search per ``x``. ``np.isin`` sorts
    both together and was 8 ms of each 55k-packet batch against ~10k open flows, this ~1 ms."""
    if of.size == 0 or x.size == 0:
        return np.zeros(x.size, bool)
    s = np.sort(of)
    pos = np.minimum(np.searchsorted(s, x), s.size - 1)
    return s[pos] == x


def _rows_of_segments_from(new: np.ndarray, start: np.ndarray) -> np.ndarray:
    """All row indices from each new split row to the end of its segment (segments given by ``start``)."""
    starts = np.flatnonzero(start)
    nxt = np.searchsorted(starts, new, side="right")
    ends = np.append(starts, start.size)[nxt]
    lens = ends - new
    return np.repeat(new - np.cumsum(lens) + lens, lens) + np.arange(int(lens.sum()))


__all__ = ["DEFAULT_CONFIG", "FlowBuilder", "FlowConfig"]
