"""lab/coverage.py: the lab's attack families against a model's training rows (no lab run, no root)."""

from __future__ import annotations

import importlib.util
import json
import re
import sys
import tempfile
from pathlib import Path

import polars as pl
import pytest

LAB = Path(__file__).resolve().parents[2] / "lab"
# loaded by path under a name of its own: "coverage" is also the name of coverage.py's package (pytest-cov)
_spec = importlib.util.spec_from_file_location("lab_coverage", LAB / "coverage.py")
assert _spec is not None and _spec.loader is not None
coverage = importlib.util.module_from_spec(_spec)
sys.modules["lab_coverage"] = coverage
_spec.loader.exec_module(coverage)


@pytest.mark.parametrize(
    ("scenario", "fam"),
    [
        ("nmap-sS-T4-top100", "nmap-sS"),
        ("nmap-sT-T3-1-1024", "nmap-sT"),
        ("nmap-sX-T5-random300", "nmap-sX"),
        ("nmap-sV", "nmap-sV"),  # version scan: no timing in its name, a family of its own
        ("nmap-slow-T1", "nmap-slow-T1"),  # not a scan type
        ("nmap6-scan", "nmap6-scan"),
        ("sweep-PE-PS443", "sweep-PE-PS443"),  # sweeps differ by what they send: each its own family
        ("hydra-http-basic", "hydra-http-basic"),
    ],
)
def test_family(scenario: str, fam: str) -> None:
    assert coverage.family(scenario) == fam


def test_catalogue_families_name_every_class_and_fold_scan_timings() -> None:
    fams = coverage.catalogue_families([1, 2, 3])
    assert {cls for cls, _ in fams} == set(coverage.CLASSES)
    assert fams[("Probe", "nmap-O")] == 3 and fams[("R2L", "hydra-ssh")] == 3  # in every seed's catalogue
    assert not [f for _, f in fams if coverage._NMAP_SCAN.match(f)]  # every timed scan folded into its scan type
    assert {f for _, f in fams if f.startswith("nmap-s") and len(f) == 7} >= {"nmap-sS", "nmap-sO"}
    assert all(1 <= n <= 3 for n in fams.values())


def test_table_marks_missing_thin_single_run_and_encrypted_families(tmp_path: Path) -> None:
    rows = [  # (label, scenario, run, copies)
        ("Probe", "nmap-sS-T4-top100", "seed1", 40),
        ("Probe", "nmap-sS-T5-1-1024", "seed2", 40),  # the same family, a second run: 80 rows, 2 runs
        ("Probe", "sweep-PP", "seed1", 4),
        ("DoS", "land", "seed1", 60),
        ("normal", "benign-background", "seed1", 500),  # not an attack family
    ]
    frame = pl.DataFrame(
        [(lab, sc, run) for lab, sc, run, n in rows for _ in range(n)],
        schema=["label", "scenario", "run"],
        orient="row",
    )
    frame.write_parquet(tmp_path / "a.parquet")
    pl.DataFrame({"label": ["DoS"], "src_bytes": [1]}).write_parquet(tmp_path / "no-scenario.parquet")
    trained = coverage.training_rows([tmp_path / "a.parquet", tmp_path / "no-scenario.parquet"])
    offered = {
        ("Probe", "nmap-sS"): 2,
        ("Probe", "nmap-sT"): 1,
        ("Probe", "sweep-PP"): 2,
        ("U2R", "ssh-privesc-vic"): 2,
    }
    table = coverage.coverage_table(offered, 2, trained, thin=50).splitlines()
    line = {ln.split("|")[2].strip(" `"): [c.strip() for c in ln.split("|")[3:7]] for ln in table[2:-2]}
    assert line["nmap-sS"] == ["2 of 2", "80", "2", ""]
    assert line["nmap-sT"] == ["1 of 2", "0", "0", "**none**"]
    assert line["sweep-PP"] == ["2 of 2", "4", "1", "thin, one run"]
    assert line["land"] == ["0 of 2", "60", "1", "one run"]  # trained but no longer offered: still listed
    assert line["ssh-privesc-vic"][3].startswith("inside an encrypted session")
    assert "benign-background" not in line
    assert (
        table[-1] == "5 families; 2 with fewer than 50 training rows (not counting those inside an encrypted session)."
    )


