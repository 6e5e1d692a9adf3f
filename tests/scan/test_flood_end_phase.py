"""The end of a scan on floods: every flow of a spoofed flood is an attack row, so what the scan keeps per attack
row decides its memory. Incidents are grouped on integer codes, the attack rows spill while reading, alerts and
verdicts.csv stream in one pass, report.json lists at most ``LISTED_MEMBERS`` uids an incident. Each is checked
against the plain statement it replaced."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import pytest
from attack_cases import CONFIGS, T0, attack_rows, flow
from hypothesis import given, settings
from hypothesis import strategies as st

from analyzer import incidents, pipeline, verdicts
from analyzer.alerts import alert_events, flow_event_lines, flow_events
from analyzer.incidents import IncidentConfig
from analyzer.pipeline import ScanConfig, run_scan

REPO = Path(__file__).resolve().parents[2]


def _by_window_expressions(att: pl.DataFrame, config: IncidentConfig) -> pl.DataFrame:
    """The grouping rules as first written, with polars window expressions over strings (what
    ``find_incidents`` computed before it used integer codes): flow_id -> (grouped_by, key, first flow of its
    session). Nested windows evaluate "minor" within the enclosing window's group."""
    att = att.filter(pl.col("label") != verdicts.NORMAL)
    minor = pl.len().over("label", "orig_h") < config.minor_flows
    many = config.spread_sources
    to_target = minor & (pl.col("orig_h").filter(minor).n_unique().over("label", "resp_h") >= many)
    port = pl.format("{}/{}", pl.col("proto"), pl.col("resp_p").fill_null(-1))
    to_port = minor & ~to_target & (pl.col("orig_h").filter(minor & ~to_target).n_unique().over("label", port) >= many)
    att = att.with_columns(
        grouped_by=pl.when(to_target)
        .then(pl.lit("target"))
        .when(to_port)
        .then(pl.lit("port"))
        .otherwise(pl.lit("source")),
        key=pl.when(to_target).then(pl.col("resp_h")).when(to_port).then(port).otherwise(pl.col("orig_h")),
    ).sort(["label", "grouped_by", "key", "ts", "flow_id"])
    gap = pl.duration(microseconds=int(config.gap_s * 1e6))
    prev_end = pl.col("ts_end").cum_max().shift(1).over("label", "grouped_by", "key")
    att = att.with_columns(session=(prev_end.is_null() | (pl.col("ts") - prev_end > gap)).cum_sum())
    first = pl.col("flow_id").first().over("session").alias("first")
    return att.select("flow_id", "grouped_by", "key", first).sort("flow_id")


def _grouping(att: pl.DataFrame, config: IncidentConfig) -> pl.DataFrame:
    """``find_incidents``' answer in the oracle's terms."""
    inc, members = incidents.find_incidents(att, config)
    first = members.group_by("incident_id").agg(pl.col("flow_id").min().alias("first"))
    return (
        members.join(inc.select("incident_id", "grouped_by", "key"), on="incident_id")
        .join(first, on="incident_id")
        .select("flow_id", "grouped_by", "key", "first")
        .sort("flow_id")
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(flow, min_size=1, max_size=120), st.sampled_from(CONFIGS))
def test_integer_grouping_is_the_window_expressions(rows: list[Any], config: IncidentConfig) -> None:
    att = attack_rows(rows)
    want = _by_window_expressions(att, config)
    assert _grouping(att, config).equals(want)


@pytest.mark.parametrize(
    ("desc", "rows", "grouped"),
    [
        # 6 spoofed sources, one SYN each, to one target: one incident by target
        ("spoofed flood", [(0, s, 1, 80, 0, s * 0.1) for s in range(1, 7)], {"target"}),
        # a scanner's 10 flows plus 4 one-flow sources to the same target: nested windows count the scanner's
        # single flow to that target as minor there, so the 4 others are grouped by target
        (
            "scanner beside few spoofed",
            [(1, 1, 1 if p == 0 else 2, 1000 + p, 0, p * 0.1) for p in range(10)]
            + [(1, s, 1, 80, 0, 2 + s) for s in (3, 4, 5, 6)],
            {"source", "target"},
        ),
        # 5 spoofed sources to 5 targets on one port: by port
        ("by port", [(0, s, s % 4 + 1, 67, 1, s) for s in range(1, 6)], {"port"}),
    ],
)
def test_grouping_table(desc: str, rows: list[Any], grouped: set[str]) -> None:
    att = attack_rows(rows)
    got = _grouping(att, IncidentConfig())
    assert got.equals(_by_window_expressions(att, IncidentConfig())), desc
    assert set(got["grouped_by"]) == grouped, desc


