"""Files that are not captures fail at once with one line naming the file; damaged captures keep what they can."""

from __future__ import annotations

import gzip
import os
import struct
from pathlib import Path

import numpy as np
import pytest
from capture_testlib import PCAPS, epb, eth, idb, ipv4, need, pb, pcap_bytes, shb, tcp, write
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from features.capture.source import PacketSource
from features.common import InputError

F4 = eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1000, 80)))
HEADER = pcap_bytes([])


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty file"),
        (b"hello, this is a text file\nnot a capture\n", "not a pcap or pcapng capture (starts with 68656c6c)"),
        (os.urandom(4096).replace(b"\x1f\x8b", b"xx").replace(b"\x0a\x0d", b"xx"), "not a pcap or pcapng capture"),
        (b"\xd4\xc3\xb2\xa1\x02\x00\x04\x00\x00\x00", "pcap header cut short (10 of 24 bytes)"),
        (
            b"\x0a\x0d\x0d\x0a\x1c\x00\x00\x00\xff\xff\xff\xff" + b"\0" * 16,
            "pcapng section header without a byte-order magic",
        ),
        (b"\x01\x02", "too short for a capture header (2 bytes)"),
        (gzip.compress(b""), "empty gzip-compressed data, not a capture"),
        (gzip.compress(b"just text inside gzip"), "not a pcap or pcapng capture"),
        (gzip.compress(HEADER * 4)[:12], "gzip-compressed, but the stream is damaged"),
    ],
)
def test_not_a_capture(tmp_path: Path, content: bytes, reason: str) -> None:
    p = tmp_path / "evidence.pcap"
    p.write_bytes(content)
    with pytest.raises(InputError) as e:
        PacketSource(p)
    msg = str(e.value)
    assert msg.startswith(f"{p}: ") and reason in msg and "\n" not in msg
    assert e.value.exit_code == 2


def test_directory_and_missing_and_unreadable(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"is a directory"):
        PacketSource(tmp_path)
    with pytest.raises(InputError, match=r"nope\.pcap: no such file"):
        PacketSource(tmp_path / "nope.pcap")
    locked = tmp_path / "locked.pcap"
    locked.write_bytes(HEADER)

    def denied(*a: object, **k: object) -> object:
        raise PermissionError(13, "Permission denied")

    with pytest.MonkeyPatch.context() as mp:  # chmod 000 does not stop root, so refuse the open itself
        mp.setattr(Path, "open", denied)
        with pytest.raises(InputError, match=r"locked\.pcap: cannot read \(Permission denied\)"):
            PacketSource(locked)


@pytest.mark.parametrize("data", [HEADER, shb() + idb("<", 1), gzip.compress(HEADER)])
def test_header_only_is_a_valid_empty_capture(tmp_path: Path, data: bytes) -> None:
    p = tmp_path / "empty.pcap"
    p.write_bytes(data)
    src = PacketSource(p)
    assert sum(len(b) for b in src.batches()) == 0
    assert src.records == 0 and not src.bad and not src.warnings


@pytest.mark.parametrize("cut", [1, 15, 16, 30])
def test_cut_mid_record_keeps_complete_records(tmp_path: Path, cut: int) -> None:
    data = pcap_bytes([(i, F4) for i in range(5)])
    p = tmp_path / "cut.pcap"
    p.write_bytes(data[: len(data) - len(F4) - 16 + cut])  # the last record loses its tail
    src = PacketSource(p)
    assert sum(len(b) for b in src.batches()) == 4
    assert src.records == 4 and src.bad == {"truncated_record": 1}
    assert src.warnings == [f"{p}: truncated_record: file cut mid-record ({cut} stray bytes) after 4 complete records"]


