"""A model's figures on its own validation split, rebuilt from the training files its metadata records.

    python tests/benchmarks/validation_figure.py --model DIR [--data-dir lab/data] [--nslkdd ../shared/data/nsl-kdd]

The files are found by name (in ``--data-dir``, then ``--nslkdd``) and must have the recorded sha256; the split is
``model.data.stratified_split`` with the recorded seed and fraction, as ``nta train`` drew it. Prints accuracy and
macro-F1 of the network's argmax (what training records as ``metrics.val``) and with the support gate. For a combined
model (``model.confirm``) the split is its primary's: a confirmer trained with another seed has seen most of those
rows, so its figure there is a sanity bar, not an estimate. Not a test and not a basis for choosing anything.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))  # run as a script from anywhere


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", type=Path, default=REPO / "model" / "default")
    ap.add_argument("--data-dir", type=Path, default=REPO / "lab" / "data")
    ap.add_argument("--nslkdd", type=Path, default=REPO.parent / "shared" / "data" / "nsl-kdd")
    a = ap.parse_args()

    import polars as pl

    from features.kdd.nslkdd import read_labeled
    from model.data import file_sha256, stratified_split, targets
    from model.evaluate import metrics
    from model.infer import Classifier

    clf = Classifier.load(a.model, device="cpu")
    train = clf.metadata.get("train", {})
    frames = []
    for want in train.get("data_files", []):
        path = next((d / want["file"] for d in (a.data_dir, a.nslkdd) if (d / want["file"]).is_file()), None)
        if path is None or file_sha256(path) != want["sha256"]:
            print(f"{want['file']}: not found with sha256 {want['sha256'][:12]}... in {a.data_dir} or {a.nslkdd}")
            return 2
        frames.append(read_labeled(path))
    df = pl.concat(frames)
    cfg = train.get("config", {})
    y = targets(df, clf.classes)
    _, va = stratified_split(y, float(cfg.get("val_fraction", 0.1)), int(cfg.get("seed", 0)))
    x, _ = clf.encode(df[va])  # (n_val, F)
    plain = clf.predict_proba(x).argmax(axis=1)
    gated = clf.predict_supported(x)[0]
    confirm = clf.metadata.get("confirm") or {}
    print(f"model {clf.model_id}: {len(va):,} validation rows of {df.height:,} (seed {cfg.get('seed', 0)})"
          + (f", {confirm['members']} confirmers" if confirm else ""))  # fmt: skip
    for name, pred in (("network", plain), ("support gate", gated)):
        m = metrics(y[va], pred, clf.classes)
        print(f"  {name}: accuracy {m['accuracy']:.4f}, macro-F1 {m['macro_f1']:.4f}, normal FPR {m['fpr_normal']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
