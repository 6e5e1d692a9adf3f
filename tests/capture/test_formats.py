"""Containers: classic pcap in every byte order and resolution, modified pcap, pcapng, gzip by content.

Self-made files (so the suite runs without ../shared) and the real files of the corpus.
"""

from __future__ import annotations

import gzip
from datetime import UTC
from pathlib import Path

import dpkt
import numpy as np
import pytest
from capture_testlib import (
    PCAPS,
    corpus_files,
    epb,
    eth,
    frames_read,
    idb,
    ipv4,
    ipv6,
    is_pcapng,
    manifest,
    need,
    other_block,
    pb,
    pcap_bytes,
    shb,
    spb,
    tcp,
    udp,
)

from features.capture.source import PacketSource
from features.capture.stream import BLOCK_BYTES
from features.common import InputError

F4 = eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1000, 80)))
F6 = eth(ipv6("2001:db8::1", "2001:db8::2", 17, udp(5000, 53, b"dns")), 0x86DD)
RAW4 = ipv4("10.1.1.1", "10.1.1.2", 17, udp(7, 9))


def collect(src: PacketSource) -> list[tuple[int, int, int, int]]:
    """(pkt_idx, ts_ns, ip_version, dport) per decoded row."""
    out = []
    for b in src.batches():
        c = b.cols
        out += list(zip(*(c[k].tolist() for k in ("pkt_idx", "ts_ns", "ip_version", "dport")), strict=True))
    return out


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize(
    ("endian", "ns", "modified", "fmt"),
    [
        ("<", False, False, "pcap-le-us"),
        (">", False, False, "pcap-be-us"),
        ("<", True, False, "pcap-le-ns"),
        (">", True, False, "pcap-be-ns"),
        ("<", False, True, "pcap-le-us-modified"),
        (">", False, True, "pcap-be-us-modified"),
    ],
)
def test_classic_pcap_variants(tmp_path: Path, endian: str, ns: bool, modified: bool, fmt: str, gz: bool) -> None:
    data = pcap_bytes([(1.25, F4), (2.000123, F6), (3.5, F4)], endian=endian, ns=ns, modified=modified)
    p = tmp_path / "odd-name.bin"  # never judged by name
    p.write_bytes(gzip.compress(data) if gz else data)
    src = PacketSource(p)
    assert src.format == fmt + ("+gzip" if gz else "")
    got = collect(src)
    assert [(i, v, d) for i, _, v, d in got] == [(0, 4, 80), (1, 6, 53), (2, 4, 80)]
    assert [t for _, t, _, _ in got] == [1_250_000_000, 2_000_123_000, 3_500_000_000]
    assert src.records == 3 and not src.bad and not src.warnings
    import hashlib

    assert src.sha256 == hashlib.sha256(p.read_bytes()).hexdigest()


def _pcapng(e2: str = ">") -> bytes:
    """Two sections (second in another byte order), four interfaces, EPB/SPB/PB, skipped blocks."""
    return b"".join(
        [
            shb("<"),
            idb("<", 1),  # default resolution: microseconds
            idb("<", 101, tsresol=9, tsoffset=100),  # ns, +100 s
            other_block("<", 4),  # name resolution: skipped
            epb("<", 0, 1_000_000, F4),
            epb("<", 1, 5_000_000_000, RAW4),
            spb("<", F6),  # no timestamp: takes the previous packet's
            pb("<", 0, 2_000_000, F4),
            other_block("<", 5),
            shb(e2),  # new section: interfaces start again
            idb(e2, 0, tsresol=0x80 | 10),  # 2^-10 s units, BSD NULL
            idb(e2, 253),  # netlink: unsupported
            epb(e2, 0, 3 * 1024 + 512, b"\x02\0\0\0" + RAW4),
            epb(e2, 1, 1, b"\0" * 20),
            epb(e2, 0, 4 * 1024, b"\x1e\0\0\0" + F6[14:]),
        ]
    )


@pytest.mark.parametrize("gz", [False, True])
@pytest.mark.parametrize("e2", ["<", ">"])
def test_pcapng_sections_interfaces_and_blocks(tmp_path: Path, gz: bool, e2: str) -> None:
    data = _pcapng(e2)
    p = tmp_path / "x.pcap"  # a pcapng named .pcap: content decides
    p.write_bytes(gzip.compress(data) if gz else data)
    src = PacketSource(p)
    assert src.format == "pcapng" + ("+gzip" if gz else "")
    got = collect(src)
    assert got == [
        (0, 1_000_000_000, 4, 80),
        (1, 105_000_000_000, 4, 9),
        (2, 105_000_000_000, 6, 53),
        (3, 2_000_000_000, 4, 80),
        (4, 3_500_000_000, 4, 9),
        (6, 4_000_000_000, 6, 53),
    ]
    assert src.records == 7 and src.bad == {"unsupported_linktype": 1}


