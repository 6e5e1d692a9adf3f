"""Fuzz targets: one function per reader, ``target(data: bytes) -> None``, that raises ``Crash`` (or any exception
but the documented input error) when nta breaks an invariant on hostile bytes.

Invariants (README, "Reliability"): a capture that is not one is ``InputError`` (one line, exit 2) and nothing
else; a damaged one is read as far as it goes with its bad packets counted by name; every decoded row is
well formed (equal-length columns, ports and versions in range, packet numbers among the records). Hangs and
memory blow-ups are caught by the runner (``campaign.py``: a time and an RSS limit per input).

Targets:

* ``pcap``, ``pcapng``, ``gzip``: the bytes are a capture file, read by ``PacketSource`` exactly as ``nta scan``
  reads one (sniffing, gzip inflation, the record walkers, every decoder), with 4 KiB blocks instead of 32 MiB
  so records also straddle block boundaries. The three differ in their seeds (``seeds.py``).
* ``link``: frames of every link type nta decodes, straight into ``decode_chunk``. Byte 0 picks the link type
  (its top bit: a different link type per frame, as pcapng allows); then frames, each a length byte and bytes.
* ``ip``: the same with raw IP frames (link type 101): IPv4/IPv6, extension headers, fragments, TCP/UDP/ICMP,
  and the tunnels (GRE, ERSPAN, VXLAN, Geneve, GTP-U, Teredo, IP-in-IP) whose inner packets are decoded too.
"""

from __future__ import annotations

import atexit
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import numpy as np

from features.capture import source
from features.capture.decode import decode_chunk
from features.capture.packets import PACKET_COLUMNS, PacketBatch
from features.capture.pcap import PAD, RecordChunk
from features.capture.source import PacketSource
from features.common import InputError

# Every link type nta reads (features.capture.linktypes), and a few it does not (counted as unsupported).
LINKTYPES = (1, 113, 276, 104, 0, 108, 9, 50, 105, 127, 192, 101, 12, 14, 228, 229, 147, 65535)
FUZZ_BLOCK = 4 << 10  # bytes per read block in the file targets (nta: 32 MiB)


class Crash(AssertionError):
    """An invariant broken: a bug in nta, whatever the input."""


def check(ok: bool, what: str) -> None:
    if not ok:
        raise Crash(what)


def check_batch(b: PacketBatch, records: int, first: int = 0) -> None:
    """Every column as long as the others, with its declared dtype; values in their ranges."""
    n = len(b.cols["pkt_idx"])
    for k, dt in PACKET_COLUMNS.items():
        col = b.cols[k]
        check(col.shape == (n,) and col.dtype == np.dtype(dt), f"column {k}: {col.shape} {col.dtype}, {n} rows")
    if n:
        idx = b.cols["pkt_idx"]
        check(bool(((idx >= first) & (idx < first + records)).all()), "pkt_idx outside the records")
        check(bool(np.isin(b.cols["ip_version"], (4, 6)).all()), "ip_version not 4 or 6")
        for port in ("sport", "dport"):
            check(bool(((b.cols[port] >= -1) & (b.cols[port] <= 65535)).all()), f"{port} out of range")
        check(bool((b.cols["proto"] >= 0).all() & (b.cols["proto"] <= 255).all()), "proto out of range")
    check(all(v > 0 for v in b.bad.values()), f"bad counts {dict(b.bad)}")
    check(len(b.payload_idx) == len(b.payloads), "payload index and payloads differ in length")


# The file targets write each input to a file in memory (/dev/shm). campaign.py names the folder (NTA_FUZZ_TMP) and
# removes it after its worker, which libFuzzer ends without Python's exit handlers; anyone else gets their own.
if os.environ.get("NTA_FUZZ_TMP"):
    _DIR = Path(os.environ["NTA_FUZZ_TMP"])
