"""Every relative link in the repository's Markdown documents leads somewhere: the file exists and, for a link into
a Markdown file with ``#fragment``, a heading of that file has that anchor (GitHub's rule: lower case, punctuation
but ``-`` and ``_`` dropped, spaces as hyphens, a repeated heading numbered ``-1``, ``-2``)."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tests.docs_files import REPO, markdown_files

FENCE = re.compile(r"^```.*?^```", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.*?)\s*#*\s*$", re.M)
LINK = re.compile(r"\]\(([^)\s]+)(?:\s+\"[^\"]*\")?\)")


def anchors(text: str) -> set[str]:
    """The anchors GitHub gives the headings of ``text`` (outside code blocks)."""
    seen: Counter[str] = Counter()
    out = set()
    for m in HEADING.finditer(FENCE.sub("", text)):
        slug = re.sub(r"[^\w\- ]", "", m.group(1).strip().lower()).replace(" ", "-")
        out.add(slug if not seen[slug] else f"{slug}-{seen[slug]}")
        seen[slug] += 1
    return out


def broken_links(doc: Path, repo: Path) -> list[str]:
    """The relative links of ``doc`` whose file is missing or whose anchor no heading of that file has."""
    bad = []
    for m in LINK.finditer(FENCE.sub("", doc.read_text())):
        target = m.group(1)
        if re.match(r"[a-zA-Z][a-zA-Z+.-]*:", target):  # http:, https:, mailto:
            continue
        path, _, frag = target.partition("#")
        dest = (doc.parent / path).resolve() if path else doc
        if not dest.exists() or repo.resolve() not in (dest, *dest.parents):
            bad.append(f"{target}: no such file in the repository")
        elif frag and dest.suffix == ".md" and frag not in anchors(dest.read_text()):
            bad.append(f"{target}: no heading with that anchor")
    return bad


@pytest.mark.parametrize(
    ("heading", "anchor"),
    [
        ("## Quality on real captures", "quality-on-real-captures"),
        ("#### The support gate (`model/support.py`)", "the-support-gate-modelsupportpy"),
        (
            "### Speed and memory (`python tests/benchmarks/bench_flows.py`)",
            "speed-and-memory-python-testsbenchmarksbench_flowspy",
        ),
        ("## Evidence of any size: memory", "evidence-of-any-size-memory"),
    ],
)
def test_anchor_is_githubs(heading: str, anchor: str) -> None:
    assert anchor in anchors(heading)


def test_a_repeated_heading_is_numbered_and_code_blocks_hold_no_headings() -> None:
    assert anchors("## Notes\n\n## Notes\n\n```\n# not a heading\n```\n") == {"notes", "notes-1"}


def test_broken_links_names_a_missing_file_and_a_missing_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## Part one\n")
    doc = tmp_path / "b.md"
    doc.write_text(
        "[ok](a.md#part-one) [self](#here) [gone](c.md) [bad](a.md#part-two) [web](https://x.org/#y)\n\n# Here\n"
    )
    assert broken_links(doc, tmp_path) == [
        "c.md: no such file in the repository",
        "a.md#part-two: no heading with that anchor",
    ]


def test_every_relative_link_in_the_repositorys_documents_resolves() -> None:
    bad = {str(f.relative_to(REPO)): b for f in markdown_files() if (b := broken_links(f, REPO))}
    assert not bad, bad
