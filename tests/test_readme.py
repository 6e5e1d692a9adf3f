"""The README's promises that code can check: the two opening commands, the exit codes, and the flow-column
table (in docs/flows.md, where the README links for it)."""

from __future__ import annotations

import re
from pathlib import Path

from features.flows.schema import FLOW_COLUMNS, markdown_table

README = Path(__file__).resolve().parent.parent / "README.md"
FLOWS_DOC = README.parent / "docs" / "flows.md"


def _first_block() -> list[str]:
    text = README.read_text()
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block, "README has no sh code block"
    return [line for line in block.group(1).splitlines() if line.strip()]


def test_readme_opens_with_exactly_two_commands() -> None:
    text = README.read_text()
    assert text.index("```sh") < text.index("\n## "), "the commands come before any section"
    cmds = _first_block()
    assert len(cmds) == 2
    assert "nta scan sample_pcaps/" in cmds[0] and "pip install" in cmds[0]
    assert "pytest" in cmds[1] and "pip install" in cmds[1]
    sample = re.search(r"nta scan (sample_pcaps/\S+)", cmds[0])
    assert sample and (README.parent / sample.group(1)).is_file()


def test_flow_column_table_is_derived_from_the_schema() -> None:
    text = FLOWS_DOC.read_text()
    table = text.split("<!-- flow-columns:start -->\n", 1)[1].split("\n<!-- flow-columns:end -->", 1)[0]
    assert table == markdown_table(), (
        "regenerate with: python -c 'from features.flows.schema import markdown_table as m; print(m())'"
    )
    assert all(f"`{c}`" in table for c in FLOW_COLUMNS)


def test_exit_code_table_scan_help_and_nta_help_list_every_exit_code() -> None:
    from typer.testing import CliRunner

    from analyzer.cli import app
    from analyzer.errors import ExitCode

    section = README.read_text().split("### Exit codes\n", 1)[1].split("\n#", 1)[0]
    in_table = {int(m) for m in re.findall(r"^\| (\d+) \|", section, re.M)}
    assert in_table == {int(c) for c in ExitCode}
    scan_help = " ".join(CliRunner().invoke(app, ["scan", "--help"], terminal_width=200).output.split())
    root_help = " ".join(CliRunner().invoke(app, ["--help"], terminal_width=200).output.split())
    for code in ExitCode:
        assert re.search(rf"\b{int(code)} ", scan_help), (code, scan_help)
        assert re.search(rf"\b{int(code)} ", root_help), (code, root_help)