def test_cut_pcapng_and_cut_gzip(tmp_path: Path) -> None:
    ng = shb() + idb("<", 1) + b"".join(epb("<", 0, i, F4) for i in range(3))
    p = tmp_path / "cut.pcapng"
    p.write_bytes(ng[:-10])
    src = PacketSource(p)
    assert sum(len(b) for b in src.batches()) == 2 and src.bad == {"truncated_record": 1}
    assert "after 2 complete records" in src.warnings[0]
    z = gzip.compress(pcap_bytes([(i, F4 + os.urandom(200)) for i in range(50)]))
    q = tmp_path / "cut.pcap.gz"
    q.write_bytes(z[: len(z) // 2])
    src = PacketSource(q)
    n = sum(len(b) for b in src.batches())
    assert 0 < n < 50 and src.records == n
    assert [w.split(": ")[1] for w in src.warnings] == ["truncated_gzip"]


def test_corrupt_record_length_stops_with_a_warning(tmp_path: Path) -> None:
    data = pcap_bytes([(i, F4) for i in range(3)]) + struct.pack("<IIII", 9, 0, 0x7FFFFFFF, 60) + F4 * 10
    p = tmp_path / "corrupt.pcap"
    p.write_bytes(data)
    src = PacketSource(p)
    assert sum(len(b) for b in src.batches()) == 3
    assert src.bad == {"corrupt_record": 1}
    assert src.warnings == [
        f"{p}: corrupt_record: record header claims 2147483647 captured bytes after 3 complete records"
    ]
    import hashlib

    assert src.sha256 == hashlib.sha256(data).hexdigest()  # the whole file is still hashed


@pytest.mark.corpus
def test_real_cut_file() -> None:
    p = need(PCAPS / "formats" / "file-cut-mid-record.pcap")
    src = PacketSource(p)
    assert sum(b.records for b in src.batches()) == 25
    assert src.warnings == [f"{p}: truncated_record: file cut mid-record (2 stray bytes) after 25 complete records"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tail=st.binary(max_size=3000), ng=st.booleans(), gz=st.booleans())
def test_random_bytes_after_a_valid_header_are_only_counted(tmp_path: Path, tail: bytes, ng: bool, gz: bool) -> None:
    head = shb() + idb("<", 1) if ng else HEADER
    p = tmp_path / "fuzz.bin"
    p.write_bytes(gzip.compress(head + tail) if gz else head + tail)
    src = PacketSource(p)
    n = sum(len(b) for b in src.batches())
    assert n <= src.records
    assert set(src.bad) <= {
        "truncated_link", "non_ip", "unsupported_linktype", "truncated_ip", "bad_ip_header",
        "truncated_transport", "bad_tcp_header", "truncated_record", "corrupt_record", "corrupt_block", "bad_record",
        "bad_timestamp",
    }  # fmt: skip
    assert len(src.warnings) <= 1


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    frames=st.lists(st.binary(max_size=200), max_size=30), lt=st.sampled_from([0, 1, 12, 101, 108, 113, 228, 229, 276])
)
def test_random_frames_in_valid_records_never_raise(tmp_path: Path, frames: list[bytes], lt: int) -> None:
    p = tmp_path / "frames.pcap"
    p.write_bytes(pcap_bytes([(i, f) for i, f in enumerate(frames)], linktype=lt))
    src = PacketSource(p)
    n = sum(len(b) for b in src.batches())
    kept = sum(v for k, v in src.bad.items() if k in ("truncated_transport", "bad_tcp_header"))
    assert src.records == len(frames)
    assert n + sum(src.bad.values()) - kept == len(frames)


def test_corrupt_pcapng_block_stops_with_a_warning(tmp_path: Path) -> None:
    good = shb() + idb("<", 1) + epb("<", 0, 1, F4)
    p = tmp_path / "corrupt.pcapng"
    p.write_bytes(good + struct.pack("<II", 6, 7) + b"\0" * 40 + epb("<", 0, 2, F4))
    src = PacketSource(p)
    assert sum(len(b) for b in src.batches()) == 1
    assert src.bad == {"corrupt_block": 1}
    assert src.warnings == [f"{p}: corrupt_block: block at byte {len(good)} has length 7 after 1 complete records"]


def test_pcapng_packet_for_a_missing_interface_is_counted(tmp_path: Path) -> None:
    p = tmp_path / "noif.pcapng"
    p.write_bytes(shb() + idb("<", 1) + epb("<", 3, 1, F4) + epb("<", 0, 2, F4))
    src = PacketSource(p)
    assert sum(len(b) for b in src.batches()) == 1
    assert src.bad == {"bad_record": 1} and not src.warnings


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.binary(min_size=8, max_size=80), data=st.binary(max_size=80), iface=st.integers(0, 3))
def test_random_interface_blocks_never_raise(tmp_path: Path, body: bytes, data: bytes, iface: int) -> None:
    """An IDB with arbitrary link type, snap length and options, then packets that use it."""
    body += b"\0" * (-len(body) % 4)
    blk = struct.pack("<II", 1, len(body) + 12) + body + struct.pack("<I", len(body) + 12)
    p = tmp_path / "idb.pcapng"
    p.write_bytes(shb() + blk + epb("<", iface, 123456789, data) + epb("<", 0, 2**63 + 5, F4))
    src = PacketSource(p)
    rows = sum(len(b) for b in src.batches())
    assert rows <= src.records <= 2


