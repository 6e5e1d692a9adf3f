"""Flow semantics on hand-made packets: TCP states and history, direction, reuse, timeouts, UDP, ICMP, land, URG."""

from __future__ import annotations

from flows_build import build
from flows_pkts import ACK, FIN, PSH, RST, SYN, URG, pkt

from features.flows.builder import FlowConfig
from features.flows.schema import FLOW_COLUMNS

C, S = "10.0.0.1", "10.0.0.2"


def handshake_close(t: float = 0.0, cport: int = 1234, isn: int = 100) -> list[dict]:
    return [
        pkt(t + 0.0, C, S, cport, 80, flags=SYN, seq=isn),
        pkt(t + 0.1, S, C, 80, cport, flags=SYN | ACK, seq=500, ack=isn + 1),
        pkt(t + 0.2, C, S, cport, 80, flags=ACK, seq=isn + 1, ack=501),
        pkt(t + 0.3, C, S, cport, 80, flags=ACK | PSH, seq=isn + 1, ack=501, plen=10),
        pkt(t + 0.4, S, C, 80, cport, flags=ACK | PSH, seq=501, ack=isn + 11, plen=20),
        pkt(t + 0.5, S, C, 80, cport, flags=ACK, seq=521, ack=isn + 11),
        pkt(t + 0.6, C, S, cport, 80, flags=ACK | FIN, seq=isn + 11, ack=521),
        pkt(t + 0.7, S, C, 80, cport, flags=ACK | FIN, seq=521, ack=isn + 12),
        pkt(t + 0.8, C, S, cport, 80, flags=ACK, seq=isn + 12, ack=522),
    ]


