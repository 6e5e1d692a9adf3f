"""The end of a scan writes verdicts.csv and the flow alerts on a thread while the incidents are explained
(analyzer.pipeline._verdict_pass): the pass stops when told to, and alerts.ndjson is the incident alerts followed by
the flow alerts that pass wrote, as one writer would have written them."""

from __future__ import annotations

import threading
from pathlib import Path

import polars as pl
import pytest

from analyzer.alerts import AlertWriter
from analyzer.outputs import Members, Stopped, VerdictRows


def _spilled(path: Path) -> VerdictRows:
    rows = VerdictRows(path)
    for lo in (0, 3, 6):  # three chunks, as three chunks of a scan spill them
        rows.write(pl.DataFrame({"flow_id": range(lo, lo + 3), "incident_id": [None] * 3, "label": ["DoS"] * 3}))
    return rows


def test_the_pass_stops_before_its_next_chunk_when_told(tmp_path: Path) -> None:
    members = Members(pl.DataFrame({"flow_id": [1, 7], "incident_id": [1, 2]}))
    columns = ["flow_id", "incident_id", "label"]
    done = _spilled(tmp_path / "a.rows")
    done.write_csv(tmp_path / "a.csv", members, columns)
    got = pl.read_csv(tmp_path / "a.csv")
    assert got["flow_id"].to_list() == list(range(9)) and got["incident_id"].to_list()[:3] == [None, 1, None]
    stop = threading.Event()
    stop.set()
    with pytest.raises(Stopped):
        _spilled(tmp_path / "b.rows").finish(members, columns, csv=tmp_path / "b.csv", stop=stop)
    assert (tmp_path / "b.csv").read_bytes() == b""  # not one chunk after the stop


def test_alerts_from_two_writers_read_as_one(tmp_path: Path) -> None:
    lines = ['{"flow":1}', '{"flow":2}', '{"flow":3}']
    flows = AlertWriter(tmp_path / "flows.part", 0.9)
    flows._f.write("\n".join(lines) + "\n")  # as add() writes a chunk's lines
    flows.events = 3
    flows.close()
    out = AlertWriter(tmp_path / "alerts.ndjson", 0.9)
    out._write(iter([{"incident": 1}]))  # as begin() writes the incident alerts
    out.extend(tmp_path / "flows.part", flows.events)
    out.close()
    assert (tmp_path / "alerts.ndjson").read_text().splitlines() == ['{"incident":1}', *lines]
    assert out.events == 4


def _sure(first: int, n: int, icmp: pl.DataType) -> pl.DataFrame:
    """``n`` flow-alert rows (what ``AlertWriter.sure`` keeps), ICMP columns of the given width."""
    ids = range(first, first + n)
    return pl.DataFrame(
        {
            "flow_id": list(ids),
            "ts": [1_700_000_000_000_000 + i for i in ids],
            "uid": [f"C{i:017d}" for i in ids],
            "orig_h": [f"10.0.0.{i}" for i in ids],
            "resp_h": ["10.0.1.1"] * n,
            "orig_p": pl.Series([None if i % 2 else 40000 + i for i in ids], dtype=pl.Int32),
            "resp_p": pl.Series([None if i % 2 else 80 for i in ids], dtype=pl.Int32),
            "proto": ["icmp" if i % 2 else "tcp" for i in ids],
            "icmp_type": pl.Series([8 if i % 2 else None for i in ids], dtype=icmp),
            "icmp_code": pl.Series([0 if i % 2 else None for i in ids], dtype=icmp),
            "community_id": [f"1:{i}" for i in ids],
            "label": ["DoS"] * n,
            "confidence": [0.95] * n,
            "p_attack": [0.97] * n,
            "incident_id": pl.Series([1] * n, dtype=pl.Int64),
            "service": ["http"] * n,
            "conn_state": ["S0"] * n,
            "model_id": ["m1"] * n,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )


def test_flow_alerts_are_written_several_chunks_at_a_time_as_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from analyzer import alerts

    chunks = [_sure(0, 3, pl.Int16()), _sure(3, 0, pl.Int32()), _sure(3, 2, pl.Int32()), _sure(5, 4, pl.Int16())]
    want = [line for c in chunks for line in alerts.flow_event_lines(c).to_list()]
    assert len(want) == 9
    w = AlertWriter(tmp_path / "all.ndjson", 0.9)
    for c in chunks:
        w.add(c)
    assert w.events == 0  # fewer than ALERT_ROWS: none written yet
    w.close()
    assert (tmp_path / "all.ndjson").read_text().splitlines() == want and w.events == 9
    monkeypatch.setattr(alerts, "ALERT_ROWS", 4)
    w = AlertWriter(tmp_path / "fours.ndjson", 0.9)
    written = []
    for c in chunks:
        w.add(c)
        written.append(w.events)
    w.close()
    assert written == [0, 0, 5, 9]  # written once 4 or more are waiting
    assert (tmp_path / "fours.ndjson").read_text().splitlines() == want and w.events == 9


def _buffer_bytes(df: pl.DataFrame) -> int:
    """Bytes of every buffer ``df``'s columns point into (string views: the whole buffers they view)."""
    table = df.to_arrow(compat_level=pl.CompatLevel.newest())
    return sum(b.size for col in table.columns for chunk in col.chunks for b in chunk.buffers() if b is not None)


def test_flow_alerts_waiting_hold_their_own_rows_not_their_chunks(tmp_path: Path) -> None:
    """Alert rows are filtered from chunks of verdicts: kept as they are, each would keep its chunk's strings."""
    big = _sure(0, 20_000, pl.Int32()).with_columns(pl.col("uid") + "x" * 40)  # long strings: in the views' buffers
    w = AlertWriter(tmp_path / "alerts.ndjson", 0.9)
    for first in range(0, 20_000, 5_000):
        w.add(big.filter(pl.col("flow_id").is_in([first, first + 1])))
    assert w.events == 0 and _buffer_bytes(big) > 1_000_000
    assert sum(_buffer_bytes(f) for f in w._pending) < 20_000  # (the writer's own list: what it keeps alive)
    w.close()
    assert w.events == 8
