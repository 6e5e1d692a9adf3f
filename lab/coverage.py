"""Which attack families the lab can draw, and how many training rows of each a model saw.

    python lab/coverage.py [--model model/default] [--seeds 1-40] [--thin 50] [--data FILE ...] [-o OUT.md]
    python lab/coverage.py --regex     # the thin families as a regex for lab/run.py --only
    python lab/coverage.py --regex --one-run              # also the families trained from one run only
    python lab/coverage.py --one-run --rank-seeds 18-40   # how many of those each seed's catalogue holds

The lab draws its scenarios from a seeded catalogue (``lab/run.py``: ``Attacks.catalogue``); a family the
catalogue offers but no training run happened to draw is a family the model has never seen, and its held-out
recall says nothing about the model's design. This lists, per class and family, the share of seeds whose
catalogue holds it, the training rows (and the runs they came from) in the model's recorded lab data, and marks
families with no rows, fewer than ``--thin`` rows, or rows from one run only (one run's parameters: its rate,
timing template, target). It reads the training data and the lab's code only, never a held-out
run: it is for choosing what the next training runs must cover (``lab/run.py --only REGEX`` runs those
families), not for scoring.

Family: the scenario name, except nmap port scans, named by scan type alone (``nmap-sS-T4-top100`` ->
``nmap-sS``): their timing and port set vary within a type. Building the catalogue needs no root and starts
nothing (its word lists go to a temporary folder).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
from collections import Counter
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
if str(HERE) not in sys.path:  # run.py and make_train.py beside this script (stdlib only at import)
    sys.path.insert(0, str(HERE))
import run  # noqa: E402
from make_train import ENCRYPTED_INSIDE  # noqa: E402

from model.data import file_sha256  # noqa: E402  (nta's own: the same hash its metadata records)

CLASSES = ("Probe", "DoS", "R2L", "U2R")
_NMAP_SCAN = re.compile(r"^(nmap-s[A-Z])-T\d-")


def encrypted_inside(fam: str) -> bool:
    """A family whose attack happens inside an encrypted session: make_train.py leaves its session's rows out."""
    return fam.startswith(ENCRYPTED_INSIDE)


def family(scenario: str) -> str:
    """The family a scenario name belongs to (see the module's docstring)."""
    m = _NMAP_SCAN.match(scenario)
    return m.group(1) if m else scenario


@functools.cache
def seed_families(seed: int) -> frozenset[tuple[str, str]]:
    """The (class, family) pairs ``seed``'s catalogue holds; cached, since the table and ``--rank-seeds`` both
    enumerate the same seeds and a catalogue takes a few milliseconds to build."""
    with tempfile.TemporaryDirectory() as tmp:
        lab = run.Lab(run.Plan(seed, 10.0), Path(tmp), Path(tmp))
        cat = run.Attacks(lab, seed).catalogue()
    return frozenset((cls, family(s.name)) for cls, scenarios in cat.items() for s in scenarios)


def catalogue_families(seeds: list[int]) -> dict[tuple[str, str], int]:
    """(class, family) -> how many of ``seeds`` have it in their catalogue."""
    seen: Counter[tuple[str, str]] = Counter()
    for seed in seeds:
        seen.update(seed_families(seed))
    return dict(seen)


def model_lab_files(model: Path) -> list[Path]:
    """The model's recorded training files that are lab Parquet files (``lab/data/``), sha256 checked."""
    meta = json.loads((model / "metadata.json").read_text())
    out = []
    for rec in meta["train"]["data_files"]:
        path = HERE / "data" / rec["file"]
        if not rec["file"].endswith(".parquet"):
            continue  # NSL-KDD: no lab scenarios
        if not path.is_file():
            sys.exit(f"{path}: recorded by {model} but missing")
        if file_sha256(path) != rec["sha256"]:
            sys.exit(f"{path}: not the file {model} was trained on (sha256 differs)")
        out.append(path)
    return out


def training_rows(files: list[Path]) -> pl.DataFrame:
    """label, family, rows, runs: the attack rows of the files that carry a ``scenario`` column."""
    frames = [
        pl.read_parquet(f, columns=["label", "scenario", "run"])
        for f in files
        if "scenario" in pl.read_parquet_schema(f)
    ]
    if not frames:
        return pl.DataFrame(schema={"label": pl.String, "family": pl.String, "rows": pl.UInt32, "runs": pl.UInt32})
    # counted per (label, scenario, run) first, so that family() runs once per scenario name, not once per row
    per_run = pl.concat(frames).filter(pl.col("label") != "normal").group_by("label", "scenario", "run").len()
    names = per_run["scenario"].unique()
    fam = pl.DataFrame({"scenario": names, "family": [family(n) for n in names]})
    return (
        per_run.join(fam, on="scenario")
        .group_by("label", "family")
        .agg(rows=pl.col("len").sum().cast(pl.UInt32), runs=pl.col("run").n_unique().cast(pl.UInt32))
    )


