"""Extraction over real (self-made) capture bytes, the Parquet round trip, atomic writes, and ``nta flows``."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import dpkt
import polars as pl
import pyarrow.parquet as pq
import pytest
from flows_capture import T0, write_capture
from typer.testing import CliRunner

from analyzer.cli import app
from features.common import InputError
from features.flows.extract import FlowStream, extract_flows
from features.flows.schema import FLOW_SCHEMA, UNIQUE_PER_FLOW
from features.flows.table import read_flows, write_flow_stream, write_flows


def test_extract_numbers_flows_and_links_payloads(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    ext = extract_flows([cap, write_capture(tmp_path / "b.pcap")])
    assert ext.flows.schema.equals(FLOW_SCHEMA)
    df = pl.from_arrow(ext.flows)
    assert isinstance(df, pl.DataFrame)
    assert df["flow_id"].to_list() == list(range(4))
    assert df["ts"].is_sorted()
    assert sorted(df["conn_state"].to_list()) == ["SF", "SF", "SF", "SF"]
    assert ext.packets == 20 and ext.bad_packets == {}
    assert [s["sha256"] for s in ext.sources] == [hashlib.sha256(cap.read_bytes()).hexdigest()] * 2
    http = df.filter(pl.col("resp_p") == 80)
    assert http["orig_bytes"].to_list() == [18, 18] and http["resp_bytes"].to_list() == [24, 24]
    assert ext.payloads.columns == ["flow_id", "ts_ns", "from_orig", "payload"]
    assert set(ext.payloads["flow_id"]) == set(http["flow_id"])
    first = ext.payloads.filter(pl.col("from_orig")).sort("flow_id")["payload"][0]
    assert first.startswith(b"GET / HTTP/1.0")


def test_parquet_round_trip_with_metadata(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    ext = extract_flows([cap])
    out = tmp_path / "flows.parquet"
    write_flows(ext, out)
    table, meta = read_flows(out)
    assert table.schema.remove_metadata().equals(FLOW_SCHEMA)
    assert pq.read_schema(out).remove_metadata().equals(FLOW_SCHEMA)
    assert table.to_pylist() == ext.flows.to_pylist()
    assert meta["schema_version"] == "3"
    assert meta["sources"][0]["sha256"] == hashlib.sha256(cap.read_bytes()).hexdigest()
    assert meta["sources"][0]["packets"] == 10
    assert meta["bad_packets"] == {} and meta["warnings"] == []


def test_atomic_write_leaves_nothing_on_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    ext = extract_flows([write_capture(tmp_path / "a.pcap")])
    out = tmp_path / "out" / "flows.parquet"

    def broken(table: object, where: object, **_: object) -> None:
        if hasattr(where, "write"):  # nta hands pyarrow an open file (non-UTF-8 names), or a path
            where.write(b"PAR1 half")
        else:
            Path(str(where)).write_bytes(b"PAR1 half")
        raise OSError("disk full")

    monkeypatch.setattr(pq, "write_table", broken)
    with pytest.raises(InputError, match=r"flows\.parquet: cannot write \(disk full\)"):  # exit 2, file named
        write_flows(ext, out)
    assert not out.exists()
    assert os.listdir(out.parent) == []


def test_atomic_write_gives_the_umask_mode_whatever_the_writer_asked(tmp_path: Path) -> None:
    from features.common import atomic_path

    target = tmp_path / "weights.bin"
    with atomic_path(target) as tmp:
        os.close(os.open(tmp, os.O_WRONLY | os.O_CREAT, 0o600))  # as safetensors creates its files
    umask = os.umask(0o022)
    os.umask(umask)
    assert target.stat().st_mode & 0o777 == 0o666 & ~umask


def test_read_flows_rejects_foreign_parquet(tmp_path: Path) -> None:
    p = tmp_path / "x.parquet"
    pl.DataFrame({"a": [1]}).write_parquet(p)
    with pytest.raises(InputError, match="metadata"):
        read_flows(p)


def test_cli_writes_table_and_summary(tmp_path: Path) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    out = tmp_path / "flows.parquet"
    res = CliRunner().invoke(app, ["flows", str(cap), "-o", str(out), "-q", "--udp-idle", "30"])
    assert res.exit_code == 0, res.output
    assert "1 capture file, 10 packets -> 2 flows" in res.stdout
    table, meta = read_flows(out)
    assert table.num_rows == 2 and meta["sources"][0]["file"] == str(cap)


@pytest.mark.parametrize("content", [b"", b"0123456789", b"hello, this is text\n" * 10, os.urandom(4096)])
def test_cli_not_a_capture_exits_2_and_writes_nothing(tmp_path: Path, content: bytes) -> None:
    bad = tmp_path / "bad.pcap"
    bad.write_bytes(content)
    out = tmp_path / "flows.parquet"
    res = CliRunner().invoke(app, ["flows", str(bad), "-o", str(out), "-q"])
    assert res.exit_code == 2
    assert res.stderr.count("\n") == 1 and str(bad) in res.stderr
    assert not out.exists()


def test_header_only_capture_gives_an_empty_table(tmp_path: Path) -> None:
    cap = tmp_path / "empty.pcap"
    with cap.open("wb") as f:
        dpkt.pcap.Writer(f)
    ext = extract_flows([cap])
    assert ext.flows.num_rows == 0 and ext.flows.schema.equals(FLOW_SCHEMA) and ext.packets == 0
    out = tmp_path / "flows.parquet"
    write_flows(ext, out)
    assert read_flows(out)[0].num_rows == 0


def test_payloads_can_be_left_out(tmp_path: Path) -> None:
    ext = extract_flows([write_capture(tmp_path / "a.pcap")], payloads=False)
    assert ext.payloads.height == 0 and ext.payloads.columns == ["flow_id", "ts_ns", "from_orig", "payload"]
    assert ext.flows.num_rows == 2


def test_cli_reads_a_folder_and_skips_non_captures(tmp_path: Path) -> None:
    folder = tmp_path / "caps"
    folder.mkdir()
    write_capture(folder / "a.pcap")
    write_capture(folder / "b.pcap", t0=T0 + 3600)  # an hour later (the same bytes would be a copy, read once)
    (folder / "notes.txt").write_text("not a capture")
    out = tmp_path / "flows.parquet"
    res = CliRunner().invoke(app, ["flows", str(folder), "-o", str(out), "-q"])
    assert res.exit_code == 0, res.output
    assert "2 capture files, 20 packets -> 4 flows" in res.stdout
    assert "skipped" in res.stderr and "notes.txt" in res.stderr
    table, meta = read_flows(out)
    assert table.num_rows == 4 and [Path(s["file"]).name for s in meta["sources"]] == ["a.pcap", "b.pcap"]


SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def test_cli_no_decap_keeps_the_outer_flow(tmp_path: Path) -> None:
    cap = SAMPLES / "tunnel-gre-portscan.pcap"
    for args, flows, protos in (([], 120, {"tcp"}), (["--no-decap"], 1, {"gre"})):
        out = tmp_path / f"f{len(args)}.parquet"
        res = CliRunner().invoke(app, ["flows", str(cap), "-o", str(out), "-q", *args])
        assert res.exit_code == 0, res.output
        df = pl.read_parquet(out)
        assert df.height == flows and set(df["proto"]) == protos
        assert df["tunnel"].is_null().all() == bool(args)


def test_schema_version_1_tables_read_with_a_null_tunnel(tmp_path: Path) -> None:
    ext = extract_flows([write_capture(tmp_path / "c.pcap")])
    out = tmp_path / "v1.parquet"
    write_flows(ext, out)
    table = pq.read_table(out)
    meta = dict(table.schema.metadata)
    meta[b"nta.schema_version"] = b"1"
    pq.write_table(table.drop_columns(["tunnel"]).replace_schema_metadata(meta), out)
    back, info = read_flows(out)
    assert info["schema_version"] == "1" and back.schema.remove_metadata().equals(FLOW_SCHEMA)
    assert back.column("tunnel").null_count == back.num_rows


def test_a_streamed_table_that_fails_mid_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cap = write_capture(tmp_path / "a.pcap")
    calls = []

    def broken(self: object, table: object, *a: object, **k: object) -> None:
        calls.append(1)
        raise OSError("disk full")

    monkeypatch.setattr(pq.ParquetWriter, "write_table", broken)
    out = tmp_path / "out" / "flows.parquet"
    out.parent.mkdir()
    with pytest.raises(InputError, match=r"flows\.parquet: cannot write \(disk full\)"):
        write_flow_stream(FlowStream([cap]), out)
    assert calls and os.listdir(out.parent) == []


def _dictionary_encoded(path: Path) -> dict[str, bool]:
    group = pq.ParquetFile(path).metadata.row_group(0)
    return {group.column(i).path_in_schema: group.column(i).has_dictionary_page for i in range(group.num_columns)}


@pytest.mark.parametrize("how", ["whole", "streamed", "scan"])
def test_columns_unique_per_flow_are_not_dictionary_encoded(tmp_path: Path, how: str) -> None:
    """A dictionary of a column whose every value differs is as big as the column: it is left out there."""
    cap = write_capture(tmp_path / "a.pcap")
    out = tmp_path / "flows.parquet"
    if how == "whole":
        write_flows(extract_flows([cap]), out)
    elif how == "streamed":
        write_flow_stream(FlowStream([cap]), out)
    else:
        res = CliRunner().invoke(app, ["scan", str(cap), "-o", str(tmp_path / "scan"), "-q"])
        assert res.exit_code == 0, res.output
        out = tmp_path / "scan" / "flows.parquet"
    encoded = _dictionary_encoded(out)
    assert {c for c in UNIQUE_PER_FLOW if encoded[c]} == set()
    assert encoded["conn_state"] and encoded["orig_h"] and encoded["resp_p"]
    if how == "scan":
        assert encoded["service"] and encoded["label"] and encoded["incident_id"]
