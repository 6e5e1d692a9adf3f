"""Zeek conn logs written by hand with Zeek's conventions, JSON lines, gzip, rotated sets and damaged records.

The hand-written log follows what Zeek's ASCII writer produces (``#separator \\x09``, ``#set_separator``,
``#empty_field (empty)``, ``#unset_field -``, ``#path conn``, ``#open``, ``#fields``, ``#types`` ... ``#close``),
with the cases a real conn.log has: unset duration and byte counts of instant connections, ``(empty)`` and
multi-element sets, ICMP type/code in the port fields, IPv6 ICMP, an IP protocol other than TCP/UDP/ICMP,
services Zeek's analyzers confirmed on ports that name nothing, with and without a community_id.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import polars as pl
import pytest
from zeek_testlib import ROWS, conn_log

from analyzer import inputs
from features.common import InputError
from features.flows.community_id import community_id
from features.kdd.frame import kdd_features
from features.zeeklog.read import read_log, sniff
from features.zeeklog.stream import read_conn_logs


@pytest.fixture
def tsv(tmp_path: Path) -> Path:
    p = tmp_path / "conn.log"
    p.write_text(conn_log())
    return p


def _per_file_dropped(df: pl.DataFrame) -> pl.DataFrame:
    """Without what names the file a record came from: ``source_file``, and ``uid``, which is the connection's own
    where the log gives it once but otherwise made from the log file's SHA-256 (features.flows.uid)."""
    return df.drop([c for c in ("source_file", "uid") if c in df.columns])


def _flows(paths: list[Path]) -> tuple[pl.DataFrame, pl.DataFrame]:
    ext = read_conn_logs(paths)
    flows = pl.from_arrow(ext.flows)
    assert isinstance(flows, pl.DataFrame)
    return flows, kdd_features(ext.flows, ext.payloads, ext.service_hints, ext.stream_ids)


def test_hand_written_tsv(tsv: Path) -> None:
    flows, kdd = _flows([tsv])
    assert flows.height == len(ROWS) + 1  # the ICMP echo connection is a request and a reply
    assert flows["proto"].to_list() == ["tcp", "udp", "icmp", "icmp", "icmp6", "tcp", "tcp", "tcp", "tcp", "gre"]
    assert flows["ip_proto"].to_list() == [6, 17, 1, 1, 58, 6, 6, 6, 6, 47]
    assert flows["orig_p"].to_list() == [50000, 40000, None, None, None, 50001, 50002, 61000, 61000, None]
    assert flows["icmp_type"].to_list()[:5] == [None, None, 8, 0, 128]
    assert flows["icmp_code"].to_list()[2:5] == [0, 0, 0]  # Zeek's id.resp_p of an echo is its counterpart type
    assert flows["orig_h"].to_list()[2:4] == ["10.0.0.1", "10.0.0.9"]  # the reply comes from the responder
    assert flows["community_id"][2] == flows["community_id"][3]
    # Unset bytes of instant connections: UDP/ICMP from IP bytes less headers; TCP without data 0.
    assert flows["orig_bytes"].to_list() == [100, 33, 56, 56, 56, 500, 80, 0, 0, 0]
    assert flows["resp_bytes"].to_list()[:4] == [2000, 0, 0, 0]
    assert flows["orig_pkts"].to_list()[2:4] == [1, 1] and flows["resp_pkts"].to_list()[2:4] == [0, 0]
    assert flows["duration_s"].to_list()[:3] == [1.5, 0.0, 0.001]
    assert flows["vlan"].to_list()[:2] == [10, None]
    assert flows["tunnel"].null_count() == flows.height
    assert flows["community_id"][0] == "1:given/community/id="
    computed = community_id(bytes([10, 0, 0, 1]), bytes([10, 0, 0, 53]), 17, 40000, 53)
    assert flows["community_id"][1] == computed
    assert flows["wrong_fragment"].sum() == 0 and flows["urgent"].sum() == 0
    assert kdd["service"].to_list() == [
        "http", "domain_u", "eco_i", "ecr_i", "eco_i", "http_443", "http", "other", "private", "other",
    ]  # fmt: skip
    assert kdd["flag"].to_list() == ["SF", "SF", "SF", "SF", "SF", "SF", "SF", "S0", "REJ", "SF"]
    assert kdd["protocol_type"].to_list() == ["tcp", "udp", "icmp", "icmp", "icmp", "tcp", "tcp", "tcp", "tcp", "gre"]
    assert kdd["src_bytes"].to_list()[1] == 33.0 and kdd["dst_bytes"].to_list()[2] == 0.0
    # Window features from the log's own fields: the two probes of 10.0.0.2 within 2 s.
    assert kdd["count"].to_list()[7:9] == [2.0, 3.0]  # rows 0, 7 and 8 go to 10.0.0.2
    assert kdd["rerror_rate"][8] == pytest.approx(0.33)


