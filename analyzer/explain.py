"""Why the model called an incident what it did: the named KDD features that drove its flows' verdicts.

For each incident, up to ``per_incident`` of its flows (evenly spaced in time, so a long flood is sampled
across its length) get gradient x input attributions toward the incident's class
(``Classifier.attribute``). Encoded columns are summed back to the KDD feature they came from
(``spec.source_feature``: the one-hot slots of ``flag`` add up to ``flag``), averaged over the sampled
flows, and the three features with the largest positive contribution are named with their typical raw
value in the incident: the median for numbers, the most common value for categories
(``serror_rate 1.0, count 511, flag S0``).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl


class Attributor(Protocol):
    """The part of ``model.infer.Classifier`` this module uses."""

    classes: tuple[str, ...]

    def attribute(self, x: np.ndarray, target: np.ndarray, batch_size: int = ...) -> np.ndarray: ...


@dataclass(frozen=True)
class Driver:
    """One feature behind a verdict: its name, typical raw value in the incident and mean attribution."""

    feature: str
    value: str  # as the report shows it ("0.96", "http", "1,024")
    score: float
    number: float | None = None  # the value as a number (median of the incident's flows); None for categories

    def __str__(self) -> str:
        return f"{self.feature} {self.value}"


def sample_rows(rows: np.ndarray, k: int) -> np.ndarray:
    """At most ``k`` of ``rows`` (already in time order), evenly spaced, first and last included."""
    if len(rows) <= k:
        return rows
    return rows[np.linspace(0, len(rows) - 1, k).round().astype(np.int64)]


class Rows(Protocol):
    """Where the flows' features come from, by row number: in memory, or read back from flows.parquet."""

    def encoded(self, rows: np.ndarray) -> np.ndarray:
        """(m, F) encoded features of the rows."""
        ...

    def column(self, name: str, rows: np.ndarray) -> pl.Series:
        """One raw KDD feature of the rows."""
        ...


@dataclass(frozen=True)
class InMemory:
    """``Rows`` over arrays held in memory: x (n, F) encoded, kdd the n flows' raw features."""

    x: np.ndarray
    kdd: pl.DataFrame

    def encoded(self, rows: np.ndarray) -> np.ndarray:
        return self.x[rows]

    def column(self, name: str, rows: np.ndarray) -> pl.Series:
        return self.kdd[name].gather(rows)


def explain_incidents(
    clf: Attributor,
    source_feature: Sequence[str],
    x: np.ndarray,
    kdd: pl.DataFrame,
    members: pl.DataFrame,
    labels: dict[int, str],
    *,
    per_incident: int = 64,
    top: int = 3,
    batch_size: int = 4096,
) -> dict[int, list[Driver]]:
    """Top drivers per incident (``explain_rows`` over features in memory).

    Args:
        clf: the classifier (``attribute`` and ``classes``).
        source_feature: KDD feature name of each encoded column, F values.
        x: (n, F) encoded features of all flows, row i = flow row i of ``kdd``.
        kdd: the n flows' raw KDD features (row order as ``x``).
        members: ``row`` (index into x/kdd) and ``incident_id`` for the incidents to explain, rows in time order.
        labels: class name of each incident to explain.
        per_incident: flows sampled per incident.
    """
    return explain_rows(
        clf,
        source_feature,
        InMemory(x, kdd),
        members,
        labels,
        per_incident=per_incident,
        top=top,
        batch_size=batch_size,
    )


# What an incident's typical values are asked of, when not of its member rows: {incident: [feature, ...]} ->
# {(incident, feature): (text, number)}, as ``typical_of`` and ``number_of`` give them (analyzer.incident_sql asks
# a query over every member, out of core, a flood's incident having millions).
Typical = Callable[[dict[int, list[str]]], dict[tuple[int, str], tuple[str, float | None]]]


