"""Semantic checks on the sample captures: what each attack must look like in the flow table.

The goldens pin every value; these tests say *why* the values are right, from what
``sample_pcaps/make_samples.py`` generated (numbers below are the generator's), so a golden regenerated
over a bug still fails here.
"""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

ATTACKER = "192.168.56.66"
FMT_SAME = [
    "fmt-pcap-le-nsec.pcap",
    "fmt-pcap-be-nsec.pcap",
    "fmt-pcapng-2sections.pcapng",
    "fmt-linux-sll.pcap",
    "fmt-raw-ip.pcap",
    "fmt-pcap-modified.pcap",
    "fmt-gzip.pcap.gz",
    "fmt-gzip-no-suffix.pcap",
    "fmt-pppoe-pfc.pcap",
    "fmt-ppp.pcap",
    "fmt-ppp-hdlc.pcap",
    "fmt-cisco-hdlc.pcap",
    "fmt-80211.pcap",
    "fmt-80211-radiotap.pcap",
    "fmt-80211-ppi.pcap",
]
# The format flow set inside a tunnel: the same flows, with the tunnel (and a VLAN where one wraps them).
TUNNELLED = {
    "tunnel-gre.pcap": ("gre 172.16.0.1 172.16.0.2", None),
    "tunnel-erspan.pcap": ("erspan 10.9.9.1 10.9.9.2", 30),  # the outer frames' VLAN 30
    "tunnel-ipip-6in4.pcap": (None, None),  # IPv4 flows in IP-in-IP, IPv6 flows in 6in4: checked below
    "tunnel-vxlan.pcap": ("vxlan 192.168.56.11 192.168.56.12", 7),  # the inner frames' VLAN 7
    "tunnel-geneve.pcap": ("geneve 192.168.57.11 192.168.57.12", None),
}
# Columns that may differ between two files holding the same packets.
PER_FILE = ["flow_id", "source_file", "uid"]  # uid hashes the capture file: per file too


def _tcp(df: pl.DataFrame) -> pl.DataFrame:
    return df.filter(pl.col("proto") == "tcp")


def _counts(df: pl.DataFrame, col: str) -> dict[Any, int]:
    return dict(df.group_by(col).len().iter_rows())


def test_benign_mix_is_all_normal_closes(samples: Any) -> None:
    df = samples.flows("benign-web-dns-ssh.pcap")
    tcp = _tcp(df)
    # 12 HTTP + 4 HTTPS + 1 SSH, every one a full handshake and a FIN close.
    assert tcp.height == 17
    assert set(tcp["conn_state"]) == {"SF"}
    # HTTP/HTTPS: the client speaks first; SSH: the server sends its banner first.
    assert _counts(tcp, "history") == {"ShADadFf": 16, "ShAdDaFf": 1}
    assert (tcp["orig_bytes"] > 0).all() and (tcp["resp_bytes"] > 0).all()
    udp = df.filter(pl.col("proto") == "udp")
    assert udp.height == 16 + 2  # DNS queries + NTP exchanges, each answered
    assert set(udp["conn_state"]) == {"SF"}
    assert set(udp["resp_p"]) == {53, 123}
    icmp = df.filter(pl.col("proto") == "icmp")
    # Echo requests and replies are separate records: two pings, each a request and a reply record.
    assert sorted(icmp["icmp_type"].to_list()) == [0, 0, 8, 8]
    assert sorted(icmp["orig_pkts"].to_list()) == [2, 2, 4, 4]
    assert not df["land"].any() and (df["wrong_fragment"] == 0).all()


