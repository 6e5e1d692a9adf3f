"""Inference speed of a model folder: flows/s for predict_proba at batch 4096 (encoding excluded and included).

    python tests/benchmarks/bench_infer.py [MODEL_DIR] [--rows 100000] [--threads 2] [--device auto] [--data FILE]
        [--engine scan|torch]

``--engine scan`` (the default) measures the classifier a scan uses (``model.scan_classifier.load_classifier``: numpy's
network on the CPU, ``--threads`` splitting the rows); ``torch`` measures torch's network (``model.infer.Classifier``).

Prints the machine load beside the figures: on a shared machine they move with it.
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch

from features.kdd.columns import KDD_FEATURES
from features.kdd.nslkdd import read_labeled
from model.classifier import NumpyClassifier
from model.infer import Classifier, default_model_dir
from model.scan_classifier import load_classifier

SHARED = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "nsl-kdd" / "KDDTest+.txt"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir", nargs="?", type=Path, default=default_model_dir())
    ap.add_argument("--rows", type=int, default=100_000)
    ap.add_argument("--batch-size", type=int, default=4096)
    ap.add_argument("--threads", type=int, default=0, help="threads (0: torch's default, or numpy's one)")
    ap.add_argument("--engine", choices=("scan", "torch"), default="scan", help="the scan's classifier or torch's")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--data", type=Path, default=SHARED, help="labelled rows to tile (default KDDTest+)")
    a = ap.parse_args()
    if a.threads:
        torch.set_num_threads(a.threads)
    clf = (
        Classifier.load(a.model_dir, device=a.device) if a.engine == "torch" else load_classifier(a.model_dir, a.device)
    )
    if a.engine == "scan":
        clf.threads = a.threads or None
    df = read_labeled(a.data).select(KDD_FEATURES)
    reps = -(-a.rows // df.height)
    big = pl.concat([df] * reps).head(a.rows)
    t = time.perf_counter()
    x, _ = clf.encode(big)  # (n, F)
    t_enc = time.perf_counter() - t
    clf.predict_proba(x[: a.batch_size], a.batch_size)  # warm-up
    best = float("inf")
    for _ in range(a.repeats):
        t = time.perf_counter()
        p = clf.predict_proba(x, a.batch_size)
        best = min(best, time.perf_counter() - t)
    assert p.shape == (len(x), len(clf.classes)) and np.isfinite(p).all()
    load = os.getloadavg()[0]
    print(
        f"model {clf.model_id} ({clf.net_config.arch}, {clf.feature_set}, {x.shape[1]} columns) on {clf.device}, "
        f"{type(clf).__name__}, {clf.threads or 1 if isinstance(clf, NumpyClassifier) else torch.get_num_threads()} "
        f"threads, {os.cpu_count()} CPUs, load average {load:.1f}"
    )
    print(f"predict_proba: {len(x) / best:,.0f} flows/s (best of {a.repeats}, batch {a.batch_size}, {len(x):,} rows)")
    print(f"encode + predict: {len(x) / (best + t_enc):,.0f} flows/s (encoding {len(x) / t_enc:,.0f} rows/s)")
    if clf.novelty is not None:
        gated = float("inf")
        for _ in range(a.repeats):
            t = time.perf_counter()
            clf.predict_gated(x, a.batch_size)
            gated = min(gated, time.perf_counter() - t)
        prof = clf.novelty
        print(
            f"predict_gated: {len(x) / gated:,.0f} flows/s (novelty profile: {prof.clusters} centre(s), {prof.dims} dims)"
        )


if __name__ == "__main__":
    main()
