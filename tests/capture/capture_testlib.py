"""Helpers for capture tests: where ../shared is, MANIFEST.tsv, and writers for small self-made captures.

Imported by the tests as ``capture_testlib`` (tests/capture/conftest.py puts this folder on sys.path,
because pytest runs with --import-mode=importlib, where test modules cannot import their siblings).
"""

from __future__ import annotations

import csv
import gzip
import struct
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
PCAPS = SHARED / "data" / "pcaps"


def need(p: Path) -> Path:
    """The path, or skip the test naming what is missing."""
    if not p.exists():
        pytest.skip(f"needs {p} (../shared beside the checkout), which is missing")
    return p


def corpus_files() -> list[str]:
    """Every capture-like file under ../shared/data/pcaps (relative paths), or [] when it is missing."""
    if not PCAPS.exists():
        return []
    return sorted(
        str(p.relative_to(PCAPS)) for p in PCAPS.rglob("*") if p.is_file() and p.suffix not in (".tsv", ".md")
    )


def is_pcapng(rel: str) -> bool:
    """Whether the corpus file (relative path) is pcapng, by its first four bytes after any gzip."""
    data = (PCAPS / rel).read_bytes()
    head = gzip.decompress(data)[:4] if data[:2] == b"\x1f\x8b" else data[:4]
    return head == b"\x0a\x0d\x0d\x0a"


def frames_read(path: Path, monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, bytes]]:
    """(ts_ns, captured bytes) of every record nta's reader hands to the decoder, in file order."""
    import features.capture.source as source
    from features.capture.packets import PacketBatch
    from features.capture.pcap import RecordChunk
    from features.capture.source import PacketSource

    chunks: list[RecordChunk] = []
    real = source.decode_chunk

    def spy(rc: RecordChunk, **kw: bool) -> PacketBatch:
        chunks.append(rc)
        return real(rc, **kw)

    monkeypatch.setattr(source, "decode_chunk", spy)
    list(PacketSource(path).batches())
    return [
        (int(rc.ts_ns[j]), rc.buf[rc.data_off[j] : rc.data_off[j] + rc.caplen[j]].tobytes())
        for rc in chunks
        for j in range(len(rc))
    ]


