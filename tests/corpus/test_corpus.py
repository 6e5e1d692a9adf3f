"""Corpus walk: every real capture in ``../shared/data/pcaps`` is read without an unhandled exception.

The cut file yields its complete records and a ``truncated_record`` warning; the Netlink-only file yields
no flows and an ``unsupported_linktype`` count; the header-only and ARP-only files yield no flows; every
other capture yields flows. The packet count read must match the corpus manifest (capinfos' count).
Runs in a few seconds: the corpus is about 30 MB.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Any

import pytest

SHARED = Path(__file__).resolve().parents[2].parent / "shared"
CORPUS = SHARED / "data" / "pcaps"
MANIFEST = CORPUS / "MANIFEST.tsv"

CUT = "formats/file-cut-mid-record.pcap"
NETLINK = "formats/pcap-big-endian-netlink.pcap"
NO_IP = {"formats/empty-header-only.pcap", "attack/host-sweep-arp.pcap", NETLINK}

pytestmark = pytest.mark.corpus


def _manifest() -> dict[str, dict[str, str]]:
    if not MANIFEST.exists():
        return {}
    with MANIFEST.open(newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


ROWS = _manifest()
# Parametrize over the manifest so the test ids are stable; without ../shared one test skips with the reason.
FILES = sorted(ROWS) or ["<corpus missing>"]


def _need(p: Path) -> Path:
    if not p.exists():
        pytest.skip(f"needs {p} (../shared beside the checkout), which is missing")
    return p


def _extract(path: Path) -> Any:
    from features.flows.extract import extract_flows

    return extract_flows([path])


def test_manifest_lists_every_capture() -> None:
    _need(MANIFEST)
    on_disk = {str(p.relative_to(CORPUS)) for p in CORPUS.rglob("*") if p.is_file()} - {"MANIFEST.tsv", "README.md"}
    assert on_disk == set(ROWS)


@pytest.mark.parametrize("name", FILES)
def test_capture_reads(name: str) -> None:
    path = _need(CORPUS / name)
    ext = _extract(path)  # any exception fails the test: the corpus has only readable captures
    row = ROWS[name]
    flows = ext.flows
    assert int(ext.packets) == int(row["packets"]), f"{name}: read {ext.packets} records, capinfos {row['packets']}"
    if name == CUT:
        assert any("truncated_record" in w for w in ext.warnings), ext.warnings
    else:
        assert not any("truncated_record" in w for w in ext.warnings), ext.warnings
    if name in NO_IP:
        assert flows.num_rows == 0
    else:
        assert flows.num_rows > 0
        # Every flow carries its source file and sane counts.
        rows = flows.select(["source_file", "orig_pkts", "resp_pkts", "orig_ip_bytes", "ts", "ts_end"]).to_pylist()
        assert {Path(r["source_file"]).name for r in rows} == {path.name}
        assert all(r["orig_pkts"] + r["resp_pkts"] > 0 for r in rows)
        assert all(r["ts"] <= r["ts_end"] for r in rows)
    if name == NETLINK:
        assert ext.bad_packets.get("unsupported_linktype", 0) == int(row["packets"])


def test_corpus_total() -> None:
    """All captures together, as `nta flows` reads several files: one table, a flow per source file."""
    _need(CORPUS)
    paths = [CORPUS / n for n in sorted(ROWS)]
    from features.flows.extract import extract_flows

    ext = extract_flows(paths)
    assert int(ext.packets) == sum(int(r["packets"]) for r in ROWS.values())
    names = {Path(s).name for s in ext.flows.column("source_file").to_pylist()}
    assert len(names) == len(ROWS) - len(NO_IP)
