"""lab/cut.py: cutting a classic pcap at random instants (no root, no network, no ../shared)."""

from __future__ import annotations

import importlib.util
import struct
from pathlib import Path

import pytest

CUT_PY = Path(__file__).resolve().parents[2] / "lab" / "cut.py"


def _load_cut():
    spec = importlib.util.spec_from_file_location("nta_lab_cut", CUT_PY)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
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


# Host cuts: captures filtered to one address or one conversation.
LAB4 = ["10.77.0.1", "10.77.0.2", "10.77.0.3"]
LAB6 = "fd77::5"
OUTSIDE = "10.99.0.9"  # an address no lab host owns (a spoofed source, say)


def _frame(src: str, dst: str, vlan: bool = False) -> bytes:
    import ipaddress

    s, d = ipaddress.ip_address(src), ipaddress.ip_address(dst)
    tag = b"\x81\x00\x00\x07" if vlan else b""
    if s.version == 4:
        ip = bytes([0x45, 0]) + (20).to_bytes(2, "big") + b"\x00" * 8 + s.packed + d.packed
        return b"\x02" * 12 + tag + b"\x08\x00" + ip
    ip6 = b"\x60" + b"\x00" * 7 + s.packed + d.packed
    return b"\x02" * 12 + tag + b"\x86\xdd" + ip6


def make_host_pcap(path: Path) -> list[tuple[float, bytes, tuple[str, str] | None]]:
    """400 records, 0.25 s apart: IPv4 among lab hosts and to an outside address, IPv6, VLAN-tagged, ARP."""
    pairs: list[tuple[str, str] | None] = [
        (LAB4[0], LAB4[1]), (LAB4[1], LAB4[0]), (LAB4[0], LAB4[2]), (OUTSIDE, LAB4[2]), (LAB6, "fd77::6"), None,
        (LAB4[2], LAB4[1]),
    ]  # fmt: skip
    body = bytearray(struct.pack("<IHHiIII", 0xA1B2C3D4, 2, 4, 0, 0, 65535, 1))
    out = []
    for i in range(400):
        p = pairs[i % len(pairs)]
        data = b"\x02" * 12 + b"\x08\x06" + b"\x00" * 28 if p is None else _frame(*p, vlan=i % 5 == 0)
        us = i * 250_000
        rec = struct.pack("<IIII", 1_700_000_000 + us // 1_000_000, us % 1_000_000, len(data), len(data)) + data
        body += rec
        out.append((1_700_000_000 + us / 1e6, rec, p))
    path.write_bytes(bytes(body))
    return out


META = {"hosts": {"a": {"v4": LAB4[:2]}, "b": {"v4": [LAB4[2]], "v6": [LAB6]}}}


def test_host_cuts_keep_every_record_of_the_address_or_conversation_and_nothing_else(tmp_path: Path) -> None:
    src = tmp_path / "run.pcap"
    recs = make_host_pcap(src)
    res = labcut.cut(src, tmp_path / "h", seed=4, count=30, min_seconds=5, max_seconds=40, hosts=META)
    assert len(res) == 30
    drawn = {h for c in res for h in c["hosts"]}
    assert drawn <= {*LAB4, LAB6, "fd77::6", OUTSIDE}
    assert {c["hosts"][0] for c in res} <= {*LAB4, LAB6}  # the filtered address is always a lab host's
    assert any(len(c["hosts"]) == 1 for c in res) and any(len(c["hosts"]) == 2 for c in res)
    for c in res:
        want = [
            r for t, r, p in recs
            if c["start"] <= t < c["end"] and p is not None and set(c["hosts"]) <= set(p)
        ]  # fmt: skip
        got = [r for _, r in records_of(tmp_path / "h" / c["file"])]
        assert got == want and c["records"] == len(want) > 0  # VLAN-tagged frames too; ARP never


def test_host_cuts_are_seeded_and_refuse_other_link_types(tmp_path: Path) -> None:
    src = tmp_path / "run.pcap"
    make_host_pcap(src)
    a = labcut.cut(src, tmp_path / "a", seed=9, count=5, hosts=META)
    b = labcut.cut(src, tmp_path / "b", seed=9, count=5, hosts=META)
    assert a == b
    raw = bytearray(src.read_bytes())
    raw[20:24] = struct.pack("<I", 101)  # raw IP
    (tmp_path / "raw.pcap").write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="Ethernet"):
        labcut.cut(tmp_path / "raw.pcap", tmp_path / "r", seed=1, count=1, hosts=META)
