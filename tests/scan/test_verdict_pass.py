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
