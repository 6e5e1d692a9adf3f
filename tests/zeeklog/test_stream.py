"""Zeek conn logs of any size: read block by block and sorted out of core (``features.zeeklog.stream``), giving
the table a log read whole gives, chunk by chunk, with nothing left behind."""

from __future__ import annotations

import gzip
from collections import Counter
from pathlib import Path

import duckdb
import polars as pl
import pytest
from zeek_testlib import ROWS, conn_log

import features.common
import features.zeeklog.read as zread
import features.zeeklog.stream as zstream
from features.zeeklog.conn import WANTED, _flows
from features.zeeklog.read import read_log
from features.zeeklog.stream import ConnStream, read_conn_logs

# Records as Zeek writes them (by connection end, so not by start), with what only the log's order can sort: two
# records of one flow key and start (bytes 1, 2 and 3) and two ICMP echo connections of one key (their replies:
# 1 and 2 packets).
SAME_KEY = [ROWS[0].replace(" 5 400 4 2200 ", f" 5 {n} 4 2200 ") for n in (401, 402, 403)]
SAME_ECHO = [ROWS[2].replace(" 1 84 1 84 ", f" 1 84 {n} {84 * n} ") for n in (1, 2)]
LOG = [ROWS[5], SAME_KEY[0], SAME_ECHO[0], ROWS[1], SAME_KEY[1], ROWS[7], SAME_ECHO[1], ROWS[3], SAME_KEY[2], ROWS[6]]


def _table(paths: list[Path]) -> pl.DataFrame:
    ext = read_conn_logs(paths)
    flows = pl.from_arrow(ext.flows)
    assert isinstance(flows, pl.DataFrame)
    assert ext.service_hints is not None and ext.stream_ids is not None
    return flows.with_columns(_service=ext.service_hints, _stream=ext.stream_ids)


def test_blocks_of_any_size_give_one_table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A block a record: the same table as one block (flow ids, uids, Zeek's services, streams); records of one
    key keep the log's order, the replies split from ICMP connections too, whichever block they came in."""
    log = tmp_path / "conn.log"
    log.write_text(conn_log(LOG))
    whole = _table([log])
    monkeypatch.setattr(zread, "BLOCK_BYTES", 64)  # each record a block of its own
    assert _table([log]).equals(whole)
    assert whole["ts"].is_sorted() and whole["flow_id"].to_list() == list(range(len(LOG) + 2))
    same = whole.filter(pl.col("resp_p") == 8080)
    assert same["orig_ip_bytes"].to_list() == [401, 402, 403]
    replies = whole.filter(pl.col("icmp_type") == 0)
    assert replies["orig_pkts"].to_list() == [1, 2]


def test_records_are_numbered_across_blocks(tmp_path: Path) -> None:
    """``_flows`` numbers a block's records and its split ICMP replies on from the counts of the log's earlier
    blocks (the sort's last keys): a log read in blocks sorts as one read whole."""
    log = tmp_path / "conn.log"
    log.write_text(conn_log([ROWS[0], ROWS[2], ROWS[1]]))
    frame = read_log(log, WANTED).frame
    flows = _flows(frame, 0, "conn.log", Counter(), (10, 3))
    assert flows.select("_reply", "_row").rows() == [(False, 10), (False, 11), (False, 12), (True, 3)]
    assert flows.filter("_reply")["icmp_type"].to_list() == [0]


def test_chunks_are_the_table_in_order(tmp_path: Path) -> None:
    """Chunks of ``chunk_flows`` flows (the last one smaller), flow ids running on: the table read whole; the
    spool's folder is gone when the chunks end, and when they are closed early."""
    older, newer = tmp_path / "conn.1.log", tmp_path / "conn.2.log.gz"
    older.write_text(conn_log(LOG[:6]))
    # the newer piece starts with a record of the same key and start as one of the older piece's (bytes 409)
    later = [SAME_KEY[0].replace(" 401 ", " 409 "), *(r.replace("1709287200.", "1709287201.", 1) for r in LOG[6:])]
    newer.write_bytes(gzip.compress(conn_log(later).encode()))
    spool = tmp_path / "spool"
    spool.mkdir()
    stream = ConnStream([newer, older], chunk_flows=5, spool_dir=spool)
    chunks = list(stream.chunks())
    assert [c.flows.height for c in chunks] == [5, 5, 3]
    assert not any(spool.iterdir())
    flows = pl.concat([c.flows for c in chunks])
    assert flows.equals(pl.from_arrow(read_conn_logs([older, newer]).flows))  # type: ignore[arg-type]
    assert flows["flow_id"].to_list() == list(range(13))
    tie = flows.filter(pl.col("orig_ip_bytes").is_in([401, 409]))  # the older piece's first: pieces in time order
    assert tie["orig_ip_bytes"].to_list() == [401, 409] and tie["source_file"].to_list() == [str(older), str(newer)]
    ext = stream.extraction()
    assert [s["file"] for s in ext.sources] == [str(older), str(newer)] and ext.flows.num_rows == 0
    # the flows whose uid is nta's, not the log's: a uid given four times, two echo connections of two records
    assert ext.uids is not None and ext.uids["flow_id"].is_sorted()
    assert sorted(ext.uids["uid"].to_list()) == ["CHttp0000000000001"] * 4 + ["CIcmp000000000001"] * 4
    early = ConnStream([older], chunk_flows=2, spool_dir=spool).chunks()
    next(early)
    assert any(spool.iterdir())
    early.close()
    assert not any(spool.iterdir())


def test_the_sort_is_done_again_with_more_memory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A sort that runs out of DuckDB's memory limit is done again with twice the limit: the same table; with no
    room to grow, DuckDB's error."""
    rows = [
        ROWS[0].replace("CHttp0000000000001", f"C{i:017d}").replace("1709287200.000000", f"{1709287200 + i % 997}.5")
        for i in range(20_000)
    ]
    log = tmp_path / "conn.log"
    log.write_text(conn_log(rows))
    whole = _table([log])
    monkeypatch.setattr(zstream, "MEMORY_LIMIT_MB", 1)
    assert _table([log]).equals(whole)
    monkeypatch.setattr(features.common, "DUCKDB_MAX_SHARE", 0.0)
    with pytest.raises(duckdb.OutOfMemoryException):
        _table([log])
