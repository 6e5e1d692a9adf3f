"""Link types, IP, transport, fragments and damage: exact fields from hand-built frames.

Every case runs through a real pcap file (PacketSource) and through the per-packet reference decoder,
so the two paths are pinned to the same expected values.
"""

from __future__ import annotations

import struct
from pathlib import Path

import pytest
from capture_testlib import (
    eth,
    ext,
    frag6,
    icmp,
    ip4,
    ipv4,
    ipv6,
    pcap_bytes,
    tcp,
    udp,
)

from features.capture.decode_ref import decode_frame
from features.capture.packets import CONTENT_SNAP, PACKET_COLUMNS
from features.capture.source import PacketSource

V4 = ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1234, 80, 0x12, b"GET / HTTP/1.0\r\n\r\n", seq=7, ack=9, win=501))
V6_UDP = ipv6("2001:db8::1", "2001:db8::2", 17, udp(5353, 53, b"q" * 12))
SRC4 = 0xFFFF_0000_0000 | 0x0A000001


def read(tmp_path: Path, frames: list[bytes], linktype: int = 1, wire: list[int] | None = None) -> PacketSource:
    recs = [(1.5 + i, f, (wire or [len(x) for x in frames])[i]) for i, f in enumerate(frames)]
    p = tmp_path / "t.pcap"
    p.write_bytes(pcap_bytes(recs, linktype=linktype))
    return PacketSource(p)


def rows(tmp_path: Path, frames: list[bytes], linktype: int = 1, wire: list[int] | None = None):  # type: ignore[no-untyped-def]
    """(list of row dicts, bad counter, payloads by pkt_idx); also checks the reference agrees."""
    src = read(tmp_path, frames, linktype, wire)
    out: list[dict[str, int]] = []
    pays: dict[int, bytes] = {}
    for b in src.batches():
        for k, dt in PACKET_COLUMNS.items():
            assert b.cols[k].dtype == dt, k
        out += [{k: int(b.cols[k][i]) for k in PACKET_COLUMNS} for i in range(len(b))]
        pays.update(zip(b.payload_idx.tolist(), b.payloads, strict=True))
    ref_rows = []
    for i, f in enumerate(frames):
        r = decode_frame(f, linktype, (wire or [len(x) for x in frames])[i])
        if r.fields is not None:
            ref_rows.append({**r.fields, "pkt_idx": i, "ts_ns": (1500 + 1000 * i) * 1_000_000})
            assert pays.get(i) == r.payload
    assert out == ref_rows
    return out, src.bad, pays


def test_ethernet_ipv4_tcp_fields(tmp_path: Path) -> None:
    (r,), bad, pays = rows(tmp_path, [eth(V4)])
    assert not bad
    assert r == {
        "pkt_idx": 0, "ts_ns": 1_500_000_000, "vlan": -1, "ip_version": 4, "proto": 6,
        "src_hi": 0, "src_lo": SRC4, "dst_hi": 0, "dst_lo": SRC4 + 1, "sport": 1234, "dport": 80,
        "icmp_type": -1, "icmp_code": -1, "tcp_flags": 0x12, "tcp_seq": 7, "tcp_ack": 9, "tcp_win": 501,
        "ip_len": 58, "payload_len": 18, "ip_id": 0, "frag_off": 0, "more_frags": 0, "is_frag": 0, "tunnel": 0,
    }  # fmt: skip
    assert pays == {0: b"GET / HTTP/1.0\r\n\r\n"}


def test_ipv6_udp_and_icmp(tmp_path: Path) -> None:
    frames = [
        eth(V6_UDP, 0x86DD),
        eth(ipv4("10.0.0.1", "10.0.0.2", 1, icmp(8, 0, b"x" * 56))),
        eth(ipv6("::1", "::2", 58, icmp(129, 0, b"y" * 10)), 0x86DD),
    ]
    (u, i4, i6), bad, pays = rows(tmp_path, frames)
    assert (u["ip_version"], u["proto"], u["sport"], u["dport"], u["ip_len"], u["payload_len"]) == (
        6,
        17,
        5353,
        53,
        60,
        12,
    )
    assert (u["src_hi"], u["src_lo"], u["dst_lo"]) == (0x20010DB8_00000000, 1, 2)
    assert (i4["icmp_type"], i4["icmp_code"], i4["sport"], i4["payload_len"]) == (8, 0, -1, 56)
    assert (i6["proto"], i6["icmp_type"], i6["payload_len"]) == (58, 129, 10)
    assert not bad and not pays


