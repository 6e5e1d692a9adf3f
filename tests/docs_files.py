"""The repository's Markdown documents, for the tests that check them (tables, links)."""

from __future__ import annotations

import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def markdown_files() -> list[Path]:
    """Every tracked ``*.md`` file; outside a git checkout (an sdist), the README and ``docs/``."""
    try:
        out = subprocess.run(["git", "ls-files", "*.md"], cwd=REPO, capture_output=True, text=True, check=True)
        names = out.stdout.split()
    except (OSError, subprocess.CalledProcessError):
        names = []
    if not names:  # not a git checkout (an sdist): the documents that ship beside the code
        names = [str(p.relative_to(REPO)) for p in [REPO / "README.md", *sorted((REPO / "docs").rglob("*.md"))]]
    return [REPO / n for n in names if (REPO / n).is_file()]
