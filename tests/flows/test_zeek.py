"""Zeek logs (features.flows.zeek), read back by a parser written from Zeek's documentation of its formats.

The parser below knows only what Zeek's log-format documentation says: a TSV log starts with ``#separator``
(the separator written as ``\\xHH``), ``#set_separator``, ``#empty_field``, ``#unset_field``, ``#path``,
``#open``, ``#fields`` and ``#types`` lines, then one record per line with one value per field, and ends with
``#close``; values are written per type (time and interval as seconds since the epoch, count and port as
integers, bool as T/F, sets joined by the set separator), ``-`` is unset and ``(empty)`` an empty string or
set, and other bytes are escaped as ``\\xHH``. The JSON format is one object per line with the same field names,
unset fields left out. The tests compare what it reads with the flow table the logs were made from.
"""

from __future__ import annotations

import csv
import datetime as dt
import ipaddress
import json
import re
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from typer.testing import CliRunner

from analyzer.cli import app
from features.flows.extract import extract_flows
from features.flows.zeek import CONN_LOG, ZeekField, ZeekLog, conn_frame, save_log

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
UNSET = object()
_HEX = re.compile(r"\\x([0-9a-fA-F]{2})")
_TIME = re.compile(r"^\d+\.\d{6}$")


def _unescape(s: str) -> str:
    return _HEX.sub(lambda m: chr(int(m.group(1), 16)), s)


def _value(typ: str, text: str, unset: str, empty: str, set_sep: str) -> Any:
    if text == unset:
        return UNSET
    if typ.startswith(("set[", "vector[")):
        return [] if text == empty else [_unescape(x) for x in text.split(set_sep)]
    if typ in ("time", "interval"):
        assert _TIME.match(text), (typ, text)
        return round(float(text) * 1_000_000)  # microseconds
    if typ == "double":
        return float(text)
    if typ in ("count", "port"):
        assert text.isdigit(), text
        v = int(text)
        assert typ != "port" or v < 65536
        return v
    if typ == "bool":
        assert text in ("T", "F"), text
        return text == "T"
    if text == empty:
        return ""
    value = _unescape(text)
    if typ == "addr":
        ipaddress.ip_address(value)
    return value


def parse_tsv(path: Path) -> tuple[dict[str, str], list[str], list[dict[str, Any]]]:
    """(header values, the types, records) of a Zeek TSV log; asserts the documented structure."""
    lines = path.read_text(encoding="utf-8").split("\n")
    assert lines[-1] == "", "the log ends with a newline"
    lines = lines[:-1]
    m = re.match(r"^#separator (\\x[0-9a-f]{2}|.)$", lines[0])
    assert m, lines[0]
    sep = _unescape(m.group(1))
    header: dict[str, str] = {}
    i = 1
    while lines[i].startswith("#") and not lines[i].startswith("#close"):
        key, _, rest = lines[i][1:].partition(sep)
        header[key] = rest
        i += 1
    assert list(header)[:7] == ["set_separator", "empty_field", "unset_field", "path", "open", "fields", "types"]
    assert re.match(r"^\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$", header["open"])
    fields, types = header["fields"].split(sep), header["types"].split(sep)
    assert len(fields) == len(types)
    records = []
    for line in lines[i:-1]:
        assert not line.startswith("#"), line
        values = line.split(sep)
        assert len(values) == len(fields), line
        rec = {
            f: _value(t, v, header["unset_field"], header["empty_field"], header["set_separator"])
            for f, t, v in zip(fields, types, values, strict=True)
        }
        records.append(rec)
    assert re.match(r"^#close" + sep + r"\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d$", lines[-1]), lines[-1]
    return header, types, records


