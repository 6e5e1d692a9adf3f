"""Size guards (``features.capture.stream.ReadLimits``): a gzip capture that inflates far beyond its compressed size
and a stream that never ends stop with one line naming the file, exit 2, nothing written, memory bounded."""

from __future__ import annotations

import gzip
import os
import re
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from analyzer.inputs import parse_size
from features.capture import stream
from features.capture.source import PacketSource
from features.capture.stream import MAX_INFLATE, NO_LIMITS, ReadLimits
from features.common import InputError

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
DEMO = SAMPLES / "demo-mixed.pcap"
PCAP_HEADER = struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1)
MiB = 1 << 20


def zero_bomb(path: Path, mib: int) -> Path:
    """A pcap header then ``mib`` MiB of zeros, gzip-compressed (~1030x: deflate's ceiling)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    with path.open("wb") as f:
        f.write(c.compress(PCAP_HEADER))
        zeros = bytes(MiB)
        for _ in range(mib):
            f.write(c.compress(zeros))
        f.write(c.flush())
    return path


def read_all(src: PacketSource) -> int:
    return sum(b.records for b in src.batches())


def _nta(*args: str | Path, **kw: object) -> subprocess.CompletedProcess[bytes]:
    cmd = [sys.executable, "-m", "analyzer", *(os.fspath(a) for a in args)]
    return subprocess.run(cmd, capture_output=True, timeout=120, check=False, **kw)  # type: ignore[call-overload]


@pytest.mark.parametrize(
    ("limits", "total", "raw", "gz", "stops"),
    [
        (ReadLimits(100, 0), 100, 1, False, ""),
        (ReadLimits(100, 0), 101, 1, False, "more than 100 bytes of capture data"),
        (ReadLimits(0, 0), 1 << 50, 1, True, ""),
        (ReadLimits(0, 100), stream.INFLATE_FLOOR + 1, 1 << 10, True, "gzip inflates more than 100x"),
        (ReadLimits(0, 100), stream.INFLATE_FLOOR + 1, 1 << 10, False, ""),  # only gzip has a ratio
        (ReadLimits(0, 100), stream.INFLATE_FLOOR, 1, True, ""),  # below the floor small files may deflate well
        (ReadLimits(0, 100), 200 << 20, 2 << 20, True, ""),  # exactly 100x
        (ReadLimits(0, 100), (200 << 20) + 1, 2 << 20, True, "gzip inflates more than 100x (200 MiB from 2 MiB"),
    ],
)
def test_limits_table(limits: ReadLimits, total: int, raw: int, gz: bool, stops: str) -> None:
    why = limits.check(total, raw, gz)
    assert why.startswith(stops) if stops else why == ""


@pytest.mark.parametrize(
    ("text", "n"), [("0", 0), ("123", 123), ("500M", 500 * MiB), ("64G", 64 << 30), ("1T", 1 << 40), ("2KiB", 2048)]
)
def test_sizes(text: str, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("text", ["", "-1", "1X", "lots", "1.2.3M"])
def test_bad_sizes_are_input_errors(text: str) -> None:
    with pytest.raises(InputError, match=r"--max-bytes: .* is not a size"):
        parse_size(text)


def test_a_zero_bomb_stops_once_past_the_floor(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "INFLATE_FLOOR", 4 * MiB)
    bomb = zero_bomb(tmp_path / "bomb.pcap.gz", 40)
    with pytest.raises(InputError) as e:
        read_all(PacketSource(bomb))
    assert str(e.value).startswith(f"{bomb}: gzip inflates more than {MAX_INFLATE:g}x (")
    # the same file with the guard off is read through: every 16-byte zero record is a bad packet
    assert read_all(PacketSource(bomb, limits=NO_LIMITS)) == (40 * MiB) // 16


def test_a_real_capture_passes_the_ratio_guard(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A real capture repeated (past the floor, lowered here) deflates far less than 100x: it is read as it is."""
    monkeypatch.setattr(stream, "INFLATE_FLOOR", 1 * MiB)
    raw = DEMO.read_bytes()
    body = raw[24:] * 8
    gz = tmp_path / "real.pcap.gz"
    gz.write_bytes(gzip.compress(raw[:24] + body))
    assert (len(body) + 24) / gz.stat().st_size < 20
    plain = tmp_path / "real.pcap"
    plain.write_bytes(raw[:24] + body)
    assert read_all(PacketSource(gz)) == read_all(PacketSource(plain)) > 0


