"""Every command in the README's responder part runs, in order, as written, in a fresh folder with the sample
captures; each must exit 0 (a command that tolerates a failure says so itself, e.g. ``|| echo "exit $?"``).

The opening block's install steps are not rerun (the suite runs from an installed checkout): its scan runs
with the ``nta`` of this environment, and its second line, which runs this suite, is skipped. A command that
needs ``../shared`` or a program that is not installed is skipped with the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
README = REPO / "README.md"
END = "<!-- responder-part:end -->"


def responder_part() -> str:
    text = README.read_text()
    assert END in text, f"README lacks the {END} marker after its responder part"
    return text.split(END, 1)[0]


def commands() -> list[str]:
    """The command lines of the responder part's ```sh blocks, in order (comments kept: bash ignores them)."""
    blocks = re.findall(r"```sh\n(.*?)```", responder_part(), re.S)
    return [line for block in blocks for line in block.splitlines() if line.strip()]


def test_responder_part_is_under_300_lines() -> None:
    assert responder_part().count("\n") < 300


def test_responder_part_explains_classes_and_names() -> None:
    text = responder_part()
    for term in ("R2L", "remote to local", "U2R", "user to root", "Probe", "DoS", "normal"):
        assert term in text, term
    for name in ("http_443", "domain_u", "eco_i", "urp_i", "private", "`S0`", "`SF`", "`REJ`", "`RSTO`"):
        assert name in text, name


def _runnable(line: str) -> tuple[str | None, str]:
    """(the command to run, or None; why it is skipped)."""
    if "../shared" in line:
        return None, "needs ../shared beside the checkout"
    if "pip install" in line:
        if "pytest" in line:
            return None, "runs this test suite itself"
        return line.rsplit("&& ", 1)[1].replace(".venv/bin/nta", "nta"), ""  # the scan after the install
    for tool in ("jq", "tshark"):
        if re.search(rf"(^|\| ){tool} ", line) and shutil.which(tool) is None:
            return None, f"needs {tool}, not installed"
    return line, ""


def test_every_readme_command_runs_in_order(tmp_path: Path) -> None:
    (tmp_path / "sample_pcaps").symlink_to(REPO / "sample_pcaps")
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}", "COLUMNS": "100"}
    ran, skipped = 0, []
    for line in commands():
        cmd, why = _runnable(line)
        if cmd is None:
            skipped.append(f"{line}: {why}")
            continue
        res = subprocess.run(
            ["bash", "-o", "pipefail", "-c", cmd], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300
        )
        assert res.returncode == 0, f"{line}\n--- exit {res.returncode}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}"
        assert "Traceback" not in res.stderr, line
        ran += 1
    assert ran >= 6, (ran, skipped)
    assert (tmp_path / "nta-out" / "demo-mixed" / "alerts.ndjson").is_file()
    assert (tmp_path / "case43" / "incidents").is_dir() and (tmp_path / "case43" / "conn.log").is_file()
    assert len(skipped) <= 2, skipped


@pytest.mark.parametrize("line", [line for line in commands() if _runnable(line)[0] is None])
def test_commands_not_run_here_say_why(line: str) -> None:
    pytest.skip(f"README command not run: {_runnable(line)[1]}: {line}")
