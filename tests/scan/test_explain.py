"""Incident reasons: attributions summed back to named features, with the incident's typical values."""

from __future__ import annotations

import numpy as np
import polars as pl

from analyzer import explain


class FakeAttributor:
    """Attribution = x times fixed per-column weights, so the expected drivers are known."""

    classes: tuple[str, ...] = ("normal", "DoS", "Probe", "R2L", "U2R")

    def __init__(self, weights: np.ndarray) -> None:
        self.weights = weights
        self.calls: list[tuple[int, list[int]]] = []

    def attribute(self, x: np.ndarray, target: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        assert len(target) == len(x)
        self.calls.append((len(x), sorted(set(target.tolist()))))
        return x * self.weights


def test_drivers_sum_one_hot_columns_and_show_typical_values() -> None:
    # Encoded columns: count, serror_rate, flag=S0, flag=SF, duration
    source = ["count", "serror_rate", "flag", "flag", "duration"]
    x = np.array([[0.9, 1.0, 1.0, 0.0, 0.0]] * 10 + [[0.1, 0.0, 0.0, 1.0, 0.5]] * 5, np.float32)
    kdd = pl.DataFrame(
        {
            "count": [511.0] * 10 + [3.0] * 5,
            "serror_rate": [1.0] * 10 + [0.0] * 5,
            "flag": ["S0"] * 10 + ["SF"] * 5,
            "duration": [0.0] * 10 + [12.0] * 5,
        }
    )
    clf = FakeAttributor(np.array([0.5, 2.0, 0.6, 0.6, -1.0], np.float32))
    members = pl.DataFrame({"row": np.arange(10, dtype=np.int64), "incident_id": [7] * 10})
    out = explain.explain_incidents(clf, source, x, kdd, members, {7: "DoS"}, per_incident=4)
    assert [str(d) for d in out[7]] == ["serror_rate 1.0", "flag S0", "count 511"]
    assert clf.calls == [(4, [1])]  # sampled to 4 flows, one call, target = DoS's index


def test_negative_drivers_are_not_reasons() -> None:
    source = ["a", "b"]
    x = np.ones((3, 2), np.float32)
    kdd = pl.DataFrame({"a": [1.0, 2.0, 3.0], "b": [0.0, 0.0, 0.0]})
    clf = FakeAttributor(np.array([1.0, -1.0], np.float32))
    members = pl.DataFrame({"row": np.arange(3, dtype=np.int64), "incident_id": [1, 1, 1]})
    out = explain.explain_incidents(clf, source, x, kdd, members, {1: "Probe"})
    assert [str(d) for d in out[1]] == ["a 2"]


def test_sample_rows_spans_the_incident() -> None:
    rows = np.arange(100)
    assert explain.sample_rows(rows, 5).tolist() == [0, 25, 50, 74, 99]
    assert explain.sample_rows(rows[:3], 5).tolist() == [0, 1, 2]


def test_value_formatting() -> None:
    assert explain.fmt_value("serror_rate", 1.0) == "1.0"
    assert explain.fmt_value("same_srv_rate", 0.05) == "0.05"
    assert explain.fmt_value("count", 511.0) == "511"
    assert explain.fmt_value("src_bytes", 1234567.0) == "1,234,567"
    assert explain.fmt_value("duration", 2.5) == "2.50"
