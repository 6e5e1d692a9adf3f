"""Capture blocks to record chunks: the classic pcap walker and the chunk type both walkers produce.

``features.capture.source`` sniffs a file (gzip by its 1f8b magic, never by name), validates the capture header
and picks the walker for its format (classic pcap here, pcapng in ``features.capture.pcapng``); the bytes come
block by block from ``features.capture.stream``.

A walker turns a block into ``RecordChunk``s: the offsets of every complete record plus their header
fields as numpy columns. Classic pcap is walked with one ``struct.unpack_from`` per record (the only
per-record Python step; about 2.7 M records/s here), everything else is vectorised.
"""

from __future__ import annotations

import contextlib
import struct
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import numpy as np

PAD = 128  # zero bytes after each block so fixed-width gathers never run off the end
MIN_MAX_CAPLEN = 262_144  # libpcap's largest snap length; a bigger caplen than max(this, snaplen) is corruption
CAPLEN_CEILING = 1 << 26

# magic (read little-endian) -> (byte order, ns resolution, record header length, format name)
PCAP_MAGICS: dict[int, tuple[str, bool, int, str]] = {
    0xA1B2C3D4: ("<", False, 16, "pcap-le-us"),
    0xD4C3B2A1: (">", False, 16, "pcap-be-us"),
    0xA1B23C4D: ("<", True, 16, "pcap-le-ns"),
    0x4D3CB2A1: (">", True, 16, "pcap-be-ns"),
    0xA1B2CD34: ("<", False, 24, "pcap-le-us-modified"),  # Kuznetzov's patched libpcap: 24-byte records
    0x34CDB2A1: (">", False, 24, "pcap-be-us-modified"),
}
PCAPNG_MAGIC = 0x0A0D0D0A


@dataclass
class RecordChunk:
    """Complete packet records of one block, as columns pointing into ``buf``."""

    buf: np.ndarray  # (L + PAD,) uint8: the block bytes, zero-padded
    data_off: np.ndarray  # (n,) int64: offset of each frame's first byte in buf
    caplen: np.ndarray  # (n,) int64: captured bytes
    wirelen: np.ndarray  # (n,) int64: original length on the wire
    ts_ns: np.ndarray  # (n,) int64: ns since the epoch, UTC
    linktype: np.ndarray  # (n,) int32
    first_idx: int  # pkt_idx of the first record (records count from 0 in the file)
    pkt_idx: np.ndarray | None = None  # (n,) int64 when the records are not consecutive (a time filter left some out)

    def __len__(self) -> int:
        return int(self.data_off.shape[0])


# Timestamps a record may carry: 1950-01-01 to 2200-01-01 UTC, in ns (a span of 7.9e18 ns, well inside int64's
# 9.2e18). Outside (a pcapng tick count or if_tsoffset that wraps 64 bits) a record is counted as
# ``bad_timestamp`` and skipped, so no time arithmetic downstream (durations, windows, the microsecond
# conversion) can overflow. Classic pcap's unsigned 32-bit seconds (1970-2106) always fit.
TS_MIN_NS = -631_152_000 * 10**9
TS_MAX_NS = 7_258_118_400 * 10**9


# A plausible capture clock: records before 1990 or more than a day after the scan come from a host whose clock
# was not set (a router or a VM booted at the epoch) or was set wrong. They are read as recorded, but the analyst is
# told: the report's time span, timeline and carving filters use these times, and joining them to other evidence
# (logs, other sensors) needs the offset.
CLOCK_FLOOR_NS = 631_152_000 * 10**9  # 1990-01-01 UTC
CLOCK_AHEAD_NS = 86_400 * 10**9  # a day past the scan's own clock


