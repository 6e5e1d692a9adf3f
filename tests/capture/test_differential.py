"""The columnar decoder equals the per-packet reference decoder, frame for frame.

Generated frames cover every link type and encapsulation with random depths, lengths, truncations
and corrupted bytes; frames sit in one buffer between random bytes, so a read past a frame's captured
length would show. The same comparison runs over every frame of the real corpus.
"""

from __future__ import annotations

import struct
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from capture_testlib import PCAPS, corpus_files, need
from hypothesis import given, settings
from hypothesis import strategies as st

import features.capture.source as source
from features.capture.decode import decode_chunk
from features.capture.decode_ref import decode_frame
from features.capture.packets import PACKET_COLUMNS, PacketBatch
from features.capture.pcap import PAD, RecordChunk

LINKTYPES = [1, 1, 1, 113, 276, 0, 108, 101, 12, 14, 228, 229, 253, 9, 50, 104, 105, 127, 192]
TUNNELS = ["ipip", "gre", "gre-eth", "erspan1", "erspan2", "erspan3", "pptp", "vxlan", "geneve", "gtpu", "teredo"]


@st.composite
def transport(draw: st.DrawFn, proto: int) -> bytes:
    if proto == 6:
        doff = draw(st.sampled_from([5, 5, 8, 15, 0, 4]))
        hdr = struct.pack(">HHIIBBHHH", *draw(st.tuples(*[st.integers(0, 65535)] * 2)), draw(st.integers(0, 2**32 - 1)),
                          draw(st.integers(0, 2**32 - 1)), doff << 4, draw(st.integers(0, 255)), draw(st.integers(0, 65535)), 0, 0)  # fmt: skip
        return hdr + b"o" * max(0, doff * 4 - 20) + draw(st.binary(max_size=60))
    if proto in (17, 1, 58):
        return struct.pack(">HHHH", *draw(st.tuples(*[st.integers(0, 65535)] * 4))) + draw(st.binary(max_size=40))
    return draw(st.binary(max_size=40))


