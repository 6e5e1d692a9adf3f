"""The bad-input matrix: each case gives its exit code, exactly one line on stderr, and no partial output."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from analyzer.cli import app

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"


def scan(*args: str | Path) -> Result:
    return CliRunner().invoke(app, ["scan", "--quiet", *map(str, args)])


def assert_refused(res: Result, code: int, out: Path, *words: str) -> None:
    assert res.exit_code == code, (res.exit_code, res.stderr)
    lines = res.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("nta: error: "), res.stderr
    assert "Traceback" not in res.stderr and res.stdout == ""
    for w in words:
        assert w in lines[0], (w, lines[0])
    # No output at all: the folder was never created (or removed again), so no temp files either.
    assert not out.exists() or not list(out.iterdir()), list(out.iterdir())


def test_text_file(tmp_path: Path) -> None:
    f = tmp_path / "notes.txt"
    f.write_text("GET / HTTP/1.1\nHost: example\n" * 20)
    assert_refused(scan(f, "--out", tmp_path / "o"), 2, tmp_path / "o", "notes.txt")


def test_empty_file(tmp_path: Path) -> None:
    f = tmp_path / "empty.pcap"
    f.write_bytes(b"")
    assert_refused(scan(f, "--out", tmp_path / "o"), 2, tmp_path / "o", "empty.pcap")


def test_missing_path(tmp_path: Path) -> None:
    assert_refused(scan(tmp_path / "nope.pcap", "--out", tmp_path / "o"), 2, tmp_path / "o", "nope.pcap")


def test_truncated_capture_with_strict(tmp_path: Path) -> None:
    res = scan(SAMPLES / "truncated.pcap", "--out", tmp_path / "o", "--strict")
    assert_refused(res, 2, tmp_path / "o", "--strict")


def test_folder_without_captures(tmp_path: Path) -> None:
    folder = tmp_path / "docs"
    folder.mkdir()
    (folder / "readme.md").write_text("# nothing here\n")
    (folder / "bogus.pcapng").write_bytes(b"\x00" * 64)
    assert_refused(scan(folder, "--out", tmp_path / "o"), 2, tmp_path / "o", "no capture files")


def test_unreadable_file(tmp_path: Path) -> None:
    f = tmp_path / "locked.pcap"
    shutil.copy(SAMPLES / "land.pcap", f)
    f.chmod(0)
    try:
        if os.access(f, os.R_OK):
            pytest.skip("running as root (or with CAP_DAC_OVERRIDE): chmod 000 does not stop reads here")
        assert_refused(scan(f, "--out", tmp_path / "o"), 2, tmp_path / "o", "locked.pcap")
    finally:
        f.chmod(0o644)


def test_missing_model(tmp_path: Path) -> None:
    res = scan(SAMPLES / "land.pcap", "--out", tmp_path / "o", "--model", tmp_path / "no-model")
    assert_refused(res, 3, tmp_path / "o", "no-model")


def _model_copy(tmp_path: Path) -> Path:
    from model.infer import default_model_dir

    src = default_model_dir()
    if not (src / "metadata.json").exists():
        pytest.fail(f"the shipped model is missing: {src}")
    dst = tmp_path / "model"
    shutil.copytree(src, dst)
    return dst


def test_model_with_other_feature_spec(tmp_path: Path) -> None:
    """A well-formed model whose spec names a feature nta does not compute (count renamed throughout)."""
    model = _model_copy(tmp_path)
    meta = json.loads((model / "metadata.json").read_text())
    spec = meta["feature_spec"]
    spec["columns"] = ["packets_per_second" if c == "count" else c for c in spec["columns"]]
    spec["encoded_columns"] = ["packets_per_second" if c == "count" else c for c in spec["encoded_columns"]]
    spec["stats"]["packets_per_second"] = spec["stats"].pop("count")
    (model / "metadata.json").write_text(json.dumps(meta))
    res = scan(SAMPLES / "land.pcap", "--out", tmp_path / "o", "--model", model)
    assert_refused(res, 3, tmp_path / "o", "packets_per_second")


def test_model_with_malformed_spec(tmp_path: Path) -> None:
    model = _model_copy(tmp_path)
    meta = json.loads((model / "metadata.json").read_text())
    meta["feature_spec"]["columns"] = meta["feature_spec"]["columns"][:-1]
    (model / "metadata.json").write_text(json.dumps(meta))
    assert_refused(scan(SAMPLES / "land.pcap", "--out", tmp_path / "o", "--model", model), 3, tmp_path / "o")


def test_corrupt_weights(tmp_path: Path) -> None:
    model = _model_copy(tmp_path)
    w = model / "weights.safetensors"
    w.write_bytes(w.read_bytes()[:-16] + b"\x00" * 16)
    assert_refused(scan(SAMPLES / "land.pcap", "--out", tmp_path / "o", "--model", model), 3, tmp_path / "o")


def test_existing_outputs_need_force(tmp_path: Path) -> None:
    out = tmp_path / "o"
    assert scan(SAMPLES / "land.pcap", "--out", out).exit_code == 0
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    res = scan(SAMPLES / "ping-sweep.pcap", "--out", out)
    assert res.exit_code == 2 and len(res.stderr.splitlines()) == 1 and "--force" in res.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before  # untouched, no temp files


def test_bad_fail_on_and_usage(tmp_path: Path) -> None:
    assert_refused(scan(SAMPLES / "land.pcap", "--out", tmp_path / "o", "--fail-on", "worm"), 2, tmp_path / "o", "worm")
    res = scan(SAMPLES / "land.pcap", "--out", tmp_path / "o", "--min-confidence", "2")
    assert res.exit_code == 2 and not (tmp_path / "o").exists()


def test_write_failure_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A failure while writing the last output removes the ones already written (and the new folder)."""
    from analyzer import verdicts

    def boom(*_: object, **__: object) -> None:
        raise OSError(28, "No space left on device", "verdicts.csv")

    monkeypatch.setattr(verdicts, "write_csv", boom)
    assert_refused(scan(SAMPLES / "land.pcap", "--out", tmp_path / "o"), 2, tmp_path / "o", "No space left")


def test_ctrl_c_is_130_and_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import features.kdd.frame

    def interrupted(*_: object, **__: object) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(features.kdd.frame, "kdd_features", interrupted)
    res = scan(SAMPLES / "land.pcap", "--out", tmp_path / "o")
    assert res.exit_code == 130 and res.stderr.strip() == "nta: interrupted"
    assert not (tmp_path / "o").exists()


def test_permission_denied_is_one_line_exit_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The unreadable case where chmod cannot produce it (root): the OS error as PacketSource would raise it."""
    import features.capture.source

    f = tmp_path / "locked.pcap"
    shutil.copy(SAMPLES / "land.pcap", f)

    def denied(path: Path, **_: object) -> None:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr(features.capture.source, "PacketSource", denied)
    assert_refused(scan(f, "--out", tmp_path / "o"), 2, tmp_path / "o", "locked.pcap", "Permission denied")