@pytest.mark.parametrize("n", [20, 24, 40, 100])
def test_gzip_cut_short_is_judged_like_the_same_bytes_plain(tmp_path: Path, n: int) -> None:
    """One rule: a damaged gzip stream is judged by the bytes it inflates to, as those bytes plain would be."""
    data = pcap_bytes([(i, F4) for i in range(3)])[:n]
    plain = write(tmp_path / "plain.pcap", data)
    z = tmp_path / "cut.pcap.gz"
    z.write_bytes(gzip.compress(data)[:-8])  # the gzip trailer is lost: every byte inflates, then the stream ends
    if n < 24:
        for p in (plain, z):
            with pytest.raises(InputError, match=rf"pcap header cut short \({n} of 24 bytes\)"):
                PacketSource(p)
        return
    whole, stray = divmod(n - 24, 16 + len(F4))
    a, b = PacketSource(plain), PacketSource(z)
    assert sum(len(x) for x in a.batches()) == sum(len(x) for x in b.batches()) == whole
    assert a.records == b.records == whole
    cut = f"{plain}: truncated_record: file cut mid-record ({stray} stray bytes) after {whole} complete records"
    assert a.warnings == ([cut] if stray else [])
    assert [w.split(": ")[1] for w in b.warnings] == ["truncated_gzip"]


# Ticks at and around the int64 limits, in ns (if_tsresol 9): int64 max is 2262, int64 max + 1 wraps to 1677.
EDGE_TICKS = [2**63 - 1, 2**63, 2**63 + 1, 2**64 - 10**18]  # the last: -1e18 ns, 1938


def _edge_capture(path: Path) -> Path:
    """pcapng: a good packet at 2023-11-14, then EPBs and one obsolete PB with timestamps nta cannot use."""
    frames = [epb("<", 0, 1_700_000_000 * 10**9, F4)] + [epb("<", 0, t, F4) for t in EDGE_TICKS]
    frames.append(pb("<", 0, 2**63 + 7, F4))
    path.write_bytes(shb() + idb("<", 1, tsresol=9) + b"".join(frames) + epb("<", 0, 1_700_000_001 * 10**9, F4))
    return path


def test_timestamps_outside_1950_2200_are_counted_and_skipped(tmp_path: Path) -> None:
    src = PacketSource(_edge_capture(tmp_path / "edge.pcapng"))
    ts = np.concatenate([b.cols["ts_ns"] for b in src.batches()])
    assert ts.tolist() == [1_700_000_000 * 10**9, 1_700_000_001 * 10**9]
    assert src.bad == {"bad_timestamp": len(EDGE_TICKS) + 1} and not src.warnings


def test_scan_and_features_of_int64_edge_timestamps_work(tmp_path: Path) -> None:
    """They were exit 70 (datetime conversion) and gave negative durations; now they are bad packets by name."""
    import json

    import polars as pl
    from typer.testing import CliRunner

    from analyzer.cli import app

    cap = _edge_capture(tmp_path / "edge.pcapng")
    res = CliRunner().invoke(app, ["features", str(cap), "-o", str(tmp_path / "k.parquet"), "-q"])
    assert res.exit_code == 0, res.output
    assert pl.read_parquet(tmp_path / "k.parquet")["duration"].to_list() == [1.0]
    res = CliRunner().invoke(app, ["scan", str(cap), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert report["bad_packets"] == {"bad_timestamp": 5}
    assert pl.read_parquet(tmp_path / "o" / "flows.parquet")["duration_s"].to_list() == [1.0]
