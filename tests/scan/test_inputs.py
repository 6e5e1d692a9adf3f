"""Path discovery: named files must be captures, folders are walked and their non-captures skipped."""

from __future__ import annotations

from pathlib import Path

import pytest

from analyzer.inputs import discover, looks_like_capture_name
from analyzer.pipeline import capture_stem
from features.common import InputError

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"


@pytest.mark.parametrize(
    ("name", "ok"),
    [("a.pcap", True), ("A.PCAPNG", True), ("b.cap", True), ("c.pcap.gz", True), ("d.gz", False), ("e.txt", False)],
)
def test_capture_names(name: str, ok: bool) -> None:
    assert looks_like_capture_name(Path(name)) is ok


def test_capture_stem() -> None:
    assert capture_stem(Path("x/demo.pcap.gz")) == "demo"
    assert capture_stem(Path("Trace.PCAPNG")) == "Trace"
    assert capture_stem(Path("odd")) == "odd"


def test_folder_walk_is_sorted_recursive_and_skips(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "z.pcapng").write_bytes((SAMPLES / "fmt-pcapng-2sections.pcapng").read_bytes())
    (tmp_path / "a.pcap.gz").write_bytes((SAMPLES / "fmt-gzip.pcap.gz").read_bytes())
    (tmp_path / "junk.cap").write_bytes(b"\x42" * 1000)
    (tmp_path / "notes.md").write_text("x")
    found = discover([tmp_path])
    assert [p.name for p in found.captures] == ["a.pcap.gz", "z.pcapng"]
    skipped = {p.name: why for p, why in found.skipped}
    assert set(skipped) == {"junk.cap", "notes.md"}
    assert "junk.cap" not in skipped["junk.cap"]  # the reason, without the file name repeated


def test_same_file_twice_is_read_once(tmp_path: Path) -> None:
    found = discover([SAMPLES / "land.pcap", SAMPLES, SAMPLES / "land.pcap"])
    assert [p.name for p in found.captures].count("land.pcap") == 1


def test_named_non_capture_is_an_error(tmp_path: Path) -> None:
    f = tmp_path / "x.pcap"
    f.write_bytes(b"\x42" * 1000)
    with pytest.raises(InputError, match=r"x\.pcap"):
        discover([f])


def test_nothing_to_scan(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    with pytest.raises(InputError, match="no capture files"):
        discover([tmp_path])
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(InputError, match="no capture files"):
        discover([tmp_path / "empty-dir"])


def test_dangling_looping_links_and_fifos_in_a_folder_are_listed_as_skipped(tmp_path: Path) -> None:
    import json
    import os
    import socket

    from typer.testing import CliRunner

    from analyzer.cli import app

    folder = tmp_path / "evidence"
    folder.mkdir()
    (folder / "good.pcap").write_bytes((SAMPLES / "land.pcap").read_bytes())
    (folder / "gone.pcap").symlink_to(tmp_path / "deleted.pcap")
    (folder / "loop1.pcap").symlink_to("loop2.pcap")
    (folder / "loop2.pcap").symlink_to("loop1.pcap")
    (folder / "live.pcap").symlink_to(folder / "good.pcap")  # a link to a capture is read
    os.mkfifo(folder / "fifo.pcap")  # no writer: opening it would block; it must not be opened
    with socket.socket(socket.AF_UNIX) as s:
        s.bind(str(folder / "sock.pcapng"))
        found = discover([folder])
        res = CliRunner().invoke(app, ["scan", str(folder), "-o", str(tmp_path / "o"), "-q", "--format", "json"])
    assert [p.name for p in found.captures] == ["good.pcap"]  # live.pcap is the same file, read once
    skipped = {p.name: why for p, why in found.skipped}
    assert skipped == {
        "gone.pcap": f"dangling symbolic link (to {tmp_path / 'deleted.pcap'})",
        "loop1.pcap": "symbolic link loop",
        "loop2.pcap": "symbolic link loop",
        "fifo.pcap": "a named pipe (FIFO), not a regular file (name it on the command line to read it as a stream)",
        "sock.pcapng": "a socket, not a regular file (name it on the command line to read it as a stream)",
    }
    assert res.exit_code == 0, res.output
    report = json.loads((tmp_path / "o" / "report.json").read_text())
    assert {Path(s["file"]).name: s["reason"] for s in report["skipped"]} == skipped


def test_a_copy_under_another_name_is_read_once(tmp_path: Path) -> None:
    """Evidence exported twice (the same bytes, another name) would count every packet twice: the copy is skipped,
    naming the file it repeats; pieces of one size that differ (``tcpdump -C``) and a file that differs only in
    its middle are all read."""
    demo = (SAMPLES / "demo-mixed.pcap").read_bytes()
    a, copy = tmp_path / "case" / "capture.pcap", tmp_path / "case" / "capture.pcap.1.pcap"  # found in name order
    a.parent.mkdir()
    a.write_bytes(demo)
    copy.write_bytes(demo)
    middle = bytearray(demo)
    middle[len(demo) // 2] ^= 0xFF  # one byte of a payload changed: same size, same head and tail
    (tmp_path / "case" / "other.pcap").write_bytes(bytes(middle))
    found = discover([tmp_path / "case"])
    assert [p.name for p in found.captures] == ["capture.pcap", "other.pcap"]
    assert found.skipped == [(copy, f"the same bytes as {a}: read once")]
    named = discover([copy, a])  # named on the command line: the first named is kept
    assert named.captures == [copy] and named.skipped == [(a, f"the same bytes as {copy}: read once")]
    header, body = demo[:24], demo[24:]
    pieces = [tmp_path / f"ring{i}.pcap" for i in range(2)]
    for i, p in enumerate(pieces):  # one size, other bytes at both ends
        p.write_bytes(header + body[i * 2000 : i * 2000 + 2000])
    assert discover(pieces).captures == pieces and not discover(pieces).skipped


def test_scanning_a_copy_beside_its_original_counts_each_flow_once(tmp_path: Path) -> None:
    from analyzer.pipeline import ScanConfig, run_scan

    copy = tmp_path / "copy.pcap"
    copy.write_bytes((SAMPLES / "syn-flood.pcap").read_bytes())
    alone = run_scan(ScanConfig(paths=(SAMPLES / "syn-flood.pcap",), out=tmp_path / "a", device="cpu"))
    both = run_scan(ScanConfig(paths=(SAMPLES / "syn-flood.pcap", copy), out=tmp_path / "b", device="cpu"))
    assert both.flows == alone.flows and both.packets == alone.packets
    assert [p for p, _ in both.skipped] == [copy]


def test_a_gzipped_copy_beside_the_plain_capture_is_read_once(tmp_path: Path) -> None:
    import gzip

    demo = (SAMPLES / "demo-mixed.pcap").read_bytes()
    (tmp_path / "x.pcap").write_bytes(demo)
    (tmp_path / "x.pcap.gz").write_bytes(gzip.compress(demo))
    (tmp_path / "y.pcap.gz").write_bytes(gzip.compress(demo[:-1] + bytes([demo[-1] ^ 1])))  # one byte differs
    found = discover([tmp_path])
    assert [p.name for p in found.captures] == ["x.pcap", "y.pcap.gz"]
    assert found.skipped == [(tmp_path / "x.pcap.gz", f"the same capture as {tmp_path / 'x.pcap'}, gzipped: read once")]