def test_pcapng_matches_dpkt_on_a_single_section(tmp_path: Path) -> None:
    frames = [F4, F6, F4 + b"pad"]
    data = (
        shb("<")
        + idb("<", 1)
        + b"".join(epb("<", 0, 1_700_000_000_000_000 + i * 1000, f) for i, f in enumerate(frames))
    )
    p = tmp_path / "one.pcapng"
    p.write_bytes(data)
    ours = collect(PacketSource(p))
    with p.open("rb") as f:
        theirs = [(round(ts * 1e6) * 1000, bytes(buf)) for ts, buf in dpkt.pcapng.Reader(f)]
    assert [t for _, t, _, _ in ours] == [t for t, _ in theirs]


@pytest.mark.parametrize("headroom", [1 << 20, 16])
def test_records_cross_block_boundaries(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, headroom: int) -> None:
    """Tiny read blocks: records split across blocks are reassembled, none lost or doubled.

    With a 16-byte headroom most tails do not fit before the next block and take the copying path.
    """
    import features.capture.source as source
    import features.capture.stream as stream

    real = source.stream_blocks
    monkeypatch.setattr(source, "stream_blocks", lambda *a, **k: real(*a, **{**k, "block": 37}))
    monkeypatch.setattr(source, "HEADROOM", headroom)
    monkeypatch.setattr(stream, "HEADROOM", headroom)
    frames = [(i * 0.001, F4 if i % 3 else F6) for i in range(200)]
    p = tmp_path / "small-blocks.pcap"
    p.write_bytes(pcap_bytes(frames))
    q = tmp_path / "small-blocks.pcapng"
    q.write_bytes(shb() + idb("<", 1) + b"".join(epb("<", 0, i, f) for i, (_, f) in enumerate(frames)))
    for path in (p, q):
        src = PacketSource(path, chunk_records=16)
        got = collect(src)
        assert [g[0] for g in got] == list(range(200))
        assert src.records == 200 and not src.warnings
    assert BLOCK_BYTES > 1 << 20


SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def batches_of(path: Path) -> tuple[list[dict[str, list]], dict[str, int], list[str]]:
    """Every column of every batch, the bad-packet counts and the warnings of one reading."""
    src = PacketSource(path, chunk_records=64)
    cols = [{k: v.tolist() for k, v in b.cols.items()} for b in src.batches()]
    return cols, dict(src.bad), list(src.warnings)


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.pcap*")))
def test_bytes_past_a_blocks_padding_are_never_read(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """Only a block's data and the PAD zero bytes after it are read: a short block's unset tail (filled here with
    0xFF, which makes any length read from it huge) changes no packet, count or warning of any sample capture."""
    import features.capture.stream as stream

    path = SAMPLES / name
    clean = batches_of(path)
    assert clean[0], f"{name}: no packets read"
    monkeypatch.setattr(stream, "_block_buffer", lambda n: np.full(n, 0xFF, np.uint8))
    assert batches_of(path) == clean


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.pcap*")))
def test_read_on_a_thread_or_here_gives_the_same(monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    """A small plain file is read on the caller's thread (``stream_blocks(ahead=False)``), a big one on a reader
    thread: the same packets, counts and warnings either way (every sample capture, and a limit crossed)."""
    import features.capture.source as source
    from features.capture.stream import ReadLimits

    path = SAMPLES / name
    here = batches_of(path)
    monkeypatch.setattr(source, "SMALL_FILE_BYTES", 0)  # every file "big": read on the thread
    assert batches_of(path) == here
    errors = []
    for small in (0, 1 << 40):
        monkeypatch.setattr(source, "SMALL_FILE_BYTES", small)
        with pytest.raises(InputError) as e:
            list(PacketSource(path, limits=ReadLimits(100, 0)).batches())
        errors.append(str(e.value))
    assert errors[0] == errors[1] and "more than 100 bytes of capture data" in errors[0]


def test_chunk_records_bounds_every_batch(tmp_path: Path) -> None:
    p = tmp_path / "c.pcap"
    p.write_bytes(pcap_bytes([(i, F4) for i in range(1000)]))
    sizes = [b.records for b in PacketSource(p, chunk_records=64).batches()]
    assert max(sizes) == 64 and sum(sizes) == 1000


def test_progress_reports_bytes(tmp_path: Path) -> None:
    p = tmp_path / "p.pcap.gz"
    p.write_bytes(gzip.compress(pcap_bytes([(i, F4) for i in range(100)])))
    seen: list[tuple[int, int]] = []
    for _ in PacketSource(p).batches(lambda d, t: seen.append((d, t))):
        pass
    size = p.stat().st_size
    assert seen[-1] == (size, size) and all(t == size and 0 <= d <= size for d, t in seen)


# ---------------------------------------------------------------- the real files


def _real(rel: str) -> PacketSource:
    return PacketSource(need(PCAPS / rel))


@pytest.mark.corpus
@pytest.mark.parametrize(
    ("rel", "fmt", "rows", "bad"),
    [
        ("formats/pcap-big-endian-nanosecond.pcap", "pcap-be-ns", 10, {}),
        ("formats/pcap-nanosecond-le.pcap", "pcap-le-ns", 9, {}),
        ("formats/pcap-big-endian-netlink.pcap", "pcap-be-us", 0, {"unsupported_linktype": 13}),
        ("formats/gzip-compressed.pcap.gz", "pcap-le-us+gzip", 289, {}),
        ("formats/empty-header-only.pcap", "pcap-le-us", 0, {}),
        ("formats/pcapng-11-interfaces.pcapng", "pcapng", 64, {}),
        ("formats/pcapng-ethernet-and-sll.pcapng", "pcapng", 159, {}),
        ("formats/pcapng-multi-interface.pcapng", "pcapng", 6, {}),
        ("formats/linktype-linux-sll.pcap", "pcap-le-us", 511, {"non_ip": 7}),
        ("formats/linktype-linux-sll2.pcap", "pcap-le-us", 3, {}),
        ("formats/linktype-raw-ip.pcap", "pcap-le-us", 100, {}),
        ("formats/linktype-ipv4-228.pcap", "pcap-le-us", 2, {}),
        ("formats/linktype-null-bsd-loopback.pcap", "pcap-le-us", 3, {}),  # IPv6 AF 30, IPv4 AF 2, EtherType
        ("formats/vlan-triple-tag.pcap", "pcap-le-us", 14, {}),
        ("formats/pppoe-over-qinq.pcap", "pcap-le-us", 86, {}),
        ("formats/pppoe-session.pcap", "pcap-le-us", 25, {"non_ip": 40}),  # PPP LCP/IPCP/IPv6CP, discovery
        ("formats/mpls-in-vlan.pcap", "pcap-le-us", 3, {}),
        ("formats/snaplen-68-truncated.pcap", "pcap-le-us", 24, {}),
        ("attack/host-sweep-icmp-echo.pcapng", "pcap-le-us", 769, {}),  # a pcap named .pcapng
    ],
)
def test_real_formats(rel: str, fmt: str, rows: int, bad: dict[str, int]) -> None:
    src = _real(rel)
    got = collect(src)
    assert src.format == fmt
    assert len(got) == rows and src.bad == bad
    assert src.records == int(manifest()[rel]["packets"])


@pytest.mark.corpus
def test_real_vlan_mpls_pppoe_fields() -> None:
    def vlans(rel: str) -> set[int]:
        return {v for b in _real(rel).batches() for v in b.cols["vlan"].tolist()}

    assert vlans("formats/vlan-qinq.pcap") - {-1}
    assert vlans("formats/mpls-in-vlan.pcap") - {-1}
    versions = {v for b in _real("formats/pppoe-session.pcap").batches() for v in b.cols["ip_version"].tolist()}
    assert versions == {6}


@pytest.mark.corpus
def test_real_timestamps_match_the_manifest() -> None:
    """Earliest and latest packet times of ns, big-endian and pcapng files, to the manifest's last digit."""
    from datetime import datetime

    def parse(text: str) -> tuple[int, int]:
        whole, frac = text.split(".")
        sec = int(datetime.strptime(whole, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC).timestamp())
        return sec * 10 ** len(frac) + int(frac), 10 ** (9 - len(frac))

    for rel in ("formats/pcap-big-endian-nanosecond.pcap", "formats/pcap-nanosecond-le.pcap",
                "formats/pcapng-11-interfaces.pcapng", "benign/dns-queries.pcapng",
                "formats/gzip-compressed.pcap.gz", "formats/vlan-triple-tag.pcap",
                "formats/pcapng-multi-interface.pcapng"):  # fmt: skip
        ts = [t for b in _real(rel).batches() for t in b.cols["ts_ns"].tolist()]
        row = manifest()[rel]
        for got, text in ((min(ts), row["first_packet_utc"]), (max(ts), row["last_packet_utc"])):
            want, unit = parse(text)
            assert got // unit == want, rel


@pytest.mark.corpus
@pytest.mark.parametrize(
    "rel", [r for r in corpus_files() if r.endswith(".pcapng") and is_pcapng(r)] or ["(../shared missing)"]
)
def test_pcapng_parser_agrees_with_dpkt(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our block parser and dpkt's reader: the same frames; the same times where dpkt applies if_tsresol."""
    path = need(PCAPS / rel)
    ours = frames_read(path, monkeypatch)
    with path.open("rb") as f:
        theirs = [(ts, bytes(buf)) for ts, buf in dpkt.pcapng.Reader(f)]
    assert [b for _, b in ours] == [b for _, b in theirs]
    # dpkt applies the first interface's if_tsresol to every interface; on these two files that is wrong
    # (tshark agrees with us; the manifest check above covers the multi-interface file's times).
    if rel not in ("formats/pcapng-multi-interface.pcapng", "formats/pcapng-ethernet-and-sll.pcapng"):
        for (ns, _), (ts, _) in zip(ours, theirs, strict=True):
            assert abs(ns / 1e9 - ts) <= 2e-6


def test_gzip_members_padding_and_big_ratios(tmp_path: Path) -> None:
    """Concatenated gzip members, zero padding after the last, and members that inflate 500x."""
    frames = [(i, F4 + b"\0" * 5000) for i in range(3000)]
    data = pcap_bytes(frames)
    p = tmp_path / "members.gz"
    p.write_bytes(gzip.compress(data[:100_000]) + gzip.compress(data[100_000:]) + b"\0" * 100)
    src = PacketSource(p)
    assert sum(len(b) for b in src.batches()) == 3000
    assert src.records == 3000 and not src.bad and not src.warnings


def test_a_second_pass_gives_the_same_counts(tmp_path: Path) -> None:
    p = tmp_path / "twice.pcap"
    p.write_bytes(pcap_bytes([(i, F4 if i % 2 else b"\0" * 20) for i in range(10)]))
    src = PacketSource(p)
    first = [len(b) for b in src.batches()]
    counts = (src.records, dict(src.bad), src.sha256)
    assert [len(b) for b in src.batches()] == first
    assert (src.records, dict(src.bad), src.sha256) == counts == (10, {"non_ip": 5}, counts[2])


@pytest.mark.corpus
@pytest.mark.parametrize("rel", [r for r in corpus_files() if not is_pcapng(r)] or ["(../shared missing)"])
def test_pcap_walker_agrees_with_dpkt(rel: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Our classic-pcap walker and dpkt's reader: the same frames and times on every corpus file."""
    path = need(PCAPS / rel)
    ours = frames_read(path, monkeypatch)
    opener = gzip.open if path.read_bytes()[:2] == b"\x1f\x8b" else open
    theirs = []
    with opener(path, "rb") as f:
        reader = iter(dpkt.pcap.Reader(f))
        while True:
            try:
                ts, buf = next(reader)
            except (StopIteration, dpkt.NeedData):  # the end, or the cut in file-cut-mid-record.pcap
                break
            theirs.append((ts, bytes(buf)))
    assert [b for _, b in ours] == [b for _, b in theirs]
    for (ns, _), (ts, _) in zip(ours, theirs, strict=True):
        assert abs(ns / 1e9 - float(ts)) <= 1e-6


@pytest.mark.parametrize(
    ("tsresol", "ns"), [(0, 5_000_000_000), (3, 5_000_000), (0x80, 5_000_000_000), (0x7F, 0), (0xFF, 0), (28, 0)]
)
def test_pcapng_extreme_resolutions_never_raise(tmp_path: Path, tsresol: int, ns: int) -> None:
    p = tmp_path / "res.pcapng"
    p.write_bytes(shb() + idb("<", 1, tsresol=tsresol) + epb("<", 0, 5, F4))
    assert [t for _, t, _, _ in collect(PacketSource(p))] == [ns]
