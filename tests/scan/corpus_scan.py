"""What ``nta scan`` calls each capture of the shared corpus: a Markdown table for the issue's note.

    python tests/scan/corpus_scan.py [--corpus ../shared/data/pcaps] [--model DIR] [--novelty] [--out table.md]

For every attack capture: the classes of its attack flows and its largest incidents; for every benign
capture: the share of flows called attacks (target: at most 1 %). The "expected" column is read from the
capture's name (scans and sweeps -> Probe, floods -> DoS, brute force -> R2L); captures of attacks
NSL-KDD has no class for (tunnels, C2, exploits) expect "-". Not a test: the figures go in the note.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

EXPECT = [
    (("scan", "sweep", "nmap", "masscan", "probe"), "Probe"),
    (("flood", "ddos", "slowloris", "amplification", "reflection"), "DoS"),
    (("bruteforce", "guessing"), "R2L"),
]


def expected(name: str) -> str:
    for words, cls in EXPECT:
        if any(w in name for w in words):
            return cls
    return "-"


def scan_corpus(corpus: Path, model: Path | None, novelty: bool, echo: bool = True) -> tuple[list[str], dict[str, int]]:
    """Scan every capture under ``corpus``/attack and ``corpus``/benign: Markdown rows and the pooled figures."""

    import polars as pl

    from analyzer.pipeline import ScanConfig, run_scan
    from features.common import NtaError

    lines = [
        "| capture | expected | flows | attack flows | classes (flows) | incidents (largest first) | verdict |",
        "| --- | --- | ---: | ---: | --- | --- | --- |",
    ]
    benign_shares: list[float] = []
    benign_flows = benign_attacks = attack_expected = attack_found = 0
    for kind in ("attack", "benign"):
        for cap in sorted((corpus / kind).iterdir()):
            with tempfile.TemporaryDirectory() as tmp:
                try:
                    cfg = ScanConfig(paths=(cap,), out=Path(tmp) / "o", device="cpu", model_dir=model, novelty=novelty)
                    r = run_scan(cfg)
                except NtaError as e:
                    lines.append(f"| {kind}/{cap.name} | | | | | error: {e} | |")
                    continue
                # every attack row as written (the scan keeps only the rows its report names)
                att = pl.read_parquet(Path(tmp) / "o" / "flows.parquet").filter(pl.col("label") != "normal")
            classes = att.group_by("label").len().sort("len", descending=True)
            cls_text = ", ".join(f"{c} {n:,}" for c, n in classes.iter_rows())
            inc = r.incidents.sort("flows", descending=True)
            inc_text = "; ".join(inc["summary"].head(2).to_list()) + (f"; +{inc.height - 2}" if inc.height > 2 else "")
            share = att.height / max(r.flows, 1)
            want = "normal" if kind == "benign" else expected(cap.name)
            if kind == "benign":
                benign_shares.append(share)
                benign_flows += r.flows
                benign_attacks += att.height
                ok = "ok" if share <= 0.01 else f"MISS ({share:.1%} > 1 %)"
            elif want == "-":
                ok = "n/a"
            else:
                attack_expected += 1
                hit = want in inc["label"].to_list()
                attack_found += hit
                ok = "ok" if hit else "MISS"
            lines.append(
                f"| {kind}/{cap.name} | {want} | {r.flows:,} | {att.height:,} ({share:.1%}) | {cls_text or '-'} "
                f"| {inc_text or '-'} | {ok} |"
            )
            if echo:
                print(lines[-1], flush=True)
    over = sum(s > 0.01 for s in benign_shares)
    lines.append("")
    lines.append(
        f"Benign captures: {len(benign_shares)}, {over} above 1 % of flows called attacks; "
        f"median share {sorted(benign_shares)[len(benign_shares) // 2]:.1%}; pooled {benign_attacks:,} of "
        f"{benign_flows:,} benign flows ({benign_attacks / max(benign_flows, 1):.1%}) called attacks. "
        f"Attack captures with an expected class: {attack_found} of {attack_expected} raise an incident of that class."
    )
    stats = {
        "benign_flows": benign_flows,
        "benign_called_attack": benign_attacks,
        "attack_captures_expected": attack_expected,
        "attack_captures_found": attack_found,
    }
    return lines, stats


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "pcaps")
    ap.add_argument("--model", type=Path, help="Model folder (default: the shipped model).")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--novelty", action="store_true", help="Scan with the model's novelty gate (nta scan --novelty).")
    args = ap.parse_args()
    lines, _ = scan_corpus(args.corpus, args.model, args.novelty)
    text = "\n".join(lines) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
