"""Shared test fixtures: where ../shared and the sample captures are, and the --update-golden switch.

Each area keeps its own fixtures in its own folder (tests/capture, tests/flows, tests/kdd, tests/model,
tests/scan, tests/study); this file holds only what all of them need.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import settings

# Property tests are deterministic by default, so CI on main never goes red by chance; explore new inputs with
# `HYPOTHESIS_PROFILE=explore python -m pytest` (random seeds, more examples) before committing parser or flow work.
settings.register_profile("deterministic", derandomize=True)
settings.register_profile("explore", derandomize=False, max_examples=500)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "deterministic"))

REPO = Path(__file__).resolve().parent.parent
SAMPLES = REPO / "sample_pcaps"
SHARED = REPO.parent / "shared"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", help="Rewrite golden files from current output.")


@pytest.fixture
def update_golden(request: pytest.FixtureRequest) -> bool:
    return bool(request.config.getoption("--update-golden"))


def shared_path(*parts: str) -> Path:
    """A path under ../shared, or skip the test with a reason that names the missing path."""
    p = SHARED.joinpath(*parts)
    if not p.exists():
        pytest.skip(f"needs {p} (the ../shared folder beside the checkout), which is missing")
    return p


@pytest.fixture
def shared() -> Path:
    return shared_path()