def test_model_files_are_the_recorded_ones_and_a_changed_file_is_refused(tmp_path: Path) -> None:
    shipped = LAB.parent / "model" / "default"
    files = coverage.model_lab_files(shipped)
    recorded = json.loads((shipped / "metadata.json").read_text())["train"]["data_files"]
    assert [f.name for f in files] == [r["file"] for r in recorded if r["file"].endswith(".parquet")]
    meta = {"train": {"data_files": [{"file": files[0].name, "sha256": "0" * 64, "rows": 1}]}}
    (tmp_path / "metadata.json").write_text(json.dumps(meta))
    with pytest.raises(SystemExit, match=rf"{files[0].name}: not the file .* was trained on"):
        coverage.model_lab_files(tmp_path)


def test_regex_runs_exactly_the_thin_families() -> None:
    offered = {("Probe", "nmap-sT"): 1, ("Probe", "nmap-sS"): 1, ("Probe", "nmap-sV"): 1, ("R2L", "hydra-ssh"): 1}
    offered[("U2R", "ssh-privesc-vic")] = 1
    trained = pl.DataFrame(
        {"label": ["Probe"], "family": ["nmap-sS"], "rows": [500], "runs": [3]},
        schema={"label": pl.String, "family": pl.String, "rows": pl.UInt32, "runs": pl.UInt32},
    )
    rx = re.compile(coverage.marked_regex(offered, trained, 50))
    runs = ["nmap-sT-T4-top100", "nmap-sT-T5-1-1024", "nmap-sV", "hydra-ssh"]
    kept = ["nmap-sS-T4-top100", "hydra-ssh-userlist", "nmap-sTX", "ssh-privesc-vic", "xhydra-ssh"]
    assert [n for n in runs + kept if rx.search(n)] == runs


def test_no_catalogue_draw_is_one_nmap_refuses() -> None:
    """nmap quits on -f with a connect scan (-sT): such a draw made an empty attack window (seed 17's first run)."""
    run = coverage.run  # lab/run.py, as coverage.py imports it

    with tempfile.TemporaryDirectory() as tmp:
        connect = [
            s.params
            for seed in range(1, 41)
            for s in run.Attacks(run.Lab(run.Plan(seed, 10.0), Path(tmp), Path(tmp)), seed).catalogue()["Probe"]
            if coverage.family(s.name) == "nmap-sT"
        ]
    assert len(connect) > 10 and not [p for p in connect if "-f" in p.split()]


def test_one_run_also_marks_families_trained_from_a_single_run() -> None:
    offered = {("Probe", "nmap-sS"): 1, ("Probe", "nmap-sF"): 1, ("DoS", "land"): 1, ("U2R", "ssh-privesc-srv"): 1}
    trained = pl.DataFrame(
        {"label": ["Probe", "Probe", "DoS"], "family": ["nmap-sS", "nmap-sF", "land"], "rows": [500, 2000, 20]},
        schema={"label": pl.String, "family": pl.String, "rows": pl.UInt32},
    ).with_columns(runs=pl.Series([3, 1, 4], dtype=pl.UInt32))
    assert coverage.marked(offered, trained, 50) == ["land"]  # thin only
    assert coverage.marked(offered, trained, 50, one_run=True) == ["land", "nmap-sF"]  # + one run's parameters
    rx = re.compile(coverage.marked_regex(offered, trained, 50, one_run=True))
    assert [n for n in ("nmap-sF-T4-top100", "land", "nmap-sS-T4-top100", "ssh-privesc-srv") if rx.search(n)] == [
        "nmap-sF-T4-top100",
        "land",
    ]


def test_rank_seeds_counts_marked_families_in_each_catalogue_most_first() -> None:
    fams = ["nmap-sT", "nmap-sF", "sweep-PE"]
    ranked = coverage.rank_seeds([17, 22, 1], fams)
    have = {s: {f for _, f in coverage.catalogue_families([s])} & set(fams) for s in (17, 22, 1)}
    assert [n for _, n in ranked] == sorted((len(v) for v in have.values()), reverse=True)
    assert dict(ranked) == {s: len(v) for s, v in have.items()}
    assert dict(ranked)[17] >= 2  # seed 17's catalogue holds -sF and -sT (round 12 chose it for them)