def test_vlan_stacks_keep_the_outer_id(tmp_path: Path) -> None:
    frames = [
        eth(V4, vlans=((0x8100, 100),)),
        eth(V4, vlans=((0x88A8, 200), (0x8100, 300))),
        eth(V4, vlans=((0x9100, 7), (0x88A8, 8), (0x8100, 9))),
        eth(V6_UDP, 0x86DD, vlans=((0x8100, 4095 | 0xE000),)),  # priority bits are not part of the id
        eth(V4, vlans=((0x8100, 1),) * 9),  # deeper than any real network: not followed
    ]
    out, bad, _ = rows(tmp_path, frames)
    assert [r["vlan"] for r in out] == [100, 200, 7, 4095]
    assert [r["sport"] for r in out] == [1234, 1234, 1234, 5353]
    assert bad == {"non_ip": 1}


def test_mpls_and_pppoe(tmp_path: Path) -> None:
    labels = struct.pack(">II", 100 << 12, (200 << 12) | 0x100)  # two labels, bottom of stack on the second
    ppp4 = struct.pack(">BBHHH", 0x11, 0, 1, len(V4) + 2, 0x0021) + V4
    ppp6 = struct.pack(">BBHHH", 0x11, 0, 1, len(V6_UDP) + 2, 0x0057) + V6_UDP
    lcp = struct.pack(">BBHHH", 0x11, 0, 1, 6, 0xC021) + b"\x01\x01\x00\x04"
    frames = [
        eth(labels + V4, 0x8847),
        eth(labels + V6_UDP, 0x8848, vlans=((0x8100, 5),)),
        eth(labels + b"\x00\x00" + eth(V4), 0x8847),  # pseudowire with control word: not IP
        eth(ppp4, 0x8864),
        eth(ppp6, 0x8864, vlans=((0x88A8, 10), (0x8100, 20))),
        eth(lcp, 0x8864),
        eth(b"\x11\x09" + b"\0" * 20, 0x8863),  # PPPoE discovery
    ]
    out, bad, _ = rows(tmp_path, frames)
    assert [(r["ip_version"], r["vlan"], r["dport"]) for r in out] == [
        (4, -1, 80),
        (6, 5, 53),
        (4, -1, 80),
        (6, 10, 53),
    ]
    assert bad == {"non_ip": 3}


def test_cooked_raw_and_loopback_link_types(tmp_path: Path) -> None:
    sll = struct.pack(">HHH8sH", 0, 1, 6, b"\2" * 8, 0x0800) + V4
    sll2 = struct.pack(">HHIHBB8s", 0x86DD, 0, 2, 1, 0, 6, b"\2" * 8) + V6_UDP
    cases = [
        (113, sll, 4),
        (276, sll2, 6),
        (101, V4, 4),
        (101, V6_UDP, 6),
        (12, V4, 4),
        (14, V6_UDP, 6),
        (228, V4, 4),
        (229, V6_UDP, 6),
        (0, struct.pack("<I", 2) + V4, 4),
        (0, struct.pack(">I", 2) + V4, 4),  # written on the other byte order
        (0, struct.pack("<I", 24) + V6_UDP, 6),
        (0, struct.pack("<I", 28) + V6_UDP, 6),
        (108, struct.pack(">I", 30) + V6_UDP, 6),
        (0, b"\x0f\x00\x08\x00" + V4, 4),  # an EtherType in the NULL header (seen in the corpus)
        (108, struct.pack(">I", 0x86DD) + V6_UDP, 6),
    ]
    for i, (lt, frame, version) in enumerate(cases):
        d = tmp_path / str(i)
        d.mkdir()
        (r,), bad, _ = rows(d, [frame], lt)
        assert (r["ip_version"], r["dport"]) == (version, 80 if version == 4 else 53), lt
        assert not bad