def manifest() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by file (relative to data/pcaps)."""
    with need(PCAPS / "MANIFEST.tsv").open(newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def pcap_bytes(
    frames: list[tuple[float, bytes]] | list[tuple[float, bytes, int]],
    *,
    linktype: int = 1,
    endian: str = "<",
    ns: bool = False,
    modified: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """A classic pcap holding frames: (ts seconds, bytes[, wire length])."""
    magic = 0xA1B2CD34 if modified else 0xA1B23C4D if ns else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for fr in frames:
        ts, data = fr[0], fr[1]
        wire = fr[2] if len(fr) > 2 else len(data)  # type: ignore[misc]
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if ns else 1e6))
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), wire))
        if modified:
            out.append(struct.pack(endian + "IHBB", 1, 0x0800, 0, 0))
        out.append(data)
    return b"".join(out)


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


# ---------------------------------------------------------------- pcapng writer


def _block(e: str, btype: int, body: bytes) -> bytes:
    body += b"\0" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack(e + "II", btype, n) + body + struct.pack(e + "I", n)


def _opt(e: str, code: int, value: bytes) -> bytes:
    return struct.pack(e + "HH", code, len(value)) + value + b"\0" * (-len(value) % 4)


def shb(e: str = "<") -> bytes:
    """Section Header Block in byte order e, with an shb_userappl option."""
    body = struct.pack(e + "IHHq", 0x1A2B3C4D, 1, 0, -1) + _opt(e, 4, b"nta-tests") + _opt(e, 0, b"")
    return _block(e, 0x0A0D0D0A, body)


def idb(e: str, linktype: int, snaplen: int = 0, tsresol: int | None = None, tsoffset: int | None = None) -> bytes:
    """Interface Description Block with optional if_tsresol (raw byte) and if_tsoffset (seconds)."""
    opts = _opt(e, 2, b"eth0")
    if tsresol is not None:
        opts += _opt(e, 9, bytes([tsresol]))
    if tsoffset is not None:
        opts += _opt(e, 14, struct.pack(e + "q", tsoffset))
    return _block(e, 1, struct.pack(e + "HHI", linktype, 0, snaplen) + opts + _opt(e, 0, b""))


def epb(e: str, iface: int, ticks: int, data: bytes, wire: int | None = None) -> bytes:
    body = struct.pack(e + "IIIII", iface, ticks >> 32, ticks & 0xFFFFFFFF, len(data), wire or len(data)) + data
    return _block(e, 6, body)


def spb(e: str, data: bytes, wire: int | None = None) -> bytes:
    return _block(e, 3, struct.pack(e + "I", wire or len(data)) + data)


def pb(e: str, iface: int, ticks: int, data: bytes) -> bytes:
    """The obsolete Packet Block (type 2)."""
    body = struct.pack(e + "HHIIII", iface, 0, ticks >> 32, ticks & 0xFFFFFFFF, len(data), len(data)) + data
    return _block(e, 2, body)


def other_block(e: str, btype: int = 5) -> bytes:
    """A block readers must skip (default: Interface Statistics Block)."""
    return _block(e, btype, struct.pack(e + "III", 0, 0, 0))


# ---------------------------------------------------------------- frame builders


def mac(i: int) -> bytes:
    return bytes([2, 0, 0, 0, 0, i & 0xFF])


def eth(payload: bytes, ethertype: int = 0x0800, vlans: tuple[tuple[int, int], ...] = ()) -> bytes:
    """Ethernet II frame; vlans = ((tpid, vid), ...) outermost first."""
    # the first TPID sits where the EtherType goes; each tag is (vid, next type)
    if vlans:
        types = [tpid for tpid, _ in vlans[1:]] + [ethertype]
        tags = b"".join(struct.pack(">HH", vid, t) for (_, vid), t in zip(vlans, types, strict=True))
        return mac(1) + mac(2) + struct.pack(">H", vlans[0][0]) + tags + payload
    return mac(1) + mac(2) + struct.pack(">H", ethertype) + payload


def ip4(a: str) -> bytes:
    return bytes(int(x) for x in a.split("."))


def ipv4(
    src: str,
    dst: str,
    proto: int,
    payload: bytes,
    *,
    ident: int = 0x1234,
    flags_frag: int = 0,
    options: bytes = b"",
    total: int | None = None,
    ihl: int | None = None,
) -> bytes:
    """IPv4 packet; flags_frag is the raw 16-bit flags+offset field (offset in 8-byte units)."""
    hl = 20 + len(options)
    tot = hl + len(payload) if total is None else total
    vihl = 0x40 | ((hl // 4) if ihl is None else ihl)
    hdr = struct.pack(">BBHHHBBH4s4s", vihl, 0, tot, ident, flags_frag, 64, proto, 0, ip4(src), ip4(dst))
    return hdr + options + payload


def ip6(a: str) -> bytes:
    import ipaddress

    return ipaddress.IPv6Address(a).packed


def ipv6(src: str, dst: str, nh: int, payload: bytes, *, plen: int | None = None) -> bytes:
    n = len(payload) if plen is None else plen
    return struct.pack(">IHBB16s16s", 0x60000000, n, nh, 64, ip6(src), ip6(dst)) + payload


def ext(nh: int, body: bytes = b"\0" * 6) -> bytes:
    """Hop-by-hop / routing / destination options header: (len(body) + 2) must be a multiple of 8."""
    return struct.pack(">BB", nh, (len(body) + 2) // 8 - 1) + body


def frag6(nh: int, offset: int, more: bool, ident: int) -> bytes:
    return struct.pack(">BBHI", nh, 0, offset | int(more), ident)


def tcp(
    sport: int,
    dport: int,
    flags: int = 0x02,
    payload: bytes = b"",
    *,
    seq: int = 1000,
    ack: int = 0,
    win: int = 8192,
    options: bytes = b"",
    doff: int | None = None,
) -> bytes:
    off = (20 + len(options)) // 4 if doff is None else doff
    return struct.pack(">HHIIBBHHH", sport, dport, seq, ack, off << 4, flags, win, 0, 0) + options + payload


def udp(sport: int, dport: int, payload: bytes = b"") -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(payload), 0) + payload


def icmp(itype: int, code: int, payload: bytes = b"") -> bytes:
    return struct.pack(">BBHI", itype, code, 0, 0x00010001) + payload
