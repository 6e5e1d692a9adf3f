"""The end of a scan out of core (``analyzer.incident_sql``): each query against the polars statement over the whole
attack rows that it replaces, on generated rows (ties in start, p_attack and addresses; allowed rows; normal rows)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pyarrow as pa
import pytest
from attack_cases import CONFIGS, attack_rows, flow
from hypothesis import given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from analyzer import evidence, incident_sql, incidents, verdicts
from analyzer.alerts import first_flows
from analyzer.explain import number_of, sample_rows, typical_of
from analyzer.incidents import IncidentConfig
from analyzer.outputs import BatchCursor


def _full_rows(rows: list[Any], extra: list[tuple[float, bool]]) -> pl.DataFrame:
    """``attack_rows`` with the rest of ``verdicts.ATTACK_COLUMNS``: p_attack (few values: ties) and allowed."""
    att = attack_rows(rows)
    n = att.height
    p = [extra[i % len(extra)][0] for i in range(n)]
    allowed = [extra[i % len(extra)][1] for i in range(n)]
    return att.with_columns(
        p_attack=pl.Series(p, dtype=pl.Float32),
        confidence=pl.Series(np.linspace(0.5, 1.0, n), dtype=pl.Float32),
        novel=pl.lit(False),
        allowed=pl.Series(allowed, dtype=pl.Boolean),
        incident_id=pl.lit(None, pl.Int64),
    ).select(verdicts.ATTACK_COLUMNS)


@settings(max_examples=60, deadline=None)
@given(
    rows=st.lists(flow, min_size=1, max_size=100),
    extra=st.lists(st.tuples(st.sampled_from([0.6, 0.8, 0.99]), st.booleans()), min_size=1, max_size=5),
    config=st.sampled_from(CONFIGS),
)
def test_queries_answer_as_the_whole_rows_do(
    tmp_path_factory: Any, rows: list[Any], extra: list[tuple[float, bool]], config: IncidentConfig
) -> None:
    att = _full_rows(rows, extra)
    want_inc, want_members = incidents.find_incidents(att, config)
    whole = att.drop("incident_id").join(want_members, on="flow_id", how="left", maintain_order="left")
    temp: Path = tmp_path_factory.mktemp("duck")
    with incident_sql.Store(temp / "spill") as store:
        store.load(None, att.drop("incident_id"))
        inc, members = store.incidents(config)
        assert inc.equals(want_inc)
        assert members.frame().equals(want_members)
        # read a range at a time, as the outputs read it (batches of 3 pairs)
        cursor = BatchCursor(iter(store.batches(["flow_id", "incident_id"], 3, "members", "flow_id")))
        ids = whole["flow_id"].to_list()
        for lo, hi in zip(ids[::4], [*ids[3::4], ids[-1]], strict=False):
            want = want_members.filter(pl.col("flow_id").is_between(lo, hi))
            assert cursor.between(lo, hi).equals(want)
        # the rows the report names give the answers the whole rows give
        for first in (1, 3):  # the rows the report names give the answers the whole rows give
            named = store.rows(list(verdicts.ATTACK_COLUMNS), first, 2)
            assert verdicts.top_flows(named, 10, 2).equals(verdicts.top_flows(whole, 10, 2))
            assert verdicts.top_flows(named, 10, 1).equals(verdicts.top_flows(whole, 10, 1))
            assert first_flows(named).equals(first_flows(whole))

            def head(rows: pl.DataFrame, k: int = first) -> pl.DataFrame:
                rows = rows.filter(pl.col("incident_id").is_not_null()).sort("ts", "flow_id")
                return rows.group_by("incident_id", maintain_order=True).head(k)

            assert head(named).equals(head(whole))
        # per-incident filters, talkers, the suspicious count, the timeline
        members_rows = whole.filter(pl.col("incident_id").is_not_null())
        agg = store.filter_aggregates(evidence.MAX_SET, evidence.MAX_PORTS)
        assert evidence.filters_from(agg) == evidence.incident_filters(members_rows)
        for n in (1, 3, 5):
            assert_frame_equal(store.top_talkers(n), verdicts.top_talkers(whole, n), check_dtypes=False)
        assert store.suspicious() == verdicts.suspicious(whole).height
        span = (att["ts"].min(), att["ts"].max())
        line = verdicts.Timeline(("normal", "DoS", "Probe"), span, att.schema["ts"], (10, 37, 60))
        for batch in store.batches(["ts", "label"], rows=7):
            line.add(batch)
        for bins in (10, 37, 60):
            assert line.line(bins) == verdicts.timeline(whole, ("normal", "DoS", "Probe"), bins, span)
        chosen = inc["incident_id"].head(2).to_list()
        want = whole.filter(pl.col("incident_id").is_in(chosen)).sort("ts", "flow_id")
        # the explanation: the rows it samples, and each incident's typical values over all its rows
        every = {i: want.filter(pl.col("incident_id") == i)["flow_id"].to_numpy() for i in chosen}
        got = store.sampled(inc.filter(pl.col("incident_id").is_in(chosen)), 3)
        for i in chosen:
            assert got.filter(pl.col("incident_id") == i)["flow_id"].to_list() == sample_rows(every[i], 3).tolist()
        values = {  # a number with ties and nulls, an integer, a category with ties
            "rate": pl.Series("rate", [None if k % 5 == 4 else (k * 7 % 4) / 3 for k in range(att.height)]),
            "count": pl.Series("count", [k * 11 % 6 for k in range(att.height)], dtype=pl.Int64),
            "service": pl.Series("service", [("http", "ftp", None)[k % 3] for k in range(att.height)]),
        }

        def columns(names: list[str], rows: np.ndarray) -> pa.RecordBatchReader:
            assert (np.diff(rows) > 0).all()  # sorted, each once
            t = pl.DataFrame({"flow_id": att["flow_id"], **{n: values[n] for n in names}})
            t = t.filter(pl.col("flow_id").is_in(rows.tolist())).to_arrow()  # only the rows asked for
            return pa.RecordBatchReader.from_batches(t.schema, t.to_batches(max_chunksize=5))

        # each incident asks for some of the features (what its explanation names): those are answered, over its
        # rows only
        asked = {i: (["rate", "service"], ["count", "rate"])[k % 2] for k, i in enumerate(chosen)}
        typical = store.typical(asked, columns, lambda name: name == "service")
        assert set(typical) == {(i, name) for i, names in asked.items() for name in names}
        for i, names in asked.items():
            for name in names:
                vals = values[name].gather(every[i])
                assert typical[(i, name)] == (typical_of(vals), number_of(vals))
        assert store.typical({}, columns, lambda name: False) == {}
    assert not (temp / "spill").exists()  # the spill folder goes with the store


def test_noattack_rows_give_no_incident(tmp_path: Path) -> None:
    att = _full_rows([(2, 1, 1, 80, 0, 1.0)], [(0.1, False)])  # one normal row
    with incident_sql.Store(tmp_path / "spill") as store:
        store.load(None, att.drop("incident_id").head(0))
        inc, members = store.incidents(IncidentConfig())
        assert inc.height == 0 and members.frame().height == 0
        assert store.suspicious() == 0 and store.top_talkers(5).height == 0


def test_top_flow_candidates_break_ties_in_row_order(tmp_path: Path) -> None:
    """20 flows of one incident, all with the same p_attack: its top two are its first two rows, and the rows the
    report names must hold them (not merely the first row and two others of the same p_attack)."""
    att = _full_rows([(0, 1, 1, 80, 0, float(k)) for k in range(20)], [(0.6, False)])
    _, want_members = incidents.find_incidents(att, IncidentConfig())
    whole = att.drop("incident_id").join(want_members, on="flow_id", how="left", maintain_order="left")
    with incident_sql.Store(tmp_path / "spill") as store:
        store.load(None, att.drop("incident_id"))
        store.incidents(IncidentConfig())
        named = store.rows(list(verdicts.ATTACK_COLUMNS), 1, 2)
    assert verdicts.top_flows(whole, 10, 2)["flow_id"].to_list() == [0, 1]
    assert verdicts.top_flows(named, 10, 2).equals(verdicts.top_flows(whole, 10, 2))


def test_a_query_out_of_memory_runs_again_with_more(tmp_path: Path, monkeypatch: Any) -> None:
    """With DuckDB's limit far too small (1 MB), the queries run out of memory and run again with twice the limit
    until they fit: the scan writes the outputs a default scan writes."""
    from analyzer.pipeline import ScanConfig, run_scan

    cap = Path(__file__).resolve().parents[2] / "sample_pcaps" / "syn-flood.pcap"
    run_scan(ScanConfig(paths=(cap,), out=tmp_path / "default"))
    limits: list[int] = []
    close = incident_sql.Store.close

    def closing(store: incident_sql.Store) -> None:
        limits.append(store.limit_mb)
        close(store)

    monkeypatch.setattr(incident_sql, "MEMORY_LIMIT", "1MB")
    monkeypatch.setattr(incident_sql.Store, "close", closing)
    run_scan(ScanConfig(paths=(cap,), out=tmp_path / "tight"))
    assert limits and limits[0] > 1  # it ran out, and ran again with more
    for name in ("verdicts.csv", "alerts.ndjson", "flows.parquet"):
        assert (tmp_path / "tight" / name).read_bytes() == (tmp_path / "default" / name).read_bytes(), name


def test_a_members_pass_started_here_is_read_on_another_thread(tmp_path: Path) -> None:
    """flows.parquet is written on a thread (analyzer.pipeline) while this one queries the store: the pass over the
    incident ids is started here and read there, and a copy told to stop stops before its next row group."""
    import threading

    import pyarrow.parquet as pq

    from analyzer.outputs import Stopped, finish_flows

    # (label DoS/Probe, source, target, port, proto, start s): attack flows of a few sources, 0.1 s apart
    att = _full_rows([(k % 2, 1 + k % 4, 1 + k % 3, 80, 0, k / 10) for k in range(60)], [(0.99, False)])
    config = CONFIGS[0]
    _, want = incidents.find_incidents(att, config)
    whole = att.drop("incident_id").join(want, on="flow_id", how="left", maintain_order="left")
    part = tmp_path / "part.parquet"
    table = pa.table({"flow_id": pa.array(att["flow_id"].to_numpy()), "incident_id": pa.nulls(att.height, pa.int64())})
    pq.write_table(table, part, row_group_size=16)  # four row groups, as four chunks would write them
    with incident_sql.Store(tmp_path / "spill") as store:
        store.load(None, att.drop("incident_id"))
        inc, members = store.incidents(config)
        cursor = members.cursor()  # the query runs here
        errors: list[BaseException] = []

        def copy() -> None:
            try:
                finish_flows(part, tmp_path / "flows.parquet", cursor, {b"k": b"v"})
            except BaseException as e:
                errors.append(e)

        worker = threading.Thread(target=copy)
        worker.start()
        for _ in range(20):  # the store's own connection is busy meanwhile, and answers as before
            assert store.suspicious() == verdicts.suspicious(whole).height
        worker.join()
        assert not errors
        got = pl.from_arrow(pq.read_table(tmp_path / "flows.parquet"))
        assert isinstance(got, pl.DataFrame)
        joined = got.drop("incident_id").join(want, on="flow_id", how="left", maintain_order="left")
        assert got["incident_id"].to_list() == joined["incident_id"].to_list() and inc.height > 0
        stop = threading.Event()
        stop.set()
        with pytest.raises(Stopped):
            finish_flows(part, tmp_path / "stopped.parquet", members, {}, stop)
