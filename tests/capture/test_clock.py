"""A capture whose packet times say its host's clock was wrong (before 1990, or after the scan) is read as recorded
and named in one warning (``features.capture.pcap.clock_warning``)."""

from __future__ import annotations

from pathlib import Path

import pytest
from capture_testlib import pcap_bytes, write
from hypothesis import given, settings
from hypothesis import strategies as st

from features.capture.pcap import clock_warning
from features.capture.source import PacketSource, packet_span, packet_times
from features.flows.extract import extract_flows

NS = 10**9
NOW = 1_796_000_000 * NS  # 2026-11-30
FRAME = bytes(12) + b"\x08\x00" + bytes(20)  # Ethernet + an (empty) IPv4 header: a record is all the reader needs


@pytest.mark.parametrize(
    ("first_s", "last_s", "says"),
    [
        (1_700_000_000, 1_700_000_100, None),  # 2023: a working clock
        (631_152_000, 631_152_000, None),  # 1990-01-01 00:00:00 exactly: not before 1990
        (631_151_999, 1_700_000_000, "(before 1990)"),
        (0, 60, "from 1970-01-01 00:00:00 to 1970-01-01 00:01:00 UTC (before 1990)"),
        (-600, 0, "from 1969-12-31 23:50:00"),  # pcapng can hold times before the epoch
        (1_796_000_000, 1_796_086_400, None),  # up to a day past the scan's clock: time zones, clock drift
        (1_796_000_000, 1_796_086_401, "(in the future)"),
        (0, 2_900_000_000, "(before 1990 and in the future)"),
    ],
)
def test_the_clock_rule(first_s: int, last_s: int, says: str | None) -> None:
    got = clock_warning("x.pcap", first_s * NS, last_s * NS, NOW)
    if says is None:
        assert got is None
    else:
        assert got is not None and got.startswith("x.pcap: packet times run from ") and says in got
        assert got.endswith("the capturing host's clock was probably wrong; times are used as recorded")


def test_no_packets_no_warning() -> None:
    assert clock_warning("x.pcap", None, None, NOW) is None


def test_a_capture_from_a_host_booted_at_the_epoch_is_read_and_named(tmp_path: Path) -> None:
    """The reader keeps its warnings for damage; the clock is judged once the whole file is read (earliest and
    latest time, the reader's child process included) and said among the read's warnings."""
    epoch = write(tmp_path / "router.pcap", pcap_bytes([(5.0, FRAME), (6.5, FRAME)]))
    fine = write(tmp_path / "desk.pcap", pcap_bytes([(1_700_000_000.0, FRAME), (1_700_000_001.0, FRAME)]))
    src = PacketSource(epoch)
    for _ in src.batches():
        pass
    assert src.records == 2 and (src.ts_first, src.ts_last) == (5 * NS, 6_500_000_000) and src.warnings == []
    ext = extract_flows([epoch, fine], payloads=False)  # read as recorded, whatever the clock
    assert ext.packets == 4
    assert [w for w in ext.warnings if "clock" in w] == [
        f"{epoch}: packet times run from 1970-01-01 00:00:05 to 1970-01-01 00:00:06 UTC (before 1990): the "
        "capturing host's clock was probably wrong; times are used as recorded"
    ]


@settings(max_examples=300, deadline=None)
@given(st.integers(-(2**62), 2**62), st.integers(0, 2**40))
def test_a_captures_packet_times_round_trip_to_a_span_that_holds_them(first: int, extra: int) -> None:
    """report.json's first_packet/last_packet (microseconds) read back to a span holding the exact ns times, within a
    microsecond of them: ``nta carve`` never skips a file that holds a flow's packet."""
    last = first + extra
    span = packet_span(packet_times(first, last))
    assert span is not None
    assert span[0] <= first < span[0] + 1000 and last <= span[1] < last + 1000


def test_a_capture_without_records_or_times_has_no_span(tmp_path: Path) -> None:
    p = write(tmp_path / "empty.pcap", pcap_bytes([]))
    src = PacketSource(p)
    list(src.batches())
    assert "first_packet" not in src.info() and packet_span(src.info()) is None
    assert packet_span({"first_packet": "yesterday", "last_packet": "today"}) is None
    p = write(tmp_path / "one.pcap", pcap_bytes([(1_700_000_000.25, FRAME)]))
    src = PacketSource(p)
    list(src.batches())
    assert src.info()["first_packet"] == src.info()["last_packet"] == "2023-11-14T22:13:20.250000Z"
