"""Signals to a running ``nta``: SIGTERM is an interruption (exit 143, temporary files removed), and the forked
reader process (``features.capture.readahead``) never outlives the main process, SIGKILL included.

Each test runs the real console entry point in a subprocess with one thing slowed or instrumented (a flow
builder that sleeps, a Parquet writer that signals its own process), so the signal lands at a known stage.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import signal
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="reads /proc; PR_SET_PDEATHSIG is Linux")

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"

# The real ``nta`` entry point after one patch, chosen by argv[1]: "slow" (flow building sleeps, so the reader
# child blocks on its full pipe; batches of 1000 records, so there are many) or "term-on-write" (a row group of
# the flow table is written, then the process sends itself SIGTERM before the rename).
HARNESS = """
import os, signal, sys, time
mode = sys.argv.pop(1)
if mode == "slow":
    from features.capture import source
    from features.flows import builder
    source.PacketSource.__init__.__kwdefaults__["chunk_records"] = 1000
    add = builder.FlowBuilder.add
    def slow(self, batch):
        time.sleep(60)
        return add(self, batch)
    builder.FlowBuilder.add = slow
elif mode == "term-on-write":
    from features.flows import table
    class Writer(table.pq.ParquetWriter):
        def write_table(self, *a, **k):
            super().write_table(*a, **k)
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(60)
    table.pq.ParquetWriter = Writer
from analyzer.cli import main
sys.argv[0] = "nta"
main()
"""


def _big_capture(path: Path, mib: int = 17) -> Path:
    """A classic pcap of at least ``mib`` MiB (the reader forks from 16 MiB): one 60-byte TCP frame repeated."""
    frame = bytes(12) + b"\x08\x00" + bytes.fromhex("4500002e00000000400600000a0000010a000002") + bytes(26)
    rec = struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame
    n = (mib << 20) // len(rec) + 1
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + rec * n)
    return path


class Run:
    """The harness in a subprocess; its output goes to files (a pipe held by a leftover child would block us)."""

    def __init__(self, tmp: Path, mode: str, *args: str | Path) -> None:
        self.out, self.err = tmp / "stdout.txt", tmp / "stderr.txt"
        cmd = [sys.executable, "-c", HARNESS, mode, *map(str, args)]
        with self.out.open("wb") as o, self.err.open("wb") as e:
            self.proc = subprocess.Popen(cmd, stdout=o, stderr=e)
        self.pid = self.proc.pid

    def wait(self, timeout: float = 60) -> tuple[int, str, str]:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            raise
        return code, self.out.read_text(), self.err.read_text()


def _children(pid: int) -> list[int]:
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                stat = (d / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(d.name))
    return out


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for a reaper that never comes, in some containers, is not running)."""
    try:
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait_for_reader(run: Run) -> int:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and run.proc.poll() is None:
        kids = _children(run.pid)
        if kids:
            time.sleep(0.5)  # let it fill the pipe and block on it
            return kids[0]
        time.sleep(0.02)
    run.proc.kill()
    raise AssertionError(f"no reader process appeared (exit {run.proc.wait()}, stderr {run.err.read_text()!r})")


def _wait_gone(pid: int, seconds: float = 10) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.02)
    return False


needs_fork = pytest.mark.skipif("fork" not in mp.get_all_start_methods(), reason="no fork: no reader process")


@needs_fork
def test_sigkill_of_the_main_process_takes_the_reader_with_it(tmp_path: Path) -> None:
    big = _big_capture(tmp_path / "big.pcap")
    run = Run(tmp_path, "slow", "flows", big, "-o", tmp_path / "out" / "x.parquet", "-q")
    child = _wait_for_reader(run)
    assert _alive(child)
    run.proc.kill()
    run.wait()
    gone = _wait_gone(child)
    if not gone:
        os.kill(child, signal.SIGKILL)
    assert gone, "the reader process outlived the main process"


@needs_fork
def test_sigterm_while_reading_exits_143_with_one_line_and_no_reader_left(tmp_path: Path) -> None:
    big = _big_capture(tmp_path / "big.pcap")
    out = tmp_path / "out"
    run = Run(tmp_path, "slow", "flows", big, "-o", out / "x.parquet", "-q")
    child = _wait_for_reader(run)
    run.proc.send_signal(signal.SIGTERM)
    code, stdout, stderr = run.wait()
    gone = _wait_gone(child)
    if not gone:
        os.kill(child, signal.SIGKILL)
    assert code == 143, stderr
    assert stderr == "nta: terminated (SIGTERM)\n" and stdout == ""
    assert gone
    assert not out.exists() or not list(out.iterdir())


def test_sigterm_while_writing_removes_the_temporary_file(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    code, _, stderr = Run(
        tmp_path, "term-on-write", "flows", SAMPLES / "demo-mixed.pcap", "-o", out / "x.parquet"
    ).wait()
    assert code == 143, stderr
    assert stderr.endswith("nta: terminated (SIGTERM)\n") and "Traceback" not in stderr
    assert list(out.iterdir()) == []  # neither x.parquet nor .x.parquet.<pid>.tmp
