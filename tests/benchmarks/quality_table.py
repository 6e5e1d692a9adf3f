"""Verdict quality on captures: the held-out lab run, the shared corpus and NSL-KDD, for one or two models.

    python tests/benchmarks/quality_table.py --lab /work/labruns/seed101 [--model DIR] [--old-model DIR]
        [--corpus ../shared/data/pcaps] [--nslkdd ../shared/data/nsl-kdd] [--out docs/results/quality.md]

Lab: every ``*.pcap`` under ``--lab`` (the run's capture and its edge cuts in ``cuts/``) is scanned as
``nta scan`` would (no ``--novelty``) and its verdicts joined to the nearest ``labels.csv``
(``features.kdd.labels``). Per scenario of the run's own capture: flows, flows given the right class, and
whether an incident of the right class holds any of them; then flow recall per attack class, benign flows
called attacks, and the same pooled over the cuts. Corpus: ``tests/scan/corpus_scan.py``'s table (expected
class from the capture's name). NSL-KDD: 5-class and binary accuracy on KDDTest+ and KDDTest-21, network
alone, with the novelty gate and with the support gate (where the model holds one). With ``--old-model``, the
lab, corpus and NSL-KDD tables for both. Not a test and never a basis for choosing anything: the figures go in
the README and the issue's note.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script from anywhere

ATTACKS = ("DoS", "Probe", "R2L", "U2R")


def _corpus_module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("corpus_scan", REPO / "tests" / "scan" / "corpus_scan.py")
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _labels_for(pcap: Path) -> Path | None:
    for d in (pcap.parent, pcap.parent.parent):
        if (d / "labels.csv").exists():
            return d / "labels.csv"
    return None


def scan_labelled(pcap: Path, labels: Path, model: Path | None):  # type: ignore[no-untyped-def]
    """Verdicts of one capture with ``truth`` and ``scenario`` columns, and the incidents' labels by id."""
    import polars as pl

    from analyzer.pipeline import ScanConfig, run_scan
    from features.kdd.labels import label_flows, read_label_windows

    with tempfile.TemporaryDirectory() as tmp:
        r = run_scan(ScanConfig(paths=(pcap,), out=Path(tmp) / "o", device="cpu", model_dir=model))
        # the verdicts as written: the scan streams them to its outputs and keeps only the rows its report names
        flows = pl.read_parquet(Path(tmp) / "o" / "flows.parquet")
    join = label_flows(flows, read_label_windows(labels))
    v = flows.with_columns(join.label.alias("truth"), join.scenario).filter(pl.col("truth").is_not_null())
    inc = {row["incident_id"]: row["label"] for row in r.incidents.iter_rows(named=True)}
    return v, inc, join.unexplained


def lab_tables(lab: Path, model: Path | None) -> tuple[list[str], dict[str, float]]:
    import polars as pl

    pcaps = sorted(p for p in lab.rglob("*.pcap*") if _labels_for(p) is not None)
    main = [p for p in pcaps if "cuts" not in p.parts]
    cuts = [p for p in pcaps if "cuts" in p.parts]
    lines = [
        "| scenario | class | flows | right class | recall | incident of the class |",
        "| --- | --- | ---: | ---: | ---: | --- |",
    ]
    frames = []
    for pcap in main:
        v, inc, unexplained = scan_labelled(pcap, _labels_for(pcap), model)  # type: ignore[arg-type]
        frames.append(v)
        for (scenario, cls), g in sorted(
            v.filter(pl.col("truth") != "normal").group_by(["scenario", "truth"]), key=lambda t: str(t[0])
        ):
            right = int((g["label"] == cls).sum())
            ids = {i for i in g["incident_id"].to_list() if i is not None and i != ""}
            has_inc = any(inc.get(i) == cls for i in ids)
            lines.append(
                f"| {scenario} | {cls} | {g.height:,} | {right:,} | {right / g.height:.3f} | {'yes' if has_inc else 'NO'} |"
            )
        if unexplained:
            lines.append(f"| ({pcap.name}: {unexplained} attacker flows outside every window left out) | | | | | |")
    stats: dict[str, float] = {}
    allv = pl.concat(frames) if frames else None
    if allv is not None:
        lines.append("")
        for cls in ATTACKS:
            g = allv.filter(pl.col("truth") == cls)
            if g.height:
                stats[f"recall_{cls}"] = float((g["label"] == cls).mean())  # type: ignore[arg-type]
                lines.append(f"- {cls}: flow recall {stats[f'recall_{cls}']:.3f} ({g.height:,} flows)")
        ben = allv.filter(pl.col("truth") == "normal")
        stats["benign_fpr"] = float((ben["label"] != "normal").mean()) if ben.height else 0.0  # type: ignore[arg-type]
        lines.append(f"- benign flows called attacks: {stats['benign_fpr']:.2%} of {ben.height:,}")
    if cuts:
        cv = pl.concat([scan_labelled(p, _labels_for(p), model)[0] for p in cuts])  # type: ignore[arg-type]
        att = cv.filter(pl.col("truth") != "normal")
        ben = cv.filter(pl.col("truth") == "normal")
        rec = float((att["label"] == att["truth"]).mean()) if att.height else 0.0  # type: ignore[arg-type]
        fpr = float((ben["label"] != "normal").mean()) if ben.height else 0.0  # type: ignore[arg-type]
        stats["cuts_recall"], stats["cuts_benign_fpr"] = rec, fpr
        lines.append(
            f"- {len(cuts)} edge cuts: attack flows of the right class {rec:.3f} ({att.height:,} flows); "
            f"benign flows called attacks {fpr:.2%} of {ben.height:,}"
        )
    return lines, stats


