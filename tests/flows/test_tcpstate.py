"""conn_state from history, table-driven over Zeek's decision order (design doc section 1.1)."""

from __future__ import annotations

import pytest

from features.flows.tcpstate import Ep, conn_state, endpoint_states

TCP_CASES = [
    # (history, expected conn_state, why)
    ("R", "OTH", "lone originator RST, no SYN seen"),
    ("SR", "RSTOS0", "SYN then RST from originator, no SYN-ACK"),
    ("SaR", "RSTOS0", "responder's early ACK does not activate it"),
    ("SaFR", "OTH", "an F before the R breaks the RSTOS0 pattern"),
    ("S", "S0", "SYN, nothing back"),
    ("SS", "S0", "retried SYN with a new sequence number"),
    ("ShAdaFf", "SF", "handshake, data, both FINs"),
    ("ShADadFf", "SF", "handshake, data both ways, both FINs"),
    ("ShADadfF", "SF", "responder closes first"),
    ("Sr", "REJ", "SYN answered by RST"),
    ("ShA", "S1", "established, not closed"),
    ("ShADad", "S1", "established with data, not closed"),
    ("ShADadF", "S2", "originator closed, no reply"),
    ("ShADadf", "S3", "responder closed, no reply"),
    ("ShADadR", "RSTO", "established, originator aborted"),
    ("ShADadr", "RSTR", "established, responder aborted"),
    ("^hr", "RSTRH", "SYN-ACK then RST from responder, SYN never seen"),
    ("^hR", "RSTO", "reverse scan answered by the originator's RST"),
    ("SF", "SH", "SYN then FIN, no SYN-ACK"),
    ("^hf", "SHR", "SYN-ACK then FIN from responder"),
    ("Dd", "OTH", "mid-stream traffic"),
    ("DdAa", "OTH", "mid-stream with ACKs"),
    ("^hADadFf", "SF", "flipped connection closes normally"),
    ("ShADadFRf", "SF", "FIN then RST from the originator, then the responder's FIN: normal close"),
    ("RrSs", "REJ", "both sides reset, no payload"),
    ("DRdr", "RSTR", "both reset after payload: not a rejection"),
    ("", "OTH", "no TCP letters at all (orphan fragments)"),
]


@pytest.mark.parametrize(("history", "expected", "why"), TCP_CASES)
def test_tcp_conn_state(history: str, expected: str, why: str) -> None:
    assert conn_state(history, 6) == expected, why


@pytest.mark.parametrize(
    ("history", "expected"),
    [("D", "S0"), ("Dd", "SF"), ("d", "SHR"), ("^d", "SHR"), ("", "OTH")],
)
def test_udp_conn_state(history: str, expected: str) -> None:
    assert conn_state(history, 17) == expected


@pytest.mark.parametrize("proto", [1, 58, 47, 132])
@pytest.mark.parametrize("history", ["", "D", "Dd", "S"])
def test_other_protocols_are_oth(proto: int, history: str) -> None:
    assert conn_state(history, proto) == "OTH"


def test_endpoint_states_handshake() -> None:
    assert endpoint_states("S") == (Ep.SYN_SENT, Ep.INACTIVE)
    assert endpoint_states("Sh") == (Ep.ESTABLISHED, Ep.ESTABLISHED)
    assert endpoint_states("Sa") == (Ep.SYN_SENT, Ep.INACTIVE)
    assert endpoint_states("Sd") == (Ep.SYN_SENT, Ep.PARTIAL)
