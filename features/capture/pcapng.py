"""pcapng blocks to record chunks, with our own parser (dpkt's reader is the cross-check in the tests).

Handles several sections (each SHB resets byte order and interfaces), any number of interfaces with
their own link type, ``if_tsresol`` (powers of 10 or of 2) and ``if_tsoffset``; Enhanced (EPB), Simple
(SPB) and obsolete Packet (PB) blocks. Other blocks (name resolution, statistics, decryption secrets,
custom) are skipped. The block walk is one ``unpack_from`` per block; EPB fields are then gathered and
converted with numpy. A Simple Packet Block has no timestamp: it gets the previous packet's.

Own parser rather than ``dpkt.pcapng.Reader`` because dpkt builds a Python object per packet and stops
at a second section; ``tests/capture/test_pcapng.py`` checks that both agree on every corpus file.
"""

from __future__ import annotations

import struct

import numpy as np

from features.capture.pcap import (
    CAPLEN_CEILING,
    PCAPNG_MAGIC,
    TS_MAX_NS,
    TS_MIN_NS,
    RecordChunk,
    WalkState,
    gather,
    u32_cols,
)

BOM = 0x1A2B3C4D
EPB, SPB, PB, IDB = 6, 3, 2, 1
MAX_BLOCK = CAPLEN_CEILING + 4096
_EPB_LEN_BAD = ~(CAPLEN_CEILING - 4)  # (blen - 32) & this == 0: a plausible EPB length, in one operation


class Iface:
    """One Interface Description Block: link type, snap length, timestamp units."""

    def __init__(self, linktype: int, snaplen: int, tsresol: int = 6, tsoffset: int = 0) -> None:
        self.linktype = linktype
        self.snaplen = snaplen
        self.tsresol = tsresol  # the raw option byte: bit 7 set = power of 2, else power of 10
        self.tsoffset = tsoffset  # seconds added to every timestamp


def ticks_to_ns(ticks: np.ndarray, tsresol: int, tsoffset: int) -> np.ndarray:
    """(n,) uint64 timestamp ticks -> (n,) int64 ns since the epoch (wrapping modulo 2**64, as int64)."""
    with np.errstate(over="ignore"):
        k = tsresol & 0x7F
        if tsresol & 0x80:
            k = min(k, 63)  # 2**-64 s and finer are nonsense; clamp rather than overflow
            sec, frac = ticks >> np.uint64(k), ticks & np.uint64((1 << k) - 1)
            if k > 34:  # keep frac * 1e9 inside 64 bits; only sub-ns precision is lost
                frac, k = frac >> np.uint64(k - 34), 34
            ns = sec * np.uint64(10**9) + ((frac * np.uint64(10**9)) >> np.uint64(k))
        elif k <= 9:
            ns = ticks * np.uint64(10 ** (9 - k))
        elif k <= 28:  # 10**19 is the largest power of ten in 64 bits
            ns = ticks // np.uint64(10 ** (k - 9))
        else:
            ns = np.zeros_like(ticks)
        ns = ns + np.uint64((tsoffset * 10**9) % 2**64)
    return ns.view(np.int64)


def _parse_idb(mv: memoryview, off: int, blen: int, e: str) -> Iface:
    linktype, _, snaplen = struct.unpack_from(e + "HHI", mv, off + 8)
    iface = Iface(linktype, snaplen)
    o, end = off + 16, off + blen - 4
    while o + 4 <= end:
        code, olen = struct.unpack_from(e + "HH", mv, o)
        if code == 0:
            break
        if code == 9 and olen >= 1:
            iface.tsresol = mv[o + 4]
        elif code == 14 and olen >= 8:
            iface.tsoffset = struct.unpack_from(e + "q", mv, o + 4)[0]
        o += 4 + ((olen + 3) & ~3)
    return iface


