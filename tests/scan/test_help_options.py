"""``nta -h`` and ``nta scan``'s options as a responder meets them: -h, flags shown as flags, every exit code in
every command's help at 80 columns, --quiet prints nothing, --out - / --no-write touch no disk, --threads."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from analyzer.cli import app
from analyzer.errors import ExitCode

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sample_pcaps" / "demo-mixed.pcap"
COMMANDS = ["flows", "features", "train", "evaluate", "scan", "carve"]


def nta(*args: str | Path, width: int = 80) -> Result:
    return CliRunner().invoke(app, [str(a) for a in args], terminal_width=width)


@pytest.mark.parametrize("args", [["-h"], ["--help"], *([c, "-h"] for c in COMMANDS)])
def test_h_is_help_and_lists_every_exit_code_at_80_columns(args: list[str]) -> None:
    res = nta(*args)
    assert res.exit_code == 0, res.output
    assert res.output.startswith("Usage: nta")
    assert max(len(line) for line in res.output.splitlines()) <= 80
    listed = {int(m) for m in re.findall(r"^\s+(\d+)\s{2,}\S", res.output.split("Exit codes:", 1)[1], re.M)}
    assert listed == {int(c) for c in ExitCode}, listed


def test_boolean_options_are_shown_as_flags() -> None:
    text = nta("scan", "-h", width=200).output
    for flag in ("--force", "--quiet", "--no-write", "--carve", "--novelty", "--no-decap", "--no-progress"):
        line = next(ln for ln in text.splitlines() if re.search(rf"{flag}\b", ln))
        assert "<bool>" not in line and "BOOLEAN" not in line, line
    assert "<bool>" not in text
    assert re.search(r"--threads auto\|N\s", text)


def test_quiet_prints_nothing_and_keeps_outputs_and_exit_code(tmp_path: Path) -> None:
    loud = nta("scan", DEMO, "--out", tmp_path / "a", "--no-progress", "--fail-on", "dos")
    quiet = nta("scan", DEMO, "--out", tmp_path / "b", "--quiet", "--fail-on", "dos")
    assert loud.exit_code == quiet.exit_code == 1
    assert "Incidents:" in loud.stdout and quiet.stdout == "" and quiet.stderr == ""
    assert sorted(p.name for p in (tmp_path / "a").iterdir()) == sorted(p.name for p in (tmp_path / "b").iterdir())
    a, b = (json.loads((tmp_path / d / "report.json").read_text()) for d in "ab")
    assert a["incidents"] == b["incidents"] and a["verdicts"] == b["verdicts"]


@pytest.mark.parametrize(
    "args", [["--out", "-"], ["--no-write", "--format", "json"], ["--no-write", "-q", "--format", "json"]]
)
def test_pure_stdout_run_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, args: list[str]) -> None:
    monkeypatch.chdir(tmp_path)
    res = nta("scan", DEMO, "--no-progress", *args, "--fail-on", "probe")
    assert res.exit_code == 1, res.output
    report = json.loads(res.stdout)
    assert report["outputs"] == {} and report["flows"] > 0 and report["exit_code"] == 1
    assert list(tmp_path.iterdir()) == []  # not even nta-out/
    again = nta("scan", DEMO, "--no-progress", *args)  # a rerun (a CI job's retry) never meets "outputs exist"
    assert again.exit_code == 0, again.output


def test_no_write_text_report_and_refused_combinations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    res = nta("scan", DEMO, "--no-write", "--no-progress", width=120)
    assert res.exit_code == 0 and "Outputs: none (--no-write)" in res.stdout
    for extra in ("--carve", "--zeek", "--force"):
        bad = nta("scan", DEMO, "--no-write", extra)
        assert bad.exit_code == 2 and extra in bad.stderr and bad.stderr.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("value", "code"), [("auto", 0), ("1", 0), ("0", 2), ("many", 2)])
def test_threads_option(tmp_path: Path, value: str, code: int, monkeypatch: pytest.MonkeyPatch) -> None:
    from model import scan_classifier
    from model.classifier import ClassifierBase

    built: list[ClassifierBase] = []
    load = scan_classifier.load_classifier

    def recorded(model_dir: Path, device: str = "auto", threads: int | None = None) -> ClassifierBase:
        built.append(load(model_dir, device, threads))
        return built[-1]

    monkeypatch.setattr(scan_classifier, "load_classifier", recorded)
    res = nta("scan", DEMO, "--out", "-", "--threads", value)
    assert res.exit_code == code, res.output
    if code == 0:  # the CPU's numpy network: auto is nta's choice (None), N exactly N
        assert [type(c).__name__ for c in built] == ["NumpyClassifier"]
        assert built[0].threads == (None if value == "auto" else int(value))
    else:
        assert "--threads" in res.stderr and not built
