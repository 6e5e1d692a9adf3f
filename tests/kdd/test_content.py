"""Content features from cleartext payloads (FTP, Telnet, HTTP), and logged_in without payloads."""

from __future__ import annotations

from typing import Any

import polars as pl
import pytest

from features.kdd.content import ascii_text
from features.kdd.frame import kdd_features

PAYLOAD_SCHEMA = {"flow_id": pl.Int64, "ts_ns": pl.Int64, "from_orig": pl.Boolean, "payload": pl.Binary}


def _payloads(flow_id: int, segments: list[tuple[bool, bytes]]) -> pl.DataFrame:
    rows = [(flow_id, i * 1000, c, p) for i, (c, p) in enumerate(segments)]
    return pl.DataFrame(rows, schema=PAYLOAD_SCHEMA, orient="row")


def _features(flow: Any, flows_table: Any, port: int, segments: list[tuple[bool, bytes]]) -> dict[str, Any]:
    table = flows_table([flow(0, resp_p=port)])
    return kdd_features(table, _payloads(0, segments)).row(0, named=True)


def test_ftp_anonymous_upload(flow: Any, flows_table: Any) -> None:
    got = _features(
        flow,
        flows_table,
        21,
        [
            (False, b"220 FTP server ready\r\n"),
            (True, b"USER anonymous\r\n"),
            (False, b"331 Guest login ok\r\n"),
            (True, b"PASS me@x\r\n"),
            (False, b"230 Guest login ok, access restrictions apply.\r\n"),
            (True, b"CWD /etc\r\n"),
            (True, b"RETR /etc/passwd\r\n"),
            (True, b"STOR warez.zip\r\n"),
            (True, b"MKD incoming\r\n"),
        ],
    )
    assert got["logged_in"] == 1 and got["is_guest_login"] == 1 and got["num_failed_logins"] == 0
    assert got["num_file_creations"] == 2 and got["num_access_files"] == 1 and got["hot"] == 2


def test_ftp_bruteforce_counts_530s(flow: Any, flows_table: Any) -> None:
    segs: list[tuple[bool, bytes]] = [(False, b"220 ready\r\n")]
    for pw in (b"a", b"b", b"c"):
        segs += [(True, b"USER admin\r\n"), (False, b"331 pw\r\n"), (True, b"PASS " + pw + b"\r\n")]
        segs += [(False, b"530 Login incorrect.\r\n")]
    got = _features(flow, flows_table, 21, segs)
    assert got["num_failed_logins"] == 3 and got["logged_in"] == 0 and got["is_guest_login"] == 0


def test_telnet_root_login_and_su_typed_char_by_char(flow: Any, flows_table: Any) -> None:
    segs: list[tuple[bool, bytes]] = [(True, b"\xff\xfd\x18\xff\xfb\x1f"), (False, b"\xff\xfb\x01login: ")]
    segs += [(True, bytes([c])) for c in b"bob\r\n"]
    segs += [(False, b"Password: "), (True, b"wrong\r\n"), (False, b"\r\nLogin incorrect\r\nlogin: ")]
    segs += [(True, b"bob\r\n"), (False, b"Password: "), (True, b"right\r\n")]
    segs += [(False, b"Last login: Mon Jan 1 from x\r\nbob@box:~$ ")]
    segs += [(True, bytes([c])) for c in b"su\r\n"]
    segs += [(False, b"Password: "), (True, b"toor\r\n"), (False, b"root@box:/home/bob# ")]
    got = _features(flow, flows_table, 23, segs)
    assert got["num_failed_logins"] == 1 and got["logged_in"] == 1
    assert got["su_attempted"] == 1 and got["root_shell"] == 1 and got["is_guest_login"] == 0


def test_telnet_failed_only(flow: Any, flows_table: Any) -> None:
    segs = [(False, b"login: "), (True, b"root\r\n"), (False, b"Password: "), (True, b"x\r\n")]
    segs += [(False, b"Login incorrect\r\n\r\nlogin: ")]
    got = _features(flow, flows_table, 23, segs)
    assert got["logged_in"] == 0 and got["num_failed_logins"] == 1 and got["root_shell"] == 0


def test_http_401_with_authorization_is_a_failed_login(flow: Any, flows_table: Any) -> None:
    segs = [
        (True, b"GET /admin HTTP/1.1\r\nHost: x\r\nAuthorization: Basic YTpi\r\n\r\n"),
        (False, b"HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n"),
    ]
    got = _features(flow, flows_table, 80, segs)
    assert got["num_failed_logins"] == 1
    # logged_in for http follows NSL-KDD's meaning: established and both sides sent data.
    assert got["logged_in"] == 1


@pytest.mark.parametrize(
    ("kw", "expected"),
    [
        ({"resp_p": 80}, 1),
        ({"resp_p": 443}, 1),
        ({"resp_p": 79}, 0),  # finger: 0 in every NSL-KDD row
        ({"resp_p": 80, "resp_bytes": 0}, 0),
        ({"resp_p": 80, "conn_state": "S0"}, 0),
        ({"resp_p": 80, "conn_state": "REJ"}, 0),
        ({"resp_p": 80, "conn_state": "RSTR"}, 1),
        ({"proto": "udp", "resp_p": 53}, 0),
    ],
)
def test_logged_in_without_payloads(flow: Any, flows_table: Any, kw: dict[str, Any], expected: int) -> None:
    assert kdd_features(flows_table([flow(0, **kw)]))["logged_in"][0] == expected


def test_logged_in_rule_agrees_with_nslkdd(kdd_train: pl.DataFrame) -> None:
    """The payload-free logged_in rule against KDDTrain+'s TCP rows of services we never read payload for."""
    tcp = kdd_train.filter(pl.col("protocol_type") == "tcp", ~pl.col("service").is_in(["ftp", "telnet", "login"]))
    rule = (
        pl.col("flag").is_in(["SF", "S1", "S2", "S3", "RSTO", "RSTR"])
        & (pl.col("src_bytes") > 0)
        & (pl.col("dst_bytes") > 0)
        & (pl.col("service") != "finger")
    ).cast(pl.Float64)
    agree = tcp.select((rule == pl.col("logged_in")).mean()).item()
    assert agree > 0.95, agree
    http = tcp.filter(pl.col("service") == "http", pl.col("flag") == "SF", pl.col("label") == "normal")
    share = http["logged_in"].mean()
    assert isinstance(share, float) and share > 0.99  # logged_in is not "authenticated" for http in NSL-KDD


def test_always_zero_without_payloads(flow: Any, flows_table: Any) -> None:
    got = kdd_features(flows_table([flow(0, resp_p=21), flow(1, resp_p=23)]))
    for c in ("hot", "num_failed_logins", "root_shell", "su_attempted", "num_file_creations", "is_guest_login"):
        assert got[c].sum() == 0, c


def test_ascii_text_keeps_lengths_and_masks_high_bytes() -> None:
    s = pl.Series("p", [b"ab\xffc\x00", None, b""], dtype=pl.Binary)
    assert ascii_text(s).to_list() == ["ab.c.", None, ""]
    assert ascii_text(s.slice(1, 2)).to_list() == [None, ""]
