"""A full disk is bad input (exit 2) with one line naming the output, for every command; nothing is left behind.

The disk is a real 16 KiB tmpfs mounted for the test (root only; skipped with the reason otherwise).
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from tests.open_files import open_files_under

DEMO = Path(__file__).resolve().parent.parent / "sample_pcaps" / "demo-mixed.pcap"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    mnt = tmp_path_factory.mktemp("tiny")
    res = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if res.returncode != 0:
        pytest.skip(f"cannot mount a tiny tmpfs here ({res.stderr.strip() or res.returncode})")
    try:
        yield mnt
    finally:
        res = subprocess.run(["umount", str(mnt)], capture_output=True, text=True)
        if res.returncode != 0:  # busy: something still holds a file there; detach it so no mount outlives the run
            subprocess.run(["umount", "-l", str(mnt)], check=False)
            pytest.fail(f"the tiny disk was still in use after the tests ({res.stderr.strip()})")


@pytest.mark.parametrize(
    ("cmd", "out", "extra"),
    [
        ("features", "k.parquet", []),
        ("features", "k.txt", ["--format", "nsl-kdd"]),
        ("flows", "f.parquet", []),
        ("scan", "s", []),
    ],
)
def test_a_full_disk_is_exit_2_one_line_nothing_left(tiny: Path, cmd: str, out: str, extra: list[str]) -> None:
    res = CliRunner().invoke(app, [cmd, str(DEMO), "-o", str(tiny / out), "-q", *extra])
    assert res.exit_code == 2, res.output
    assert res.stderr == f"nta: error: {tiny / out}: cannot write (No space left on device)\n"
    assert list(tiny.iterdir()) == []
    # and nothing of it is held open: a descriptor of a deleted temporary would keep the disk busy (and leak in a
    # long-lived process that calls the pipeline, as these tests do)
    assert open_files_under(tiny) == []