def _utc(ns: int) -> str:
    return (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(microseconds=ns // 1000)).strftime("%Y-%m-%d %H:%M:%S")


def clock_warning(name: str, first_ns: int | None, last_ns: int | None, now_ns: int) -> str | None:
    """A warning when a file's packet times (earliest, latest, in ns) fall before 1990 or more than a day after
    ``now_ns``; None when they look like a working clock's (or the file has no packets)."""
    if first_ns is None or last_ns is None:
        return None
    early, late = first_ns < CLOCK_FLOOR_NS, last_ns > now_ns + CLOCK_AHEAD_NS
    if not (early or late):
        return None
    why = " and ".join(what for what, holds in (("before 1990", early), ("in the future", late)) if holds)
    return (
        f"{name}: packet times run from {_utc(first_ns)} to {_utc(last_ns)} UTC ({why}): the capturing host's clock "
        "was probably wrong; times are used as recorded"
    )


@dataclass
class WalkState:
    """What a walker learns besides records: counts, warnings, and whether to stop reading."""

    name: str  # the file name used in warnings
    records: int = 0  # packet records accepted so far (next pkt_idx)
    bad: Counter[str] = field(default_factory=Counter)
    warnings: list[str] = field(default_factory=list)
    stop: bool = False
    origin: int = 0  # offset in the (inflated) capture stream of buf[0] in the current walk

    def fail(self, kind: str, detail: str) -> None:
        """Record damage that ends the file: one bad count, one warning, stop reading."""
        self.bad[kind] += 1
        self.warnings.append(f"{self.name}: {kind}: {detail} after {self.records} complete records")
        self.stop = True


def gather(buf: np.ndarray, pos: np.ndarray, width: int) -> np.ndarray:
    """(n, width) uint8 rows of buf starting at pos (clipped into buf; callers check lengths themselves).

    buf is viewed as overlapping ``width``-byte void items, so each row is one memcpy: about 5x faster
    than fancy-indexing a 2-D sliding window.
    """
    pos = np.minimum(pos, buf.shape[0] - width)  # positions are never negative
    items = np.ndarray((buf.shape[0] - width + 1,), dtype=f"V{width}", buffer=buf, strides=(1,))
    return items[pos].view(np.uint8).reshape(-1, width)


def u32_cols(rows: np.ndarray, endian: str) -> np.ndarray:
    """(n, 4k) uint8 -> (n, k) int64, each 4 bytes read as an unsigned int in the given byte order."""
    return np.ascontiguousarray(rows).view(endian + "u4").astype(np.int64)


class PcapWalker:
    """Walks classic pcap records (all byte orders, us/ns, the 24-byte "modified" variant)."""

    def __init__(self, header: bytes, state: WalkState) -> None:
        magic = struct.unpack_from("<I", header, 0)[0]
        self.endian, ns, self.hdr_len, self.format = PCAP_MAGICS[magic]
        _, _, _, _, snaplen, network = struct.unpack_from(self.endian + "HHiIII", header, 4)
        self.linktype = network & 0x03FFFFFF  # upper bits carry FCS-length flags
        self.max_caplen = min(max(MIN_MAX_CAPLEN, snaplen), CAPLEN_CEILING)
        self.frac_ns = 1 if ns else 1000
        self.header_len = 24
        self.state = state

    def walk(self, buf: np.ndarray, length: int, start: int, at_eof: bool) -> tuple[list[RecordChunk], int]:
        """Records wholly inside buf[start:length]; returns them and where the first incomplete one starts."""
        st = self.state
        up = struct.Struct(self.endian + "8xI").unpack_from  # the caplen field
        mv = buf.data[:length]
        offs: list[int] = []
        app = offs.append
        off, h = start, self.hdr_len
        # The hot loop: one unpack per record. It ends when unpack runs off the block (struct.error, expected
        # and the only way out); the candidate tail is validated against the block length below.
        with contextlib.suppress(struct.error):
            while True:
                app(off)
                (c,) = up(mv, off)
                off += c + h
        o = np.array(offs, dtype=np.int64)  # (m,) candidate record offsets; the tail may be incomplete
        hdr = u32_cols(gather(buf, o, 16), self.endian)  # (m, 4): ts_sec, ts_frac, caplen, wirelen
        caplen = hdr[:, 2]
        hdr_ok = o + self.hdr_len <= length
        complete = hdr_ok & (o + self.hdr_len + caplen <= length)
        corrupt = hdr_ok & (caplen > self.max_caplen)
        n = int(np.argmin(complete)) if not complete.all() else len(o)
        if corrupt[: n + 1].any():
            n = int(np.argmax(corrupt))
            cut = int(o[n])
            chunks = self._chunks(buf, o[:n], hdr[:n])
            st.fail("corrupt_record", f"record header claims {int(caplen[n])} captured bytes")
            return chunks, cut
        cut = int(o[n]) if n < len(o) else length
        chunks = self._chunks(buf, o[:n], hdr[:n])
        if at_eof and cut < length:
            st.fail("truncated_record", f"file cut mid-record ({length - cut} stray bytes)")
        return chunks, cut

    def _chunks(self, buf: np.ndarray, o: np.ndarray, hdr: np.ndarray) -> list[RecordChunk]:
        if o.shape[0] == 0:
            return []
        ts = hdr[:, 0] * 1_000_000_000 + hdr[:, 1] * self.frac_ns
        lt = np.full(o.shape[0], self.linktype, np.int32)
        rc = RecordChunk(buf, o + self.hdr_len, hdr[:, 2], hdr[:, 3], ts, lt, self.state.records)
        self.state.records += len(rc)
        return [rc]