def test_http_byte_counts_are_payload_and_ip_lengths(samples: Any) -> None:
    df = _tcp(samples.flows("land.pcap")).filter(pl.col("resp_p") == 80)
    assert df.height == 1
    r = df.row(0, named=True)
    # Request: fixed 83-byte GET; response: headers + an 800-byte body (land.pcap's one HTTP request).
    req = len(b"GET / HTTP/1.1\r\nHost: 10.0.0.10\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
    hdr = len(b"HTTP/1.1 200 OK\r\nServer: nginx/1.24.0\r\nContent-Type: text/html\r\nContent-Length: 800\r\n\r\n")
    assert (r["orig_bytes"], r["resp_bytes"]) == (req, hdr + 800)
    # Packets: SYN, ACK, request, ACK of response, FIN, last ACK = 6 from the client; SYN-ACK, ACK of
    # request, response, FIN = 4 from the server. IP bytes = 20 IP + 20 TCP (+4 MSS option on SYNs) + payload.
    assert (r["orig_pkts"], r["resp_pkts"]) == (6, 4)
    assert r["orig_ip_bytes"] == 6 * 40 + 4 + req
    assert r["resp_ip_bytes"] == 4 * 40 + 4 + hdr + 800
    assert r["conn_state"] == "SF" and r["history"] == "ShADadFf"


def test_syn_flood_is_mostly_s0(samples: Any) -> None:
    df = _tcp(samples.flows("syn-flood.pcap"))
    flood = df.filter((pl.col("resp_h") == "10.0.0.10") & (pl.col("resp_p") == 80) & (pl.col("orig_p") != 50001))
    assert flood.height == 800
    states = _counts(flood, "conn_state")
    # 760 SYNs never answered: S0 with history "S". 40 answered by a SYN-ACK: Zeek moves both endpoints
    # to ESTABLISHED on the SYN-ACK, so "Sh" is S1 (connection established, not terminated).
    assert states == {"S0": 760, "S1": 40}
    assert set(flood.filter(pl.col("conn_state") == "S0")["history"]) == {"S"}
    assert set(flood.filter(pl.col("conn_state") == "S1")["history"]) == {"Sh"}
    assert (flood["orig_pkts"] == 1).all() and (flood["orig_bytes"] == 0).all()
    normal = df.filter(pl.col("orig_p") == 50001)
    assert normal["conn_state"].to_list() == ["SF"]


def test_portscan_is_rej_with_a_few_open_ports(samples: Any) -> None:
    df = _tcp(samples.flows("syn-portscan.pcap"))
    assert df.height == 1000
    assert set(df["orig_h"]) == {ATTACKER} and set(df["orig_p"]) == {61234}
    assert set(df["resp_p"]) == set(range(1, 1001))
    states = _counts(df, "conn_state")
    # Closed ports: SYN answered by RST-ACK -> REJ ("Sr"). Open ports: SYN, SYN-ACK, scanner RST -> RSTO.
    assert states == {"REJ": 993, "RSTO": 7}
    assert set(df.filter(pl.col("conn_state") == "REJ")["history"]) == {"Sr"}
    rsto = df.filter(pl.col("conn_state") == "RSTO")
    assert set(rsto["history"]) == {"ShR"}
    assert sorted(rsto["resp_p"].to_list()) == [21, 22, 25, 80, 111, 443, 631]


def test_ping_sweep_gives_one_echo_record_per_target(samples: Any) -> None:
    df = samples.flows("ping-sweep.pcap")
    assert set(df["proto"]) == {"icmp"}
    req = df.filter(pl.col("icmp_type") == 8)
    assert req.height == 254
    assert set(req["orig_h"]) == {ATTACKER}
    assert req["resp_h"].n_unique() == 254
    assert (req["orig_pkts"] == 1).all() and (req["resp_pkts"] == 0).all()
    rep = df.filter(pl.col("icmp_type") == 0)
    assert sorted(rep["orig_h"].to_list()) == sorted(f"10.0.0.{h}" for h in (1, 10, 20, 22, 53))
    assert set(df["conn_state"]) == {"OTH"}  # Zeek: every protocol but TCP/UDP is OTH
    assert df["orig_p"].is_null().all() and (df["icmp_code"] == 0).all()


def test_udp_flood(samples: Any) -> None:
    df = samples.flows("udp-flood.pcap")
    udp = df.filter(pl.col("proto") == "udp")
    assert udp.height == 601
    assert set(udp["conn_state"]) == {"S0"}  # nothing answers over UDP
    one_port = udp.filter(pl.col("resp_p") == 9999)
    assert one_port["orig_pkts"].to_list() == [400]
    assert one_port["orig_bytes"].to_list() == [400 * 512]
    # Every 50th random-port packet is answered by an ICMP port unreachable that quotes it: those stay
    # ICMP records (type 3, code 3) from the victim, keyed by (src, dst, type, code): one record of 12.
    icmp = df.filter(pl.col("proto") == "icmp")
    assert icmp.select("orig_h", "resp_h", "icmp_type", "icmp_code", "orig_pkts").rows() == [
        ("10.0.0.30", "203.0.113.77", 3, 3, 12)
    ]
    # A quoted header must not be mistaken for UDP traffic from the victim.
    assert udp.filter(pl.col("resp_pkts") > 0).height == 0


def test_teardrop_and_ping_of_death_count_wrong_fragments(samples: Any) -> None:
    df = samples.flows("teardrop.pcap")
    tear = df.filter((pl.col("proto") == "udp") & (pl.col("orig_h") == ATTACKER))
    assert tear.height == 1  # five datagrams on one (src, dst, ports) within the UDP timeout
    r = tear.row(0, named=True)
    assert (r["orig_p"], r["resp_p"], r["orig_pkts"]) == (31337, 53, 10)
    assert r["wrong_fragment"] == 5  # one overlapping fragment per datagram
    pod = df.filter(pl.col("proto") == "icmp")
    assert pod.height == 1
    p = pod.row(0, named=True)
    assert p["icmp_type"] == 8 and p["orig_pkts"] == 45
    assert p["wrong_fragment"] >= 1  # the datagram ends at byte 66,600 > 65,535
    clean = df.filter(pl.col("orig_h") == "10.0.0.101")
    assert clean.height == 1
    c = clean.row(0, named=True)
    # Three fragments sent out of order (offset 1480 first): all attributed to the datagram's flow.
    assert (c["orig_p"], c["resp_p"], c["orig_pkts"], c["wrong_fragment"]) == (40123, 5001, 3, 0)
    assert c["orig_ip_bytes"] == 1500 + 1500 + 68
    assert c["orig_bytes"] == 3000


def test_land(samples: Any) -> None:
    df = _tcp(samples.flows("land.pcap"))
    land = df.filter(pl.col("land"))
    assert land.height >= 1
    assert set(land.select("orig_h", "orig_p", "resp_h", "resp_p").rows()) == {("10.0.0.25", 139, "10.0.0.25", 139)}
    assert land["orig_pkts"].sum() == 3 and land["resp_pkts"].sum() == 0
    assert set(land["conn_state"]) == {"S0"}
    assert df.filter(~pl.col("land"))["conn_state"].to_list() == ["SF"]


def test_land_syns_with_new_isns_are_separate_connections(samples: Any) -> None:
    # The three land SYNs carry three different ISNs. Zeek (TCPSessionAdapter::IsReuse: SYN_seq_jump) and
    # tshark (port reuse) both make each a new connection: three S0 records with history "S".
    land = _tcp(samples.flows("land.pcap")).filter(pl.col("land"))
    assert land.select("orig_pkts", "conn_state", "history").rows() == [(1, "S0", "S")] * 3


def test_ftp_and_telnet_logins(samples: Any) -> None:
    ext = samples.extract("ftp-bruteforce.pcap")
    df = _tcp(samples.flows("ftp-bruteforce.pcap"))
    ftp = df.filter(pl.col("resp_p") == 21)
    assert ftp.height == 9 and set(ftp["conn_state"]) == {"SF"}
    telnet = df.filter(pl.col("resp_p") == 23)
    assert telnet.height == 1 and telnet["conn_state"].to_list() == ["SF"]
    # The content features read these payloads: they must reach them.
    blob = b"".join(bytes(p) for p in _payload_bytes(ext.payloads))
    assert blob.count(b"530 Login incorrect") == 24
    assert b"230 Login successful" in blob
    assert b"Login incorrect\r\nweb01 login:" in blob and b"root@web01:~# " in blob


def _payload_bytes(payloads: Any) -> list[bytes]:
    """Payload bytes from whatever container extract_flows returns (Arrow table, polars frame or list)."""
    if hasattr(payloads, "column_names"):  # pyarrow Table
        cols = [c for c in payloads.column_names if payloads.schema.field(c).type in ("binary", "large_binary")]
        return [b for c in cols for b in payloads.column(c).to_pylist() if b]
    if isinstance(payloads, pl.DataFrame):
        cols = [c for c, t in payloads.schema.items() if t == pl.Binary]
        return [b for c in cols for b in payloads[c].to_list() if b]
    return [bytes(p) for p in payloads]


def test_demo_capture_shows_every_attack(samples: Any) -> None:
    df = samples.flows("demo-mixed.pcap")
    scan = _tcp(df).filter(pl.col("orig_h") == ATTACKER)
    assert _counts(scan, "conn_state") == {"REJ": 297, "RSTO": 3}
    flood = _tcp(df).filter((pl.col("resp_h") == "10.0.0.10") & (pl.col("conn_state") != "SF"))
    assert _counts(flood, "conn_state") == {"S0": 280, "S1": 20}
    sweep = df.filter((pl.col("proto") == "icmp") & (pl.col("orig_h") == ATTACKER))
    assert sweep.height == 254


@pytest.mark.parametrize("name", FMT_SAME)
def test_odd_formats_give_the_same_flows(samples: Any, name: str) -> None:
    ref = samples.flows("fmt-pcap-be-usec.pcap").drop(PER_FILE)
    got = samples.flows(name).drop(PER_FILE)
    assert got.height == 6  # HTTP, DNS, 2 ICMP (request, reply) over IPv4; DNS and TCP/443 over IPv6
    assert got.equals(ref), f"{name} differs from fmt-pcap-be-usec.pcap"


def test_snaplen_cut_packets_count_in_full(samples: Any) -> None:
    # snaplen 64 keeps the whole header of every IPv4 packet here but cuts the IPv6 TCP packets after 10
    # of their 20 TCP header bytes: they still count in full (ports are there, lengths come from the IP
    # header), so packets and IP bytes match the uncut file for every flow.
    ref = samples.flows("fmt-pcap-be-usec.pcap")
    got = samples.flows("fmt-snaplen-64.pcap")
    cols = ["proto", "orig_h", "orig_p", "resp_h", "resp_p", "orig_pkts", "resp_pkts", "orig_ip_bytes", "resp_ip_bytes"]
    assert got.select(cols).equals(ref.select(cols))
    assert samples.extract("fmt-snaplen-64.pcap").bad_packets == {"truncated_transport": 8}
    whole_hdr = ~((pl.col("ip_version") == 6) & (pl.col("proto") == "tcp"))
    assert got.filter(whole_hdr).drop(PER_FILE).equals(ref.filter(whole_hdr).drop(PER_FILE))


def test_snaplen_cut_tcp_header_invents_no_history(samples: Any) -> None:
    got = samples.flows("fmt-snaplen-64.pcap").filter((pl.col("ip_version") == 6) & (pl.col("proto") == "tcp"))
    # The flags and the window were never captured: no zero-window letter, no handshake/close letters
    # (Zeek skips such packets), so no TCP state either; packets and IP bytes still count (test above).
    assert got.select("history", "conn_state").rows() == [("", "OTH")]


def test_odd_formats_reference_is_right(samples: Any) -> None:
    df = samples.flows("fmt-pcap-be-usec.pcap")
    assert _counts(df, "ip_version") == {4: 4, 6: 2}
    v6 = df.filter((pl.col("ip_version") == 6) & (pl.col("proto") == "tcp"))
    assert v6.select("orig_h", "resp_h", "resp_p", "conn_state").rows() == [("2001:db8::21", "2001:db8::10", 443, "SF")]
    # ts is the first packet's time: the generator starts at 2024-03-01T10:00:00Z.
    assert str(df["ts"].min()) == "2024-03-01 10:00:00+00:00"


def test_vlan_is_part_of_the_key(samples: Any) -> None:
    df = samples.flows("fmt-vlan-qinq.pcap")
    assert _counts(df, "vlan") == {10: 6, 100: 6}  # the outermost tag (802.1ad 100) keys the QinQ copy
    ref = samples.flows("fmt-pcap-be-usec.pcap")
    for vid in (10, 100):
        part = df.filter(pl.col("vlan") == vid)
        assert part["orig_pkts"].sum() == ref["orig_pkts"].sum()
        assert part["orig_ip_bytes"].sum() == ref["orig_ip_bytes"].sum()


def test_truncated_file_keeps_every_complete_record(samples: Any) -> None:
    ext = samples.extract("truncated.pcap")
    assert ext.packets == 25
    assert any("truncated" in w for w in ext.warnings), ext.warnings
    df = samples.flows("truncated.pcap")
    ref = samples.flows("fmt-pcap-be-usec.pcap")
    # The cut record is the last one, the second ICMP echo reply: one originator packet less.
    assert df["orig_pkts"].sum() == ref["orig_pkts"].sum() - 1
    assert df["resp_pkts"].sum() == ref["resp_pkts"].sum()
    reply = df.filter(pl.col("icmp_type") == 0)
    assert reply["orig_pkts"].to_list() == [1]


def test_link_layers_count_their_control_frames(samples: Any) -> None:
    # PPP's LCP, Cisco's SLARP keepalive, a beacon and an encrypted Wi-Fi frame are link traffic, not IP.
    for name in ("fmt-pppoe-pfc.pcap", "fmt-ppp.pcap", "fmt-ppp-hdlc.pcap", "fmt-cisco-hdlc.pcap"):
        assert samples.extract(name).bad_packets == {"non_ip": 1}, name
    for name in ("fmt-80211.pcap", "fmt-80211-radiotap.pcap", "fmt-80211-ppi.pcap"):
        assert samples.extract(name).bad_packets == {"non_ip": 2}, name


@pytest.mark.parametrize("name", sorted(TUNNELLED))
def test_tunnels_give_the_inner_flows(samples: Any, name: str) -> None:
    tunnel, vlan = TUNNELLED[name]
    ref = samples.flows("fmt-pcap-be-usec.pcap").drop(PER_FILE, "vlan", "tunnel")
    got = samples.flows(name)
    assert got.drop(PER_FILE, "vlan", "tunnel").equals(ref), name
    assert got["vlan"].to_list() == [vlan] * 6
    if tunnel is not None:
        assert got["tunnel"].to_list() == [tunnel] * 6
    assert samples.extract(name).bad_packets == {}


def test_ipip_and_6in4_name_their_kind(samples: Any) -> None:
    got = samples.flows("tunnel-ipip-6in4.pcap")
    assert _counts(got, "tunnel") == {"ipip 172.16.4.1 172.16.4.2": 4, "6in4 172.16.4.1 172.16.4.2": 2}
    assert (got.filter(pl.col("tunnel").str.starts_with("6in4"))["ip_version"] == 6).all()


def test_gtpu_carries_the_ipv4_flows(samples: Any) -> None:
    # The generator leaves the IPv6 packets out (one PDN type); half the packets have an extension header.
    ref = samples.flows("fmt-pcap-be-usec.pcap").filter(pl.col("ip_version") == 4).drop(PER_FILE, "tunnel")
    got = samples.flows("tunnel-gtpu.pcap")
    assert got.drop(PER_FILE, "tunnel").equals(ref)
    assert set(got["tunnel"]) == {"gtpu 172.16.8.1 172.16.8.2"}


def test_teredo_on_3544_and_through_a_relay(samples: Any) -> None:
    got = samples.flows("tunnel-teredo.pcap")
    rows = got.select("proto", "orig_h", "resp_h", "resp_p", "conn_state", "tunnel").rows()
    assert rows == [
        ("icmp6", "fe80::8000:ffff:ffff:fffd", "ff02::2", None, "OTH", "teredo 192.168.1.21 198.51.100.1"),
        ("icmp6", "fe80::8000:f227:bec8:61af", "fe80::8000:ffff:ffff:fffd", None, "OTH", "teredo 192.168.1.21 198.51.100.1"),
        ("tcp", "2001:0:4136:e378:8000:63bf:3f57:fdf2", "2001:db8::10", 80, "SF", "teredo 192.168.1.21 203.0.113.5"),
    ]  # fmt: skip


def test_a_scan_inside_gre_is_a_scan(samples: Any) -> None:
    # Without decapsulation this capture is one GRE flow; decapsulated it is 120 probes of 10.0.0.20.
    got = samples.flows("tunnel-gre-portscan.pcap")
    assert got.height == 120
    assert _counts(got, "conn_state") == {"REJ": 118, "RSTO": 2}
    assert set(got["tunnel"]) == {"gre 172.16.0.1 172.16.0.2"}
