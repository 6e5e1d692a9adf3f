"""Window features (23-41) on hand-built flow tables: hand-computed values, caps, and a brute-force reference."""

from __future__ import annotations

import random
from typing import Any

import numpy as np
import polars as pl
import pytest

from features.kdd.frame import kdd_features
from features.kdd.windows import HOST_WINDOW, WINDOW_FEATURES, window_sums


def test_a_lone_flow_counts_itself(flow: Any, flows_table: Any) -> None:
    # NSL-KDD: count == 1 rows carry their own rates (count 0 in 13 of 125,973 KDDTrain+ rows).
    got = kdd_features(flows_table([flow(0, conn_state="S0")])).row(0, named=True)
    assert got["count"] == 1 and got["srv_count"] == 1
    assert got["serror_rate"] == 1.0 and got["srv_serror_rate"] == 1.0 and got["rerror_rate"] == 0.0
    assert got["same_srv_rate"] == 1.0 and got["diff_srv_rate"] == 0.0 and got["srv_diff_host_rate"] == 0.0
    assert got["dst_host_count"] == 1 and got["dst_host_srv_count"] == 1
    assert got["dst_host_same_srv_rate"] == 1.0 and got["dst_host_same_src_port_rate"] == 1.0
    assert got["dst_host_serror_rate"] == 1.0 and got["dst_host_srv_diff_host_rate"] == 0.0


def test_time_window_hand_computed(flow: Any, flows_table: Any) -> None:
    recs = [
        flow(0.0, resp_p=80),  # A: http to .2
        flow(0.5, resp_p=23, conn_state="REJ"),  # B: telnet to .2, rejected
        flow(1.0, resp_p=80, resp_h="10.0.0.3", conn_state="S0"),  # C: http to .3, SYN error
        flow(2.0, resp_p=80),  # D: http to .2; window [0, 2] holds A, B, C, D (2 s is inclusive)
        flow(2.6, resp_p=80),  # E: window [0.6, 2.6] holds C, D, E (A and B fell out)
    ]
    got = kdd_features(flows_table(recs))
    d, e = got.row(3, named=True), got.row(4, named=True)
    # D: same host (.2) in window: A, B, D -> count 3; same service among them: A, D.
    assert d["count"] == 3 and d["same_srv_rate"] == pytest.approx(0.67) and d["diff_srv_rate"] == pytest.approx(0.33)
    assert d["rerror_rate"] == pytest.approx(0.33) and d["serror_rate"] == 0.0
    # D: same service (http) in window: A, C, D -> srv_count 3, one to another host, one S0.
    assert d["srv_count"] == 3 and d["srv_diff_host_rate"] == pytest.approx(0.33)
    assert d["srv_serror_rate"] == pytest.approx(0.33) and d["srv_rerror_rate"] == 0.0
    # E: same host: D, E; same service: C, D, E.
    assert e["count"] == 2 and e["srv_count"] == 3 and e["same_srv_rate"] == 1.0
    assert e["srv_diff_host_rate"] == pytest.approx(0.33)
    # Host window (last 256 records): E sees all five.
    assert e["dst_host_count"] == 4 and e["dst_host_srv_count"] == 4
    assert e["dst_host_same_srv_rate"] == pytest.approx(0.75) and e["dst_host_rerror_rate"] == pytest.approx(0.25)
    assert e["dst_host_srv_diff_host_rate"] == pytest.approx(0.25)
    assert e["dst_host_srv_serror_rate"] == pytest.approx(0.25)


def test_ties_follow_row_order_and_input_order_is_kept(flow: Any, flows_table: Any) -> None:
    # Three flows starting at the same microsecond: the first in row order sees only itself.
    recs = [flow(5.0), flow(5.0), flow(5.0), flow(1.0)]  # the last row starts first
    got = kdd_features(flows_table(recs))
    assert got["flow_id"].to_list() == [0, 1, 2, 3]  # output in the flows' row order
    assert got["count"].to_list() == [1, 2, 3, 1]
    assert got["dst_host_count"].to_list() == [2, 3, 4, 1]