def test_unsupported_and_non_ip_are_counted_not_fatal(tmp_path: Path) -> None:
    arp = eth(b"\0\1\x08\0\6\4\0\1" + b"\0" * 20, 0x0806)
    out, bad, _ = rows(tmp_path, [arp, eth(V4), eth(b"\xaa\xaa\x03" + b"\0" * 40, 60)])
    assert len(out) == 1 and bad == {"non_ip": 2}
    d = tmp_path / "nl"
    d.mkdir()
    out, bad, _ = rows(d, [b"\0" * 40] * 3, 253)
    assert out == [] and bad == {"unsupported_linktype": 3}
    d = tmp_path / "raw"
    d.mkdir()
    out, bad, _ = rows(d, [b"\x50" + V4[1:], V6_UDP], 228)  # 228 promises IPv4
    assert len(out) == 0 and bad == {"bad_ip_header": 2}


def test_ipv4_options_and_fragments(tmp_path: Path) -> None:
    opts = b"\x94\x04\x00\x00" + b"\x01" * 4  # router alert + NOPs: IHL 7
    data = icmp(8, 0, b"z" * 100)
    frames = [
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2), options=opts)),
        eth(ipv4("10.0.0.1", "10.0.0.2", 1, data[:48], ident=77, flags_frag=0x2000, total=20 + 48)),
        eth(ipv4("10.0.0.1", "10.0.0.2", 1, data[48:], ident=77, flags_frag=6, total=20 + 60)),
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2), flags_frag=0x4000)),  # DF only: not a fragment
    ]
    (o, f1, f2, df), bad, _ = rows(tmp_path, frames)
    assert (o["sport"], o["ip_len"], o["payload_len"]) == (1, 48, 0)
    assert (f1["is_frag"], f1["more_frags"], f1["frag_off"], f1["ip_id"], f1["icmp_type"]) == (1, 1, 0, 77, 8)
    assert (f2["is_frag"], f2["more_frags"], f2["frag_off"], f2["ip_id"], f2["icmp_type"]) == (1, 0, 48, 77, -1)
    assert (f2["payload_len"], f2["proto"]) == (60, 1)
    assert (df["is_frag"], df["ip_id"]) == (0, 0)
    assert not bad


def test_ipv6_extension_headers_and_fragments(tmp_path: Path) -> None:
    t = tcp(40000, 443, 0x02)
    ah = struct.pack(">BBH", 6, 4, 0) + b"\0" * 20  # AH: (4 + 2) * 4 = 24 bytes
    hop_rt_dst = ipv6("::1", "::2", 0, ext(43) + ext(60) + ext(6) + t)
    via_ah = ipv6("::1", "::2", 51, ah + t)
    first = ipv6("::1", "::2", 44, frag6(17, 0, True, 0xDEADBEEF) + udp(1, 53, b"a" * 40))
    later = ipv6("::1", "::2", 44, frag6(17, 48, False, 0xDEADBEEF) + b"b" * 30)
    esp = ipv6("::1", "::2", 50, b"\0" * 40)
    none = ipv6("::1", "::2", 59, b"")
    frames = [eth(x, 0x86DD) for x in (hop_rt_dst, via_ah, first, later, esp, none)]
    hrd, a, f1, f2, e, nn = rows(tmp_path, frames)[0]
    assert (hrd["proto"], hrd["dport"], hrd["ip_len"], hrd["payload_len"]) == (6, 443, 40 + 24 + 20, 0)
    assert (a["proto"], a["dport"]) == (6, 443)
    assert (f1["proto"], f1["dport"], f1["is_frag"], f1["more_frags"], f1["ip_id"], f1["frag_off"]) == (
        17, 53, 1, 1, 0xDEADBEEF, 0)  # fmt: skip
    assert (f2["proto"], f2["dport"], f2["frag_off"], f2["payload_len"], f2["ip_id"]) == (17, -1, 48, 30, 0xDEADBEEF)
    assert (e["proto"], e["sport"], nn["proto"], nn["ip_len"]) == (50, -1, 59, 40)


