"""File names that are not UTF-8 (evidence copied from other systems): every command reads them, the terminal shows
them escaped (``\\xff``), and every text output writes them escaped but reversibly (``features.common.path_text``).

The commands run as real subprocesses under a UTF-8 locale, where Python's stdout is strict: a surrogate that
reached a ``print`` or a writer would be exit 70 (``UnicodeEncodeError``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl
import pyarrow.parquet as pq
import pytest
from hypothesis import given
from hypothesis import strategies as st

from features.common import path_text, text_path

SAMPLES = Path(__file__).resolve().parent.parent / "sample_pcaps"
ODD = os.fsdecode(b"cap\xff.pcap")  # 0xff never occurs in UTF-8
ODD_TEXT = "cap\\xff.pcap"  # as written in the outputs and shown on the terminal
ENV = {**os.environ, "LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "utf-8"}  # strict stdout, as on most desktops

pytestmark = pytest.mark.skipif(sys.platform != "linux", reason="needs a filesystem that stores names as bytes")


def nta(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "analyzer", *(os.fspath(a) for a in args)],
        cwd=cwd,
        env=ENV,
        capture_output=True,
        timeout=300,
    )


def text(b: bytes) -> str:
    return b.decode("utf-8")  # strict: every byte nta prints is UTF-8


@given(st.binary(min_size=1, max_size=40).filter(lambda b: b"\0" not in b))
def test_path_text_is_utf8_and_reversible(raw: bytes) -> None:
    name = os.fsdecode(raw)
    written = path_text(name)
    written.encode("utf-8")  # strict: no surrogate left
    assert os.fsencode(text_path(written)) == raw
    if b"\\" not in raw and not any(0xD800 <= ord(c) <= 0xDFFF for c in name):
        assert written == name  # ordinary names (UTF-8, no backslash) are written as they are


def test_scan_a_non_utf8_name_alone_writes_every_output_escaped(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "demo-mixed.pcap", tmp_path / ODD)
    out = tmp_path / os.fsdecode(b"out\xfe")
    res = nta("scan", ODD, "-o", out, "--zeek", "--carve", "--no-progress", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert ODD_TEXT in text(res.stdout)  # the terminal report names it escaped
    report = json.loads((out / "report.json").read_bytes().decode("utf-8"))
    assert [c["file"] for c in report["captures"]] == [ODD_TEXT]
    assert text_path(report["captures"][0]["file"]) == Path(ODD)  # reversible: the bytes name comes back
    assert report["outputs"]["report.json"].endswith("out\\xfe/report.json")
    assert report["carved"] and all("out\\xfe" in c for c in report["carved"])
    verdicts = pl.read_csv((out / "verdicts.csv").read_bytes())
    assert verdicts.height > 0 and set(verdicts["source_file"]) == {ODD_TEXT}
    assert ODD_TEXT in (out / "report.html").read_bytes().decode("utf-8")
    table = pq.read_table((out / "flows.parquet").open("rb"))
    assert set(table.column("source_file").to_pylist()) == {ODD_TEXT}
    assert json.loads(table.schema.metadata[b"nta.sources"])[0]["file"] == ODD_TEXT
    for log in ("conn.log", "nta.log"):
        assert (out / log).read_bytes().decode("utf-8").count("\n") > verdicts.height  # valid UTF-8, every flow

    # nta carve finds the capture again from the escaped name in report.json
    res = nta("carve", out, "--force", "-q", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "#1: " in text(res.stdout) and "out\\xfe" in text(res.stdout)


def test_scan_a_folder_with_a_non_utf8_name_scans_every_file(tmp_path: Path) -> None:
    ev = tmp_path / "evidence"
    ev.mkdir()
    shutil.copy(SAMPLES / "demo-mixed.pcap", ev / ODD)
    shutil.copy(SAMPLES / "syn-flood.pcap", ev / "ok.pcap")
    (ev / os.fsdecode(b"junk\xfa.pcap")).write_bytes(b"not a capture at all")
    res = nta("scan", "evidence", "-o", tmp_path / "out", "-q", "--format", "json", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    report = json.loads(text(res.stdout))
    assert [c["file"] for c in report["captures"]] == [f"evidence/{ODD_TEXT}", "evidence/ok.pcap"]
    assert [s["file"] for s in report["skipped"]] == ["evidence/junk\\xfa.pcap"]
    assert all(c["packets"] > 0 for c in report["captures"])


def test_flows_and_features_read_and_write_non_utf8_names(tmp_path: Path) -> None:
    shutil.copy(SAMPLES / "truncated.pcap", tmp_path / ODD)  # a warning that names the file
    flows = os.fsdecode(b"flows\xfe.parquet")
    res = nta("flows", ODD, "-o", flows, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "flows\\xfe.parquet" in text(res.stdout) and f"{ODD_TEXT}: truncated_record" in text(res.stdout)
    assert set(pq.read_table((tmp_path / flows).open("rb")).column("source_file").to_pylist()) == {ODD_TEXT}
    feats = os.fsdecode(b"kdd\xfe.parquet")
    res = nta("features", ODD, "-o", feats, "--per-file", cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "kdd\\xfe.parquet" in text(res.stderr)
    assert set(pl.read_parquet((tmp_path / feats).read_bytes())["capture"]) == {ODD_TEXT}


def test_an_error_naming_a_non_utf8_file_is_one_escaped_line(tmp_path: Path) -> None:
    bad = os.fsdecode(b"bad\xfa.pcap")
    (tmp_path / bad).write_bytes(b"not a capture at all")
    res = nta("scan", bad, "-o", tmp_path / "out", cwd=tmp_path)
    assert res.returncode == 2
    lines = text(res.stderr).splitlines()
    assert len(lines) == 1 and lines[0].startswith("nta: error: bad\\xfa.pcap: ")
    assert not (tmp_path / "out").exists()


def test_evaluate_reads_a_non_utf8_data_file(tmp_path: Path) -> None:
    feats = os.fsdecode(b"kdd\xfe.parquet")
    assert (
        nta("features", SAMPLES / "demo-mixed.pcap", "-o", feats, "--label", "normal", "-q", cwd=tmp_path).returncode
        == 0
    )
    res = nta("evaluate", Path(__file__).resolve().parents[1] / "model" / "default", "--data", feats, cwd=tmp_path)
    assert res.returncode == 0, res.stderr
    assert "accuracy" in text(res.stdout).lower()