def test_sets_empty_unset_and_escapes(tmp_path: Path) -> None:
    """A value that reads as the unset or empty marker is escaped (``\\x2d``); a set field splits on its separator."""
    row = ROWS[4].replace("CTunA,CTunB", "CTun\\x2cA,\\x2d").replace("ShADadFf", "Sh\\x09AD")
    p = tmp_path / "conn.log"
    p.write_text(conn_log([ROWS[0], row]))
    got = read_log(p, {"tunnel_parents": "set[string]", "history": "string", "service": "string"}).frame
    assert got["tunnel_parents"].to_list() == [[], ["CTun,A", "-"]]
    assert got["history"].to_list() == ["ShADadFf", "Sh\tAD"]


def json_rows() -> list[str]:
    """Rows 0-2 as Zeek's JSON writer has them: unset fields left out; ts ISO 8601 or epoch; a nested id too."""
    return [
        json.dumps(
            {"ts": 1709287200.0, "uid": "CHttp0000000000001", "id.orig_h": "10.0.0.1", "id.orig_p": 50000,
             "id.resp_h": "10.0.0.2", "id.resp_p": 8080, "proto": "tcp", "service": "http", "duration": 1.5,
             "orig_bytes": 100, "resp_bytes": 2000, "conn_state": "SF", "missed_bytes": 0, "history": "ShADadFf",
             "orig_pkts": 5, "orig_ip_bytes": 400, "resp_pkts": 4, "resp_ip_bytes": 2200, "tunnel_parents": [],
             "ip_proto": 6, "vlan": 10, "community_id": "1:given/community/id="}
        ),
        json.dumps(
            {"ts": "2024-03-01T10:00:00.100000Z", "uid": "CDns00000000000001", "id.orig_h": "10.0.0.1",
             "id.orig_p": 40000, "id.resp_h": "10.0.0.53", "id.resp_p": 53, "proto": "udp", "service": "dns",
             "conn_state": "S0", "local_orig": False, "missed_bytes": 0, "history": "D", "orig_pkts": 1,
             "orig_ip_bytes": 61, "resp_pkts": 0, "resp_ip_bytes": 0, "ip_proto": 17}
        ),
        json.dumps(
            {"ts": "1709287200.2", "uid": "CIcmp000000000001",
             "id": {"orig_h": "10.0.0.1", "orig_p": 8, "resp_h": "10.0.0.9", "resp_p": 0}, "proto": "icmp",
             "duration": 0.001, "orig_bytes": 56, "resp_bytes": 56, "conn_state": "OTH", "missed_bytes": 0,
             "orig_pkts": 1, "orig_ip_bytes": 84, "resp_pkts": 1, "resp_ip_bytes": 84, "ip_proto": 1}
        ),
    ]  # fmt: skip


def test_json_lines_match_tsv(tmp_path: Path) -> None:
    tsv = tmp_path / "conn.log"
    tsv.write_text(conn_log(ROWS[:3]))
    js = tmp_path / "conn.json"
    js.write_text("\n".join(json_rows()) + "\n")
    assert sniff(js) is not None and sniff(js).format == "json"  # type: ignore[union-attr]
    a, ka = _flows([tsv])
    b, kb = _flows([js])
    assert _per_file_dropped(b).equals(_per_file_dropped(a))
    assert _per_file_dropped(kb).equals(_per_file_dropped(ka))


