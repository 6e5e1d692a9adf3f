"""Every Markdown table in the repository's documents is well formed: its delimiter row and every body row have as
many cells as its header. A table whose delimiter row has one cell too many is not rendered as a table at all (GitHub
and CommonMark's table extension show it as text), which is how three of the README's tables went unread."""

from __future__ import annotations

import re

import pytest

from tests.docs_files import REPO, markdown_files

DELIMITER = re.compile(r"^\s*\|?\s*:?-{3,}:?\s*(\|\s*:?-{3,}:?\s*)*\|?\s*$")


def cells(line: str) -> list[str]:
    """A table row's cells as GitHub's table extension splits them: on every pipe not escaped as ``\\|``, inside
    code spans too (a pipe inside backticks must be escaped as well)."""
    text = line.strip()
    text = text[1:] if text.startswith("|") else text
    text = text[:-1] if text.endswith("|") and not text.endswith("\\|") else text
    return re.split(r"(?<!\\)\|", text)


def table_problems(text: str) -> list[str]:
    """``line N: ...`` for each delimiter or body row whose cell count differs from its header's."""
    lines = text.splitlines()
    problems, fenced = [], False
    for i, line in enumerate(lines):
        if line.lstrip().startswith("```"):
            fenced = not fenced
        if fenced or i == 0 or "|" not in line or not DELIMITER.match(line):
            continue
        width = len(cells(lines[i - 1]))
        if len(cells(line)) != width:
            problems.append(f"line {i + 1}: delimiter row has {len(cells(line))} cells, header {width}")
        j = i + 1
        while j < len(lines) and lines[j].strip().startswith("|"):
            if len(cells(lines[j])) != width:
                problems.append(f"line {j + 1}: row has {len(cells(lines[j]))} cells, header {width}")
            j += 1
    return problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("| a | b |\n| --- | ---: |\n| 1 | 2 |\n", []),
        ("| a | b |\n| --- | --- | ---: |\n| 1 | 2 |\n", ["line 2: delimiter row has 3 cells, header 2"]),
        ("| a | b |\n| --- | --- |\n| 1 | 2 | 3 |\n", ["line 3: row has 3 cells, header 2"]),
        ("| a | b |\n| --- | --- |\n| `x \\| y` | 2 |\n| a \\| b | 2 |\n", []),  # escaped pipes, in code too
        ("| a | b |\n| --- | --- |\n| `x | y` | 2 |\n", ["line 3: row has 3 cells, header 2"]),  # GFM splits there
        ("```\n| a | b |\n| --- | --- | --- |\n```\n", []),  # inside a code block: not a table
    ],
)
def test_table_problems_finds_rows_of_the_wrong_width(text: str, expected: list[str]) -> None:
    assert table_problems(text) == expected


def test_every_markdown_table_in_the_repository_is_well_formed() -> None:
    files = markdown_files()
    assert any(f.name == "README.md" for f in files)
    bad = {str(f.relative_to(REPO)): p for f in files if (p := table_problems(f.read_text()))}
    assert not bad, bad
