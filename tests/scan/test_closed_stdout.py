"""A closed stdout (``nta scan x.pcap | head -1``) is exit 141 with one line, never 1 ("verdicts matched")."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def _with_closed_stdout(*args: str | Path) -> tuple[int, str]:
    """Run ``python -m analyzer`` with stdout a real pipe whose read end is closed before nta writes to it."""
    r, w = os.pipe()
    os.close(r)  # no reader: the first write to stdout fails with EPIPE
    try:
        proc = subprocess.run(
            [sys.executable, "-m", "analyzer", *map(str, args)],
            stdout=w,
            stderr=subprocess.PIPE,
            text=True,
            timeout=120,
            check=False,
        )
    finally:
        os.close(w)
    return proc.returncode, proc.stderr


@pytest.mark.parametrize("fmt", ["text", "json"])
def test_scan_with_a_closed_stdout_is_141_not_a_finding(tmp_path: Path, fmt: str) -> None:
    out = tmp_path / "o"
    code, err = _with_closed_stdout(
        "scan", SAMPLES / "demo-mixed.pcap", "-o", out, "--no-progress", "--fail-on", "any", "--format", fmt
    )
    assert code == 141, err
    assert err == "nta: stdout closed by its reader (broken pipe); files written are complete\n"
    assert sorted(p.name for p in out.iterdir()) == [
        "alerts.ndjson",
        "flows.parquet",
        "report.html",
        "report.json",
        "verdicts.csv",
    ]
    report = json.loads((out / "report.json").read_text())
    assert report["flows"] == 944  # complete: written before the report went to stdout


def test_flows_summary_to_a_closed_stdout_is_141(tmp_path: Path) -> None:
    code, err = _with_closed_stdout("flows", SAMPLES / "land.pcap", "-o", tmp_path / "x.parquet", "-q")
    assert code == 141 and err.count("\n") == 1 and "broken pipe" in err
    assert (tmp_path / "x.parquet").read_bytes()[:4] == b"PAR1"
