"""The terminal report at 80 and 120 columns: every address whole (IPv6 in its short form), nothing wider than
the terminal, incidents in severity order. The demo capture's addresses are swapped for IPv6 ones long enough
that an 80-column table cannot hold two endpoints, so the narrow layout is exercised too."""

from __future__ import annotations

import io
import ipaddress
import re
import shutil
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from rich.console import Console

from analyzer import incidents
from analyzer.pipeline import ScanConfig, run_scan
from analyzer.report import packed, render
from analyzer.result import ScanResult, talkers_of
from analyzer.summary import top_flow_rows

REPO = Path(__file__).resolve().parents[2]
SHORT = "fd77::14"  # 10.0.0.20 becomes this (nta's flow table holds addresses in their short form, RFC 5952)


def _v6(h: str) -> str:
    if h == "10.0.0.20":
        return SHORT
    a, b, c, d = map(int, h.split("."))
    return f"2001:db8:{a + 0x100:x}:{b + 0x100:x}:{c + 0x100:x}:8a2e:370:{d + 0x1000:x}"  # nothing to shorten


def _remap(result: ScanResult) -> ScanResult:
    assert result.talkers is not None  # the top talkers as the scan counted them (over every attack row)
    hosts = set(result.attacks["orig_h"]) | set(result.attacks["resp_h"]) | set(result.talkers["orig_h"])
    m = {h: _v6(h) for h in hosts}
    result.talkers = result.talkers.with_columns(pl.col("orig_h").replace_strict(m))
    swap = [pl.col(c).replace_strict(m) for c in ("orig_h", "resp_h")]
    result.attacks = result.attacks.with_columns(swap)
    assert result.ranked is not None  # the top flows as the scan ranked them
    result.ranked = result.ranked.with_columns(swap)
    assert result.flow_table is not None
    result.flow_table = result.flow_table.with_columns(swap)
    inc = result.incidents.with_columns(
        pl.col("source").replace_strict(m), pl.col("target").replace_strict(m), pl.col("key").replace(m)
    )
    result.incidents = inc.with_columns(summary=pl.Series([incidents.describe(r) for r in inc.iter_rows(named=True)]))
    return result


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, ScanResult]:
    tmp = tmp_path_factory.mktemp("widths")
    shutil.copy(REPO / "sample_pcaps" / "demo-mixed.pcap", tmp / "demo-mixed.pcap")
    v4 = run_scan(ScanConfig(paths=(tmp / "demo-mixed.pcap",), device="cpu", write=False))
    v6 = _remap(run_scan(ScanConfig(paths=(tmp / "demo-mixed.pcap",), device="cpu", write=False)))
    return {"v4": v4, "v6": v6}


def _render(result: ScanResult, width: int) -> str:
    console = Console(record=True, width=width, color_system=None, file=io.StringIO())
    render(result, console)
    return console.export_text()


def _shown(result: ScanResult) -> set[str]:
    """The addresses the report names: top flows' endpoints, incidents' single sources and targets, talkers."""
    top = top_flow_rows(result)
    inc = result.incidents
    return {
        *top["orig_h"], *top["resp_h"], *talkers_of(result, 5)["orig_h"],
        *inc.filter(pl.col("sources") == 1)["source"], *inc.filter(pl.col("targets") == 1)["target"],
    }  # fmt: skip


ADDRESS_LIKE = re.compile(r"(?<![\w:.])(?:\d{1,3}(?:\.\d{1,3}){3}|[0-9a-f]{0,4}(?::[0-9a-f]{0,4}){2,7})(?![\w.])")


@pytest.mark.parametrize("kind", ["v4", "v6"])
@pytest.mark.parametrize("width", [80, 120])
def test_every_address_whole_at_80_and_120_columns(results: dict[str, ScanResult], kind: str, width: int) -> None:
    result = results[kind]
    text = _render(result, width)
    lines = text.splitlines()
    assert max(len(line.rstrip()) for line in lines) <= width
    shown = _shown(result)
    assert len(shown) >= 5
    for host in shown:
        short = ipaddress.ip_address(host).compressed
        assert short == host
        assert re.search(rf"(?<![\w:.\[]){re.escape(short)}(?![\w.]|:[0-9a-f]{{1,4}}:)", text) or (
            f"[{short}]:" in text
        ), (short, text)
    for token in ADDRESS_LIKE.findall(text):  # whatever looks like an address is a whole, valid one
        if "::" in token or token.count(":") >= 3 or token.count(".") == 3:  # not a time (10:00:01)
            ipaddress.ip_address(token.strip("[]"))
    if kind == "v6":
        assert SHORT in text
    # incidents from #1 down, most severe first
    ids = [int(i) for i in re.findall(r"^\s+#(\d+)\s{2}", text, re.M)]
    assert ids == sorted(ids) and ids[:1] == [1]


def test_wide_terminal_shows_the_full_table(results: dict[str, ScanResult]) -> None:
    wide, narrow = _render(results["v4"], 120), _render(results["v4"], 80)
    head = next(line for line in wide.splitlines() if line.strip().startswith("flow"))
    assert head.split() == ["flow", "time", "originator", "responder", "service", "state", "class", "p_attack", "inc"]
    assert "time" not in next(line for line in narrow.splitlines() if line.strip().startswith("flow")).split()
    v6 = _render(results["v6"], 80)  # two IPv6 endpoints cannot share an 80-column row: one line a flow
    assert not any(line.strip().startswith("flow ") for line in v6.splitlines())
    assert re.search(r"\]:\d+ -> \[", v6) or re.search(r"\]:\d+ ->\n", v6)


def test_packed_breaks_a_piece_longer_than_a_line_between_its_words() -> None:
    # a display filter's "ip.addr in {...}" set of 8 addresses is longer than an 80-column line
    got = packed("> ", ["ab", "in {1 2 3 4 5 6}"], " && ", 12, 2).plain.split("\n")
    assert got == ["> ab && in", "  {1 2 3 4 5", "  6}"]


@pytest.mark.parametrize(
    ("pieces", "width", "want"),
    [
        (["aa", "bb", "cc"], 20, ["> aa, bb, cc"]),
        (["aaaa", "bbbb", "cccc"], 12, ["> aaaa,", "  bbbb, cccc"]),
        (["aaaaaaaaaaaaaaaaaaaa", "b"], 8, [">", "  aaaaaaaaaaaaaaaaaaaa,", "  b"]),  # too long: own line, unsplit
    ],
)
def test_packed_breaks_only_between_pieces(pieces: list[str], width: int, want: list[Any]) -> None:
    assert packed("> ", pieces, ", ", width, 2).plain.split("\n") == want
