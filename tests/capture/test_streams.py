"""Captures from pipes, named pipes (FIFOs) and standard input: read once, never reopened, never a hang."""

from __future__ import annotations

import gzip
import hashlib
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from capture_testlib import pcap_bytes
from typer.testing import CliRunner

from analyzer.cli import app
from features.capture import source
from features.capture.source import PacketSource
from features.common import InputError
from features.flows.table import read_flows

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
DEMO = SAMPLES / "demo-mixed.pcap"


def _nta(*args: str | Path, stdin: bytes | None = None, timeout: float = 60) -> subprocess.CompletedProcess[bytes]:
    """Run ``python -m analyzer`` with ``stdin`` written down a real pipe."""
    cmd = [sys.executable, "-m", "analyzer", *map(str, args)]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=timeout, check=False)


@pytest.mark.parametrize("name", ["-", "/dev/stdin"])
@pytest.mark.parametrize("gz", [False, True])
def test_a_pipe_on_standard_input_is_read_once(tmp_path: Path, name: str, gz: bool) -> None:
    raw = DEMO.read_bytes()
    data = gzip.compress(raw) if gz else raw
    out = tmp_path / "x.parquet"
    res = _nta("flows", name, "-o", out, "-q", stdin=data)
    assert res.returncode == 0, res.stderr
    table, meta = read_flows(out)
    ref, ref_meta = read_flows(_flows_of(DEMO, tmp_path / "ref.parquet"))
    # uid hashes the capture file's SHA-256: the gzipped stream is another file, so other uids (same flows)
    differ = ["source_file", "uid"] if gz else ["source_file"]
    assert table.drop(differ).equals(ref.drop(differ))
    assert (table.column("uid") == ref.column("uid")) if not gz else table.column("uid") != ref.column("uid")
    src = meta["sources"][0]
    assert src["file"] == name and src["bytes"] == len(data) and src["packets"] == ref_meta["sources"][0]["packets"]
    assert src["sha256"] == hashlib.sha256(data).hexdigest()  # every byte of the stream is hashed, the sniffed too


def _flows_of(capture: Path, out: Path) -> Path:
    res = CliRunner().invoke(app, ["flows", str(capture), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    return out


def test_empty_standard_input_is_one_line_exit_2(tmp_path: Path) -> None:
    res = _nta("flows", "-", "-o", tmp_path / "x.parquet", "-q", stdin=b"")
    assert res.returncode == 2
    assert res.stderr.decode() == "nta: error: -: empty file, not a capture\n"
    assert not list(tmp_path.iterdir())


def test_a_fifo_with_a_late_writer_is_read(tmp_path: Path) -> None:
    fifo = tmp_path / "live.pcap"
    os.mkfifo(fifo)
    data = DEMO.read_bytes()

    def writer() -> None:
        time.sleep(0.3)
        with fifo.open("wb") as f:
            for i in range(0, len(data), 4096):  # in pieces, as tcpdump -w would
                f.write(data[i : i + 4096])

    t = threading.Thread(target=writer)
    t.start()
    src = PacketSource(fifo)
    n = sum(len(b) for b in src.batches())
    t.join()
    assert n > 0 and src.records == 1836 and src.size_bytes == len(data)
    assert src.sha256 == hashlib.sha256(data).hexdigest()
    with pytest.raises(InputError, match=r"read only once"):
        next(iter(src.batches()))


def test_a_fifo_without_a_writer_is_refused_after_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    fifo = tmp_path / "f.pcap"
    os.mkfifo(fifo)
    monkeypatch.setattr(source, "FIFO_WAIT_S", 0.3)
    t0 = time.monotonic()
    res = CliRunner().invoke(app, ["flows", str(fifo), "-o", str(tmp_path / "x.parquet"), "-q"])
    assert 0.25 < time.monotonic() - t0 < 10
    assert res.exit_code == 2
    assert res.stderr == f"nta: error: {fifo}: named pipe with no writer (no data within 0.3 s)\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["f.pcap"]


def test_a_fifo_whose_writer_leaves_without_data_is_empty(tmp_path: Path) -> None:
    fifo = tmp_path / "f.pcap"
    os.mkfifo(fifo)

    def writer() -> None:
        time.sleep(0.2)
        fifo.open("wb").close()

    t = threading.Thread(target=writer)
    t.start()
    with pytest.raises(InputError, match=r"empty file"):
        PacketSource(fifo)
    t.join()


def test_a_character_device_is_a_stream(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"^/dev/null: empty file"):
        PacketSource(Path("/dev/null"))
    with pytest.raises(InputError, match=r"^/dev/zero: not a pcap or pcapng capture \(starts with 00000000\)"):
        PacketSource(Path("/dev/zero"))


def test_pipe_fd_given_by_path(tmp_path: Path) -> None:
    """A pipe reached through /proc/self/fd: the bytes the format sniff read are not lost."""
    r, w = os.pipe()
    data = pcap_bytes([(1.0, b"\x00" * 60)] * 3)

    def writer() -> None:
        os.write(w, data[:10])  # fewer bytes than the sniff asks for, then the rest
        time.sleep(0.05)
        os.write(w, data[10:])
        os.close(w)

    t = threading.Thread(target=writer)
    t.start()
    try:
        src = PacketSource(Path(f"/proc/self/fd/{r}"))
        list(src.batches())
    finally:
        t.join()
        os.close(r)
    assert src.records == 3 and src.size_bytes == len(data)