def test_rows_out_of_start_order_are_sorted_first() -> None:
    att = attack_rows([(0, s % 7, 1, 80, 0, s * 7.3 % 100) for s in range(60)])
    shuffled = att.sample(fraction=1.0, shuffle=True, seed=3)
    a_inc, a_mem = incidents.find_incidents(att)
    b_inc, b_mem = incidents.find_incidents(shuffled)
    assert a_inc.equals(b_inc) and a_mem.equals(b_mem)


def _verdict_chunk(start: int, n: int, attack_every: int) -> pl.DataFrame:
    flows = pl.DataFrame(
        {
            "flow_id": np.arange(start, start + n, dtype=np.int64),
            "uid": [f"C{i:017d}" for i in range(start, start + n)],
            "community_id": [f"1:{i}" for i in range(start, start + n)],
            "source_file": ["x.pcap"] * n,
            "ts": [T0 + dt.timedelta(seconds=i) for i in range(start, start + n)],
            "ts_end": [T0 + dt.timedelta(seconds=i + 1) for i in range(start, start + n)],
            "orig_h": [f"10.{i // 256 % 256}.{i % 256}.1" for i in range(start, start + n)],
            "orig_p": pl.Series([1024] * n, dtype=pl.Int32),
            "resp_h": ["192.0.2.1"] * n,
            "resp_p": pl.Series([80] * n, dtype=pl.Int32),
            "proto": ["tcp"] * n,
            "conn_state": ["S0"] * n,
            "orig_bytes": np.zeros(n, np.int64),
            "resp_bytes": np.zeros(n, np.int64),
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC"), "ts_end": pl.Datetime("us", "UTC")},
    )
    proba = np.zeros((n, 5), np.float32)
    hit = (np.arange(start, start + n) % attack_every) == 0
    proba[hit, 1], proba[~hit, 0] = 0.9, 0.9
    proba[hit, 0], proba[~hit, 1] = 0.1, 0.1
    classes = ("normal", "DoS", "Probe", "R2L", "U2R")
    return verdicts.build_verdicts(flows, pl.Series(["http"] * n), proba, classes, "m1")


def _kept_and_spilled(spill: Path, chunks: int, rows: int, attack_every: int) -> tuple[verdicts.Tally, Any, Any]:
    """The same verdict chunks tallied twice: attack rows kept in memory, and spilled to ``spill``; the spilling
    tally and both tallies' attack rows."""
    kept, spilled = verdicts.Tally(), verdicts.Tally(spill=spill)
    for k in range(chunks):
        chunk = _verdict_chunk(k * rows, rows, attack_every=attack_every)
        kept.add(chunk)
        spilled.add(chunk)
    return spilled, kept.attacks(), spilled.attacks()


def test_attack_rows_spilled_come_back_as_kept(tmp_path: Path) -> None:
    spilled, a, b = _kept_and_spilled(tmp_path / "attacks.rows", 4, 50, attack_every=3)
    assert a is not None and b is not None
    assert b.height == spilled.attack_rows == 67 and b.columns == list(verdicts.ATTACK_COLUMNS)
    assert a.equals(b) and b.n_chunks() == 1
    # read back a column at a time; the few-valued strings as 4-byte codes, their values unchanged
    few = {c for c, t in b.schema.items() if t == pl.Categorical}
    assert few == verdicts.FEW_VALUES and all(a.schema[c] == pl.String for c in few)
    assert b.cast(dict.fromkeys(few, pl.String)).equals(a) and b.schema.keys() == a.schema.keys()
    lean = spilled.attacks(skip=("incident_id",))
    assert lean is not None and lean.columns == [c for c in verdicts.ATTACK_COLUMNS if c != "incident_id"]
    assert lean.equals(b.drop("incident_id"))
    assert verdicts.Tally(spill=tmp_path / "none.rows").attacks() is None


@pytest.fixture(scope="module")
def flood_scan(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("flood") / "out"
    config = ScanConfig(
        paths=(REPO / "sample_pcaps" / "demo-mixed.pcap",), out=out, device="cpu", chunk_flows=64, alert_confidence=0.0
    )
    return out, run_scan(config)


def _typed_verdicts(out: Path, result: Any) -> pl.DataFrame:
    v = pl.read_csv(out / "verdicts.csv", infer_schema_length=0)
    ints = ["flow_id", "orig_p", "resp_p", "orig_bytes", "resp_bytes", "incident_id"]
    floats = ["confidence", "p_attack", *(verdicts.prob_column(c) for c in result.classes)]
    return v.with_columns(
        *(pl.col(c).cast(pl.Int64) for c in ints),
        *(pl.col(c).cast(pl.Float64) for c in floats),
        *(pl.col(c) == "true" for c in ("novel", "allowed")),
        *(pl.col(c).str.to_datetime(verdicts.CSV_TIME_FORMAT, time_zone="UTC") for c in ("ts", "ts_end")),
    )


def test_streamed_alerts_are_the_whole_tables_events(flood_scan: tuple[Path, Any]) -> None:
    out, result = flood_scan
    v = _typed_verdicts(out, result)
    flows = pl.read_parquet(out / "flows.parquet")
    want = [json.dumps(e, separators=(",", ":")) for e in alert_events(v, result.incidents, 0.0, flows)]
    got = (out / "alerts.ndjson").read_text().splitlines()
    assert len(want) > 300 and got == want


def test_top_flows_are_whole_verdict_rows(flood_scan: tuple[Path, Any]) -> None:
    out, result = flood_scan
    v = _typed_verdicts(out, result)
    report = json.loads((out / "report.json").read_text())
    ids = verdicts.top_flows(result.attacks, 10)["flow_id"].to_list()  # ranked on the attack rows kept
    # at least the incidents' first flows (how many depends on the model's verdicts)
    assert [f["flow_id"] for f in report["top_flows"]] == ids and len(ids) >= 2
    uid = dict(v.select("flow_id", "uid").iter_rows())
    assert [f["uid"] for f in report["top_flows"]] == [uid[i] for i in ids]  # the whole rows, from the spill
    assert list(report["top_flows"][0]) == [*verdicts.verdict_columns(result.classes), "wireshark_filter"]


def test_member_lists_are_capped(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline, "LISTED_MEMBERS", 4)
    out = tmp_path / "out"
    result = run_scan(ScanConfig(paths=(REPO / "sample_pcaps" / "syn-flood.pcap",), out=out, device="cpu"))
    report = json.loads((out / "report.json").read_text())
    v = _typed_verdicts(out, result)
    for inc in report["incidents"]:
        members = v.filter(pl.col("incident_id") == inc["incident_id"]).sort("ts", "flow_id")
        assert members.height == inc["flows"]
        assert inc["uids"] == members["uid"].head(4).to_list()
        assert inc["community_ids"] == members["community_id"].head(4).unique(maintain_order=True).to_list()
    assert max(inc["flows"] for inc in report["incidents"]) > 4


@pytest.mark.parametrize("n", [0, 1, 3, 7])
def test_top_talkers_are_the_plain_group_by(n: int) -> None:
    rng = np.random.default_rng(n)
    m = 200
    att = pl.DataFrame(
        {
            "orig_h": [f"10.0.0.{x}" for x in rng.integers(0, 9, m)],
            "resp_h": [f"192.0.2.{x}" for x in rng.integers(0, 5, m)],
            "resp_p": pl.Series(rng.integers(1, 4, m), dtype=pl.Int32),
            "label": rng.choice(["DoS", "Probe", "normal"], m).tolist(),
            "p_attack": rng.random(m),
            "allowed": rng.random(m) < 0.1,
        }
    )
    want = (
        verdicts.suspicious(att)
        .group_by("orig_h")
        .agg(
            flows=pl.len(),
            classes=pl.col("label").unique().sort().str.join("/"),
            targets=pl.col("resp_h").n_unique(),
            ports=pl.col("resp_p").drop_nulls().n_unique(),
            max_p_attack=pl.col("p_attack").max(),
        )
        .sort(["flows", "orig_h"], descending=[True, False])
        .head(n)
    )
    assert verdicts.top_talkers(att, n).equals(want)


text = st.one_of(st.none(), st.text(max_size=12))


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            text,  # uid (never null in a scan; text here)
            text,  # service
            text,  # conn_state
            st.sampled_from(["DoS", "Probe", "R2L", "U2R", "other"]),
            st.sampled_from(["tcp", "udp", "icmp", "icmp6", "gre", None]),
            st.one_of(st.none(), st.integers(0, 65535)),
            st.floats(0, 1),
            st.one_of(st.none(), st.integers(1, 10**6)),
        ),
        min_size=1,
        max_size=20,
    )
)
def test_flow_alert_lines_are_json_dumps_of_the_events(rows: list[Any]) -> None:
    n = len(rows)
    sure = pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(microseconds=17 * i) for i in range(n)],
            "uid": [r[0] or "C" for r in rows],
            "orig_h": [f"10.0.0.{i}" for i in range(n)],
            "resp_h": ["fe80::1"] * n,
            "orig_p": pl.Series([r[5] for r in rows], dtype=pl.Int32),
            "resp_p": pl.Series([r[5] for r in reversed(rows)], dtype=pl.Int32),
            "proto": [r[4] for r in rows],
            "icmp_type": pl.Series([r[5] and r[5] % 256 for r in rows], dtype=pl.Int32),
            "icmp_code": pl.Series([None if r[5] is None else 3 for r in rows], dtype=pl.Int32),
            "community_id": [r[1] for r in rows],
            "label": [r[3] for r in rows],
            "confidence": [r[6] for r in rows],
            "p_attack": [1 - r[6] for r in rows],
            "incident_id": pl.Series([r[7] for r in rows], dtype=pl.Int64),
            "service": [r[1] for r in rows],
            "conn_state": [r[2] for r in rows],
            "model_id": ["m1"] * n,
        },
        schema_overrides={"ts": pl.Datetime("us", "UTC")},
    )
    want = [json.dumps(e, separators=(",", ":")) for e in flow_events(sure)]
    got = flow_event_lines(sure).to_list()
    for a, b in zip(got, want, strict=True):
        assert a == b, (rows, a, b)


