"""Service mapping: table-driven cases, and the private/other rule checked against KDDTrain+."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from features.kdd.columns import SERVICES
from features.kdd.frame import kdd_features
from features.kdd.services import ICMP_TYPES, PRIVATE_BELOW, TCP_PORTS, UDP_PORTS


def _service(flow: Any, flows_table: Any, **kw: Any) -> str:
    return str(kdd_features(flows_table([flow(0, **kw)]))["service"][0])


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"resp_p": 80}, "http"),
        ({"resp_p": 8080}, "http"),
        ({"resp_p": 443}, "http_443"),
        ({"resp_p": 21}, "ftp"),
        ({"resp_p": 5555, "orig_p": 20}, "ftp_data"),  # active FTP data: the server connects from port 20
        ({"resp_p": 22}, "ssh"),
        ({"resp_p": 23}, "telnet"),
        ({"resp_p": 25}, "smtp"),
        ({"resp_p": 53}, "domain"),
        ({"resp_p": 57}, "mtp"),
        ({"resp_p": 6003}, "X11"),
        ({"resp_p": 6667}, "IRC"),
        ({"resp_p": 111}, "sunrpc"),
        ({"resp_p": 1023}, "private"),
        ({"resp_p": 0}, "private"),
        ({"resp_p": 1024}, "other"),
        ({"resp_p": 3389}, "other"),
        ({"resp_p": 50000}, "other"),
        ({"proto": "udp", "resp_p": 53}, "domain_u"),
        ({"proto": "udp", "resp_p": 123}, "ntp_u"),
        ({"proto": "udp", "resp_p": 69}, "tftp_u"),
        ({"proto": "udp", "resp_p": 161}, "private"),
        ({"proto": "udp", "resp_p": 443}, "private"),  # QUIC: no UDP http token in NSL-KDD
        ({"proto": "udp", "resp_p": 5353}, "other"),
        ({"proto": "udp", "resp_p": None}, "private"),  # a non-first fragment: no port
        ({"proto": "icmp", "icmp_type": 8, "icmp_code": 0}, "eco_i"),
        ({"proto": "icmp", "icmp_type": 0, "icmp_code": 0}, "ecr_i"),
        ({"proto": "icmp", "icmp_type": 3, "icmp_code": 3}, "urp_i"),
        ({"proto": "icmp", "icmp_type": 3, "icmp_code": 1}, "urh_i"),
        ({"proto": "icmp", "icmp_type": 3, "icmp_code": 13}, "urh_i"),
        ({"proto": "icmp", "icmp_type": 11, "icmp_code": 0}, "tim_i"),
        ({"proto": "icmp", "icmp_type": 5, "icmp_code": 1}, "red_i"),
        ({"proto": "icmp", "icmp_type": 13, "icmp_code": 0}, "eco_i"),
        ({"proto": "icmp", "icmp_type": 42, "icmp_code": 0}, "other"),
        ({"proto": "icmp6", "icmp_type": 128, "icmp_code": 0}, "eco_i"),
        ({"proto": "icmp6", "icmp_type": 129, "icmp_code": 0}, "ecr_i"),
        ({"proto": "icmp6", "icmp_type": 1, "icmp_code": 4}, "urp_i"),
        ({"proto": "icmp6", "icmp_type": 3, "icmp_code": 0}, "tim_i"),
        ({"proto": "gre"}, "other"),
    ],
)
def test_service_table(flow: Any, flows_table: Any, kw: dict[str, Any], expected: str) -> None:
    assert _service(flow, flows_table, **kw) == expected


def test_every_token_is_nslkdd_vocabulary() -> None:
    produced = set(TCP_PORTS.values()) | set(UDP_PORTS.values()) | set(ICMP_TYPES.values())
    produced |= {"private", "other", "urp_i"}
    assert produced <= set(SERVICES)
    # Only harvest and pm_dump (no documented port) are never produced.
    assert set(SERVICES) - produced == {"harvest", "pm_dump"}


def test_private_other_per_protocol_in_kddtrain(kdd_train: pl.DataFrame) -> None:
    """How NSL-KDD distributes private/other by protocol, the numbers the rule is built on."""
    t = kdd_train.filter(pl.col("service").is_in(["private", "other"]))
    counts = {
        (r["protocol_type"], r["service"]): (r["n"], r["normal"])
        for r in t.group_by("protocol_type", "service")
        .agg(pl.len().alias("n"), (pl.col("label") == "normal").sum().alias("normal"))
        .iter_rows(named=True)
    }
    assert counts == {
        ("tcp", "private"): (18562, 4),
        ("tcp", "other"): (1871, 353),
        ("udp", "private"): (3291, 978),
        ("udp", "other"): (2488, 2251),
    }  # ICMP never uses private or other


def test_scans_of_low_ports_are_private_never_other(kdd_train: pl.DataFrame) -> None:
    """nmap and neptune hit only named ports below 1024; their unnamed ports are 'private', almost never 'other'."""
    port_of = {s: p for p, s in TCP_PORTS.items() if s not in ("http", "IRC", "aol", "X11", "nntp", "imap4", "ldap")}
    for label, max_other in (("nmap", 0), ("neptune", 58)):
        tcp = kdd_train.filter(pl.col("label") == label, pl.col("protocol_type") == "tcp")
        named = set(tcp["service"].unique()) - {"private", "other", "http", "imap4", "IRC", "ldap", "nntp", "X11"}
        assert all(port_of[s] < PRIVATE_BELOW for s in named), label
        n_private = tcp.filter(pl.col("service") == "private").height
        n_other = tcp.filter(pl.col("service") == "other").height
        assert n_other <= max_other < n_private, (label, n_private, n_other)
    # satan also scans high ports (it hit X11, port 6000+) and splits about evenly.
    satan = kdd_train.filter(pl.col("label") == "satan", pl.col("protocol_type") == "tcp")
    assert "X11" in set(satan["service"])
    assert (
        0.5
        < satan.filter(pl.col("service") == "other").height / satan.filter(pl.col("service") == "private").height
        < 2
    )
    # teardrop's fragments carry no port past the first one: all UDP private.
    assert set(kdd_train.filter(pl.col("label") == "teardrop")["service"]) == {"private"}
