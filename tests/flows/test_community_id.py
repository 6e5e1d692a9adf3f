"""Community ID v1 against the spec's baseline vectors (corelight/community-id-spec baseline/baseline_deflt.json)."""

from __future__ import annotations

import ipaddress

import numpy as np
import pytest

from features.flows.community_id import community_id, community_id_array


def _p(a: str) -> bytes:
    return ipaddress.ip_address(a).packed


VECTORS = [
    # proto, saddr, daddr, sport/type, dport/code, expected
    (6, "128.232.110.120", "66.35.250.204", 34855, 80, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (6, "66.35.250.204", "128.232.110.120", 80, 34855, "1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
    (17, "192.168.1.52", "8.8.8.8", 54585, 53, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (17, "8.8.8.8", "192.168.1.52", 53, 54585, "1:d/FP5EW3wiY1vCndhwleRRKHowQ="),
    (1, "192.168.0.89", "192.168.0.1", 8, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),  # echo request
    (1, "192.168.0.1", "192.168.0.89", 0, 0, "1:X0snYXpgwiv9TZtqg64sgzUn6Dk="),  # its reply: same ID
    (1, "10.0.0.1", "10.0.0.2", 11, 0, "1:YHxtAirCG//0OzkcVAukqKQN9xM="),  # time exceeded: one-way
    (
        6,
        "2001:470:e5bf:dead:4957:2174:e82c:4887",
        "2607:f8b0:400c:c03::1a",
        63943,
        25,
        "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
    ),
    (58, "3ffe:507:0:1:200:86ff:fe05:80da", "3ffe:501:0:1001::2", 128, 0, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "3ffe:501:0:1001::2", "3ffe:507:0:1:200:86ff:fe05:80da", 129, 0, "1:+TW+HtLHvV1xnGhV1lv7XoJrqQg="),
    (58, "fe80::260:97ff:fe07:69ea", "ff02::1", 134, 0, "1:pkvHqCL88/tg1k4cPigmZXUtL00="),
    (58, "3ffe:501:410:0:2c0:dfff:fe47:33e", "3ffe:507:0:1:200:86ff:fe05:80da", 1, 4, "1:hLZd0XGWojozrvxqE0dWB1iM6R0="),
    (132, "192.168.170.8", "192.168.170.56", 7, 7, "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs="),
    (46, "10.1.12.2", "10.1.12.1", None, None, "1:KHlLkgoJW7ifUTyTSgyVfkFHzKw="),
]


@pytest.mark.parametrize(("proto", "src", "dst", "sp", "dp", "expected"), VECTORS)
def test_baseline_vectors(proto: int, src: str, dst: str, sp: int | None, dp: int | None, expected: str) -> None:
    assert community_id(_p(src), _p(dst), proto, sp, dp) == expected


def test_columnar_matches_scalar_for_v4_mapped_and_v6() -> None:
    v4 = int(ipaddress.ip_address("::ffff:192.168.1.52"))
    v4b = int(ipaddress.ip_address("::ffff:8.8.8.8"))
    v6a = int(ipaddress.ip_address("2001:470:e5bf:dead:4957:2174:e82c:4887"))
    v6b = int(ipaddress.ip_address("2607:f8b0:400c:c03::1a"))
    m = (1 << 64) - 1
    ids = community_id_array(
        np.array([4, 6], np.uint8),
        np.array([17, 6], np.uint8),
        np.array([v4 >> 64, v6a >> 64], np.uint64),
        np.array([v4 & m, v6a & m], np.uint64),
        np.array([v4b >> 64, v6b >> 64], np.uint64),
        np.array([v4b & m, v6b & m], np.uint64),
        np.array([54585, 63943], np.int32),
        np.array([53, 25], np.int32),
    ).to_pylist()
    assert ids == ["1:d/FP5EW3wiY1vCndhwleRRKHowQ=", "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4="]


def test_columnar_equals_scalar_on_random_flows() -> None:
    """The vectorised path (endpoint order, ICMP mapping, byte layout, base64) against the per-flow one."""
    import struct

    r = np.random.default_rng(1)
    n = 2000
    ipv = r.choice([4, 6], n).astype(np.uint8)
    proto = r.choice([6, 17, 1, 47, 132], n)
    proto = np.where((ipv == 6) & (proto == 1), 58, proto).astype(np.uint8)
    hi = np.where(ipv == 4, 0, r.integers(0, 2**63, (2, n), dtype=np.uint64)).astype(np.uint64)
    lo = r.integers(0, 2**63, (2, n), dtype=np.uint64)
    lo = np.where(ipv == 4, (0xFFFF << 32) | (lo & 0xFFFFFFFF), lo).astype(np.uint64)
    same = r.random(n) < 0.1
    hi[1], lo[1] = np.where(same, hi[0], hi[1]), np.where(same, lo[0], lo[1])
    icmp = (proto == 1) | (proto == 58)
    sp = np.where(icmp, r.choice([0, 8, 3, 11, 128, 129, 135, 1, 13], n), r.integers(0, 65536, n))
    dp = np.where(icmp, r.integers(0, 5, n), r.integers(0, 65536, n))
    sp, dp = np.where(proto == 47, -1, sp), np.where(proto == 47, -1, dp)
    got = community_id_array(
        ipv, proto, hi[0], lo[0], hi[1], lo[1], sp.astype(np.int32), dp.astype(np.int32)
    ).to_pylist()

    def packed(h: int, lo_: int, v4: bool) -> bytes:
        return struct.pack("!I", lo_ & 0xFFFFFFFF) if v4 else struct.pack("!QQ", h, lo_)

    for i in range(n):
        v4 = bool(ipv[i] == 4)
        want = community_id(
            packed(int(hi[0, i]), int(lo[0, i]), v4),
            packed(int(hi[1, i]), int(lo[1, i]), v4),
            int(proto[i]),
            None if sp[i] < 0 else int(sp[i]),
            None if dp[i] < 0 else int(dp[i]),
        )
        assert got[i] == want, i