@st.composite
def ip_packet(draw: st.DrawFn) -> bytes:
    proto = draw(st.sampled_from([6, 6, 17, 1, 58, 47, 50, 59, 0, 44, 43]))
    if draw(st.booleans()):
        opts = b"\x01" * draw(st.sampled_from([0, 0, 4, 40]))
        ihl = draw(st.sampled_from([(20 + len(opts)) // 4] * 4 + [0, 3, 4, 15]))
        body = draw(transport(proto))
        tot = draw(st.sampled_from([None, None, 0, 10, 30, 2000]))
        ff = draw(st.sampled_from([0, 0, 0x4000, 0x2000, 0x2000 | 3, 185, 0x1FFF]))
        tot_v = 20 + len(opts) + len(body) if tot is None else tot
        return struct.pack(">BBHHHBBH4s4s", 0x40 | ihl, 0, tot_v, draw(st.integers(0, 65535)), ff, 64, proto, 0,
                           draw(st.binary(min_size=4, max_size=4)), draw(st.binary(min_size=4, max_size=4))) + opts + body  # fmt: skip
    chain = b""
    exts = draw(st.lists(st.sampled_from([0, 43, 60, 44, 51]), max_size=10))
    nhs = [*exts[1:], proto]
    for e, nh in zip(exts, nhs, strict=False):  # nhs has one more: the last is the transport
        if e == 44:
            chain += struct.pack(
                ">BBHI", nh, 0, draw(st.sampled_from([0, 1, 8, 8 | 1, 0xFFF8])), draw(st.integers(0, 2**32 - 1))
            )
        elif e == 51:
            chain += struct.pack(">BB", nh, 1) + b"\0" * 10
        else:
            n = draw(st.sampled_from([0, 1, 255]))
            chain += struct.pack(">BB", nh, n) + b"\0" * (n * 8 + 6)
    first = exts[0] if exts else proto
    body = chain + draw(transport(proto))
    plen = draw(st.sampled_from([None, None, 0, 5, 65535]))
    return struct.pack(">IHBB16s16s", 0x60000000, len(body) if plen is None else plen, first, 64,
                       draw(st.binary(min_size=16, max_size=16)), draw(st.binary(min_size=16, max_size=16))) + body  # fmt: skip


def outer_ip(proto: int, body: bytes, ff: int = 0) -> bytes:
    return (
        struct.pack(">BBHHHBBH4s4s", 0x45, 0, 20 + len(body), 7, ff, 64, proto, 0, b"\x0a\0\0\1", b"\x0a\0\0\2") + body
    )


def udp(sport: int, dport: int, body: bytes) -> bytes:
    return struct.pack(">HHHH", sport, dport, 8 + len(body), 0) + body


@st.composite
def tunnelled(draw: st.DrawFn, ip: bytes) -> bytes:
    """``ip`` inside one (sometimes two) tunnels of a random kind, in an outer IPv4 packet."""
    kind = draw(st.sampled_from(TUNNELS))
    et = 0x0800 if ip and ip[0] >> 4 == 4 else 0x86DD
    eth = b"\4" * 12 + struct.pack(">H", draw(st.sampled_from([et, et, 0x8100, 0x0806]))) + ip
    if kind == "ipip":
        return outer_ip(draw(st.sampled_from([4, 41])), ip, draw(st.sampled_from([0, 0, 0x2000])))
    if kind in ("gre", "gre-eth", "erspan1", "erspan2", "erspan3"):
        fl = draw(st.sampled_from([0, 0x8000, 0x2000, 0x1000, 0xB000, 0x4000, 0x0001]))
        ptype = {"gre": et, "gre-eth": 0x6558, "erspan1": 0x88BE, "erspan2": 0x88BE, "erspan3": 0x22EB}[kind]
        if kind == "erspan2":
            fl |= 0x1000
        opt = b"\0\0\0\1" * ((fl & 0x8000 > 0) + (fl & 0x2000 > 0) + (fl & 0x1000 > 0))
        body = ip if kind == "gre" else eth
        if kind == "erspan2":
            body = b"\x10" * 8 + body
        if kind == "erspan3":
            body = b"\x20" * 11 + bytes([draw(st.sampled_from([0, 1]))]) + b"\x33" * 8 + body
        return outer_ip(47, struct.pack(">HH", fl, ptype) + opt + body)
    if kind == "pptp":
        fl = 0x3001 | draw(st.sampled_from([0, 0x0080]))
        ppp = draw(st.sampled_from([b"\xff\x03\x00\x21", b"\x21", b"\x00\x21", b"\xff\x03\xc0\x21"])) + ip
        n = draw(st.sampled_from([len(ppp), len(ppp), 0]))
        return outer_ip(47, struct.pack(">HHHHI", fl, 0x880B, n, 1, 5) + b"\0\0\0\2" * (1 + (fl & 0x80 > 0)) + ppp)
    if kind == "vxlan":
        return outer_ip(
            17,
            udp(
                draw(st.integers(1024, 65535)),
                4789,
                struct.pack(">II", draw(st.sampled_from([0x08000000, 0])), 77 << 8) + eth,
            ),
        )
    if kind == "geneve":
        optlen = draw(st.sampled_from([0, 1, 3]))
        ptype = draw(st.sampled_from([0x6558, et, 0x1234]))
        hdr = struct.pack(">BBHI", optlen, 0, ptype, 5 << 8) + b"\x09" * (4 * optlen)
        return outer_ip(17, udp(5555, 6081, hdr + (eth if ptype == 0x6558 else ip)))
    if kind == "gtpu":
        flags = draw(st.sampled_from([0x30, 0x32, 0x34, 0x34, 0x20]))
        ext = b""
        if flags & 0x07:
            nexts = draw(st.lists(st.sampled_from([0x85, 0xC0]), max_size=3))
            ext = struct.pack(">HBB", 1, 0, nexts[0] if (flags & 4) and nexts else 0)
            for i, _ in enumerate(nexts if flags & 4 else []):
                units = draw(st.sampled_from([1, 1, 2, 0]))
                nxt = nexts[i + 1] if i + 1 < len(nexts) else 0
                ext += bytes([units]) + b"\x0e" * max(0, units * 4 - 2) + (bytes([nxt]) if units else b"")
        hdr = struct.pack(">BBHI", flags, draw(st.sampled_from([0xFF, 0xFF, 1])), len(ext) + len(ip), 9) + ext
        return outer_ip(17, udp(2152, 2152, hdr + ip))
    pre = draw(st.sampled_from([b"", b"", b"\0\0" + b"\x12" * 6, b"\0\1\2\1" + b"ab" + b"c" + b"n" * 8 + b"\0"]))
    port = draw(st.sampled_from([3544, 3544, 40000]))
    inner = ip
    if port != 3544 and len(inner) >= 40 and draw(st.booleans()):
        inner = inner[:8] + b"\x20\x01\0\0" + inner[12:]
    return outer_ip(17, udp(port, draw(st.sampled_from([3544, 5000])), pre + inner))


@st.composite
def frame(draw: st.DrawFn) -> tuple[bytes, int, int]:
    lt = draw(st.sampled_from(LINKTYPES))
    ip = draw(ip_packet())
    for _ in range(draw(st.sampled_from([0, 0, 0, 1, 1, 2]))):
        ip = draw(tunnelled(ip))
    version_type = 0x0800 if ip[0] >> 4 == 4 else 0x86DD
    inner_et = draw(st.sampled_from([version_type] * 4 + [0x8847, 0x8864, 0x0806, 0x86DD, 0x0800]))
    if inner_et == 0x8847:
        n = draw(st.integers(1, 10))
        bos = draw(st.integers(0, n))
        ip = b"".join(struct.pack(">I", (i << 12) | (0x100 if i == bos else 0)) for i in range(n)) + ip
    elif inner_et == 0x8864:
        ppp = draw(st.sampled_from([0x0021 if version_type == 0x0800 else 0x0057, 0x0021, 0x0057, 0xC021, 0x21, 0x57]))
        field = bytes([ppp]) if ppp < 0x100 else struct.pack(">H", ppp)
        ip = struct.pack(">BBHH", 0x11, 0, 1, len(ip) + len(field)) + field + ip
    tags = draw(st.lists(st.tuples(st.sampled_from([0x8100, 0x88A8, 0x9100]), st.integers(0, 65535)), max_size=10))
    types = [t for t, _ in tags] + [inner_et]
    l2 = b"".join(struct.pack(">HH", vid, types[i + 1]) for i, (_, vid) in enumerate(tags)) + ip
    first_type = types[0]
    if lt == 1:
        f = b"\2" * 12 + struct.pack(">H", first_type) + l2
    elif lt == 113:
        f = struct.pack(">HHH8sH", 0, 1, 6, b"\2" * 8, first_type) + l2
    elif lt == 276:
        f = struct.pack(">HHIHBB8s", first_type, 0, 2, 1, 0, 6, b"\2" * 8) + l2
    elif lt == 104 or (lt == 50 and draw(st.booleans())):
        f = bytes([draw(st.sampled_from([0x0F, 0x8F]))]) + b"\0" + struct.pack(">H", first_type) + l2
    elif lt in (9, 50):
        proto = draw(st.sampled_from([b"\x00\x21", b"\x21", b"\x00\x57", b"\x57", b"\xc0\x21", b"\x00"]))
        f = draw(st.sampled_from([b"\xff\x03", b""])) + proto + ip
    elif lt in (105, 127, 192):
        fc = draw(st.sampled_from([0x08, 0x88, 0x88, 0x48, 0x80, 0xC4]))  # data, QoS data, null, beacon, ACK
        flags = draw(st.sampled_from([0x01, 0x02, 0x03, 0x00, 0x40, 0x80]))
        hdr = bytes([fc, flags]) + b"\0\0" + b"\5" * 18 + b"\0\0"
        if flags & 3 == 3:
            hdr += b"\6" * 6
        if fc & 0x80:
            hdr += bytes([draw(st.sampled_from([0, 0x80])), 0]) + (b"\7" * 4 if flags & 0x80 else b"")
        llc = draw(st.sampled_from([b"\xaa\xaa\x03\0\0\0", b"\xaa\xaa\x03\0\0\x00", b"\x42\x42\x03\0\0\0"]))
        f = hdr + llc + struct.pack(">H", first_type) + l2
        fcs = draw(st.booleans())
        if lt == 127:
            f = struct.pack("<BBHIB", 0, 0, 9, 2, 0x10 if fcs else 0) + f + (b"\1\2\3\4" if fcs else b"")
        elif lt == 192:
            dlt = draw(st.sampled_from([105, 105, 1, 127]))
            inner = f if dlt != 1 else b"\2" * 12 + struct.pack(">H", first_type) + l2
            f = struct.pack("<BBHI", 0, 0, 8, dlt) + inner
    elif lt in (0, 108):
        af = draw(st.sampled_from([2, 24, 28, 30, 10, 0x02000000, 7]))
        f = struct.pack(draw(st.sampled_from(["<I", ">I"])), af) + ip
    else:
        f = ip
    if draw(st.booleans()):  # corrupt a few bytes
        b = bytearray(f)
        for _ in range(draw(st.integers(1, 3))):
            if b:
                b[draw(st.integers(0, len(b) - 1))] = draw(st.integers(0, 255))
        f = bytes(b)
    cap = draw(st.sampled_from([len(f)] * 3 + [draw(st.integers(0, len(f)))]))
    wire = draw(st.sampled_from([len(f), len(f) + 1000, cap]))
    return f[:cap], lt, wire


def chunk(frames: list[tuple[bytes, int, int]], junk: bytes) -> RecordChunk:
    """Frames back to back in one buffer, each followed by junk (what a stray read would see)."""
    parts, offs, pos = [], [], 0
    for f, _, _ in frames:
        offs.append(pos)
        parts += [f, junk]
        pos += len(f) + len(junk)
    data = b"".join(parts) + b"\0" * PAD
    n = len(frames)
    return RecordChunk(
        np.frombuffer(data, np.uint8).copy(),
        np.array(offs, np.int64),
        np.array([len(f) for f, _, _ in frames], np.int64),
        np.array([w for _, _, w in frames], np.int64),
        np.arange(n, dtype=np.int64) * 1000,
        np.array([lt for _, lt, _ in frames], np.int32),
        5,
    )


def assert_same(rc: RecordChunk, batch: PacketBatch) -> None:
    got = {int(i): k for k, i in enumerate(batch.cols["pkt_idx"].tolist())}
    pays = dict(zip(batch.payload_idx.tolist(), batch.payloads, strict=True))
    bad: Counter[str] = Counter()
    for j in range(len(rc)):
        o, c = int(rc.data_off[j]), int(rc.caplen[j])
        ref = decode_frame(rc.buf[o : o + c].tobytes(), int(rc.linktype[j]), int(rc.wirelen[j]))
        idx = rc.first_idx + j
        bad[ref.bad] += bool(ref.bad)
        if ref.fields is None:
            assert idx not in got, (j, ref.bad)
            continue
        row = {k: int(batch.cols[k][got[idx]]) for k in PACKET_COLUMNS}
        assert row == {**ref.fields, "pkt_idx": idx, "ts_ns": int(rc.ts_ns[j])}, j
        assert pays.get(idx) == ref.payload, j
    assert batch.bad == +bad
    assert batch.records == len(rc)
    assert len(pays) == len(batch.payloads)


@settings(max_examples=300, deadline=None)
@given(frames=st.lists(frame(), min_size=1, max_size=40), junk=st.sampled_from([b"", b"\xff" * 3, bytes(range(60))]))
def test_columnar_equals_reference_on_generated_frames(frames: list[tuple[bytes, int, int]], junk: bytes) -> None:
    rc = chunk(frames, junk)
    assert_same(rc, decode_chunk(rc))


@pytest.mark.corpus
@pytest.mark.parametrize("rel", corpus_files() or ["(../shared missing)"])
def test_columnar_equals_reference_on_the_corpus(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    path: Path = need(PCAPS / rel)
    seen: list[tuple[RecordChunk, PacketBatch]] = []

    def spy(rc: RecordChunk, **kw: bool) -> PacketBatch:
        b = decode_chunk(rc, **kw)
        seen.append((rc, b))
        return b

    monkeypatch.setattr(source, "decode_chunk", spy)
    src = source.PacketSource(path)
    for _ in src.batches():
        pass
    for rc, b in seen:
        b.bad = b.bad - Counter(
            {k: v for k, v in b.bad.items() if k in ("truncated_record", "corrupt_record", "bad_record")}
        )
        assert_same(rc, b)
