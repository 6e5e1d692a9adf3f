"""``report.html``: one self-contained page (no fetch, no script), escaped, and readable by a real browser.

The browser test loads the page in Debian's headless chromium and finds the incident table in the DOM it
built; it skips, naming the binary, where chromium is not installed (``apt-get install -y chromium``).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from html import escape
from pathlib import Path

import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from analyzer.html import render_html, timeline_svg

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sample_pcaps" / "demo-mixed.pcap"


@pytest.fixture(scope="module")
def scanned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("html")
    cap = out / "a<b>&c.pcap"  # a file name that must be escaped
    shutil.copy(DEMO, cap)
    res = CliRunner().invoke(app, ["scan", str(cap), "--out", str(out / "scan"), "--carve", "--quiet"])
    assert res.exit_code == 0, res.output
    return out / "scan"


def test_the_page_is_self_contained_and_escaped(scanned: Path) -> None:
    html = (scanned / "report.html").read_text()
    report = json.loads((scanned / "report.json").read_text())
    assert html == render_html(report)  # made from report.json's content, nothing else
    for ref in ("src=", "href=", "@import", "url(", "<script", "<link", "http://", "https://"):
        assert ref not in html, ref
    assert "a&lt;b&gt;&amp;c.pcap" in html and "a<b>" not in html
    assert html.count("<tr>") >= len(report["incidents"]) + len(report["top_flows"])
    for inc in report["incidents"]:
        assert f"#{inc['incident_id']}" in html and escape(inc["wireshark_filter"]) in html
    assert "<svg" in html and html.count("<rect") >= 3


def test_timeline_chart_has_a_bar_per_busy_bin() -> None:
    line = {
        "start": "2024-03-01T10:00:00.000000Z",
        "bin_s": 1.0,
        "bins": 4,
        "counts": {"DoS": [0, 3, 0, 1], "Probe": [2, 0, 0, 0]},
    }
    svg = timeline_svg(line)
    assert svg.count("<rect") == 3 and "DoS (4)" in svg and "10:00:04" in svg
    assert "No attack flows" in timeline_svg({"counts": {}})


@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs the chromium binary (apt-get install -y chromium)")
def test_a_headless_browser_finds_the_incident_table(scanned: Path) -> None:
    report = json.loads((scanned / "report.json").read_text())
    cmd = ["chromium", "--headless=new", "--no-sandbox", "--disable-gpu", "--host-resolver-rules=MAP * ~NOTFOUND",
           "--dump-dom", (scanned / "report.html").resolve().as_uri()]  # fmt: skip
    dom = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True).stdout
    m = re.search(r'<table id="incidents">.*?<tbody>(.*?)</tbody>', dom, re.S)
    assert m, "no incident table in the DOM chromium built"
    assert m.group(1).count("<tr>") == len(report["incidents"]) > 0
    assert "<title>nta scan report" in dom
