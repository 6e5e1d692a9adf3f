"""lab/cut.py: cutting a classic pcap at random instants (no root, no network, no ../shared)."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

CUT_PY = Path(__file__).resolve().parents[2] / "lab" / "cut.py"


def _load_cut():
    spec = importlib.util.spec_from_file_location("nta_lab_cut", CUT_PY)
    mod = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(mod)
    return mod


labcut = _load_cut()


def make_pcap(
    path: Path,
    n: int = 200,
    endian: str = "<",
    nsec: bool = False,
    t0: int = 1_700_000_000,
    step_us: int = 250_000,
    truncate_last: bool = False,
) -> list[tuple[float, bytes]]:
    """A tiny Ethernet pcap whose records have distinct sizes and payloads; returns (ts, whole record bytes)."""
    magic = 0xA1B23C4D if nsec else 0xA1B2C3D4
    gh = struct.pack(endian + "IHHiIII", magic, 2, 4, 0, 0, 65535, 1)
    recs = []
    body = bytearray(gh)
    for i in range(n):
        us = i * step_us + (i % 7) * 1000
        sec, frac_us = t0 + us // 1_000_000, us % 1_000_000
        frac = frac_us * 1000 if nsec else frac_us
        data = bytes([i % 251]) * (14 + (i * 37) % 300)
        rec = struct.pack(endian + "IIII", sec, frac, len(data), len(data)) + data
        recs.append((sec + frac_us / 1e6, rec))
        body += rec
    if truncate_last:
        body += struct.pack(endian + "IIII", t0 + 999, 0, 100, 100) + b"\x00" * 10
    path.write_bytes(bytes(body))
    return recs


def records_of(path: Path, endian: str = "<", nsec: bool = False) -> list[tuple[float, bytes]]:
    raw = path.read_bytes()
    out, off = [], 24
    while off < len(raw):
        sec, frac, incl, orig = struct.unpack_from(endian + "IIII", raw, off)
        assert incl == orig
        assert off + 16 + incl <= len(raw), "record cut mid-way"
        out.append((sec + frac / (1e9 if nsec else 1e6), raw[off : off + 16 + incl]))
        off += 16 + incl
    return out


@pytest.mark.parametrize(("endian", "nsec"), [("<", False), (">", False), ("<", True)])
def test_cuts_are_whole_records_inside_their_instants(tmp_path: Path, endian: str, nsec: bool) -> None:
    src = tmp_path / "run.pcap"
    recs = make_pcap(src, endian=endian, nsec=nsec)
    (tmp_path / "labels.csv").write_text("scenario,class,start_utc,end_utc,attackers,victims,tool,params\n")
    res = labcut.cut(src, tmp_path / "cuts", seed=3, count=5, min_seconds=5)
    assert len(res) == 5
    gh = src.read_bytes()[:24]
    for c in res:
        out = tmp_path / "cuts" / c["file"]
        assert out.read_bytes()[:24] == gh  # global header copied byte for byte
        got = records_of(out, endian, nsec)
        want = [r for t, r in recs if c["start"] <= t < c["end"]]
        assert [r for _, r in got] == want  # every record in the instants, whole and unchanged, nothing else
        assert c["records"] == len(want) > 0
        assert c["end"] - c["start"] >= 5
    assert (tmp_path / "cuts" / "labels.csv").exists()
    assert (tmp_path / "cuts" / "cuts.json").exists()


def test_cuts_start_and_end_inside_the_capture(tmp_path: Path) -> None:
    src = tmp_path / "a.pcap"
    recs = make_pcap(src)
    res = labcut.cut(src, tmp_path / "o", seed=11, count=20, min_seconds=2)
    t0, t1 = recs[0][0], recs[-1][0]
    assert all(t0 <= c["start"] <= c["end"] <= t1 + 1e-6 for c in res)
    assert len({(c["start"], c["end"]) for c in res}) == 20  # random instants, not one cut repeated


def test_same_seed_same_cuts_other_seed_other_cuts(tmp_path: Path) -> None:
    src = tmp_path / "a.pcap"
    make_pcap(src)
    a = labcut.cut(src, tmp_path / "x", seed=7, count=4)
    b = labcut.cut(src, tmp_path / "y", seed=7, count=4)
    c = labcut.cut(src, tmp_path / "z", seed=8, count=4)
    assert a == b
    assert [(r["start"], r["end"]) for r in a] != [(r["start"], r["end"]) for r in c]
    for r in a:
        assert (tmp_path / "x" / r["file"]).read_bytes() == (tmp_path / "y" / r["file"]).read_bytes()


def test_max_seconds_bounds_the_cuts(tmp_path: Path) -> None:
    src = tmp_path / "m.pcap"
    make_pcap(src, n=400)  # 100 s
    res = labcut.cut(src, tmp_path / "o", seed=5, count=10, min_seconds=4, max_seconds=12)
    assert all(4 <= c["end"] - c["start"] <= 12 for c in res)


def test_truncated_last_record_is_dropped(tmp_path: Path) -> None:
    src = tmp_path / "t.pcap"
    recs = make_pcap(src, n=50, truncate_last=True)
    _gh, ts, offs = labcut.index(src.read_bytes())
    assert len(ts) == 50 and offs[-1] == 24 + sum(len(r) for _, r in recs)


def test_not_a_pcap_is_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.pcap"
    bad.write_bytes(b"\x0a\x0d\x0d\x0a" + b"\x00" * 40)  # pcapng
    with pytest.raises(ValueError):
        labcut.cut(bad, tmp_path / "o", seed=1, count=1)


def test_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tmp_path / "c.pcap"
    make_pcap(src, n=80)
    assert labcut.main([str(src), str(tmp_path / "out"), "--seed", "2", "--count", "3", "--min-seconds", "3"]) == 0
    assert len(list((tmp_path / "out").glob("c-cut*.pcap"))) == 3
    assert "records" in capsys.readouterr().out