def nslkdd_lines(nslkdd: Path, models: dict[str, Path | None]) -> list[str]:
    from features.kdd.nslkdd import read_labeled
    from model.evaluate import evaluate
    from model.infer import Classifier, default_model_dir

    lines = [
        "| model | test file | 5-class accuracy | binary accuracy | + novelty gate: 5-class | + novelty gate: binary "
        "| + support gate: 5-class | + support gate: binary |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    tests = {name: read_labeled(nslkdd / name) for name in ("KDDTest+.txt", "KDDTest-21.txt")}
    for label, d in models.items():
        clf = Classifier.load(d or default_model_dir(), device="cpu")
        for name, df in tests.items():
            r = evaluate(clf, df)
            cells = [r["multiclass"]["accuracy"], r["binary"]["accuracy"]]
            for gate in ("novelty_gate", "support_gate"):  # nan: the model has no such gate
                g = r.get(gate, {})
                cells += [g.get(v, {}).get("accuracy", float("nan")) for v in ("multiclass", "binary")]
            lines.append(f"| {label} (`{clf.model_id}`) | {name} | " + " | ".join(f"{c:.4f}" for c in cells) + " |")
    return lines


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--lab", type=Path, help="A held-out lab run folder (captures + labels.csv).")
    ap.add_argument("--model", type=Path, help="Model folder (default: the shipped model).")
    ap.add_argument("--old-model", type=Path, help="A second model to put beside it (lab, corpus and NSL-KDD).")
    ap.add_argument("--corpus", type=Path, default=REPO.parent / "shared" / "data" / "pcaps")
    ap.add_argument("--nslkdd", type=Path, default=REPO.parent / "shared" / "data" / "nsl-kdd")
    ap.add_argument("--skip-corpus", action="store_true")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    import torch

    torch.set_num_threads(1)
    out: list[str] = []
    if args.lab:
        for label, d in (("model", args.model), *((("old model", args.old_model),) if args.old_model else ())):
            lines, _stats = lab_tables(args.lab, d)
            out += [f"## Held-out lab run ({args.lab.name}), {label}", "", *lines, ""]
            print("\n".join(out[-len(lines) - 3 :]), flush=True)
    if not args.skip_corpus and args.corpus.exists():
        corpus = _corpus_module()
        for label, d in (("model", args.model), *((("old model", args.old_model),) if args.old_model else ())):
            lines, _ = corpus.scan_corpus(args.corpus, d, False, echo=False)
            out += [f"## Shared corpus, {label}", "", *lines, ""]
            print("\n".join(out[-len(lines) - 3 :]), flush=True)
    if args.nslkdd.exists():
        models: dict[str, Path | None] = {"model": args.model}
        if args.old_model:
            models["old model"] = args.old_model
        out += ["## NSL-KDD", "", *nslkdd_lines(args.nslkdd, models), ""]
    text = "\n".join(out) + "\n"
    if args.out:
        args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