def parse_json(path: Path, log: ZeekLog) -> list[dict[str, Any]]:
    """Records of a Zeek JSON-lines log, unset fields as UNSET, times and intervals in microseconds."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        obj = json.loads(line)
        assert set(obj) <= set(log.names), set(obj) - set(log.names)
        rec: dict[str, Any] = {}
        for f in log.fields:
            v = obj.get(f.name, UNSET)
            if v is not UNSET and f.type in ("time", "interval"):
                v = round(v * 1_000_000)
            rec[f.name] = v
        out.append(rec)
    return out


def _flows(name: str) -> pl.DataFrame:
    df = pl.from_arrow(extract_flows([SAMPLES / name]).flows)
    assert isinstance(df, pl.DataFrame)
    return df


@pytest.mark.parametrize("name", ["fmt-pcap-be-usec.pcap", "tunnel-teredo.pcap", "ping-sweep.pcap"])
def test_conn_log_reads_back_as_the_flow_table(tmp_path: Path, name: str) -> None:
    flows = _flows(name)
    save_log(CONN_LOG, conn_frame(flows), tmp_path / "conn.log")
    header, types, recs = parse_tsv(tmp_path / "conn.log")
    assert header["path"] == "conn" and header["set_separator"] == "," and header["unset_field"] == "-"
    assert header["fields"].split("\t") == CONN_LOG.names
    assert types[:6] == ["time", "string", "addr", "port", "addr", "port"]
    assert header["open"] == flows["ts"].min().strftime("%Y-%m-%d-%H-%M-%S")  # type: ignore[union-attr]
    assert len(recs) == flows.height
    uids = [r["uid"] for r in recs]
    assert len(set(uids)) == len(uids) and all(re.fullmatch(r"C[0-9A-Za-z]{17}", u) for u in uids)
    for r, f in zip(recs, flows.iter_rows(named=True), strict=True):
        assert r["ts"] == int(f["ts"].timestamp() * 1_000_000 + 0.5)
        assert (r["id.orig_h"], r["id.resp_h"]) == (f["orig_h"], f["resp_h"])
        icmp = f["icmp_type"] is not None
        assert r["id.orig_p"] == (f["icmp_type"] if icmp else f["orig_p"] or 0)
        assert r["id.resp_p"] == (f["icmp_code"] if icmp else f["resp_p"] or 0)
        assert r["proto"] == {"icmp6": "icmp"}.get(f["proto"], f["proto"])
        dur = round((f["ts_end"] - f["ts"]).total_seconds() * 1_000_000)
        assert r["duration"] == (dur if dur else UNSET)  # Zeek sets duration and byte counts only when > 0
        assert r["orig_bytes"] == (f["orig_bytes"] if dur else UNSET)
        assert r["resp_bytes"] == (f["resp_bytes"] if dur else UNSET)
        assert r["history"] == (f["history"] or UNSET)
        assert (r["conn_state"], r["community_id"]) == (f["conn_state"], f["community_id"])
        assert (r["orig_pkts"], r["resp_pkts"]) == (f["orig_pkts"], f["resp_pkts"])
        assert (r["orig_ip_bytes"], r["resp_ip_bytes"]) == (f["orig_ip_bytes"], f["resp_ip_bytes"])
        assert (r["service"], r["local_orig"], r["local_resp"], r["missed_bytes"]) == (UNSET, UNSET, UNSET, 0)
        tun = r["tunnel_parents"]
        assert tun is UNSET if f["tunnel"] is None else (len(tun) == 1 and re.fullmatch(r"C[0-9A-Za-z]{17}", tun[0]))


def test_json_lines_hold_the_same_records(tmp_path: Path) -> None:
    flows = _flows("tunnel-teredo.pcap")
    frame = conn_frame(flows)
    save_log(CONN_LOG, frame, tmp_path / "conn.log")
    save_log(CONN_LOG, frame, tmp_path / "conn.json", json=True)
    assert parse_json(tmp_path / "conn.json", CONN_LOG) == parse_tsv(tmp_path / "conn.log")[2]
    assert not (tmp_path / "conn.json").read_text().startswith("#")


def test_text_that_looks_like_markers_is_escaped(tmp_path: Path) -> None:
    log = ZeekLog(
        "odd",
        (
            ZeekField("ts", "time", "", ""),
            ZeekField("s", "string", "", ""),
            ZeekField("tags", "set[string]", "", ""),
            ZeekField("ok", "bool", "", ""),
            ZeekField("x", "double", "", ""),
        ),
    )
    texts = ["-", "(empty)", "", "a\tb\\c", "plain", None]
    sets: list[list[str] | None] = [["a,b", "-"], [], None, ["(empty)"], ["x"], ["y", "z"]]
    t0 = dt.datetime(2024, 3, 1, tzinfo=dt.UTC)
    frame = pl.DataFrame(
        {
            "ts": [t0 + dt.timedelta(microseconds=7 * i) for i in range(6)],
            "s": texts,
            "tags": sets,
            "ok": [True, False, None, True, False, True],
            "x": [0.5, 1 / 3, None, -0.25, 2.0, 1e-7],
        },
        schema=log.schema(),
    )
    save_log(log, frame, tmp_path / "odd.log")
    save_log(log, frame, tmp_path / "odd.json", json=True)
    _, _, recs = parse_tsv(tmp_path / "odd.log")
    assert [r["s"] for r in recs] == [UNSET if t is None else t for t in texts]
    assert [r["tags"] for r in recs] == [UNSET if s is None else s for s in sets]
    assert [r["ok"] for r in recs] == [True, False, UNSET, True, False, True]
    assert [r["x"] for r in recs] == [0.5, 0.333333, UNSET, -0.25, 2.0, 0.0]
    assert [r["ts"] - recs[0]["ts"] for r in recs] == [7 * i for i in range(6)]
    back = parse_json(tmp_path / "odd.json", log)
    assert [r["s"] for r in back] == [r["s"] for r in recs] and [r["tags"] for r in back] == [r["tags"] for r in recs]


def test_cli_flows_format_zeek_and_zeek_json(tmp_path: Path) -> None:
    cap = SAMPLES / "fmt-pcap-be-usec.pcap"
    for fmt, name in (("zeek", "conn.log"), ("zeek-json", "conn.json")):
        res = CliRunner().invoke(app, ["flows", str(cap), "-o", str(tmp_path / name), "--format", fmt, "-q"])
        assert res.exit_code == 0, res.output
    tsv = parse_tsv(tmp_path / "conn.log")[2]
    assert len(tsv) == 6 and parse_json(tmp_path / "conn.json", CONN_LOG) == tsv


def test_scan_zeek_logs_key_the_verdicts_by_uid(tmp_path: Path) -> None:
    out = tmp_path / "scan"
    cap = SAMPLES / "tunnel-gre-portscan.pcap"
    res = CliRunner().invoke(app, ["scan", str(cap), "-o", str(out), "--zeek", "-q"])
    assert res.exit_code == 0, res.output
    _, _, conn = parse_tsv(out / "conn.log")
    header, _, nta = parse_tsv(out / "nta.log")
    assert header["path"] == "nta"
    with (out / "verdicts.csv").open(newline="") as fh:
        verdicts = {int(r["flow_id"]): r for r in csv.DictReader(fh)}
    assert [r["uid"] for r in conn] == [r["uid"] for r in nta] and len(nta) == len(verdicts) == 120
    for r in nta:
        v = verdicts[r["flow_id"]]
        assert r["label"] == v["label"] and abs(r["confidence"] - float(v["confidence"])) < 1e-6
        assert r["incident_id"] == (int(v["incident_id"]) if v["incident_id"] else UNSET)
        assert r["tunnel"] == "gre 172.16.0.1 172.16.0.2"
    assert sum(r["label"] == "Probe" for r in nta) > 100
    again = tmp_path / "again"
    res = CliRunner().invoke(app, ["scan", str(cap), "-o", str(again), "--zeek-json", "-q"])
    assert res.exit_code == 0, res.output
    assert [r["uid"] for r in parse_json(again / "conn.log", CONN_LOG)] == [r["uid"] for r in conn]  # stable uids


def test_scan_zeek_refuses_both_formats_and_existing_logs(tmp_path: Path) -> None:
    cap = SAMPLES / "land.pcap"
    res = CliRunner().invoke(app, ["scan", str(cap), "-o", str(tmp_path), "--zeek", "--zeek-json", "-q"])
    assert res.exit_code == 2 and "choose one" in res.output
    (tmp_path / "conn.log").write_text("old")
    res = CliRunner().invoke(app, ["scan", str(cap), "-o", str(tmp_path), "--zeek", "-q"])
    assert res.exit_code == 2 and "conn.log" in res.output
    assert (tmp_path / "conn.log").read_text() == "old" and not (tmp_path / "report.json").exists()
