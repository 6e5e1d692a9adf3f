"""SIGINT and SIGTERM in every stage of a scan: exit 130 / 143 with one line, nothing partial left, and an earlier
output folder (the scan runs with ``--force``) unchanged to the byte.

Each run is the real command line in a subprocess, paused inside one stage by ``tests/stage_pause.py`` (the only
change to nta), then sent a real signal. The capture is big enough (17 MiB) for the forked reader process.
"""

from __future__ import annotations

import os
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import pytest
from paused import start_paused

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="signals and flock as on Linux")

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sample_pcaps" / "demo-mixed.pcap"


def big_capture(path: Path, mib: int = 17) -> Path:
    """A classic pcap of ``mib`` MiB: 200 TCP flows (10.0.0.1:1000+k -> 10.0.0.2:80), one 60-byte frame each, repeated."""
    recs = []
    for k in range(200):
        ip = bytes.fromhex("4500002e00000000400600000a0000010a000002")
        tcp = struct.pack(">HHIIBBHHH", 1000 + k, 80, 0, 0, 0x50, 0x02, 1024, 0, 0) + bytes(6)
        frame = bytes(12) + b"\x08\x00" + ip + tcp
        recs.append(struct.pack("<IIII", 1_700_000_000 + k, 0, len(frame), len(frame)) + frame)
    body = b"".join(recs)
    path.write_bytes(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1) + body * ((mib << 20) // len(body) + 1))
    return path


def snapshot(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def inputs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(a big capture, an earlier scan's output folder of the demo capture)."""
    d = tmp_path_factory.mktemp("interrupt")
    earlier = d / "earlier"
    res = subprocess.run(
        [sys.executable, "-m", "analyzer", "scan", DEMO, "-o", earlier, "-q", "--zeek"],
        capture_output=True,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    return big_capture(d / "big.pcap"), earlier


SIGNALS = {signal.SIGINT: (130, "nta: interrupted"), signal.SIGTERM: (143, "nta: terminated (SIGTERM)")}
# Both signals in the long stages; one in the short ones between them (keeps the suite short).
CASES = [(stage, sig) for stage in ("reading", "flows", "features", "inference", "writing") for sig in SIGNALS] + [
    ("encoding", signal.SIGTERM),
    ("incidents", signal.SIGINT),
    ("carving", signal.SIGTERM),
]


@pytest.mark.parametrize(("stage", "sig"), CASES)
def test_a_signal_in_any_stage_leaves_the_earlier_outputs_intact(
    tmp_path: Path, inputs: tuple[Path, Path], stage: str, sig: signal.Signals
) -> None:
    big, earlier = inputs
    code, line = SIGNALS[sig]
    work = tmp_path / "case"
    work.mkdir()
    out = work / "out"
    shutil.copytree(earlier, out)
    before = snapshot(out)
    proc, _ = start_paused(stage, tmp_path, "scan", big, "-o", out, "--force", "--zeek", "--carve")
    proc.send_signal(sig)
    try:
        got = proc.wait(60)
    except subprocess.TimeoutExpired:
        proc.kill()
        raise
    stderr = (tmp_path / "stderr.txt").read_text()
    assert got == code, stderr
    assert stderr.splitlines()[-1] == line and "Traceback" not in stderr
    assert snapshot(out) == before  # the earlier scan's outputs, byte for byte; no carved file added
    assert os.listdir(work) == ["out"]  # no .out.*.new folder, no .out.lock, no temporary file