def test_incidents_of_categorical_rows_are_the_string_rows_incidents(tmp_path: Path) -> None:
    """The spilled attack rows come back with categoricals (``verdicts.FEW_VALUES``); the incidents grouped from
    them are those of the same rows as strings, with the same column types."""
    _, a, b = _kept_and_spilled(tmp_path / "attacks.rows", 6, 40, attack_every=2)
    assert a is not None and b is not None and b.schema["label"] == pl.Categorical
    inc_a, members_a = incidents.find_incidents(a)
    inc_b, members_b = incidents.find_incidents(b)
    assert inc_a.height > 0 and inc_b.schema == inc_a.schema
    assert inc_b.equals(inc_a) and members_b.equals(members_a)


def _top_flows_by_window(v: pl.DataFrame, n: int, per_incident: int) -> pl.DataFrame:
    """The statement ``verdicts.top_flows`` is checked against: its first form, a window rank over every row."""
    rank = pl.col("p_attack").rank("ordinal", descending=True).over(pl.col("incident_id").fill_null(-1))
    return (
        verdicts.suspicious(v)
        .with_columns(_rank=rank)
        .filter((pl.col("_rank") <= per_incident) | pl.col("incident_id").is_null())
        .sort(["p_attack", "ts", "flow_id"], descending=[True, False, False])
        .head(n)
        .drop("_rank")
    )


