"""A conn.log written by hand as Zeek writes it: the header lines, one row per case, ``#close``."""

from __future__ import annotations

FIELDS = [
    "ts", "uid", "id.orig_h", "id.orig_p", "id.resp_h", "id.resp_p", "proto", "service", "duration", "orig_bytes",
    "resp_bytes", "conn_state", "local_orig", "local_resp", "missed_bytes", "history", "orig_pkts", "orig_ip_bytes",
    "resp_pkts", "resp_ip_bytes", "tunnel_parents", "ip_proto", "vlan", "community_id",
]  # fmt: skip
TYPES = [
    "time", "string", "addr", "port", "addr", "port", "enum", "string", "interval", "count", "count", "string",
    "bool", "bool", "count", "string", "count", "count", "count", "count", "set[string]", "count", "int", "string",
]  # fmt: skip
# One row per case; values exactly as Zeek writes them ("-" unset, "(empty)" empty).
ROWS = [
    # 0 TCP to 8080: http by its port; community_id given (kept as logged)
    "1709287200.000000 CHttp0000000000001 10.0.0.1 50000 10.0.0.2 8080 tcp http 1.500000 100 2000 SF - - 0 "
    "ShADadFf 5 400 4 2200 (empty) 6 10 1:given/community/id=",
    # 1 UDP DNS of one packet: duration and bytes unset, community_id unset (computed)
    "1709287200.100000 CDns00000000000001 10.0.0.1 40000 10.0.0.53 53 udp dns - - - S0 - - 0 D 1 61 0 0 - 17 - -",
    # 2 ICMP echo request and its reply in one connection: type 8 in id.orig_p, its counterpart 0 in id.resp_p
    "1709287200.200000 CIcmp000000000001 10.0.0.1 8 10.0.0.9 0 icmp - 0.001000 56 56 OTH - - 0 - 1 84 1 84 - 1 - -",
    # 3 ICMPv6 echo request (counterpart 129 in id.resp_p), no ip_proto: the IPv6 address makes it icmp6
    "1709287200.300000 CIcmp600000000001 fe80::1 128 ff02::1 129 icmp - - - - OTH - - 0 - 1 104 0 0 - - - -",
    # 4 TLS on 8443 (a port that names nothing): Zeek's ssl names it http_443
    "1709287200.400000 CSsl0000000000001 10.0.0.1 50001 10.0.0.3 8443 tcp ssl 0.500000 500 4000 SF - - 0 "
    "ShADadFf 8 900 7 4400 CTunA,CTunB 6 - -",
    # 5 HTTP on 8888, listed after an unknown analyzer: the first one with a token names it
    "1709287200.500000 CHttp0000000000002 10.0.0.1 50002 10.0.0.4 8888 tcp spicy_x,http 0.100000 80 90 SF - - 0 "
    "ShADadFf 4 300 3 250 - 6 - -",
    # 6 SYN to an unnamed high port, nothing back: other, S0
    "1709287200.600000 CScan000000000001 10.0.0.66 61000 10.0.0.2 5555 tcp - - - - S0 - - 0 S 1 44 0 0 - 6 - -",
    # 7 SYN to an unnamed low port, rejected: private, REJ
    "1709287200.600001 CScan000000000002 10.0.0.66 61000 10.0.0.2 666 tcp - 0.000100 0 0 REJ - - 0 Sr 1 44 1 40 "
    "- 6 - -",
    # 8 GRE (unknown_transport with ip_proto 47): no ports, outside NSL-KDD's view
    "1709287200.700000 CGre0000000000001 10.0.0.7 0 10.0.0.8 0 unknown_transport - 2.000000 0 0 OTH - - 0 - 3 300 "
    "0 0 - 47 - -",
]


def conn_log(rows: list[str] = ROWS, close: bool = True) -> str:
    head = [
        "#separator \\x09",
        "#set_separator\t,",
        "#empty_field\t(empty)",
        "#unset_field\t-",
        "#path\tconn",
        "#open\t2024-03-01-10-00-00",
        "#fields\t" + "\t".join(FIELDS),
        "#types\t" + "\t".join(TYPES),
    ]
    body = [r.replace(" ", "\t") for r in rows]
    return "\n".join([*head, *body, *(["#close\t2024-03-01-10-00-03"] if close else [])]) + "\n"
