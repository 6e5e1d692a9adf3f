"""The fuzz targets in the suite: every seed, every saved regression input, and a bounded number of mutated
seeds per target (hypothesis). The long, coverage-guided runs are ``campaign.py``'s (README, "Reliability")."""

from __future__ import annotations

import functools
import os
import sys
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import seeds as seedlib  # noqa: E402
import targets  # noqa: E402

REGRESSIONS = sorted(p for p in (HERE / "regressions").glob("*-*") if p.suffix != ".md")


@functools.cache
def seed_list(target: str) -> list[bytes]:
    return list(seedlib.seeds(target).values())


@pytest.mark.parametrize("target", list(targets.TARGETS))
def test_every_seed_passes(target: str) -> None:
    got = seed_list(target)
    assert len(got) >= 10, f"{target}: too few seeds ({len(got)})"
    for data in got:
        targets.run_one(target, data)


@pytest.mark.parametrize("path", REGRESSIONS, ids=[p.name for p in REGRESSIONS])
def test_regression_inputs(path: Path) -> None:
    """Inputs that once crashed a target (``campaign.py`` found them); named ``TARGET-what``."""
    target, data = path.name.split("-", 1)[0], path.read_bytes()
    targets.run_one(target, data)  # once: imports and caches settle
    before = _rss_mb()
    for _ in range(200):
        targets.run_one(target, data)
    assert _rss_mb() - before < 32, "memory grows with every run of this input"


def _rss_mb() -> float:
    return int(Path("/proc/self/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


@st.composite
def mutated(draw: st.DrawFn, target: str) -> bytes:
    pool = seed_list(target)
    data = bytearray(draw(st.sampled_from(pool)))
    for _ in range(draw(st.integers(1, 6))):
        i = draw(st.integers(0, len(data)))
        op = draw(st.integers(0, 3))
        if op == 0 and data:
            data[min(i, len(data) - 1)] = draw(st.integers(0, 255))
        elif op == 1:
            data[i:i] = draw(st.binary(min_size=1, max_size=8))
        elif op == 2:
            del data[i : i + draw(st.integers(1, 64))]
        else:
            del data[i:]
    return bytes(data[: targets.MAX_LEN[target]])


@pytest.mark.parametrize("target", list(targets.TARGETS))
def test_mutated_seeds(target: str) -> None:
    @settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None)
    @given(mutated(target))
    def run(data: bytes) -> None:
        targets.run_one(target, data)

    run()