def test_full_connection_is_sf() -> None:
    f = build(handshake_close())
    assert f.columns == list(FLOW_COLUMNS)
    assert f.height == 1
    r = f.row(0, named=True)
    assert (r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"]) == (C, 1234, S, 80)
    assert r["history"] == "ShADdaFf"
    assert r["conn_state"] == "SF"
    assert (r["orig_pkts"], r["resp_pkts"], r["orig_bytes"], r["resp_bytes"]) == (5, 4, 10, 20)
    assert r["orig_ip_bytes"] == 5 * 40 + 10 and r["resp_ip_bytes"] == 4 * 40 + 20
    assert abs(r["duration_s"] - 0.8) < 1e-9
    assert not r["land"] and r["urgent"] == 0 and r["wrong_fragment"] == 0


def test_syn_only_is_s0_and_retransmits_do_not_repeat_s() -> None:
    f = build([pkt(0, C, S, 1234, 80, flags=SYN, seq=7), pkt(1, C, S, 1234, 80, flags=SYN, seq=7)])
    assert f.height == 1
    assert f["history"][0] == "S" and f["conn_state"][0] == "S0" and f["orig_pkts"][0] == 2


def test_syn_rst_ack_is_rej() -> None:
    f = build([pkt(0, C, S, 1234, 23, flags=SYN, seq=7), pkt(0.01, S, C, 23, 1234, flags=RST | ACK, ack=8)])
    assert f["history"][0] == "Sr" and f["conn_state"][0] == "REJ"


def test_synack_first_flips_direction() -> None:
    f = build(
        [
            pkt(0, S, C, 80, 1234, flags=SYN | ACK, seq=500, ack=101),
            pkt(0.1, C, S, 1234, 80, flags=ACK, seq=101, ack=501),
        ]
    )
    r = f.row(0, named=True)
    assert (r["orig_h"], r["orig_p"], r["resp_h"], r["resp_p"]) == (C, 1234, S, 80)
    assert r["history"] == "^hA"
    assert (r["orig_pkts"], r["resp_pkts"]) == (1, 1)


def test_port_reuse_after_close_is_two_flows() -> None:
    f = build(handshake_close(0.0, isn=100) + handshake_close(2.0, isn=9000))
    assert f.height == 2
    assert f["conn_state"].to_list() == ["SF", "SF"]
    assert f["orig_pkts"].to_list() == [5, 5]


def test_new_syn_right_after_rst_starts_a_new_flow() -> None:
    pk = [
        pkt(0, C, S, 1234, 23, flags=SYN, seq=7),
        pkt(0.01, S, C, 23, 1234, flags=RST | ACK, ack=8),
        pkt(0.02, C, S, 1234, 23, flags=SYN, seq=70),
        pkt(0.03, S, C, 23, 1234, flags=RST | ACK, ack=71),
    ]
    f = build(pk)
    assert f["history"].to_list() == ["Sr", "Sr"]


def test_stragglers_within_close_delay_stay_and_later_packets_do_not() -> None:
    pk = [*handshake_close(), pkt(3.0, S, C, 80, 1234, flags=ACK, seq=522, ack=112)]
    assert build(pk).height == 1
    pk = [*handshake_close(), pkt(10.0, S, C, 80, 1234, flags=ACK, seq=522, ack=112)]
    f = build(pk)
    assert f.height == 2
    assert f["conn_state"].to_list() == ["SF", "OTH"]


def test_idle_timeout_splits() -> None:
    cfg = FlowConfig(udp_idle_s=10.0)
    pk = [pkt(0, C, S, 5000, 53, proto=17, plen=10), pkt(11, C, S, 5000, 53, proto=17, plen=10)]
    assert build(pk, config=cfg).height == 2
    pk = [pkt(0, C, S, 5000, 53, proto=17, plen=10), pkt(9, C, S, 5000, 53, proto=17, plen=10)]
    assert build(pk, config=cfg).height == 1


def test_udp_states() -> None:
    both = build([pkt(0, C, S, 5000, 53, proto=17, plen=30), pkt(0.1, S, C, 53, 5000, proto=17, plen=90)])
    r = both.row(0, named=True)
    assert (r["conn_state"], r["history"], r["orig_bytes"], r["resp_bytes"]) == ("SF", "Dd", 30, 90)
    one = build([pkt(0, C, S, 5000, 53, proto=17, plen=30)])
    assert one["conn_state"][0] == "S0"


def test_icmp_echo_request_and_reply_are_two_records_with_one_community_id() -> None:
    f = build([pkt(0, C, S, proto=1, icmp=(8, 0), plen=56), pkt(0.01, S, C, proto=1, icmp=(0, 0), plen=56)])
    assert f.height == 2
    assert f["icmp_type"].to_list() == [8, 0]
    assert f["orig_h"].to_list() == [C, S]
    assert f["orig_p"].null_count() == 2 and f["resp_p"].null_count() == 2
    assert f["community_id"][0] == f["community_id"][1]
    assert f["conn_state"].to_list() == ["OTH", "OTH"]


def test_icmp_error_stays_icmp() -> None:
    f = build([pkt(0, S, C, proto=1, icmp=(3, 3), plen=36)])
    assert (f["proto"][0], f["icmp_type"][0], f["icmp_code"][0]) == ("icmp", 3, 3)


def test_land() -> None:
    f = build([pkt(0, C, C, 139, 139, flags=SYN, seq=1)])
    assert f["land"].to_list() == [True]
    f = build([pkt(0, C, C, 139, 140, flags=SYN, seq=1)])
    assert f["land"].to_list() == [False]


def test_urgent_counts_packets_with_urg() -> None:
    pk = handshake_close()
    pk[3]["tcp_flags"] |= URG
    pk[4]["tcp_flags"] |= URG
    assert build(pk)["urgent"].to_list() == [2]


def test_vlan_separates_flows() -> None:
    f = build([pkt(0, C, S, 5000, 53, proto=17, vlan=10), pkt(0.1, S, C, 53, 5000, proto=17, vlan=20)])
    assert sorted(f["vlan"].to_list()) == [10, 20]


def test_retransmitted_payload_gives_t_and_zero_window_gives_w() -> None:
    pk = handshake_close()
    pk.insert(4, pkt(0.35, C, S, 1234, 80, flags=ACK | PSH, seq=101, ack=501, plen=10))  # same data again
    pk.insert(6, pkt(0.45, S, C, 80, 1234, flags=ACK, seq=521, ack=111, win=0))
    assert build(pk)["history"][0] == "ShADTdawFf"


def test_ipv6_flow() -> None:
    a, b = "2001:db8::1", "2001:db8::2"
    f = build([pkt(0, a, b, 40000, 443, proto=17, plen=100), pkt(0.1, b, a, 443, 40000, proto=17, plen=1200)])
    assert (f["orig_h"][0], f["resp_h"][0], f["ip_version"][0]) == (a, b, 6)


def test_tcp_packet_without_captured_header_adds_no_letter() -> None:
    """Snaplen cut inside the TCP header: the decoder zeroes flags, seq, ack and window (all unknown)."""
    pk = [pkt(0, C, S, 1234, 443, flags=0, seq=0, ack=0, win=0, plen=100), pkt(0.1, S, C, 443, 1234, win=0)]
    for p in pk:
        p["tcp_ack"] = 0
    f = build(pk)
    assert (f["history"][0], f["conn_state"][0], f["orig_pkts"][0], f["resp_pkts"][0]) == ("", "OTH", 1, 1)


def test_null_scan_packet_still_counts_as_tcp() -> None:
    """Flags 0 with a real sequence number and window (nmap -sN) is a captured header: it is data-less, no letter."""
    f = build([pkt(0, C, S, 40000, 22, flags=0, seq=12345, win=1024)])
    assert f["history"][0] == "" and f["conn_state"][0] == "OTH"


def test_syn_with_a_new_isn_on_an_open_flow_starts_a_new_flow() -> None:
    """Zeek's IsReuse and tshark: a SYN whose sequence number differs from the flow's ISN is a new connection."""
    pk = [pkt(0, C, S, 1234, 80, flags=SYN, seq=7), pkt(1, C, S, 1234, 80, flags=SYN, seq=7000)]
    f = build(pk)
    assert f["history"].to_list() == ["S", "S"] and f["orig_pkts"].to_list() == [1, 1]


def test_syn_with_the_isn_of_a_midstream_flow_stays() -> None:
    """A flow seen mid-stream from seq 101 started at ISN 100: a (late) SYN with seq 100 is not a new flow."""
    pk = [pkt(0, C, S, 1234, 80, flags=ACK | PSH, seq=101, ack=9, plen=5), pkt(0.1, C, S, 1234, 80, flags=SYN, seq=100)]
    assert build(pk).height == 1
    pk[1] = pkt(0.1, C, S, 1234, 80, flags=SYN, seq=5555)
    assert build(pk).height == 2


def test_backscatter_synacks_with_new_isns_are_separate_flows() -> None:
    pk = [pkt(i * 0.5, S, C, 80, 1234, flags=SYN | ACK, seq=1000 * (i + 1), ack=77) for i in range(3)]
    pk.append(pkt(1.6, S, C, 80, 1234, flags=SYN | ACK, seq=3000, ack=77))  # retransmission of the third
    f = build(pk)
    assert f["history"].to_list() == ["^h", "^h", "^h"] and f["resp_pkts"].to_list() == [1, 1, 2]


def test_fin_rst_and_syn_fin_letters() -> None:
    pk = [pkt(0, C, S, 1234, 80, flags=SYN | FIN, seq=7), pkt(0.1, S, C, 80, 1234, flags=FIN | RST | ACK, seq=9)]
    assert build(pk)["history"][0] == "Qi"


def test_retransmitted_fin_does_not_repeat_and_t_is_logarithmic() -> None:
    pk = handshake_close()[:6]
    again = [pkt(0.31 + i * 0.001, C, S, 1234, 80, flags=ACK | PSH, seq=101, ack=501, plen=10) for i in range(10)]
    fin = pkt(0.6, C, S, 1234, 80, flags=ACK | FIN, seq=111, ack=521)
    fin2 = pkt(0.65, C, S, 1234, 80, flags=ACK | FIN, seq=111, ack=521)
    f = build([*pk[:4], *again, *pk[4:], fin, fin2])
    # 10 retransmissions: T at the 1st and the 10th; the FIN sent twice with one sequence number: one F.
    assert f["history"][0] == "ShADTTdaF"
    assert f["conn_state"][0] == "S2"


def test_christmas_tree_first_packet_is_not_a_synack_flip() -> None:
    """SYN+ACK+FIN+PSH+URG first: not a SYN-ACK (no flip); its seq is the originator's ISN, so the peer's SYN
    carrying that same sequence number is no reuse (Zeek keeps one connection)."""
    pk = [
        pkt(0, C, S, 54249, 80, flags=SYN | ACK | FIN | PSH | URG, seq=0),
        pkt(0.001, S, C, 80, 54249, flags=SYN | FIN | RST | URG, seq=0),
    ]
    f = build(pk)
    assert f.height == 1
    assert (f["orig_h"][0], f["orig_p"][0], f["history"][0]) == (C, 54249, "Qi")
