"""Helpers for capture tests: where ../shared is, MANIFEST.tsv, and writers for small self-made captures.

Imported by the tests as ``capture_testlib`` (tests/capture/conftest.py puts this folder on sys.path,
because pytest runs with --import-mode=importlib, where test modules cannot import their siblings).
"""

from __future__ import annotations

import csv
import gzip
import struct
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
SHARED = REPO.parent / "shared"
PCAPS = SHARED / "data" / "pcaps"


def need(p: Path) -> Path:
    """The path, or skip the test naming what is missing."""
    if not p.exists():
        pytest.skip(f"needs {p} (../shared beside the checkout), which is missing")
    return p


def manifest() -> dict[str, dict[str, str]]:
    """MANIFEST.tsv rows by file (relative to data/pcaps)."""
    with need(PCAPS / "MANIFEST.tsv").open(newline="") as f:
        return {row["file"]: row for row in csv.DictReader(f, delimiter="\t")}


def pcap_bytes(
    frames: list[tuple[float, bytes]] | list[tuple[float, bytes, int]],
    *,
    linktype: int = 1,
    endian: str = "<",
    ns: bool = False,
    modified: bool = False,
    snaplen: int = 65535,
) -> bytes:
    """A classic pcap holding frames: (ts seconds, bytes[, wire length])."""
    magic = 0xA1B2CD34 if modified else 0xA1B23C4D if ns else 0xA1B2C3D4
    out = [struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype)]
    for fr in frames:
        ts, data = fr[0], fr[1]
        wire = fr[2] if len(fr) > 2 else len(data)  # type: ignore[misc]
        sec = int(ts)
        frac = round((ts - sec) * (1e9 if ns else 1e6))
        out.append(struct.pack(endian + "IIII", sec, frac, len(data), wire))
        if modified:
            out.append(struct.pack(endian + "IHBB", 1, 0x0800, 0, 0))
        out.append(data)
    return b"".join(out)


def write(path: Path, data: bytes, gz: bool = False) -> Path:
    path.write_bytes(gzip.compress(data) if gz else data)
    return path
