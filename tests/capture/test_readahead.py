"""features.capture.readahead: decoding in a child process gives exactly what the thread gives, and fails the same way."""

from __future__ import annotations

import multiprocessing as mp
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from features.capture import readahead
from features.capture.packets import PacketBatch
from features.capture.source import PacketSource
from features.common import InputError, ProgressFn
from features.flows.extract import extract_flows

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
pytestmark = pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork on this platform")


def _extract(paths: list[Path], min_bytes: int, monkeypatch: pytest.MonkeyPatch, payloads: bool = True):  # type: ignore[no-untyped-def]
    monkeypatch.setattr(
        "features.flows.extract.read_ahead",
        lambda s, p, **kw: readahead.read_ahead(s, p, process_min_bytes=min_bytes, **kw),
    )
    return extract_flows(paths, payloads=payloads)


@pytest.mark.parametrize(
    "names",
    [
        ["demo-mixed.pcap"],
        ["truncated.pcap"],  # cut mid-record: the warning and the count come back from the child
        ["teardrop.pcap", "fmt-gzip.pcap.gz", "fmt-pcapng-2sections.pcapng", "fmt-snaplen-64.pcap"],
    ],
)
def test_child_process_and_thread_give_the_same_extraction(names: list[str], monkeypatch: pytest.MonkeyPatch) -> None:
    paths = [SAMPLES / n for n in names]
    by_thread = _extract(paths, 1 << 60, monkeypatch)
    by_child = _extract(paths, 0, monkeypatch)
    assert by_child.flows.equals(by_thread.flows)
    assert by_child.payloads.equals(by_thread.payloads)
    assert by_child.sources == by_thread.sources
    assert all(len(s["sha256"]) == 64 for s in by_child.sources)
    assert by_child.bad_packets == by_thread.bad_packets
    assert by_child.warnings == by_thread.warnings
    assert by_child.packets == by_thread.packets > 0
    if names == ["truncated.pcap"]:
        assert by_child.bad_packets.get("truncated_record") == 1
        assert "truncated_record" in by_child.warnings[0]


def test_progress_is_replayed_in_the_parent_up_to_the_total() -> None:
    src = PacketSource(SAMPLES / "demo-mixed.pcap")
    calls: list[tuple[int, int]] = []
    n = sum(len(b) for b in readahead.read_ahead(src, lambda d, t: calls.append((d, t)), process_min_bytes=0))
    assert n > 0 and src.records > 0
    assert calls and calls[-1] == (src.size_bytes, src.size_bytes)
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)


def _failing(exc: BaseException) -> object:
    def batches(progress: ProgressFn) -> Iterator[PacketBatch]:
        yield PacketBatch.empty()
        raise exc

    return batches


def test_an_error_in_the_child_is_raised_in_the_parent_unchanged(monkeypatch: pytest.MonkeyPatch) -> None:
    src = PacketSource(SAMPLES / "demo-mixed.pcap")
    monkeypatch.setattr(src, "batches", _failing(InputError("demo-mixed.pcap: broken on purpose")))
    got = []
    with pytest.raises(InputError, match=r"^demo-mixed\.pcap: broken on purpose$"):
        for b in readahead.read_ahead(src, lambda d, t: None, process_min_bytes=0):
            got.append(b)
    assert len(got) == 1  # the batch before the error arrived first
    assert not mp.active_children()


class _Unpicklable(Exception):
    def __reduce__(self) -> str:
        raise TypeError("no pickling")


def test_an_unpicklable_error_arrives_as_its_text(monkeypatch: pytest.MonkeyPatch) -> None:
    src = PacketSource(SAMPLES / "demo-mixed.pcap")
    monkeypatch.setattr(src, "batches", _failing(_Unpicklable("odd")))
    with pytest.raises(RuntimeError, match=r"demo-mixed\.pcap: _Unpicklable: odd"):
        list(readahead.read_ahead(src, lambda d, t: None, process_min_bytes=0))


def test_a_child_that_dies_is_reported_with_its_exit_code(monkeypatch: pytest.MonkeyPatch) -> None:
    src = PacketSource(SAMPLES / "demo-mixed.pcap")

    def dies(progress: ProgressFn) -> Iterator[PacketBatch]:
        os._exit(7)
        yield PacketBatch.empty()

    monkeypatch.setattr(src, "batches", dies)
    with pytest.raises(RuntimeError, match=r"demo-mixed\.pcap: the reader process ended early \(exit code 7\)"):
        list(readahead.read_ahead(src, lambda d, t: None, process_min_bytes=0))


def test_a_consumer_that_stops_early_leaves_no_child_behind(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(readahead, "COALESCE_PACKETS", 1)
    src = PacketSource(SAMPLES / "demo-mixed.pcap", chunk_records=16)  # many batches: the child is still busy
    it = readahead.read_ahead(src, lambda d, t: None, process_min_bytes=0)
    assert len(next(it)) > 0
    assert mp.active_children()
    it.close()  # type: ignore[attr-defined]
    assert not mp.active_children()


def test_small_files_stay_on_the_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    src = PacketSource(SAMPLES / "demo-mixed.pcap")
    monkeypatch.setattr(readahead, "_from_child", lambda s, p: pytest.fail("forked for a small file"))
    assert sum(len(b) for b in readahead.read_ahead(src, lambda d, t: None)) > 0


def test_batches_are_coalesced_without_losing_a_packet_a_payload_or_a_count(tmp_path: Path) -> None:
    from features.capture.packets import coalesced

    small = list(PacketSource(SAMPLES / "demo-mixed.pcap", chunk_records=50).batches())
    assert len(small) > 4
    big = list(coalesced(iter(small), 120))
    assert all(len(b) >= 120 for b in big[:-1]) and 1 < len(big) < len(small)
    joined, whole = PacketBatch.concat(big), PacketBatch.concat(small)
    for k, v in whole.cols.items():
        assert np.array_equal(joined.cols[k], v), k
    assert list(joined.payload_idx) == list(whole.payload_idx) and joined.payloads == whole.payloads
    assert joined.records == whole.records == sum(b.records for b in small)
    assert joined.bad == whole.bad


def test_a_batch_carrying_its_records_is_never_merged() -> None:
    from features.capture.packets import coalesced

    src = PacketSource(SAMPLES / "demo-mixed.pcap", chunk_records=50)
    src.keep_records = True
    small = list(src.batches())
    assert all(b.chunk is not None for b in small)
    assert [len(b) for b in coalesced(iter(small), 10_000)] == [len(b) for b in small]
