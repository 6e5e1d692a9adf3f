"""Golden tests: the flow table of every sample capture equals its checked-in CSV.

``pytest tests/golden --update-golden`` rewrites the expected files from the current output; review the
diff by eye before committing it (a golden that enshrines a bug is a bug).
"""

from __future__ import annotations

import difflib
import json
from pathlib import Path
from typing import Any

import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"
NAMES = sorted(p.name for p in SAMPLES.iterdir() if p.name.endswith((".pcap", ".pcapng", ".cap", ".gz")))


def _meta(ext: Any) -> str:
    """Packets read, bad-packet counts and warnings of one sample, as stable JSON (paths reduced to names)."""
    warnings = [w.replace(str(SAMPLES) + "/", "") for w in ext.warnings]
    meta = {"packets": int(ext.packets), "bad_packets": dict(sorted(ext.bad_packets.items())), "warnings": warnings}
    return json.dumps(meta, indent=1, sort_keys=True) + "\n"


def _check(actual: str, expected_path: Path, update: bool) -> None:
    if update:
        expected_path.parent.mkdir(parents=True, exist_ok=True)
        expected_path.write_text(actual)
        return
    if not expected_path.exists():
        pytest.fail(f"{expected_path} is missing: run `pytest tests/golden --update-golden` and review it")
    expected = expected_path.read_text()
    if actual != expected:
        diff = difflib.unified_diff(expected.splitlines(), actual.splitlines(), "expected", "actual", lineterm="", n=1)
        shown = "\n".join(list(diff)[:60])
        pytest.fail(f"{expected_path.name} differs from the current output:\n{shown}")


def test_every_sample_is_covered() -> None:
    # The generator writes these; a missing one means sample_pcaps/ is incomplete (regenerate it).
    assert len(NAMES) >= 20, NAMES


@pytest.mark.parametrize("name", NAMES)
def test_flow_table_matches_golden(name: str, update_golden: bool, samples: Any) -> None:
    _check(samples.flows_csv(name), samples.expected / f"{name}.flows.csv", update_golden)


@pytest.mark.parametrize("name", NAMES)
def test_read_summary_matches_golden(name: str, update_golden: bool, samples: Any) -> None:
    _check(_meta(samples.extract(name)), samples.expected / f"{name}.meta.json", update_golden)
