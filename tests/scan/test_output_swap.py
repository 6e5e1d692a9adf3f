"""``nta scan``'s three outputs change together or not at all: a new folder is written, then swapped in.

The immutable-file cases use a real ``chattr +i`` (skipped, with the reason, where this filesystem or user
cannot set it); the rest check what the swap keeps (other files, subfolders, links, the folder's mode).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from analyzer.cli import app
from features import common

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def scan(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["scan", "--quiet", *map(str, args)])


def _contents(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}


def _chattr(flag: str, path: Path) -> None:
    if shutil.which("chattr") is None:
        pytest.skip("chattr is not installed here")
    res = subprocess.run(["chattr", flag, str(path)], capture_output=True, text=True, check=False)
    if res.returncode != 0:
        pytest.skip(f"chattr {flag} does not work here ({res.stderr.strip()})")


def _no_leftovers(parent: Path) -> None:
    assert [p.name for p in parent.iterdir() if p.name.startswith(".")] == []


@pytest.fixture
def first_scan(tmp_path: Path) -> Path:
    out = tmp_path / "out"
    assert scan(SAMPLES / "land.pcap", "--out", out).exit_code == 0
    return out


def test_an_immutable_output_refuses_the_scan_and_changes_nothing(first_scan: Path) -> None:
    before = _contents(first_scan)
    _chattr("+i", first_scan / "verdicts.csv")
    try:
        res = scan(SAMPLES / "demo-mixed.pcap", "--out", first_scan, "--force")
    finally:
        _chattr("-i", first_scan / "verdicts.csv")
    assert res.exit_code == 2, res.output
    assert res.stderr.splitlines() == [
        f"nta: error: {first_scan / 'verdicts.csv'}: immutable or append-only (chattr): it cannot be replaced; "
        "nothing was changed"
    ]
    assert _contents(first_scan) == before  # report.json old too
    _no_leftovers(first_scan.parent)


def test_a_file_made_immutable_during_the_scan_still_changes_nothing(
    first_scan: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The refusal holds at the swap itself, not only in the check before reading."""
    from analyzer import verdicts

    before = _contents(first_scan)
    write = verdicts.write_csv
    locked: list[Path] = []

    def write_then_lock(df: object, path: Path, **kw: object) -> None:
        write(df, path, **kw)  # type: ignore[arg-type]
        _chattr("+i", first_scan / "report.json")
        locked.append(first_scan / "report.json")

    monkeypatch.setattr(verdicts, "write_csv", write_then_lock)
    try:
        res = scan(SAMPLES / "demo-mixed.pcap", "--out", first_scan, "--force")
    finally:
        for p in locked:
            _chattr("-i", p)
    assert res.exit_code == 2 and "report.json: immutable" in res.stderr
    assert _contents(first_scan) == before
    _no_leftovers(first_scan.parent)


def test_the_swap_keeps_other_files_subfolders_links_and_the_mode(first_scan: Path) -> None:
    (first_scan / "notes.txt").write_text("case 42\n")
    (first_scan / "evidence").mkdir()
    (first_scan / "evidence" / "x.bin").write_bytes(b"\x01")
    (first_scan / "latest").symlink_to("verdicts.csv")
    first_scan.chmod(0o750)
    old_report = (first_scan / "report.json").read_bytes()
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", first_scan, "--force")
    assert res.exit_code == 0, res.output
    assert (first_scan / "report.json").read_bytes() != old_report
    assert b"demo-mixed" in (first_scan / "report.json").read_bytes()
    assert (first_scan / "notes.txt").read_text() == "case 42\n"
    assert (first_scan / "evidence" / "x.bin").read_bytes() == b"\x01"
    assert os.readlink(first_scan / "latest") == "verdicts.csv"
    assert first_scan.stat().st_mode & 0o777 == 0o750
    _no_leftovers(first_scan.parent)


def test_a_failed_swap_puts_everything_back(first_scan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (first_scan / "evidence").mkdir()
    (first_scan / "evidence" / "x.bin").write_bytes(b"\x01")
    before = _contents(first_scan)

    def exchange_fails(a: Path, b: Path) -> bool:
        raise OSError(5, "Input/output error", str(b))

    monkeypatch.setattr(common, "_exchange", exchange_fails)
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", first_scan, "--force")
    assert res.exit_code == 2 and "Input/output error" in res.stderr
    assert _contents(first_scan) == before
    assert (first_scan / "evidence" / "x.bin").read_bytes() == b"\x01"  # moved into the new folder and back
    _no_leftovers(first_scan.parent)


def test_without_renameat2_two_renames_do_it(first_scan: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(common, "_exchange", lambda a, b: False)
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", first_scan, "--force")
    assert res.exit_code == 0, res.output
    assert b"demo-mixed" in (first_scan / "report.json").read_bytes()
    _no_leftovers(first_scan.parent)


def test_a_symlinked_out_folder_is_followed(first_scan: Path) -> None:
    link = first_scan.parent / "latest"
    link.symlink_to(first_scan.name)
    res = scan(SAMPLES / "demo-mixed.pcap", "--out", link, "--force")
    assert res.exit_code == 0, res.output
    assert link.is_symlink() and b"demo-mixed" in (first_scan / "report.json").read_bytes()
