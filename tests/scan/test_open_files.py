"""A scan run in-process closes every file it opened, also when it fails while writing: its temporaries are deleted,
and a descriptor kept open (the traceback keeps the failed scan's objects alive) would hold their space, and a busy
disk, for the life of the process: a test run, a notebook, a Ray driver."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from tests.open_files import open_files_under

DEMO = Path(__file__).resolve().parents[2] / "sample_pcaps" / "demo-mixed.pcap"


def test_a_scan_that_fails_writing_its_last_output_holds_no_file_open(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import analyzer.html

    def full(*_: object, **__: object) -> str:
        raise OSError(28, "No space left on device", "report.html")

    monkeypatch.setattr(analyzer.html, "render_html", full)
    res = CliRunner().invoke(app, ["scan", str(DEMO), "-o", str(tmp_path / "o"), "-q"])
    assert res.exit_code == 2, res.output
    assert not (tmp_path / "o").exists()
    assert open_files_under(tmp_path) == []
