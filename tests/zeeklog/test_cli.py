"""``nta scan conn.log``, ``nta features conn.log``, ``nta flows conn.log``: the normal model path on a Zeek log."""

from __future__ import annotations

import gzip
import hashlib
import json
import subprocess
import sys
from pathlib import Path

import polars as pl
import pytest
from typer.testing import CliRunner
from zeek_testlib import ROWS, conn_log

from analyzer.cli import app
from features.flows.extract import extract_flows
from features.flows.zeek import CONN_LOG, conn_frame, save_log

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
DEMO = SAMPLES / "demo-mixed.pcap"


def nta(*args: object) -> object:
    return CliRunner().invoke(app, [str(a) for a in args])


def _conn_log(path: Path, capture: Path = DEMO) -> Path:
    flows = pl.from_arrow(extract_flows([capture]).flows)
    assert isinstance(flows, pl.DataFrame)
    save_log(CONN_LOG, conn_frame(flows), path)
    return path


def test_scan_conn_log_labels_as_the_capture(tmp_path: Path) -> None:
    log = _conn_log(tmp_path / "conn.log")
    res = nta("scan", log, "--out", tmp_path / "z")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    shown = " ".join(res.output.split())  # type: ignore[attr-defined]
    assert "Zeek logs 1: " in shown and "not in it, taken as 0: wrong_fragment, urgent" in shown
    report = json.loads((tmp_path / "z" / "report.json").read_text())
    assert report["input"]["kind"] == "zeek"
    assert {"wrong_fragment", "urgent", "hot"} <= set(report["input"]["unavailable_features"])
    assert report["captures"][0]["format"] == "zeek-tsv" and report["captures"][0]["records"] == 944
    assert "Input" in (tmp_path / "z" / "report.html").read_text()
    assert nta("scan", DEMO, "--out", tmp_path / "c").exit_code == 0  # type: ignore[attr-defined]
    from_log = pl.read_csv(tmp_path / "z" / "verdicts.csv")
    from_capture = pl.read_csv(tmp_path / "c" / "verdicts.csv")
    # The model sees the same header and window features, so it gives the same verdicts, flow by flow.
    assert from_log.height == from_capture.height == 944
    assert from_log["label"].to_list() == from_capture["label"].to_list()
    assert set(from_log["label"]) > {"normal"}  # attacks found in the log, not only normal


def test_features_and_flows_of_a_conn_log(tmp_path: Path) -> None:
    log = _conn_log(tmp_path / "conn.log")
    res = nta("features", log, "-o", tmp_path / "k.parquet")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "nta: Zeek conn log: not in it, taken as 0" in res.output  # type: ignore[attr-defined]
    assert pl.read_parquet(tmp_path / "k.parquet").height == 944
    res = nta("flows", log, "-o", tmp_path / "f.parquet", "--since", "2024-03-01T10:00:30Z")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert "Read 1 Zeek conn log, 944 records" in res.output and "records outside the filters" in res.output  # type: ignore[attr-defined]
    got = pl.read_parquet(tmp_path / "f.parquet")
    assert 0 < got.height < 944 and got["ts"].min().isoformat() >= "2024-03-01T10:00:30"  # type: ignore[union-attr]


def test_refusals_exit_2_with_one_line(tmp_path: Path) -> None:
    log = _conn_log(tmp_path / "conn.log")
    bad = tmp_path / "bad.log"
    bad.write_text("#separator \\x09\n#fields\tts\tid.orig_h\n#types\ttime\taddr\nx\ty\tz\n")
    cases = [
        (["scan", log, DEMO], "not both"),
        (["scan", bad], "no usable Zeek conn record (zeek_field_count 1)"),
        (["scan", log, "--carve"], "--carve needs packets"),
    ]
    for args, message in cases:
        out = tmp_path / "out"
        res = nta(*args, "--out", out, "-q")
        assert res.exit_code == 2, (args, res.output)  # type: ignore[attr-defined]
        errors = [x for x in res.output.splitlines() if x.startswith("nta: error:")]  # type: ignore[attr-defined]
        assert len(errors) == 1 and message in errors[0], res.output  # type: ignore[attr-defined]
        assert "Traceback" not in res.output  # type: ignore[attr-defined]
        assert not out.exists()


