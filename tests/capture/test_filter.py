"""The packet filter (--since/--until/--host/--port) on real captures: exactly the packets a per-packet check keeps.

The reference is written packet by packet from the rule in ``features.capture.filter`` (time in [since, until),
either address in a network, either port in the set, port-less non-first fragments kept), applied to the
rows of an unfiltered read; the filtered read must give exactly those rows, with their record numbers, and
count the rest as filtered, whichever reader (thread or child process) runs it.
"""

from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from features.capture.filter import PacketFilter, parse_time
from features.capture.packets import PacketBatch
from features.capture.readahead import read_ahead
from features.capture.source import PacketSource
from features.common import InputError

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
DEMO = SAMPLES / "demo-mixed.pcap"
T0 = parse_time("2024-03-01T10:00:00Z", "t")


def _rows(path: Path, flt: PacketFilter | None = None, **kw: int) -> tuple[dict[str, np.ndarray], int, int]:
    src = PacketSource(path, packet_filter=flt, chunk_records=kw.get("chunk", 262_144))
    batches: list[PacketBatch] = list(read_ahead(src, lambda d, t: None, process_min_bytes=kw.get("fork", 1 << 40)))
    cols = {k: np.concatenate([b.cols[k] for b in batches]) for k in batches[0].cols}
    return cols, src.records, src.filtered


def _addr(hi: int, lo: int) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    if hi == 0 and lo >> 32 == 0xFFFF:
        return ipaddress.IPv4Address(lo & 0xFFFFFFFF)
    return ipaddress.IPv6Address(hi << 64 | lo)


def _reference(
    cols: dict[str, np.ndarray], since: int | None, until: int | None, nets: list[str], ports: list[int]
) -> np.ndarray:
    networks = [ipaddress.ip_network(n, strict=False) for n in nets]
    keep = []
    for i in range(cols["ts_ns"].shape[0]):
        t = int(cols["ts_ns"][i])
        ok = (since is None or t >= since) and (until is None or t < until)
        if networks:
            ends = [_addr(int(cols[f"{s}_hi"][i]), int(cols[f"{s}_lo"][i])) for s in ("src", "dst")]
            ok = ok and any(a.version == n.version and a in n for a in ends for n in networks)
        if ports:
            sp, dp = int(cols["sport"][i]), int(cols["dport"][i])
            ok = ok and (sp in ports or dp in ports or (bool(cols["is_frag"][i]) and sp < 0))
        keep.append(ok)
    return np.array(keep, bool)


FULL, RECORDS, _ = _rows(DEMO)
HOSTS = sorted({str(_addr(int(h), int(lo))) for h, lo in zip(FULL["src_hi"], FULL["src_lo"], strict=True)})
PORTS = sorted({int(p) for p in FULL["dport"] if p >= 0})


@settings(max_examples=40, deadline=None)
@given(
    window=st.one_of(st.none(), st.tuples(st.integers(0, 60_000), st.integers(1, 30_000))),
    hosts=st.lists(
        st.one_of(st.sampled_from(HOSTS), st.sampled_from(["10.0.0.0/28", "192.168.0.0/16", "::/0"])), max_size=2
    ),
    ports=st.lists(st.sampled_from([*PORTS[:40], 80, 53, 22]), max_size=2),
)
def test_filtered_read_keeps_exactly_the_packets_the_rule_keeps(
    window: tuple[int, int] | None, hosts: list[str], ports: list[int]
) -> None:
    since = until = None
    if window is not None:
        since, until = T0 + window[0] * 1_000_000, T0 + (window[0] + window[1]) * 1_000_000
    flt = PacketFilter(since, until, PacketFilter.build(hosts=hosts).nets, tuple(sorted(set(ports))))
    want = _reference(FULL, since, until, hosts, ports)
    got, records, filtered = _rows(DEMO, flt, chunk=500)
    assert records == RECORDS and filtered == int((~want).sum())
    for k in ("pkt_idx", "ts_ns", "src_lo", "dst_lo", "sport", "dport", "proto"):
        assert np.array_equal(got[k], FULL[k][want]), k


def test_the_child_process_reader_filters_the_same(tmp_path: Path) -> None:
    flt = PacketFilter.build(since="2024-03-01T10:00:10Z", until="2024-03-01T10:00:40Z", hosts=["10.0.0.0/24"])
    thread = _rows(DEMO, flt)
    child = _rows(DEMO, flt, fork=0)
    assert thread[1:] == child[1:] and thread[2] > 0
    assert all(np.array_equal(thread[0][k], child[0][k]) for k in thread[0])


def test_options_are_checked_in_one_line() -> None:
    assert parse_time("2024-03-01T10:00:00", "x") == parse_time("2024-03-01T11:00:00+01:00", "x") == T0
    for kw, msg in [
        ({"since": "yesterday"}, "--since: 'yesterday' is not an ISO 8601 time"),
        ({"since": "2024-03-01T10:00:05Z", "until": "2024-03-01T10:00:05Z"}, "is not after --since"),
        ({"hosts": ["10.0.0.300"]}, "--host: '10.0.0.300' is not an IP address or CIDR network"),
        ({"ports": [70000]}, "--port: 70000 is not a port"),
    ]:
        with pytest.raises(InputError, match=msg):
            PacketFilter.build(**kw)  # type: ignore[arg-type]
    assert not PacketFilter.build().active


def test_ipv6_networks_and_ipv4_are_told_apart() -> None:
    got, _, _ = _rows(SAMPLES / "fmt-pcap-be-usec.pcap", PacketFilter.build(hosts=["2001:db8::/32"]))
    assert set(got["ip_version"].tolist()) == {6} and got["ts_ns"].size == 10
    got, _, _ = _rows(SAMPLES / "fmt-pcap-be-usec.pcap", PacketFilter.build(hosts=["0.0.0.0/0"]))
    assert set(got["ip_version"].tolist()) == {4} and got["ts_ns"].size == 16


def test_tunnelled_packets_are_filtered_by_the_inner_packet() -> None:
    inner = PacketFilter.build(hosts=["10.0.0.20"], ports=[22])
    got, _, filtered = _rows(SAMPLES / "tunnel-gre-portscan.pcap", inner)
    assert got["ts_ns"].size == 3 and filtered == 239  # SYN, SYN-ACK, RST of the one open port probed on 22
    outer, _, _ = _rows(SAMPLES / "tunnel-gre-portscan.pcap", PacketFilter.build(hosts=["172.16.0.1"]))
    assert outer["ts_ns"].size == 0  # the tunnel's endpoints are not the flows' endpoints