def explain_rows(
    clf: Attributor,
    source_feature: Sequence[str],
    flows: Rows,
    members: pl.DataFrame,
    labels: dict[int, str],
    *,
    per_incident: int = 64,
    top: int = 3,
    batch_size: int = 4096,
    typical: Typical | None = None,
) -> dict[int, list[Driver]]:
    """Top drivers per incident, the features fetched from ``flows`` for the sampled rows (encoded) and, for
    the typical values, the chosen features of every member row (or of ``typical``, when ``members`` holds only
    the rows to sample: evenly spaced as ``sample_rows`` spaces them): memory follows the incidents, not the scan."""
    names = list(dict.fromkeys(source_feature))  # KDD features in first-appearance order
    col_of = np.array([names.index(s) for s in source_feature])  # (F,) encoded column -> feature index
    to_feature = np.zeros((len(col_of), len(names)))  # (F, n_features): sums encoded columns per feature
    to_feature[np.arange(len(col_of)), col_of] = 1.0
    every = {int(k[0]): g["row"].to_numpy() for k, g in members.group_by("incident_id", maintain_order=True)}
    groups = {i: sample_rows(rows, per_incident) for i, rows in every.items()}
    scores: dict[int, np.ndarray] = {}
    ids = [i for i in groups if i in labels]
    if ids:
        # One call for every incident: each sampled row is attributed toward its own incident's class.
        rows = np.concatenate([groups[i] for i in ids])
        target = np.concatenate([np.full(len(groups[i]), clf.classes.index(labels[i]), np.int64) for i in ids])
        attr = clf.attribute(flows.encoded(rows), target, batch_size=batch_size)  # (m, F)
        per_feat = attr.astype(np.float64) @ to_feature  # (m, n_features)
        start = 0
        for i in ids:
            m = len(groups[i])
            scores[i] = per_feat[start : start + m].mean(axis=0)
            start += m
    best = {i: [j for j in np.argsort(-s, kind="stable")[:top] if s[j] > 0] for i, s in scores.items()}
    if typical is None:
        values = {}
        for i, js in best.items():
            for j in js:
                vals = flows.column(names[j], every[i])
                values[(i, names[j])] = (typical_of(vals), number_of(vals))
    else:
        values = typical({i: [names[j] for j in js] for i, js in best.items()})
    out: dict[int, list[Driver]] = {}
    for i, js in best.items():
        out[i] = []
        for j in js:
            text, number = values[(i, names[j])]
            out[i].append(Driver(names[j], text, float(scores[i][j]), number))
    return out


def typical(column: pl.Series, rows: np.ndarray) -> str:
    """The incident's typical value of one feature, formatted short: median of numbers, mode of strings."""
    return typical_of(column.gather(rows))


def typical_median(name: str, lower: float | None, upper: float | None) -> tuple[str, float]:
    """``typical_of`` and ``number_of`` of a numeric feature from its two middle values (equal when the count is
    odd; None when it has none), interpolated as polars' median interpolates them."""
    if lower is None or upper is None:
        return fmt_value(name, 0.0), 0.0
    med = float(lower) + (float(upper) - float(lower)) * 0.5
    return fmt_value(name, med), med


def typical_of(vals: pl.Series) -> str:
    """``typical`` of the values themselves (the column's name says how to format them)."""
    if vals.dtype == pl.String:
        return str(vals.drop_nulls().mode().sort().first() or "?")
    med = vals.median()
    return fmt_value(vals.name, float(med) if med is not None else 0.0)  # type: ignore[arg-type]


def number_of(vals: pl.Series) -> float | None:
    """The median of a numeric feature over the incident's flows (what ``typical_of`` shows), None for categories."""
    if vals.dtype == pl.String:
        return None
    med = vals.median()
    return float(med) if med is not None else 0.0  # type: ignore[arg-type]


def fmt_value(name: str, v: float) -> str:
    """``1.0`` for rates, ``511`` for counts, two decimals otherwise."""
    if name.endswith("rate"):
        return f"{v:.2f}".rstrip("0").rstrip(".") if v not in (0.0, 1.0) else f"{v:.1f}"
    if v == int(v):
        return f"{int(v):,}"
    return f"{v:.2f}"
