"""Labelled training rows from lab runs: ``nta features --labels`` per capture, capped per scenario, one Parquet.

    python lab/make_train.py RUN_DIR [RUN_DIR ...] -o lab/data/lab-train.parquet [--cap 2000] [--seed 0]

Each RUN_DIR is a lab run's output folder (``lab/run.py --out``): every capture in it (and in its ``cuts/``) is
turned into features with its ``labels.csv`` (``nta features --labels --per-file``, so no window feature sees
another capture's flows). A flood or a scan makes tens of thousands of near-identical flows; so that one
scenario does not outweigh every other, at most ``--cap`` rows per (run, scenario) are kept, drawn with a
fixed seed; benign flows (class normal: the run's ``benign-background`` window, or no window at all, scenario
``benign``) are many kinds of traffic in one group, so they get ``--benign-cap`` per run and scenario. (Until
2026-12-05 the benign cap went to scenario ``benign`` only, so the ``benign-background`` rows of seeds 1-7 were
capped at ``--cap``: 2,000 per run; those files were made so.) The output holds the 41 KDD
features, ``label`` (the class), ``scenario``, ``run`` and ``capture``, zstd-compressed: small enough to commit,
so the shipped model can be rebuilt from the repository (the README gives the training command).

Rows a flow's features cannot tell apart from benign traffic by construction are left out (``unseeable``):
the attack scenarios that happen inside an encrypted SSH session (``ssh-privesc-*``: a normal login, then
privilege escalation typed inside the session). Their SSH flow is an ordinary SSH session; labelled U2R it
teaches the network that ordinary SSH sessions are U2R. Their other flows (a download the session starts)
stay. ``--rules-only FILE`` applies these rules to a file this script wrote before (the lab runs behind
``lab-train.parquet`` are not all kept) instead of extracting features.

``--benign-only``: keep only the rows no attack window claims (class normal): for runs added for their
benign variety.

Never give this the held-out run: it is for training only.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
NTA = [sys.executable, "-m", "analyzer"]


def _captures(run: Path) -> list[Path]:
    return sorted(p for p in run.rglob("*") if p.is_file() and p.name.endswith((".pcap", ".pcapng", ".pcap.gz")))


def _labels_for(pcap: Path) -> Path:
    for d in (pcap.parent, pcap.parent.parent):
        if (d / "labels.csv").exists():
            return d / "labels.csv"
    raise SystemExit(f"{pcap}: no labels.csv beside it or one folder up")


ENCRYPTED_INSIDE = ("ssh-privesc-",)  # attack scenarios that happen inside an encrypted session


def unseeable() -> Any:
    """A polars filter: the rows whose attack happens inside an encrypted SSH session, their SSH flows."""
    import polars as pl

    inside = pl.any_horizontal([pl.col("scenario").str.starts_with(p) for p in ENCRYPTED_INSIDE])
    return inside & (pl.col("service") == "ssh")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("runs", type=Path, nargs="*")
    ap.add_argument("--rules-only", type=Path, help="apply the row rules to a file this script wrote, nothing else")
    ap.add_argument("--benign-only", action="store_true", help="keep only rows of class normal")
    ap.add_argument("-o", "--out", type=Path, required=True)
    ap.add_argument("--cap", type=int, default=2000, help="Rows kept per (run, scenario) at most.")
    ap.add_argument("--benign-cap", type=int, default=20000, help="Benign rows kept per run and scenario at most.")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    sys.path.insert(0, str(REPO))
    import polars as pl

    from features.kdd.columns import KDD_FEATURES

    if args.rules_only is not None:
        rows = pl.read_parquet(args.rules_only)
        kept = rows.filter(~unseeable())
        _write(kept, args.out)
        print(f"{args.rules_only}: {rows.height:,} rows, {rows.height - kept.height:,} left out -> {args.out}")
        return
    if not args.runs:
        ap.error("give lab run folders, or --rules-only FILE")
    parts = []
    with tempfile.TemporaryDirectory() as tmp:
        for k, run in enumerate(args.runs):
            for i, cap in enumerate(_captures(run)):
                out = Path(tmp) / f"{k}-{run.name}-{i}.parquet"  # a run and its host cuts share run.name
                cmd = [
                    *NTA,
                    "features",
                    str(cap),
                    "--labels",
                    str(_labels_for(cap)),
                    "--per-file",
                    "-q",
                    "-o",
                    str(out),
                ]
                res = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
                if res.returncode != 0:
                    raise SystemExit(f"{' '.join(cmd)}: exit {res.returncode}: {res.stderr.strip()}")
                for line in res.stderr.splitlines():
                    print(f"{cap.relative_to(run.parent)}: {line}", file=sys.stderr)
                df = pl.read_parquet(out).with_columns(pl.lit(run.name).alias("run"), pl.lit(cap.name).alias("capture"))
                parts.append(df.select([*KDD_FEATURES, "label", "scenario", "run", "capture"]))
    rows = pl.concat(parts)
    rows = rows.with_columns(
        pl.when(pl.col("scenario") == "").then(pl.lit("benign")).otherwise(pl.col("scenario")).alias("scenario")
    ).filter(~unseeable())
    if args.benign_only:
        rows = rows.filter(pl.col("label") == "normal")
    # Shuffle with the seed, then keep the first --cap rows of each (run, scenario): a seeded sample per group.
    capped = (
        rows.with_row_index("_i")
        .sample(fraction=1.0, shuffle=True, seed=args.seed)
        .filter(
            pl.int_range(pl.len()).over(["run", "scenario"])
            < pl.when(pl.col("label") == "normal").then(args.benign_cap).otherwise(args.cap)
        )
        .sort("_i")
        .drop("_i")
    )
    _write(capped, args.out)
    summary = capped.group_by("label").len().sort("label")
    print(f"{rows.height:,} labelled rows, {capped.height:,} kept (cap {args.cap} per run and scenario) -> {args.out}")
    print(summary)


def _write(rows: Any, out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    rows.write_parquet(out, compression="zstd", compression_level=19)


if __name__ == "__main__":
    main()