def test_zeek_outputs_keep_the_logs_uids(tmp_path: Path) -> None:
    """``nta scan conn.log --zeek``: nta.log is keyed by the log's own uids, so it joins with the team's Zeek logs."""
    log = tmp_path / "conn.log"
    log.write_text(conn_log())
    res = nta("scan", log, "--zeek", "--out", tmp_path / "o", "-q")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    uids = [r.split(" ")[1] for r in ROWS]
    uids.insert(3, uids[2])  # the ICMP echo connection: request and reply records, one uid

    def logged(name: str) -> list[str]:
        lines = (tmp_path / "o" / name).read_text().splitlines()
        fields = next(x for x in lines if x.startswith("#fields")).split("\t")[1:]
        return [x.split("\t")[fields.index("uid")] for x in lines if not x.startswith("#")]

    assert logged("conn.log") == uids and logged("nta.log") == uids
    # the flow table's uid (unique per flow) is the log's own too, except for the two records of the ICMP
    # connection, which get nta's own uids (features.flows.uid): one uid names one flow
    table = pl.read_parquet(tmp_path / "o" / "flows.parquet")["uid"].to_list()
    assert len(set(table)) == len(table) == len(uids)
    assert [i for i, (u, z) in enumerate(zip(table, uids, strict=True)) if u != z] == [2, 3]


def test_a_log_without_records_is_an_empty_scan(tmp_path: Path) -> None:
    log = tmp_path / "conn.log"
    log.write_text(conn_log([]))  # an hour without traffic: header and #close only
    res = nta("scan", log, "--out", tmp_path / "o", "-q")
    assert res.exit_code == 0, res.output  # type: ignore[attr-defined]
    assert json.loads((tmp_path / "o" / "report.json").read_text())["flows"] == 0


def _piped(*args: object, stdin: bytes) -> subprocess.CompletedProcess[bytes]:
    """``python -m analyzer`` with ``stdin`` written down a real pipe (nta reads file descriptor 0 itself)."""
    cmd = [sys.executable, "-m", "analyzer", *map(str, args)]
    return subprocess.run(cmd, input=stdin, capture_output=True, timeout=120, check=False)


def test_a_zeek_log_piped_in(tmp_path: Path) -> None:
    """``zcat conn.log.gz | nta scan -``: the stream is told by content and read as the file would be."""
    log = _conn_log(tmp_path / "conn.log")
    res = _piped("flows", "-", "-o", tmp_path / "s.parquet", stdin=gzip.compress(log.read_bytes()))
    assert res.returncode == 0, res.stderr
    assert b"Read 1 Zeek conn log, 944 records" in res.stdout
    assert nta("flows", log, "-o", tmp_path / "f.parquet", "-q").exit_code == 0  # type: ignore[attr-defined]
    piped, direct = pl.read_parquet(tmp_path / "s.parquet"), pl.read_parquet(tmp_path / "f.parquet")
    assert piped["source_file"].unique().to_list() == ["-"]
    assert piped.drop("source_file").equals(direct.drop("source_file"))
    res = _piped("scan", "-", "--out", tmp_path / "o", "-q", "--format", "json", stdin=log.read_bytes())
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout)
    assert report["input"]["kind"] == "zeek" and report["captures"][0]["file"] == "-"
    assert report["captures"][0]["sha256"] == hashlib.sha256(log.read_bytes()).hexdigest()
    res = _piped("scan", "-", "--carve", "--out", tmp_path / "c", "-q", stdin=log.read_bytes())
    assert res.returncode == 2 and res.stderr.decode().endswith("a Zeek conn log has none\n"), res.stderr
    dns = log.read_bytes().replace(b"#path\tconn", b"#path\tdns")
    res = _piped("flows", "-", "-o", tmp_path / "d.parquet", "-q", stdin=dns)
    assert res.returncode == 2 and res.stderr.decode() == "nta: error: -: a Zeek dns log, not conn\n"


def test_a_gzipped_conn_log_bomb_is_stopped_as_a_capture_bomb_is(tmp_path: Path) -> None:
    """The Zeek reader inflates its own gzip: it takes the same --max-inflate/--max-bytes guards as captures."""
    import zlib

    from features.capture.stream import INFLATE_FLOOR, ReadLimits
    from features.common import InputError
    from features.zeeklog.read import read_log

    log = tmp_path / "conn.log.gz"
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    with log.open("wb") as f:
        f.write(c.compress(b"#separator \\x09\n#fields\tts\tuid\n#types\ttime\tstring\n"))
        line = b"1709287201.000000\tCabc\n"
        block = line * ((1 << 20) // len(line))  # 1 MiB of one repeated line: deflates ~500x
        for _ in range((INFLATE_FLOOR >> 20) + 8):
            f.write(c.compress(block))
        f.write(c.flush())
    wanted = {"ts": "time", "uid": "string"}
    with pytest.raises(InputError, match=r"conn\.log\.gz: gzip inflates more than 100x .*--max-inflate"):
        read_log(log, wanted)
    assert read_log(log, wanted, limits=ReadLimits(0, 0)).frame.height > 1_000_000  # no limit: read through
    res = subprocess.run(
        [sys.executable, "-m", "analyzer", "flows", str(log), "-o", str(tmp_path / "f.parquet"), "-q"],
        capture_output=True,
        timeout=300,
        check=False,
    )
    assert res.returncode == 2 and "gzip inflates more than 100x" in res.stderr.decode()
    assert len(res.stderr.decode().splitlines()) == 1 and not (tmp_path / "f.parquet").exists()
