"""The package layering, read from the source: stages import only earlier stages, and no module imports in a circle.

``features`` is four stages in the order a packet passes through them (capture -> flows -> kdd -> encode) plus
``common``, and ``zeeklog``, which makes flow records from Zeek logs in place of capture -> flows; ``model`` takes from ``features`` only the encoding and ``common``; only ``analyzer`` talks to the user.
Every import counts, also those inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
# A stage may import itself and those before it; zeeklog (Zeek logs -> flow records) reads flows and names kdd's
# content features, and nothing imports it but analyzer.
STAGES = ("common", "capture", "flows", "kdd", "zeeklog", "encode")


def _module(path: Path) -> str:
    rel = path.relative_to(REPO).with_suffix("")
    parts = rel.parts[:-1] if rel.name == "__init__" else rel.parts
    return ".".join(parts)


def _imports(path: Path) -> set[str]:
    """Every module name ``path`` imports (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(), filename=str(path))
    here = _module(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[: len(package) - node.level + 1], *([base] if base else [])])
            found.add(base)
            found.update(f"{base}.{a.name}" for a in node.names)  # "from features import capture" names a module
    return found


def _sources(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _stage(module: str) -> str | None:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 and parts[0] == "features" and parts[1] in STAGES else None


def test_the_stage_reader_sees_every_import() -> None:
    """The checks below are only as good as the reader: it must see imports in functions and relative ones."""
    src = "import torch\nfrom .state import x\ndef f():\n    from features.kdd.frame import kdd_features\n"
    p = REPO / "features" / "flows" / "_probe_for_test.py"
    try:
        p.write_text(src)
        got = _imports(p)
    finally:
        p.unlink()
    assert {"torch", "features.flows.state", "features.kdd.frame"} <= got


@pytest.mark.parametrize("path", _sources("features"), ids=lambda p: str(p.relative_to(REPO)))
def test_features_imports_no_later_stage(path: Path) -> None:
    me = _stage(_module(path))
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in ("torch", "rich", "analyzer", "model", "typer"), f"{path}: imports {name}"
        other = _stage(name)
        if me is None or other is None:
            continue
        assert STAGES.index(other) <= STAGES.index(me), f"{path} ({me}) imports the later stage {name}"


@pytest.mark.parametrize("path", _sources("model"), ids=lambda p: str(p.relative_to(REPO)))
def test_model_takes_only_the_encoding_from_features(path: Path) -> None:
    for name in _imports(path):
        top = name.split(".")[0]
        assert top not in ("rich", "analyzer", "dpkt", "typer"), f"{path}: imports {name}"
        if top == "features":
            assert _stage(name) in ("common", "encode"), f"{path}: imports {name} (only features.encode/common)"


def _graph() -> dict[str, set[str]]:
    mods = {_module(p): p for pkg in ("analyzer", "features", "model") for p in _sources(pkg)}
    graph: dict[str, set[str]] = {}
    for mod, path in mods.items():
        deps = set()
        for name in _imports(path):
            # "from analyzer import report" names the module analyzer.report; "from x.y import f" names x.y
            target = name if name in mods else name.rsplit(".", 1)[0]
            if target in mods and target != mod:
                deps.add(target)
        graph[mod] = deps
    return graph


def test_no_import_circles() -> None:
    graph = _graph()
    assert graph["analyzer.pipeline"] >= {"analyzer.summary", "analyzer.result"}  # the reader sees real edges
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycle = [*stack[stack.index(d) :], d]
                pytest.fail("import circle: " + " -> ".join(cycle))
            if d not in state:
                visit(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m)


def test_each_stage_says_what_comes_in_and_goes_out() -> None:
    for stage in STAGES[1:]:
        doc = ast.get_docstring(ast.parse((REPO / "features" / stage / "__init__.py").read_text())) or ""
        first = doc.splitlines()[0] if doc else ""
        assert " in; " in first and first.rstrip(".").endswith("out"), f"features/{stage}/__init__.py: {first!r}"
