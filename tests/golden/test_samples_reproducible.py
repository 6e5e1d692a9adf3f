"""The sample captures are exactly what ``sample_pcaps/make_samples.py`` writes: regenerating changes nothing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


def test_generator_reproduces_every_sample_byte_for_byte(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("make_samples", SAMPLES / "make_samples.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    sys.modules["make_samples"] = mod  # dataclasses look their module up while the class is built
    try:
        spec.loader.exec_module(mod)
    finally:
        del sys.modules["make_samples"]
    mod.main(tmp_path)
    made = {p.name: p.read_bytes() for p in tmp_path.iterdir()}
    kept = {p.name: p.read_bytes() for p in SAMPLES.iterdir() if p.suffix not in (".py", ".md")}
    assert sorted(made) == sorted(kept)
    changed = [name for name in made if made[name] != kept[name]]
    assert not changed, f"regenerated samples differ: {changed} (run make_samples.py and review the goldens)"
    assert sum(map(len, kept.values())) < 2 * 1024 * 1024  # the size budget
