"""Two nta processes writing to one output folder: the second fails at once with one line (exit 2), the first
finishes alone, and its outputs are all its own (``features.common.output_lock``).

The first process is the real command line paused inside a stage by ``tests/stage_pause.py`` (it holds the lock
there), the second a plain ``python -m analyzer``; both real processes.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from paused import start_paused

from features.common import InputError, output_lock

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="flock as on Linux")

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"


def nta(*args: str | Path) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "analyzer", *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize("second", ["scan --force", "scan", "carve"])
def test_a_second_writer_fails_at_once_and_the_first_finishes_alone(tmp_path: Path, second: str) -> None:
    out = tmp_path / "case"
    if second == "carve":  # carve needs a finished scan in the folder
        assert nta("scan", SAMPLES / "demo-mixed.pcap", "-o", out, "-q").returncode == 0
    go = tmp_path / "go"
    first, mark = start_paused(
        "inference", tmp_path, "scan", SAMPLES / "syn-flood.pcap", "-o", out, "-q", "--force", go=go
    )
    pid = int(mark.read_text())
    try:
        if second == "carve":
            res = nta("carve", out, "-q", "--force")
        else:
            res = nta(*second.split(), SAMPLES / "demo-mixed.pcap", "-o", out, "-q")
    finally:
        go.touch()
        assert first.wait(60) == 0, (tmp_path / "stderr.txt").read_text()
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"nta: error: {out}: another nta (pid {pid}) is writing to this output folder; nothing was changed "
        "(run again when it has finished, or choose another --out)"
    ]
    report = json.loads((out / "report.json").read_text())
    assert [c["file"] for c in report["captures"]] == [str(SAMPLES / "syn-flood.pcap")]  # the first scan's, whole
    assert sorted(os.listdir(tmp_path)) == ["case", "go", "paused-inference", "stderr.txt", "stdout.txt"]  # no lock
    if second == "scan --force":  # once the first is done, the folder is free again
        assert nta("scan", SAMPLES / "demo-mixed.pcap", "-o", out, "-q", "--force").returncode == 0


def test_a_symlink_to_the_folder_shares_its_lock(tmp_path: Path) -> None:
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with (
        output_lock(real),
        pytest.raises(InputError, match=r"real: another nta \(pid \d+\) is writing"),
        output_lock(tmp_path / "link"),
    ):
        pass


def test_a_stale_lock_file_left_by_a_killed_run_is_no_obstacle(tmp_path: Path) -> None:
    (tmp_path / ".out.lock").write_text("999999\n")  # SIGKILL leaves the file, but no lock on it
    with output_lock(tmp_path / "out"):
        assert (tmp_path / ".out.lock").read_text() == f"{os.getpid()}\n"
    assert os.listdir(tmp_path) == []


def test_an_output_folder_that_cannot_be_made_is_one_line_naming_it(tmp_path: Path) -> None:
    """A file where a parent folder of --out should be, and a parent that cannot be created: one line naming the
    folder asked for and the problem (not Python's errno text), exit 2, nothing written."""
    a_file = tmp_path / "evidence.pcap"
    a_file.write_bytes((SAMPLES / "land.pcap").read_bytes())
    res = nta("scan", a_file, "-o", a_file / "case", "-q")
    assert res.returncode == 2
    assert res.stderr.splitlines() == [
        f"nta: error: {a_file / 'case'}: cannot create the folder it goes in ({a_file}: a file is in the way)"
    ]
    nowhere = Path("/proc/sys/nta-nowhere/case")
    with (
        pytest.raises(
            InputError,
            match=r"^/proc/sys/nta-nowhere/case: cannot create the folder it goes in \(/proc/sys/nta-nowhere: ",
        ),
        output_lock(nowhere),
    ):
        pass
    assert sorted(os.listdir(tmp_path)) == ["evidence.pcap"]
