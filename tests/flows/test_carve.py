"""Carving (features.flows.carve) on real captures: the chosen flows' packets, byte for byte, nothing else.

Carving every flow of a capture must give back every packet nta made a flow from, with the original bytes,
lengths, times and link type (fragments out of order, tunnels, VLANs, 802.11, pcapng and gzip inputs
included); carving one flow gives exactly its packets.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import dpkt
import polars as pl
import pytest

from features.capture.write import PcapngWriter, PcapWriter
from features.flows.carve import CarveJob, carve
from features.flows.extract import extract_flows

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
PCAPS = REPO.parent / "shared" / "data" / "pcaps"
NAMES = ["teardrop.pcap", "demo-mixed.pcap", "udp-flood.pcap", "tunnel-erspan.pcap", "tunnel-teredo.pcap",
         "fmt-pcapng-2sections.pcapng", "fmt-80211-radiotap.pcap", "fmt-vlan-qinq.pcap", "fmt-snaplen-64.pcap",
         "fmt-gzip.pcap.gz", "fmt-pcap-be-nsec.pcap"]  # fmt: skip


def _flows(path: Path) -> pl.DataFrame:
    df = pl.from_arrow(extract_flows([path]).flows)
    assert isinstance(df, pl.DataFrame)
    return df


def _read(path: Path) -> tuple[int, list[tuple[int, bytes]]]:
    """(link type, [(ts_ns, frame)]) of a pcap or pcapng file, read by dpkt."""
    with path.open("rb") as f:
        r = dpkt.pcapng.Reader(f) if path.suffix == ".pcapng" else dpkt.pcap.Reader(f)
        frames = [(int(ts * 10**9) if isinstance(ts, float) else int(ts), bytes(b)) for ts, b in r]
        return r.datalink(), frames


def _originals(path: Path) -> list[bytes]:
    import gzip

    data = path.read_bytes()
    if data[:2] == b"\x1f\x8b":
        path = path.with_name(path.name + ".plain")
        path.write_bytes(gzip.decompress(data))
    with path.open("rb") as f:
        r = dpkt.pcapng.Reader(f) if data[:4] == b"\x0a\x0d\x0d\x0a" else dpkt.pcap.Reader(f)
        return [bytes(b) for _, b in r]


@pytest.mark.parametrize("name", NAMES)
def test_carving_every_flow_gives_back_every_packet(tmp_path: Path, name: str) -> None:
    src = tmp_path / name
    src.write_bytes((SAMPLES / name).read_bytes())
    flows = _flows(src).with_columns(group=pl.lit(1))
    ((path, n),) = carve([src], flows, {1: CarveJob(1, tmp_path / "all", "every flow")}).values()
    assert n == int((flows["orig_pkts"] + flows["resp_pkts"]).sum())
    _, frames = _read(path)
    assert len(frames) == n
    assert sorted(b for _, b in frames) == sorted(b for b in _originals(src) if b in {f for _, f in frames})
    original = _originals(src)
    pos = 0
    for _, b in frames:  # the carved frames are the original ones, in capture order
        pos = original.index(b, pos) + 1


def test_one_flow_gives_its_packets_with_their_times(tmp_path: Path) -> None:
    src = SAMPLES / "fmt-pcap-be-nsec.pcap"  # nanosecond timestamps must survive
    flows = _flows(src)
    tcp = flows.filter((pl.col("proto") == "tcp") & (pl.col("ip_version") == 4)).with_columns(group=pl.lit(7))
    ((path, n),) = carve([src], tcp, {7: CarveJob(7, tmp_path / "one", "x")}).values()
    assert path.name == "one.pcap" and n == tcp["orig_pkts"][0] + tcp["resp_pkts"][0]
    raw = path.read_bytes()
    assert raw[:4] == bytes.fromhex("4d3cb2a1")  # nanosecond pcap, like the input
    with path.open("rb") as f:
        carved = [(ts, bytes(b)) for ts, b in dpkt.pcap.Reader(f)]
    with src.open("rb") as f:
        original = {bytes(b): ts for ts, b in dpkt.pcap.Reader(f)}
    assert all(original[b] == ts for ts, b in carved)  # the same nanoseconds (dpkt reads them as Decimals)
    w = PcapWriter(tmp_path / "ns.pcap", 101, nano=True)  # and the writer keeps sub-microsecond parts
    w.write(1_709_287_200_123_456_789, b"\x45" + bytes(19), 20, 101)
    with w.commit().open("rb") as f:
        assert [ts for ts, _ in dpkt.pcap.Reader(f)] == [Decimal("1709287200.123456789")]


def test_pcapng_input_gives_pcapng_with_the_comment(tmp_path: Path) -> None:
    src = SAMPLES / "fmt-pcapng-2sections.pcapng"  # Ethernet and raw-IP interfaces
    flows = _flows(src).with_columns(group=pl.lit(3))
    ((path, n),) = carve([src], flows, {3: CarveJob(3, tmp_path / "003-x", "nta incident #3: a test")}).values()
    raw = path.read_bytes()
    assert path.suffix == ".pcapng" and raw[:4] == b"\x0a\x0d\x0d\x0a" and b"nta incident #3: a test" in raw[:200]
    with path.open("rb") as f:
        assert len(list(dpkt.pcapng.Reader(f))) == n == 26


def test_writer_parks_and_resumes(tmp_path: Path) -> None:
    w = PcapngWriter(tmp_path / "p.pcapng", "c")
    w.write(1, b"\x00" * 20, 20, 101)
    w.park()
    w.write(2, b"\x45" + b"\x00" * 19, 20, 101)
    w.commit()
    with (tmp_path / "p.pcapng").open("rb") as f:
        assert [b[:1] for _, b in dpkt.pcapng.Reader(f)] == [b"\x00", b"\x45"]
    assert not list(tmp_path.glob(".*tmp"))


@pytest.mark.corpus
@pytest.mark.parametrize(
    "rel", ["formats/tunnel-erspan.pcap", "formats/ipv6-fragments.pcap", "formats/pppoe-over-qinq.pcap"]
)
def test_corpus_captures_carve_whole(tmp_path: Path, rel: str) -> None:
    src = PCAPS / rel
    if not src.exists():
        pytest.skip(f"needs {src} (../shared beside the checkout), which is missing")
    flows = _flows(src).with_columns(group=pl.lit(1))
    ((_, n),) = carve([src], flows, {1: CarveJob(1, tmp_path / "all", "all")}).values()
    assert n == int((flows["orig_pkts"] + flows["resp_pkts"]).sum())
