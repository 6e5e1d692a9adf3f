"""The terminal report of the README demo capture, rendered at a fixed width without colour, against a golden file.

Seconds per stage are the only run-to-run difference and are zeroed before rendering. A new model changes
the verdicts and so this file: regenerate with ``pytest tests/scan --update-golden`` and review the diff.
"""

from __future__ import annotations

import io
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from analyzer.pipeline import ScanConfig, run_scan
from analyzer.report import render

REPO = Path(__file__).resolve().parents[2]
GOLDEN = Path(__file__).resolve().parent / "golden" / "report-demo-mixed.txt"


def test_report_matches_golden(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, update_golden: bool) -> None:
    shutil.copy(REPO / "sample_pcaps" / "demo-mixed.pcap", tmp_path / "demo-mixed.pcap")
    monkeypatch.chdir(tmp_path)  # relative paths in the report, whatever the checkout's location
    result = run_scan(ScanConfig(paths=(Path("demo-mixed.pcap"),), out=Path("out"), device="cpu"))
    result.seconds = dict.fromkeys(result.seconds, 0.0)
    console = Console(record=True, width=100, color_system=None, file=io.StringIO())
    render(result, console)
    text = console.export_text()
    if update_golden:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text(text)
    assert GOLDEN.exists(), f"{GOLDEN} is missing: run pytest {__file__} --update-golden"
    assert text == GOLDEN.read_text()