def coverage_table(offered: dict[tuple[str, str], int], n_seeds: int, trained: pl.DataFrame, thin: int) -> str:
    """A Markdown table: every family offered or trained, by class, thin ones marked."""
    got = {(r["label"], r["family"]): (r["rows"], r["runs"]) for r in trained.iter_rows(named=True)}
    keys = sorted(set(offered) | set(got), key=lambda k: (CLASSES.index(k[0]) if k[0] in CLASSES else 9, k[1]))
    lines = [
        "| class | family | seeds whose catalogue holds it | training rows | training runs | |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    for cls, fam in keys:
        rows, runs = got.get((cls, fam), (0, 0))
        share = f"{offered.get((cls, fam), 0)} of {n_seeds}"
        if encrypted_inside(fam):
            mark = "inside an encrypted session: make_train.py leaves its session's rows out"
        elif rows == 0:
            mark = "**none**"
        else:
            mark = ", ".join(m for m, on in (("thin", rows < thin), ("one run", runs == 1)) if on)
        lines.append(f"| {cls} | `{fam}` | {share} | {rows:,} | {runs} | {mark} |")
    n_thin = sum(1 for k in keys if got.get(k, (0, 0))[0] < thin and not encrypted_inside(k[1]))
    lines.append("")
    lines.append(
        f"{len(keys)} families; {n_thin} with fewer than {thin} training rows (not counting those inside an encrypted session)."
    )
    return "\n".join(lines) + "\n"


def marked(offered: dict[tuple[str, str], int], trained: pl.DataFrame, thin: int, one_run: bool = False) -> list[str]:
    """The offered families the next training runs must cover: fewer than ``thin`` training rows, or (with
    ``one_run``) rows from a single run, whose rates, timing and targets are one draw; never those inside an
    encrypted session (make_train.py leaves their rows out)."""
    got = {(r["label"], r["family"]): (r["rows"], r["runs"]) for r in trained.iter_rows(named=True)}

    def needs(key: tuple[str, str]) -> bool:
        rows, runs = got.get(key, (0, 0))
        return rows < thin or (one_run and runs <= 1)

    return sorted(f for cls, f in offered if needs((cls, f)) and not encrypted_inside(f))


def rank_seeds(seeds: list[int], fams: list[str]) -> list[tuple[int, int]]:
    """(seed, how many of ``fams`` its catalogue holds), most first, then the lowest seed: choosing training seeds
    from the catalogue alone, never from a run's figures."""
    want = set(fams)
    held = []
    for seed in seeds:
        have = {f for _, f in seed_families(seed)}
        held.append((seed, len(have & want)))
    return sorted(held, key=lambda t: (-t[1], t[0]))


def marked_regex(offered: dict[tuple[str, str], int], trained: pl.DataFrame, thin: int, one_run: bool = False) -> str:
    """An anchored regex of the scenario names of every family ``marked`` returns: ``lab/run.py --only`` with it
    runs just those families."""
    fams = marked(offered, trained, thin, one_run)
    # a scan-type family also names its timed scans (nmap-sT-T4-top100); nmap-sV, -sO and -sU are names as they are
    alts = [re.escape(f) + (r"(-T\d-.*)?" if _NMAP_SCAN.match(f + "-T0-") else "") for f in fams]
    return "^(" + "|".join(alts) + ")$"


def parse_seeds(text: str) -> list[int]:
    """``1-40`` or ``1,5,9`` (or both, comma-separated)."""
    out: list[int] = []
    for part in text.split(","):
        lo, _, hi = part.partition("-")
        out.extend(range(int(lo), int(hi or lo) + 1))
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "model" / "default")
    ap.add_argument("--data", type=Path, nargs="*", help="lab Parquet files instead of the model's recorded ones")
    ap.add_argument("--seeds", default="1-40", help="catalogue seeds to enumerate (default 1-40)")
    ap.add_argument("--thin", type=int, default=50, help="mark families with fewer training rows (default 50)")
    ap.add_argument("--regex", action="store_true", help="print the --only regex of the thin families instead")
    ap.add_argument("--one-run", action="store_true", help="--regex/--rank-seeds: also families trained from one run")
    ap.add_argument("--rank-seeds", help="print, per seed (e.g. 18-40), how many marked families its catalogue holds")
    ap.add_argument("-o", "--out", type=Path, help="also write the table here")
    a = ap.parse_args()
    seeds = parse_seeds(a.seeds)
    files = a.data if a.data else model_lab_files(a.model)
    offered, trained = catalogue_families(seeds), training_rows(files)
    if a.regex:
        print(marked_regex(offered, trained, a.thin, a.one_run))
        return 0
    if a.rank_seeds:
        fams = marked(offered, trained, a.thin, a.one_run)
        for seed, n in rank_seeds(parse_seeds(a.rank_seeds), fams):
            print(f"seed {seed}: {n} of {len(fams)} marked families")
        return 0
    table = coverage_table(offered, len(seeds), trained, a.thin)
    print(table, end="")
    if a.out:
        tmp = a.out.with_name(a.out.name + ".tmp")
        tmp.write_text(table)
        tmp.replace(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