def test_max_bytes_stops_a_plain_file_too(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"demo-mixed.pcap: more than 64 KiB of capture data \(an endless stream\?\)"):
        read_all(PacketSource(DEMO, limits=ReadLimits(64 << 10, 0)))
    assert read_all(PacketSource(DEMO, limits=ReadLimits(DEMO.stat().st_size, 0))) > 0  # exactly the limit: fine


def test_scan_of_a_bomb_is_one_line_exit_2_and_keeps_the_earlier_output(tmp_path: Path) -> None:
    out = tmp_path / "case"
    first = _nta("scan", DEMO, "-o", out, "-q")
    assert first.returncode == 0, first.stderr
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    bomb = zero_bomb(tmp_path / "bomb.pcap.gz", 80)  # past the 64 MiB floor
    res = _nta("scan", bomb, "-o", out, "-q", "--force")
    assert res.returncode == 2
    (line,) = res.stderr.decode().splitlines()
    assert re.fullmatch(
        rf"nta: error: {re.escape(str(bomb))}: gzip inflates more than 100x \(80 MiB from 79.\d+ KiB; a decompression "
        r"bomb\?\); nothing written \(--max-inflate raises the limit, 0 removes it\)",
        line,
    )
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bomb.pcap.gz", "case"]  # no temporary folder left


ENDLESS = r"""
import struct, sys
frame = bytes(12) + b"\x08\x00" + bytes.fromhex("4500002e00000000400600000a0000010a000002") + bytes(26)
rec = struct.pack("<IIII", 1_700_000_000, 0, len(frame), len(frame)) + frame
out = sys.stdout.buffer
out.write(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
try:
    while True:
        out.write(rec * 1000)
except BrokenPipeError:
    pass
"""


@pytest.mark.parametrize("how", ["stdin", "fifo"])
def test_an_endless_stream_stops_at_max_bytes(tmp_path: Path, how: str) -> None:
    out = tmp_path / "x.parquet"
    if how == "fifo":
        name: str | Path = tmp_path / "live.pcap"
        os.mkfifo(name)
        writer = subprocess.Popen(
            [sys.executable, "-c", f"import sys; sys.stdout = open({str(name)!r}, 'w')\n{ENDLESS}"]
        )
        stdin = None
    else:
        name = "-"
        writer = subprocess.Popen([sys.executable, "-c", ENDLESS], stdout=subprocess.PIPE)
        stdin = writer.stdout
    try:
        res = _nta("flows", name, "-o", out, "-q", "--max-bytes", "3M", stdin=stdin)
    finally:
        writer.kill()
        writer.wait()
    assert res.returncode == 2
    assert res.stderr.decode().splitlines() == [
        f"nta: error: {name}: more than 3 MiB of capture data (an endless stream?); "
        "nothing written (--max-bytes raises the limit, 0 removes it)"
    ]
    assert not out.exists()


def test_a_damaged_bomb_is_still_stopped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(stream, "INFLATE_FLOOR", 4 * MiB)
    bomb = zero_bomb(tmp_path / "bomb.pcap.gz", 20)
    cut = tmp_path / "cut.pcap.gz"
    cut.write_bytes(bomb.read_bytes()[:-12])  # no end: the inflater reports the stream damaged at the last block
    with pytest.raises(InputError, match=r"cut.pcap.gz: gzip inflates more than 100x"):
        read_all(PacketSource(cut))


def test_an_endless_zeek_log_on_stdin_stops_at_max_bytes(tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    assert _nta("flows", DEMO, "-o", log, "--format", "zeek", "-q").returncode == 0
    lines = log.read_bytes().splitlines(keepends=True)
    head, record = b"".join(line for line in lines if line.startswith(b"#") and b"#close" not in line), lines[-2]
    writer = subprocess.Popen(
        [
            sys.executable,
            "-c",
            f"import sys\no = sys.stdout.buffer\no.write({head!r})\nwhile True: o.write({record!r} * 1000)",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        res = _nta("flows", "-", "-o", tmp_path / "x.parquet", "-q", "--max-bytes", "2M", stdin=writer.stdout)
    finally:
        writer.kill()
        writer.wait()
    assert res.returncode == 2
    assert res.stderr.decode().splitlines() == [
        "nta: error: -: more than 2 MiB of capture data (an endless stream?); "
        "nothing written (--max-bytes raises the limit, 0 removes it)"
    ]
    assert not (tmp_path / "x.parquet").exists()
