"""features.flows.extract.FlowStream: flows released in chunks as the floor moves, built here or in a child process,
make exactly the table of one release at the end."""

from __future__ import annotations

import os
import struct
from pathlib import Path

import polars as pl
import pytest

from features.flows.builder import FlowConfig
from features.flows.extract import FlowStream, extract_flows, gather

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
NAMES = ["demo-mixed.pcap", "benign-web-dns-ssh.pcap", "teardrop.pcap", "syn-flood.pcap"]


# Short timeouts: flows end within seconds, so the floor moves through these short captures.
QUICK = FlowConfig(tcp_idle_s=2.0, udp_idle_s=1.0, icmp_idle_s=1.0, other_idle_s=1.0, close_delay_s=0.5)


def stream(names: list[str], chunk_flows: int, records: int, merge: bool = False) -> FlowStream:
    fs = FlowStream([SAMPLES / n for n in names], QUICK, chunk_flows=chunk_flows, merge=merge)
    for src in fs.sources:
        src.chunk_records = records  # many small batches: the floor moves often
    return fs


@pytest.mark.parametrize("names", [[n] for n in NAMES] + [NAMES])
def test_small_chunks_give_the_table_of_one_release(names: list[str]) -> None:
    whole = extract_flows([SAMPLES / n for n in names], QUICK)
    fs = stream(names, chunk_flows=4, records=16)
    chunks = list(fs.chunks(forked=False))
    flows = pl.concat([c.flows for c in chunks])
    assert len(chunks) > 3 or flows.height < 20
    assert flows.equals(pl.from_arrow(whole.flows))  # type: ignore[arg-type]
    assert pl.concat([c.payloads for c in chunks]).equals(whole.payloads)
    assert [c.flows["flow_id"][0] for c in chunks] == sorted(c.flows["flow_id"][0] for c in chunks)
    assert fs.extraction().streams == whole.streams and fs.flows == flows.height


def _child_running() -> bool:
    """Is a ``features.capture.child`` process of ours running (Linux: /proc)?"""
    if not Path("/proc/self").exists():
        pytest.skip("needs /proc")
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if (
                stat.read_text().split(") ")[1].split()[1] == me
                and b"features.capture.child" in (stat.parent / "cmdline").read_bytes()
            ):
                return True
        except (OSError, IndexError):
            continue
    return False


def test_flows_built_in_a_child_process_are_the_same() -> None:
    here = gather(stream(NAMES, chunk_flows=8, records=32))
    started: list[bool] = []
    fs = stream(NAMES, chunk_flows=8, records=32)
    fs._on_start = lambda: started.append(_child_running())
    chunks = list(fs.chunks(forked=True))
    assert started == [True]  # the hook ran here while the child was working
    assert pl.concat([c.flows for c in chunks]).equals(pl.from_arrow(here.flows))  # type: ignore[arg-type]
    ext = fs.extraction()
    assert ext.sources == here.sources and ext.packets == here.packets and ext.bad_packets == here.bad_packets
    assert ext.streams == here.streams and not _child_running()


def _moved(src: Path, out: Path, seconds: int) -> Path:
    """``src`` (classic little-endian pcap, microseconds) with every record ``seconds`` later."""
    data = bytearray(src.read_bytes())
    assert data[:4] == b"\xd4\xc3\xb2\xa1"
    off = 24
    while off + 16 <= len(data):
        sec, _, caplen, _ = struct.unpack_from("<IIII", data, off)
        struct.pack_into("<I", data, off, sec + seconds)
        off += 16 + caplen
    out.write_bytes(bytes(data))
    return out


def test_each_stream_is_said_closed_once_after_its_last_flow(tmp_path: Path) -> None:
    """``FlowChunk.closed``: a stream is named once, in the chunk that holds its last flow or a later one, and a
    capture that ends days before the next is named before the scan's end (the window features stop carrying its
    records then)."""
    demo = SAMPLES / "demo-mixed.pcap"
    files = [_moved(demo, tmp_path / f"day{d}.pcap", d * 86_400) for d in range(3)]
    fs = FlowStream(files, QUICK, chunk_flows=50)
    for src in fs.sources:
        src.chunk_records = 64
    chunks = list(fs.chunks(forked=False))
    assert len(chunks) > 6
    last_chunk: dict[int, int] = {}
    said: dict[int, int] = {}
    for n, c in enumerate(chunks):
        assert c.stream_ids is not None
        for k in c.stream_ids.unique().to_list():
            last_chunk[k] = n
        for k in c.closed:
            assert k not in said
            said[k] = n
    assert sorted(said) == sorted(last_chunk) and len(said) == 3
    assert all(said[k] >= last_chunk[k] for k in said)
    first = min(last_chunk, key=lambda k: last_chunk[k])
    assert said[first] < len(chunks) - 1  # the first day's capture is closed long before the end