def test_truncation_rules(tmp_path: Path) -> None:
    full = eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1234, 80, 0x18, b"P" * 1000)))
    frames = [
        full[:68],  # snaplen 68: TCP header complete, payload counted from the IP length
        full[: 14 + 20 + 10],  # inside the TCP header: ports kept, counted
        full[: 14 + 20 + 2],  # not even the ports
        full[: 14 + 12],  # inside the IP header
        full[:10],  # inside the Ethernet header
        eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(1, 2, b"u" * 100)))[: 14 + 20 + 6],
        eth(ipv6("::1", "::2", 0, ext(6) + tcp(1, 2)), 0x86DD)[: 14 + 40 + 1],  # inside an extension header
    ]
    out, bad, _ = rows(tmp_path, frames, wire=[len(full)] * 7)
    a, b, c, u, x6 = out
    assert (a["ip_len"], a["payload_len"], a["tcp_flags"], a["dport"]) == (1040, 1000, 0x18, 80)
    assert (b["sport"], b["dport"], b["tcp_flags"], b["payload_len"]) == (1234, 80, 0, 1000)
    assert (c["sport"], c["dport"], c["ip_len"]) == (-1, -1, 1040)
    assert (u["sport"], u["dport"], u["payload_len"]) == (1, 2, 100)
    assert (x6["proto"], x6["sport"]) == (0, -1)
    assert bad == {"truncated_transport": 4, "truncated_ip": 1, "truncated_link": 1}


def test_bad_headers(tmp_path: Path) -> None:
    good = ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2))
    frames = [
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2), ihl=4)),
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2), total=19)),
        eth(b"\x70" + good[1:]),  # version 7 behind EtherType IPv4
        eth(good, 0x86DD),  # IPv4 behind EtherType IPv6
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2, doff=3))),
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(1, 2), total=0)),  # TSO: length from the wire
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(5, 6), total=30) + b"\0" * 30),  # IP says too short for TCP
    ]
    out, bad, _ = rows(tmp_path, frames, wire=[60, 60, 60, 60, 60, 1514, 90])
    d3, tso, short = out
    assert (d3["sport"], d3["tcp_flags"], d3["payload_len"]) == (1, 0x02, 0)
    assert (tso["ip_len"], tso["payload_len"]) == (1500, 1460)
    assert (short["sport"], short["ip_len"], short["payload_len"]) == (5, 30, 0)
    assert bad == {"bad_ip_header": 4, "bad_tcp_header": 1, "truncated_transport": 1}


def test_content_payloads(tmp_path: Path) -> None:
    big = b"A" * (CONTENT_SNAP + 100)
    frames = [
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 21, 0x18, b"USER x\r\n"))),
        eth(ipv4("10.0.0.2", "10.0.0.1", 6, tcp(8080, 40001, 0x18, big))),
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 22, 0x18, b"SSH-2.0"))),  # not a content port
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 23, 0x10))),  # empty payload
        eth(ipv4("10.0.0.1", "10.0.0.2", 17, udp(40000, 80, b"udp"))),  # not TCP
        eth(ipv4("10.0.0.1", "10.0.0.2", 6, tcp(40000, 80, 0x18, b"GET /" + b"x" * 100)))[: 14 + 20 + 20 + 5],
    ]
    _, _, pays = rows(tmp_path, frames)
    assert pays == {0: b"USER x\r\n", 1: big[:CONTENT_SNAP], 5: b"GET /"}


@pytest.mark.parametrize("af", [24, 28, 30])
def test_null_ipv6_families(tmp_path: Path, af: int) -> None:
    (r,), _, _ = rows(tmp_path, [struct.pack("<I", af) + V6_UDP], 0)
    assert r["ip_version"] == 6


def test_ipv4_mapped_addresses() -> None:
    r = decode_frame(eth(ipv4("192.168.1.2", "255.255.255.255", 17, udp(68, 67))), 1, 0)
    assert r.fields is not None
    assert r.fields["src_lo"] == 0xFFFF_0000_0000 | int.from_bytes(ip4("192.168.1.2"), "big")
    assert r.fields["dst_lo"] == 0xFFFF_FFFF_FFFF