class PcapngWalker:
    """Walks pcapng blocks, keeping section and interface state across blocks of the stream."""

    format = "pcapng"
    header_len = 0  # the SHB is walked like any block

    def __init__(self, state: WalkState) -> None:
        self.state = state
        self.endian = "<"
        self.ifaces: list[Iface] = []
        self.last_ts = 0

    def walk(self, buf: np.ndarray, length: int, start: int, at_eof: bool) -> tuple[list[RecordChunk], int]:
        """Packets of the blocks wholly inside buf[start:length]; returns them and the first incomplete block."""
        st = self.state
        mv = buf.data[:length]
        self._pieces: list[tuple[np.ndarray, ...]] = []
        self._py: list[tuple[int, int, int, int, int]] = []
        epb: list[int] = []
        app = epb.append
        hs = struct.Struct(self.endian + "II").unpack_from
        off = start
        failure: tuple[str, str] | None = None  # reported after the records before it are counted
        while True:
            if self._py:
                self._flush_py()
            try:  # the hot loop: a run of ordinary EPBs, one unpack each, ends at any other block
                while True:
                    btype, blen = hs(mv, off)
                    if btype != EPB or (blen - 32) & _EPB_LEN_BAD:  # 32 <= blen < 2**26 + 32, blen % 4 == 0
                        break
                    app(off)
                    off += blen
            except struct.error:  # ran off the data: the last EPB is whole only if it ends inside it
                if epb and off > length:
                    off = epb.pop()
                break
            if off + 12 > length:
                break
            if btype == PCAPNG_MAGIC:
                bom = struct.unpack_from("<I", mv, off + 8)[0]
                if bom not in (BOM, 0x4D3C2B1A):
                    failure = ("corrupt_block", f"section header at byte {st.origin + off} has no byte-order magic")
                    break
                e = "<" if bom == BOM else ">"
                blen = struct.unpack_from(e + "I", mv, off + 4)[0]
                if blen < 28 or blen & 3 or blen > MAX_BLOCK:
                    failure = ("corrupt_block", f"section header at byte {st.origin + off} has length {blen}")
                    break
                if off + blen > length:
                    break
                self._flush_epb(buf, epb)
                self._flush_py()
                self.endian, self.ifaces = e, []  # a new list: flushed groups keep the old one
                hs = struct.Struct(e + "II").unpack_from
                off += blen
                continue
            if blen < 12 or blen & 3 or blen > MAX_BLOCK:
                failure = ("corrupt_block", f"block at byte {st.origin + off} has length {blen}")
                break
            if off + blen > length:
                break
            if btype == IDB and blen >= 20:
                self.ifaces.append(_parse_idb(mv, off, blen, self.endian))
            elif btype in (EPB, SPB, PB):
                self._flush_epb(buf, epb)
                self._other_packet(mv, off, btype, blen)
            off += blen
        self._flush_epb(buf, epb)
        self._flush_py()
        chunks = self._assemble(buf)
        if failure:
            st.fail(*failure)
        elif at_eof and off < length:
            st.fail("truncated_record", f"file cut mid-block ({length - off} stray bytes)")
        return chunks, off

    def _flush_epb(self, buf: np.ndarray, epb: list[int]) -> None:
        if not epb:
            return
        o = np.array(epb, dtype=np.int64)
        epb.clear()
        h = u32_cols(gather(buf, o, 28), self.endian)  # (n, 7): type, blen, iface, ts_hi, ts_lo, caplen, origlen
        iface, caplen = h[:, 2], h[:, 5]
        ok = (iface < len(self.ifaces)) & (caplen <= h[:, 1] - 32)
        if not ok.all():
            self.state.bad["bad_record"] += int((~ok).sum())
            o, h, iface, caplen = o[ok], h[ok], iface[ok], caplen[ok]
            if not len(o):
                return
        ticks = (h[:, 3].astype(np.uint64) << np.uint64(32)) | h[:, 4].astype(np.uint64)
        ts = np.empty(len(o), np.int64)
        lt = np.empty(len(o), np.int32)
        for i in np.unique(iface):
            m = iface == i
            f = self.ifaces[int(i)]
            ts[m] = ticks_to_ns(ticks[m], f.tsresol, f.tsoffset)
            lt[m] = f.linktype
        good = (ts >= TS_MIN_NS) & (ts <= TS_MAX_NS)
        if not good.all():
            self.state.bad["bad_timestamp"] += int((~good).sum())
            o, h, caplen, ts, lt = o[good], h[good], caplen[good], ts[good], lt[good]
            if not len(o):
                return
        self._pieces.append((o + 28, caplen, h[:, 6], ts, lt))
        self.last_ts = int(ts[-1])

    def _other_packet(self, mv: memoryview, off: int, btype: int, blen: int) -> None:
        e = self.endian
        if btype == SPB:
            if not self.ifaces or blen < 16:
                self.state.bad["bad_record"] += 1
                return
            f = self.ifaces[0]
            wire = struct.unpack_from(e + "I", mv, off + 8)[0]
            cap = min(wire, blen - 16, f.snaplen or wire)
            self._py.append((off + 12, cap, wire, self.last_ts, f.linktype))
            return
        fmt = e + "HHIIII" if btype == PB else e + "IIIII"
        vals = struct.unpack_from(fmt, mv, off + 8)
        i, hi, lo, cap, wire = (vals[0], *vals[2:]) if btype == PB else vals
        if i >= len(self.ifaces) or cap > blen - 32:
            self.state.bad["bad_record"] += 1
            return
        f = self.ifaces[i]
        ts = int(ticks_to_ns(np.array([hi << 32 | lo], np.uint64), f.tsresol, f.tsoffset)[0])
        if not TS_MIN_NS <= ts <= TS_MAX_NS:
            self.state.bad["bad_timestamp"] += 1
            return
        self.last_ts = ts
        self._py.append((off + 28, cap, wire, ts, f.linktype))

    def _flush_py(self) -> None:
        if not self._py:
            return
        cols = list(zip(*self._py, strict=True))
        self._py = []
        self._pieces.append(
            tuple(np.array(c, dtype=dt) for c, dt in zip(cols, (np.int64,) * 4 + (np.int32,), strict=True))
        )

    def _assemble(self, buf: np.ndarray) -> list[RecordChunk]:
        if not self._pieces:
            return []
        cols = [np.concatenate(c) for c in zip(*self._pieces, strict=True)]
        self._pieces = []
        rc = RecordChunk(buf, cols[0], cols[1], cols[2], cols[3], cols[4], self.state.records)
        self.state.records += len(rc)
        return [rc]
