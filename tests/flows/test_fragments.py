"""IP fragments: attribution to the datagram's flow, bytes counted, overlaps and ping-of-death flagged."""

from __future__ import annotations

from flows_build import build
from flows_pkts import pkt

C, S = "10.0.0.1", "10.0.0.2"


def udp_frags(t: float, ip_id: int, order: list[int] | None = None) -> list[dict]:
    """A 3000-byte UDP datagram in three fragments (1472 + 1480 + 48 data bytes after the UDP header)."""
    parts = [
        pkt(t, C, S, 5000, 2049, proto=17, plen=1472, ip_id=ip_id, frag_off=0, mf=True),
        pkt(t + 0.001, C, S, proto=17, plen=1480, ip_id=ip_id, frag_off=1480, mf=True),
        pkt(t + 0.002, C, S, proto=17, plen=48, ip_id=ip_id, frag_off=2960, mf=False),
    ]
    if order:
        ts = [p["ts_ns"] for p in parts]
        parts = [parts[i] for i in order]
        for p, t_ in zip(parts, ts, strict=True):
            p["ts_ns"] = t_
    return parts


def test_fragments_join_their_datagrams_flow() -> None:
    f = build([*udp_frags(0, 77), pkt(0.1, S, C, 2049, 5000, proto=17, plen=100)])
    assert f.height == 1
    r = f.row(0, named=True)
    assert (r["orig_p"], r["resp_p"], r["orig_pkts"], r["resp_pkts"]) == (5000, 2049, 3, 1)
    assert r["orig_bytes"] == 1472 + 1480 + 48
    assert r["wrong_fragment"] == 0 and r["conn_state"] == "SF"


def test_first_fragment_last_is_still_resolved() -> None:
    f = build(udp_frags(0, 78, order=[2, 1, 0]))
    assert f.height == 1 and f["orig_pkts"][0] == 3 and f["orig_p"][0] == 5000
    assert f["wrong_fragment"][0] == 0


def test_first_fragment_in_a_later_batch() -> None:
    pk = udp_frags(0, 79, order=[1, 2, 0])
    for cut in (1, 2):
        f = build(pk, cuts=[cut])
        assert f.height == 1 and f["orig_pkts"][0] == 3 and f["orig_p"][0] == 5000


def test_missing_first_fragment_gives_an_orphan_flow_without_ports() -> None:
    f = build(udp_frags(0, 80)[1:])
    assert f.height == 1
    assert f["orig_p"][0] is None and f["orig_pkts"][0] == 2 and f["proto"][0] == "udp"


def test_teardrop_overlap_counts_wrong_fragment() -> None:
    pk = [
        pkt(0, C, S, 5000, 53, proto=17, plen=28, ip_id=9, frag_off=0, mf=True),  # bytes 0..36
        pkt(0.001, C, S, proto=17, plen=4, ip_id=9, frag_off=24, mf=False),  # 24..28 inside the first
    ]
    f = build(pk)
    assert f.height == 1 and f["wrong_fragment"][0] == 1


def test_exact_duplicate_fragment_is_not_wrong() -> None:
    pk = udp_frags(0, 81)
    dup = dict(pk[1])
    dup["ts_ns"] += 500_000
    f = build([pk[0], pk[1], dup, pk[2]])
    assert f["wrong_fragment"][0] == 0 and f["orig_pkts"][0] == 4


def test_ping_of_death_counts_wrong_fragment() -> None:
    pk = [pkt(0, C, S, proto=1, icmp=(8, 0), plen=1472, ip_id=5, frag_off=0, mf=True)]
    pk += [pkt(0.001 * i, C, S, proto=1, plen=1480, ip_id=5, frag_off=1480 * i, mf=True) for i in range(1, 44)]
    pk += [pkt(0.05, C, S, proto=1, plen=1000, ip_id=5, frag_off=1480 * 44, mf=False)]  # ends past 65,535
    f = build(pk)
    assert f.height == 1
    r = f.row(0, named=True)
    assert (r["icmp_type"], r["orig_pkts"], r["wrong_fragment"]) == (8, 45, 1)


def test_reused_ip_id_for_a_later_datagram_is_not_an_overlap() -> None:
    f = build([*udp_frags(0, 90), *udp_frags(1, 90)])
    assert f["wrong_fragment"].to_list() == [0] and f["orig_pkts"][0] == 6
