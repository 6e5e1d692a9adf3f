"""Fixtures for the golden and semantic tests on ``sample_pcaps/``: extraction cached once per sample."""

from __future__ import annotations

import csv
import datetime as dt
import io
from functools import cache
from pathlib import Path
from typing import Any

import polars as pl
import pytest

REPO = Path(__file__).resolve().parents[2]
SAMPLES = REPO / "sample_pcaps"
EXPECTED = Path(__file__).resolve().parent / "expected"


@cache
def extract(name: str) -> Any:
    """``features.flows.extract.extract_flows`` on one sample, once per test session."""
    from features.flows.extract import extract_flows

    return extract_flows([SAMPLES / name])


def flows(name: str) -> pl.DataFrame:
    df = pl.from_arrow(extract(name).flows)
    assert isinstance(df, pl.DataFrame)
    return df


def _cell(v: object) -> str:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        # ISO 8601 in UTC with microseconds and a Z, whatever the column's time zone.
        return v.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    if isinstance(v, float):
        return f"{v:.6f}"
    return str(v)


def flows_csv(name: str) -> str:
    """The flow table of one sample as CSV text: schema column order, ISO UTC times, file name only.

    ``source_file`` keeps only the file name, so the goldens do not depend on where the checkout lives.
    """
    from features.flows.schema import FLOW_COLUMNS

    table = extract(name).flows
    rows = table.select(list(FLOW_COLUMNS)).to_pylist()
    out = io.StringIO()
    w = csv.writer(out, lineterminator="\n")
    w.writerow(FLOW_COLUMNS)
    for r in rows:
        r["source_file"] = Path(r["source_file"]).name
        w.writerow([_cell(r[c]) for c in FLOW_COLUMNS])
    return out.getvalue()


class Samples:
    """What the tests need from the samples, behind one fixture (conftest modules cannot be imported
    under ``--import-mode=importlib``)."""

    dir = SAMPLES
    expected = EXPECTED

    @staticmethod
    def extract(name: str) -> Any:
        return extract(name)

    @staticmethod
    def flows(name: str) -> pl.DataFrame:
        return flows(name)

    @staticmethod
    def flows_csv(name: str) -> str:
        return flows_csv(name)


@pytest.fixture(scope="session")
def samples() -> Samples:
    return Samples()