@settings(max_examples=200, deadline=None)
@given(
    rows=st.lists(
        st.tuples(
            st.sampled_from([0.5, 0.7, 0.9, 0.99]),  # few values: ties in p_attack
            st.one_of(st.none(), st.integers(1, 4)),  # incident, or none
            st.integers(0, 5),  # start second: ties in ts
            st.sampled_from(["normal", "DoS", "Probe"]),
            st.booleans(),  # allowed
        ),
        max_size=60,
    ),
    n=st.integers(1, 12),
    per_incident=st.integers(1, 3),
)
def test_top_flows_match_the_window_rank(rows: list[Any], n: int, per_incident: int) -> None:
    ids = np.random.default_rng(len(rows)).permutation(len(rows))  # flow ids not in row order
    v = pl.DataFrame(
        {
            "flow_id": ids.astype(np.int64),
            "p_attack": [r[0] for r in rows],
            "incident_id": pl.Series([r[1] for r in rows], dtype=pl.Int64),
            "ts": [dt.datetime(2024, 1, 1, 0, 0, r[2], tzinfo=dt.UTC) for r in rows],
            "label": [r[3] for r in rows],
            "allowed": [r[4] for r in rows],
        },
        schema_overrides={
            "p_attack": pl.Float64,
            "ts": pl.Datetime("us", "UTC"),
            "label": pl.String,
            "allowed": pl.Boolean,
        },
    )
    assert verdicts.top_flows(v, n, per_incident).equals(_top_flows_by_window(v, n, per_incident))


@pytest.mark.parametrize(
    ("allowed", "same"),
    [
        ([False, False, False], True),  # every row passes: the frame itself, nothing copied
        ([False, True, False], False),
        ([False, None, False], False),  # null drops the row, as filter does
        ([True, True, True], False),
    ],
)
def test_where_is_filter_without_the_copy_when_all_pass(allowed: list[bool | None], same: bool) -> None:
    df = pl.DataFrame({"flow_id": [1, 2, 3], "label": ["DoS", "DoS", "Probe"], "allowed": allowed})
    got = verdicts.where(df, ~pl.col("allowed"))
    assert got.equals(df.filter(~pl.col("allowed"))) and (got is df) == same
    assert verdicts.suspicious(df).equals(df.filter((pl.col("label") != "normal") & ~pl.col("allowed")))