def test_gzip_by_content(tmp_path: Path) -> None:
    plain = tmp_path / "conn.log"
    plain.write_text(conn_log())
    packed = tmp_path / "conn-no-suffix"  # gzip told by its magic bytes, not by a .gz name
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    jsz = tmp_path / "conn.json.gz"
    jsz.write_bytes(gzip.compress(("\n".join(json_rows()) + "\n").encode()))
    a, _ = _flows([plain])
    b, _ = _flows([packed])
    assert _per_file_dropped(b).equals(_per_file_dropped(a))
    assert _flows([jsz])[0].height == 4  # the echo connection is a request and a reply
    assert inputs.discover([packed]).kind == "zeek"
    # A gzip stream cut short (a log copied while it was written): the records before the cut, and a warning.
    many = tmp_path / "many.log.gz"
    rows = [r.replace("CHttp0000000000001", f"C{i:017d}") for i in range(3000) for r in ROWS[:1]]
    whole = gzip.compress(conn_log(rows).encode())
    many.write_bytes(whole[: len(whole) // 2])
    ext = read_conn_logs([many])
    assert 0 < ext.flows.num_rows < 3000 and ext.bad_packets == {}
    assert len(ext.warnings) == 1 and "gzip-compressed, but the stream is damaged" in ext.warnings[0]


def test_rotated_pair_is_one_stream(tmp_path: Path) -> None:
    """Two rotated pieces, given newest first and one gzipped: read as one log, ordered by time."""
    whole = tmp_path / "whole.log"
    whole.write_text(conn_log())
    older = tmp_path / "conn.10:00:00-10:00:00.log"
    newer = tmp_path / "conn.10:00:00-11:00:00.log.gz"
    older.write_text(conn_log(ROWS[:5]))
    newer.write_bytes(gzip.compress(conn_log(ROWS[5:]).encode()))
    a, ka = _flows([whole])
    b, kb = _flows([newer, older])
    assert _per_file_dropped(b).equals(_per_file_dropped(a))
    assert _per_file_dropped(kb).equals(_per_file_dropped(ka))  # windows span the two files
    assert b["source_file"].to_list() == [str(older)] * 6 + [str(newer)] * 4
    # Found in a folder: the conn logs are used, other Zeek logs and other files are skipped with the reason.
    (tmp_path / "dns.log").write_text(conn_log().replace("#path\tconn", "#path\tdns"))
    (tmp_path / "notes.txt").write_text("not a log\n")
    whole.unlink()
    found = inputs.discover([tmp_path])
    assert found.kind == "zeek" and sorted(found.captures) == sorted([older, newer])
    reasons = {p.name: why for p, why in found.skipped}
    assert "Zeek dns log" in reasons["dns.log"] and "notes.txt" in reasons


def test_logs_a_day_apart_are_two_sessions(tmp_path: Path) -> None:
    """A conn log of the next day (another sensor's, another case's) gets the window features it has alone; two
    rotated pieces of one hour stay one session (the test above)."""
    first = tmp_path / "conn.day1.log"
    first.write_text(conn_log(ROWS[:6]))
    day2 = [r.replace("1709287200.", "1709373600.", 1) for r in ROWS[:6]]  # the same connections a day later
    second = tmp_path / "conn.day2.log"
    second.write_text(conn_log(day2))
    ext = read_conn_logs([second, first])
    assert ext.stream_ids is not None and ext.stream_ids.n_unique() == 2
    together = kdd_features(ext.flows, ext.payloads, ext.service_hints, ext.stream_ids)
    alone = [_flows([p])[1] for p in (first, second)]
    drop = ["flow_id", "source_file", "ts", "ts_end"]
    assert together.drop(drop).equals(pl.concat(alone).drop(drop))
    assert not kdd_features(ext.flows, ext.payloads, ext.service_hints).drop(drop).equals(together.drop(drop))


def test_malformed_records_are_counted(tmp_path: Path) -> None:
    good = ROWS[0]
    bad_rows = [
        "\t".join(good.split(" ")[:-1]).replace("\t", " "),  # one value missing: zeek_field_count
        good.replace(" 5 400 ", " abc 400 "),  # orig_pkts not a count: zeek_bad_value
        good.replace("1709287200.000000", "yesterday"),  # not a time: zeek_bad_value
        good.replace(" 8080 ", " 70000 "),  # not a port: zeek_bad_value
        good.replace("10.0.0.2", "not-an-address"),  # not an address: zeek_bad_value
        good.replace("1709287200.000000", "-"),  # no start time: zeek_missing_field
    ]
    p = tmp_path / "conn.log"
    p.write_text(conn_log([ROWS[1], *bad_rows, ROWS[2]]))
    ext = read_conn_logs([p])
    assert ext.flows.num_rows == 3  # ROWS[1], and ROWS[2] as request and reply
    assert ext.bad_packets == {"zeek_bad_value": 4, "zeek_field_count": 1, "zeek_missing_field": 1}
    assert ext.sources[0]["records"] == 8


def test_json_damage_and_headerless_records(tmp_path: Path) -> None:
    js = tmp_path / "conn.json"
    lines = [json_rows()[0], "{not json", "[1, 2]", json.dumps({"ts": 1, "tunnel_parents": "x"}), json_rows()[1]]
    js.write_text("\n".join(lines) + "\n")
    ext = read_conn_logs([js])
    assert ext.flows.num_rows == 2 and ext.bad_packets == {"zeek_bad_json": 3}
    nofields = tmp_path / "nofields.log"
    nofields.write_text("#separator \\x09\n#path\tconn\n" + ROWS[0].replace(" ", "\t") + "\n")
    with pytest.raises(InputError, match=r"nofields.log: no usable Zeek conn record \(zeek_no_fields 1\)"):
        read_conn_logs([nofields])


def test_not_conn_logs_are_refused(tmp_path: Path) -> None:
    dns = tmp_path / "dns.log"
    dns.write_text(conn_log().replace("#path\tconn", "#path\tdns"))
    with pytest.raises(InputError, match="a Zeek dns log, not conn"):
        inputs.discover([dns])
    http = tmp_path / "http.json"
    http.write_text(json.dumps({"ts": 1.0, "id.orig_h": "10.0.0.1", "method": "GET"}) + "\n")
    with pytest.raises(InputError, match="other than conn"):
        inputs.discover([http])
    text = tmp_path / "readme.log"
    text.write_text("just words\n")
    with pytest.raises(InputError, match="neither a Zeek log"):
        inputs.discover([text])


def test_narrowing_applies_to_records(tsv: Path) -> None:
    """--since/--until/--host/--port keep the records that start in the window and touch a host and port asked for."""
    from features.capture.filter import PacketFilter

    def kept(**kw: object) -> list[str]:
        ext = read_conn_logs([tsv], packet_filter=PacketFilter.build(**kw))  # type: ignore[arg-type]
        return pl.from_arrow(ext.flows)["resp_h"].to_list()  # type: ignore[index]

    assert kept(hosts=["10.0.0.53"]) == ["10.0.0.53"]
    assert kept(hosts=["fe80::/64"]) == ["ff02::1"]
    assert kept(ports=[8443]) == ["10.0.0.3"]
    assert kept(hosts=["10.0.0.2"], ports=[666]) == ["10.0.0.2"]
    assert kept(since="2024-03-01T10:00:00.55Z", until="2024-03-01T10:00:00.65Z") == ["10.0.0.2", "10.0.0.2"]
    ext = read_conn_logs([tsv], packet_filter=PacketFilter.build(ports=[53]))
    assert ext.filtered == len(ROWS)  # 10 records, 1 kept
