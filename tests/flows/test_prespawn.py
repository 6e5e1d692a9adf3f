"""features.capture.spawn: the flow builder's worker started before it is needed (``nta scan`` on big captures)
builds the same flows, is the worker the stream uses, and ends when nothing takes it."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import polars as pl
import pytest
from test_release import NAMES, SAMPLES, _child_running, stream

from features.capture import spawn
from features.flows.extract import gather


@pytest.fixture(autouse=True)
def _no_worker_left() -> object:
    yield
    spawn.discard_prespawned()
    assert spawn._early is None


def _workers(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, tuple[str, ...]]]:
    """Every worker started from now on: its pid and the modules it was told to preload."""
    started: list[tuple[int, tuple[str, ...]]] = []
    real = spawn.Spawned.__init__

    def init(self: spawn.Spawned, preload: tuple[str, ...] = ()) -> None:
        real(self, preload)
        started.append((self._proc.pid, tuple(preload)))

    monkeypatch.setattr(spawn.Spawned, "__init__", init)
    return started


def test_the_prespawned_worker_builds_the_flows(monkeypatch: pytest.MonkeyPatch) -> None:
    here = gather(stream(NAMES, chunk_flows=8, records=32))
    started = _workers(monkeypatch)
    assert spawn.prespawn_for([SAMPLES / n for n in NAMES], min_bytes=1)
    assert started == [(started[0][0], (spawn.FLOW_BUILDER,))]
    fs = stream(NAMES, chunk_flows=8, records=32)
    chunks = list(fs.chunks(forked=True))
    assert len(started) == 1 and spawn._early is None  # the stream took the early worker, started no other
    assert pl.concat([c.flows for c in chunks]).equals(pl.from_arrow(here.flows))  # type: ignore[arg-type]
    assert fs.extraction().streams == here.streams and not _child_running()


def test_a_worker_nothing_takes_is_ended_quietly(capfd: pytest.CaptureFixture[str]) -> None:
    with spawn.prespawned([SAMPLES / NAMES[0]], min_bytes=1):
        assert spawn._early is not None and _child_running()
        fs = stream(NAMES[:1], chunk_flows=8, records=32)
        list(fs.chunks(forked=False))  # read here: the worker is not taken
    assert spawn._early is None and not _child_running()
    assert capfd.readouterr().err == ""  # the worker ended without a word on the shared stderr


def test_a_worker_that_died_is_replaced(monkeypatch: pytest.MonkeyPatch) -> None:
    assert spawn.prespawn_for([SAMPLES / NAMES[0]], min_bytes=1)
    assert spawn._early is not None
    spawn._early.terminate()
    spawn._early.join()
    started = _workers(monkeypatch)
    chunks = list(stream(NAMES[:1], chunk_flows=8, records=32).chunks(forked=True))
    assert len(started) == 1 and started[0][1] == () and chunks
    assert not _child_running()


@pytest.mark.parametrize(
    "what, started",
    [("big file", True), ("small file", False), ("folder", False), ("missing", False), ("fifo", False)],
)
def test_what_is_prespawned_for(tmp_path: Path, what: str, started: bool) -> None:
    demo = SAMPLES / "demo-mixed.pcap"
    size = demo.stat().st_size
    path = {"big file": demo, "small file": demo, "folder": SAMPLES, "missing": tmp_path / "nope.pcap"}.get(what)
    if what == "fifo":
        path = tmp_path / "fifo"
        os.mkfifo(path)
    assert path is not None
    assert spawn.prespawn_for([path], min_bytes=size if what == "big file" else size + 1) is started
    assert (spawn._early is not None) is started


def test_the_magics_are_the_readers() -> None:
    from features.capture.pcap import PCAP_MAGICS, PCAPNG_MAGIC

    assert {*PCAP_MAGICS, PCAPNG_MAGIC} == spawn.CAPTURE_MAGICS


@pytest.mark.parametrize(
    "name, started",
    [
        ("demo-mixed.pcap", True),
        ("fmt-pcapng-2sections.pcapng", True),
        ("fmt-gzip.pcap.gz", True),
        ("fmt-gzip-no-suffix.pcap", True),
        ("conn.log", False),
        ("conn.log.gz", False),
        ("conn.json", False),
    ],
)
def test_only_captures_are_prespawned_for(tmp_path: Path, name: str, started: bool) -> None:
    """A Zeek conn log is read by the command itself: a worker started for it would be ended unused."""
    if name.startswith("conn."):
        text = "#separator \\x09\n#path\tconn\n" if name.startswith("conn.log") else '{"ts":1.0,"uid":"C1"}\n'
        path = tmp_path / name
        data = (text * 2000).encode()
        path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    else:
        path = SAMPLES / name
    assert spawn.prespawn_for(iter([path]), min_bytes=1) is started  # any iterable, read once
    assert (spawn._early is not None) is started


def test_nta_scan_reads_a_big_capture_with_the_worker_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    import features.flows.extract as extract
    from analyzer.cli import app

    demo = SAMPLES / "demo-mixed.pcap"
    res = CliRunner().invoke(app, ["scan", str(demo), "-o", str(tmp_path / "here"), "-q"])
    assert res.exit_code == 0, res.output
    started = _workers(monkeypatch)
    monkeypatch.setattr(spawn, "PROCESS_MIN_BYTES", 1)  # "big": read in a worker, started by the command
    monkeypatch.setattr(extract, "PROCESS_MIN_BYTES", 1)
    res = CliRunner().invoke(app, ["scan", str(demo), "-o", str(tmp_path / "worker"), "-q"])
    assert res.exit_code == 0, res.output
    assert [p for _, p in started] == [(spawn.FLOW_BUILDER,)] and spawn._early is None and not _child_running()
    for name in ("verdicts.csv", "alerts.ndjson"):
        assert (tmp_path / "worker" / name).read_bytes() == (tmp_path / "here" / name).read_bytes()