def test_caps_511_and_255(flow: Any, flows_table: Any) -> None:
    recs = [flow(i * 0.001, orig_p=1000 + i, conn_state="S0") for i in range(600)]  # 600 SYNs in 0.6 s
    got = kdd_features(flows_table(recs))
    assert got["count"].max() == 511 and got["srv_count"].max() == 511
    assert got["count"][510] == 511 and got["count"][509] == 510
    assert got["dst_host_count"].max() == 255 and got["dst_host_srv_count"].max() == 255
    assert got["dst_host_count"][253] == 254 and got["dst_host_count"][254] == 255
    assert got["serror_rate"].min() == 1.0 and got["dst_host_serror_rate"].min() == 1.0
    # Every flow has a new source port: the same-source-port share is 1/256 once the window is full.
    assert got["dst_host_same_src_port_rate"][599] == 0.0


def test_host_window_is_the_last_256_records(flow: Any, flows_table: Any) -> None:
    # One flow to .9, then 300 flows to other hosts, then one to .9 again: .9's first flow is 301 records back.
    recs = [flow(0, resp_h="10.0.0.9")]
    recs += [flow(10 + i, resp_h=f"10.1.{i // 250}.{i % 250}") for i in range(300)]
    recs += [flow(400, resp_h="10.0.0.9"), flow(401, resp_h="10.1.0.5")]
    got = kdd_features(flows_table(recs))
    assert got["dst_host_count"][301] == 1  # the old .9 flow is outside the window
    # 10.1.0.5 was hit at record 6, 296 records before: outside too; the window is exactly HOST_WINDOW records.
    assert got["dst_host_count"][302] == 1
    assert HOST_WINDOW == 256


def test_other_ip_protocols_take_no_part(flow: Any, flows_table: Any) -> None:
    recs = [flow(0, proto="gre"), flow(0.1), flow(0.2, proto="gre")]
    got = kdd_features(flows_table(recs))
    assert got["count"].to_list() == [0, 1, 0]
    assert got["protocol_type"].to_list() == ["gre", "tcp", "gre"]


SERR, RERR = {"S0", "S1", "S2", "S3", "SH"}, {"REJ", "RSTO", "RSTR", "RSTOS0"}


def _rate(a: float, b: float) -> float:
    return round(a / b, 2) if b else 0.0


def _stats(me: dict[str, Any], win: list[dict[str, Any]], cap: int) -> dict[str, float]:
    host = [r for r in win if r["h"] == me["h"]]
    srv = [r for r in win if r["s"] == me["s"]]
    return {
        "c": min(len(host), cap), "sc": min(len(srv), cap),
        "se": _rate(sum(r["f"] in SERR for r in host), len(host)),
        "sse": _rate(sum(r["f"] in SERR for r in srv), len(srv)),
        "re": _rate(sum(r["f"] in RERR for r in host), len(host)),
        "sre": _rate(sum(r["f"] in RERR for r in srv), len(srv)),
        "same": _rate(sum(r["s"] == me["s"] for r in host), len(host)),
        "diff": _rate(sum(r["s"] != me["s"] for r in host), len(host)),
        "sdh": _rate(sum(r["h"] != me["h"] for r in srv), len(srv)),
        "sp": _rate(sum(r["p"] == me["p"] for r in srv), len(srv)),
    }  # fmt: skip


