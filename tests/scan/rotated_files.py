"""Capture files cut and shifted with our own splitter (shared by the rotated-capture and Ray engine tests).

Classic pcap: the 24-byte header, then 16-byte record headers with the captured length, so the pieces are real
capture bytes, as ``tcpdump -C`` or ``editcap -c`` would write them.
"""

from __future__ import annotations

import struct
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "sample_pcaps" / "demo-mixed.pcap"


def pcap_records(path: Path) -> tuple[bytes, list[tuple[float, bytes]]]:
    """(global header, [(timestamp, whole record bytes)]) of a classic pcap in either byte order."""
    data = path.read_bytes()
    endian = "<" if data[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    off, out = 24, []
    while off + 16 <= len(data):
        sec, usec, caplen, _ = struct.unpack_from(endian + "IIII", data, off)
        out.append((sec + usec / 1e6, data[off : off + 16 + caplen]))
        off += 16 + caplen
    return data[:24], out


def write_pieces(folder: Path, header: bytes, pieces: list[list[bytes]], stem: str) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, recs in enumerate(pieces):
        p = folder / f"{stem}{i:02d}.pcap"
        p.write_bytes(header + b"".join(recs))
        paths.append(p)
    return paths


def sensors(tmp_path: Path) -> list[Path]:
    """The demo capture as two overlapping files: runs of equal timestamps go to one file, alternately."""
    header, recs = pcap_records(DEMO)
    parts: list[list[bytes]] = [[], []]
    side, last = 0, None
    for t, r in recs:
        if t != last:
            side, last = 1 - side, t
        parts[side].append(r)
    return write_pieces(tmp_path, header, parts, "sensor")


def shifted(path: Path, out: Path, seconds: int) -> Path:
    """``path``'s records with every timestamp moved ``seconds`` later (classic pcap, microseconds)."""
    header, recs = pcap_records(path)
    endian = "<" if header[:4] == b"\xd4\xc3\xb2\xa1" else ">"
    moved = []
    for _, r in recs:
        sec = struct.unpack_from(endian + "I", r, 0)[0]
        moved.append(struct.pack(endian + "I", sec + seconds) + r[4:])
    out.write_bytes(header + b"".join(moved))
    return out
