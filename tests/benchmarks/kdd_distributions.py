"""Compare KDD feature distributions: our flows from ../shared/data/pcaps/{benign,attack} vs NSL-KDD rows.

    python tests/benchmarks/kdd_distributions.py [--out /work/notes/kdd-distributions.md]

For each numeric feature: median and 95th percentile of our benign flows, our attack flows, KDDTrain+
normal rows and KDDTrain+ attack rows; and the share of our benign flows whose value lies outside
[min, max] of the normal rows ("never seen in normal") and above the normal rows' 99th percentile.
For the categorical features: the share of our benign flows whose value (or service/flag pair) has
fewer than 10 normal rows in KDDTrain+. Those are where false alarms will come from.

Attack captures are taken whole (their files also hold some background flows; see MANIFEST.tsv).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import polars as pl

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # run as a script from anywhere

from features.kdd import kdd_features
from features.kdd_columns import CATEGORICAL, KDD_FEATURES, NUMERIC, PROTOCOLS
from features.nslkdd import read_nslkdd

REPO = Path(__file__).resolve().parents[2]
PCAPS = REPO.parent / "shared" / "data" / "pcaps"
NSL = REPO.parent / "shared" / "data" / "nsl-kdd" / "KDDTrain+.txt.gz"


def extract_dir(folder: Path) -> tuple[pl.DataFrame, list[str]]:
    """KDD features of every capture in ``folder`` (each file on its own), and one line per capture."""
    from features import extract  # type: ignore[attr-defined,unused-ignore]

    parts, log = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        t = time.perf_counter()
        try:
            ext = extract.extract_flows([path])
        except Exception as e:  # a capture nta refuses is reported, not fatal for the survey
            log.append(f"| {path.name} | refused: {' '.join(str(e).split())[:100]} | | |")
            continue
        feats = kdd_features(ext.flows, ext.payloads)
        parts.append(feats.select(KDD_FEATURES).with_columns(pl.lit(path.name).alias("capture")))
        out_of_view = feats.filter(~pl.col("protocol_type").is_in(list(PROTOCOLS))).height
        log.append(f"| {path.name} | {feats.height:,} | {out_of_view:,} | {time.perf_counter() - t:.2f} |")
    df = pl.concat(parts) if parts else pl.DataFrame()
    return df.filter(pl.col("protocol_type").is_in(list(PROTOCOLS))), log


def _fmt(v: float | None) -> str:
    if v is None:
        return "-"
    return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"


def numeric_table(sets: dict[str, pl.DataFrame], normal: pl.DataFrame, benign: pl.DataFrame) -> list[str]:
    head = " | ".join(f"{k} med / p95" for k in sets)
    rows = [
        f"| feature | {head} | benign outside normal [min,max] | benign > normal p99 |",
        "|" + " --- |" * (len(sets) + 3),
    ]
    for c in NUMERIC:
        cells = []
        for df in sets.values():
            s = df.get_column(c)
            cells.append(f"{_fmt(s.median())} / {_fmt(s.quantile(0.95))}")  # type: ignore[arg-type]
        lo, hi, p99 = normal[c].min(), normal[c].max(), normal[c].quantile(0.99)
        b = benign.get_column(c)
        outside = ((b < lo) | (b > hi)).mean() if b.len() else 0.0
        above = (b > p99).mean() if b.len() else 0.0
        rows.append(f"| {c} | {' | '.join(cells)} | {outside:.1%} | {above:.1%} |")  # type: ignore[str-format]
    return rows


def categorical_table(normal: pl.DataFrame, benign: pl.DataFrame) -> list[str]:
    rows = ["| value | benign flows | share of benign | NSL-KDD normal rows with it |", "| --- | --- | --- | --- |"]
    for c in (*CATEGORICAL, "service+flag"):
        key = pl.concat_str("service", pl.lit("/"), "flag") if c == "service+flag" else pl.col(c)
        seen = normal.group_by(key.alias("v")).len()
        ours = benign.group_by(key.alias("v")).len().join(seen, on="v", how="left", suffix="_nsl")
        ours = ours.with_columns(pl.col("len_nsl").fill_null(0)).sort("len", descending=True)
        for v, n, n_nsl in ours.head(12).iter_rows():
            mark = " **rare in normal**" if n_nsl < 10 else ""
            rows.append(f"| {c}={v} | {n:,} | {n / benign.height:.1%} | {n_nsl:,}{mark} |")
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", type=Path, default=REPO.parent / "notes" / "kdd-distributions.md")
    args = ap.parse_args()
    nsl = read_nslkdd(NSL)
    normal, attack = nsl.filter(pl.col("label") == "normal"), nsl.filter(pl.col("label") != "normal")
    benign, log_b = extract_dir(PCAPS / "benign")
    bad, log_a = extract_dir(PCAPS / "attack")
    sets = {"ours benign": benign, "ours attack": bad, "NSL normal": normal, "NSL attack": attack}
    lines = [
        "# KDD feature distributions: shared captures vs NSL-KDD (KDDTrain+)",
        "",
        f"Made by `python tests/benchmarks/kdd_distributions.py` ({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}).",
        f"Flows (TCP/UDP/ICMP only): ours benign {benign.height:,}, ours attack {bad.height:,};"
        f" NSL-KDD normal {normal.height:,}, attack {attack.height:,}.",
        "",
        "## Numeric features",
        "",
        *numeric_table(sets, normal, benign),
        "",
        "## Categorical values of our benign flows",
        "",
        *categorical_table(normal, benign),
        "",
        "## Captures",
        "",
        "| capture | flows | other IP protocols | seconds |",
        "| --- | --- | --- | --- |",
        *log_b,
        *log_a,
        "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