else:
    _DIR = Path(tempfile.mkdtemp(prefix="nta-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None))
    atexit.register(shutil.rmtree, _DIR, True)
_FILE = _DIR / "input.pcap"


def read_file(data: bytes) -> None:
    """Read ``data`` as a capture file with ``PacketSource``, as ``nta scan`` does."""
    _FILE.write_bytes(data)
    try:
        src = PacketSource(_FILE)
    except InputError:
        return  # not a capture: the documented refusal
    records = 0
    real = source.stream_blocks
    source.stream_blocks = functools.partial(real, block=FUZZ_BLOCK)  # type: ignore[assignment]
    try:
        for b in src.batches():
            check_batch(b, src.records)
            records += b.records
    except InputError:
        return  # e.g. a gzip stream that inflates beyond the limit
    finally:
        source.stream_blocks = real
    check(records == src.records, f"batches hold {records} records, the source counted {src.records}")
    check(len(src.sha256) == 64, "no sha256 after a full read")
    check(all(v > 0 for v in src.bad.values()), f"bad counts {dict(src.bad)}")


def frames_of(data: bytes, fixed_linktype: int | None) -> tuple[np.ndarray, RecordChunk] | None:
    """A RecordChunk of the frames in ``data`` (see the module docstring for the layout)."""
    if not data:
        return None
    if fixed_linktype is None:
        mixed = bool(data[0] & 0x80)
        lt0 = LINKTYPES[(data[0] & 0x7F) % len(LINKTYPES)]
        pos = 1
    else:
        mixed, lt0, pos = False, fixed_linktype, 0
    offs, lens, lts = [], [], []
    blob = bytearray()
    while pos < len(data):
        lt = lt0
        if mixed:
            lt = LINKTYPES[data[pos] % len(LINKTYPES)]
            pos += 1
        if pos >= len(data):
            break
        n = data[pos] if fixed_linktype is None else (data[pos] << 8 | data[pos + 1] if pos + 1 < len(data) else 0)
        pos += 1 if fixed_linktype is None else 2
        frame = data[pos : pos + n]
        pos += n
        offs.append(len(blob))
        lens.append(len(frame))
        lts.append(lt)
        blob += frame
    if not offs:
        return None
    buf = np.frombuffer(bytes(blob) + bytes(PAD), np.uint8).copy()
    k = len(offs)
    caplen = np.array(lens, np.int64)
    rc = RecordChunk(
        buf,
        np.array(offs, np.int64),
        caplen,
        caplen + (data[-1] % 3) * 100,  # sometimes a wire length beyond the captured bytes (snaplen)
        1_700_000_000 * 10**9 + np.arange(k, dtype=np.int64) * 1000,
        np.array(lts, np.int32),
        0,
    )
    return buf, rc


def decode_frames(data: bytes, fixed_linktype: int | None) -> None:
    got = frames_of(data, fixed_linktype)
    if got is None:
        return
    _, rc = got
    for decap in (True, False) if data[-1] & 1 else (True,):  # both ways for half the inputs: twice the speed
        b = decode_chunk(rc, payloads=True, decap=decap)
        check_batch(b, len(rc))
        check(b.records == len(rc), "records miscounted")
        rows_per_frame = np.bincount(b.cols["pkt_idx"], minlength=len(rc)) if len(b) else np.zeros(1)
        check(int(rows_per_frame.max()) <= 1, "a frame decoded to more than one packet")


def link(data: bytes) -> None:
    decode_frames(data, None)


def ip(data: bytes) -> None:
    """Raw IP frames: two length bytes (big-endian) then the packet, repeated."""
    decode_frames(data, 101)


TARGETS: dict[str, Callable[[bytes], None]] = {
    "pcap": read_file,
    "pcapng": read_file,
    "gzip": read_file,
    "link": link,
    "ip": ip,
}
MAX_LEN = {"pcap": 4096, "pcapng": 4096, "gzip": 4096, "link": 2048, "ip": 2048}


def run_one(name: str, data: bytes) -> None:
    """Run target ``name`` on ``data``: returns, or raises (a crash)."""
    TARGETS[name](data)