def _reference(rows: list[dict[str, Any]]) -> pl.DataFrame:
    """Brute force over the definitions in features.kdd.windows (a Python loop: the test oracle)."""
    order = sorted(range(len(rows)), key=lambda i: (rows[i]["t"], i))
    out: dict[int, dict[str, float]] = {}
    for k, i in enumerate(order):
        me = rows[i]
        tw = [rows[j] for j in order[: k + 1] if me["t"] - rows[j]["t"] <= 2_000_000_000]
        hw = [rows[j] for j in order[max(0, k - 255) : k + 1]]
        a, b = _stats(me, tw, 511), _stats(me, hw, 255)
        out[i] = {
            "count": a["c"], "srv_count": a["sc"], "serror_rate": a["se"], "srv_serror_rate": a["sse"],
            "rerror_rate": a["re"], "srv_rerror_rate": a["sre"], "same_srv_rate": a["same"],
            "diff_srv_rate": a["diff"], "srv_diff_host_rate": a["sdh"], "dst_host_count": b["c"],
            "dst_host_srv_count": b["sc"], "dst_host_same_srv_rate": b["same"], "dst_host_diff_srv_rate": b["diff"],
            "dst_host_same_src_port_rate": b["sp"], "dst_host_srv_diff_host_rate": b["sdh"],
            "dst_host_serror_rate": b["se"], "dst_host_srv_serror_rate": b["sse"], "dst_host_rerror_rate": b["re"],
            "dst_host_srv_rerror_rate": b["sre"],
        }  # fmt: skip
    return pl.DataFrame([out[i] for i in range(len(rows))]).select(WINDOW_FEATURES)


@pytest.mark.parametrize("seed", [1, 2])
def test_matches_brute_force_reference(flow: Any, flows_table: Any, seed: int) -> None:
    rng = random.Random(seed)
    recs, rows = [], []
    for _ in range(700):
        t = rng.choice([rng.uniform(0, 20), 7.0])  # some exact ties
        h, p = f"10.0.0.{rng.randint(1, 6)}", rng.choice([21, 22, 23, 80, 1234, 1235, 999, 998, 6000, 6001])
        sport, st = rng.choice([1111, 2222, 3333]), rng.choice(["SF", "S0", "REJ", "RSTO", "SH", "OTH"])
        recs.append(flow(t, resp_h=h, resp_p=p, orig_p=sport, conn_state=st))
    got = kdd_features(flows_table(recs))
    for r in got.iter_rows(named=True):
        key = f"{r['service']}:{r['resp_p']}" if r["service"] in ("private", "other") else r["service"]
        rows.append({"t": int(r["ts"].timestamp() * 1_000_000) * 1000, "h": r["resp_h"], "s": key, "f": r["flag"],
                     "p": r["orig_p"]})  # fmt: skip
    ref = _reference(rows)
    for c in WINDOW_FEATURES:
        np.testing.assert_allclose(got[c].to_numpy(), ref[c].to_numpy(), atol=0.011, err_msg=c)


def test_window_sums_never_cross_keys() -> None:
    key = np.array([0, 1, 0, 1, 0])
    t = np.array([0, 1, 2, 3, 100])
    cnt, s = window_sums(key, t, 5, [np.array([1.0, 10.0, 1.0, 10.0, 1.0])])
    assert cnt.tolist() == [1, 1, 2, 2, 1]
    assert s.tolist() == [1.0, 10.0, 2.0, 20.0, 1.0]


def test_unnamed_ports_are_one_service_per_port(flow: Any, flows_table: Any) -> None:
    # A scan of 1000-1004 (all 'private') and of 6000-6001 (X11): unnamed ports are different services, X11 is one.
    recs = [flow(i * 0.01, resp_p=1000 + i, conn_state="REJ") for i in range(5)]
    recs += [flow(0.1 + i * 0.01, resp_p=6000 + i, conn_state="REJ") for i in range(2)]
    got = kdd_features(flows_table(recs))
    assert got["service"].to_list() == ["private"] * 5 + ["X11"] * 2
    assert got["srv_count"].to_list()[:5] == [1, 1, 1, 1, 1]
    assert got["same_srv_rate"][4] == pytest.approx(0.2) and got["diff_srv_rate"][4] == pytest.approx(0.8)
    assert got["srv_count"][6] == 2 and got["dst_host_srv_count"][6] == 2
