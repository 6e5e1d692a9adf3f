"""2-D PCA of encoded features and a k-NN separability score in that projection (numpy only).

Backs ``nta study pca``: the MSMRNet paper claims one-hot + min-max separates attack from normal records
better than one-hot + standardisation. A scatter plot can flatter either way, so each variant also gets a
number: the 5-fold cross-validated accuracy of a k-nearest-neighbour vote (k=5) *in the two plotted
dimensions*, i.e. how separable the classes look in exactly the picture shown.

Everything is numpy (no scikit-learn): PCA from the eigendecomposition of the (F, F) covariance, k-NN
from chunked squared distances so memory stays at ``chunk * n_train`` floats.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from features.common import InputError, ProgressFn, atomic_path, make_parent, no_progress
from features.encode.spec import DEFAULT_LOG1P, FeatureSpec
from features.kdd.columns import KDD_FEATURES, KDD_SCHEMA
from features.kdd.nslkdd import read_labeled

__all__ = [
    "VARIANTS",
    "KnnScore",
    "PcaStudy",
    "Projection",
    "Variant",
    "VariantResult",
    "knn_cv_score",
    "knn_predict",
    "pca_2d",
    "read_study_frame",
    "run_pca_study",
    "stratified_folds",
]


@dataclass(frozen=True)
class Projection:
    """The first two principal components of a matrix.

    Attributes:
        z: (n, 2) float64 coordinates of each row.
        explained: (2,) fraction of the total variance each component explains (0 when the total is 0).
        components: (2, F) unit loading vectors; sign fixed so the largest-magnitude loading is positive.
        mean: (F,) column means subtracted before projecting.
    """

    z: np.ndarray
    explained: np.ndarray
    components: np.ndarray
    mean: np.ndarray


def pca_2d(x: np.ndarray) -> Projection:
    """Project ``x`` (n, F) onto its two leading principal components.

    Deterministic: components are sign-normalised (largest |loading| positive), so the same data gives
    the same picture on every run and machine. Fewer than two non-constant directions give zero columns.
    """
    x = np.asarray(x, dtype=np.float64)  # (n, F)
    if x.ndim != 2 or x.shape[0] == 0:
        raise ValueError(f"pca_2d needs a non-empty 2-D matrix, got shape {x.shape}")
    n, f = x.shape
    mean = x.mean(axis=0)  # (F,)
    xc = x - mean  # (n, F)
    # Covariance route: F is ~120 after one-hot, so an (F, F) eigh is far cheaper than an SVD of (n, F).
    cov = (xc.T @ xc) / max(n - 1, 1)  # (F, F)
    evals, evecs = np.linalg.eigh(cov)  # ascending
    order = np.argsort(evals)[::-1]
    evals = np.clip(evals[order], 0.0, None)
    comps = np.zeros((2, f))
    take = min(2, f)
    comps[:take] = evecs[:, order[:take]].T
    for i in range(take):
        if evals[i] <= 0:
            comps[i] = 0.0
            continue
        if comps[i, np.argmax(np.abs(comps[i]))] < 0:
            comps[i] = -comps[i]
    total = float(evals.sum())
    explained = np.zeros(2)
    if total > 0:
        explained[:take] = evals[:take] / total
    z = xc @ comps.T  # (n, 2)
    return Projection(z=z, explained=explained, components=comps, mean=mean)


def stratified_folds(y: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """A fold index in [0, folds) per row, each class spread evenly across folds (seeded shuffle)."""
    y = np.asarray(y)
    rng = np.random.default_rng(seed)
    fold = np.empty(y.shape[0], dtype=np.int64)
    offset = 0
    for cls in np.unique(y):
        idx = np.flatnonzero(y == cls)
        idx = idx[rng.permutation(idx.size)]
        # Continue the round-robin where the previous class stopped so small classes do not all start in fold 0.
        fold[idx] = (np.arange(idx.size) + offset) % folds
        offset = (offset + idx.size) % folds
    return fold


def knn_predict(
    train_z: np.ndarray,
    train_y: np.ndarray,
    test_z: np.ndarray,
    k: int = 5,
    n_classes: int | None = None,
    chunk: int = 2048,
) -> np.ndarray:
    """Majority vote of the ``k`` nearest training rows (Euclidean) for each test row.

    Vote ties go to the class whose tied neighbours are nearer (each vote carries a rank bonus far below
    one vote), so the result is deterministic.

    Args:
        train_z: (m, d) training coordinates; train_y: (m,) integer classes in [0, n_classes).
        test_z: (t, d) coordinates to label.
        chunk: test rows per distance block; memory is ``chunk * m`` float64.

    Returns:
        (t,) int64 predicted classes.
    """
    train_z = np.asarray(train_z, dtype=np.float64)
    test_z = np.asarray(test_z, dtype=np.float64)
    train_y = np.asarray(train_y, dtype=np.int64)
    m = train_z.shape[0]
    if m == 0:
        raise ValueError("knn_predict needs at least one training row")
    k = min(k, m)
    c = int(n_classes if n_classes is not None else train_y.max() + 1)
    # One vote each, plus a rank bonus (nearest largest) whose total over k neighbours stays below 1e-3.
    bonus = 1.0 + 1e-3 * (k - np.arange(k)) / (k * (k + 1))  # (k,)
    out = np.empty(test_z.shape[0], dtype=np.int64)
    for start in range(0, test_z.shape[0], chunk):
        q = test_z[start : start + chunk]  # (b, d)
        # Per-dimension differences, not |q|^2 - 2q.t + |t|^2: unscaled byte counts reach 1e9, and the expanded
        # form would cancel away every distance below ~100 (d is 2 here, so the loop is short).
        d2 = np.zeros((q.shape[0], m))  # (b, m)
        for j in range(q.shape[1]):
            d2 += (q[:, j, None] - train_z[None, :, j]) ** 2
        # (b, k) unordered; argpartition needs k < m
        near = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < m else np.tile(np.arange(m), (q.shape[0], 1))
        near_d = np.take_along_axis(d2, near, axis=1)
        # Stable sort on (distance, index) so equal distances (duplicate records are common) rank the same way.
        order = np.lexsort((near, near_d), axis=1)
        near = np.take_along_axis(near, order, axis=1)  # (b, k) nearest first
        votes = np.zeros((q.shape[0], c))  # (b, C)
        rows = np.repeat(np.arange(q.shape[0]), k)
        np.add.at(votes, (rows, train_y[near].ravel()), np.tile(bonus, q.shape[0]))
        out[start : start + q.shape[0]] = votes.argmax(axis=1)
    return out


@dataclass(frozen=True)
class KnnScore:
    """Cross-validated k-NN scores: plain accuracy, balanced accuracy (mean per-class recall), and the
    accuracy of always answering the most common class (what "separable" must beat)."""

    accuracy: float
    balanced_accuracy: float
    majority: float


def knn_cv_score(z: np.ndarray, y: np.ndarray, k: int = 5, folds: int = 5, seed: int = 0) -> KnnScore:
    """k-fold stratified cross-validated k-NN on coordinates ``z`` (n, d) with integer labels ``y`` (n,)."""
    z = np.asarray(z, dtype=np.float64)
    y = np.asarray(y, dtype=np.int64)
    if y.shape[0] != z.shape[0] or y.shape[0] < folds:
        raise ValueError(f"knn_cv_score needs at least {folds} labelled rows, got {y.shape[0]}")
    c = int(y.max()) + 1
    fold = stratified_folds(y, folds, seed)
    pred = np.empty_like(y)
    for f in range(folds):
        test = fold == f
        pred[test] = knn_predict(z[~test], y[~test], z[test], k=k, n_classes=c)
    present = np.unique(y)
    recalls = [float((pred[y == cls] == cls).mean()) for cls in present]
    counts = np.bincount(y, minlength=c)
    return KnnScore(
        accuracy=float((pred == y).mean()),
        balanced_accuracy=float(np.mean(recalls)),
        majority=float(counts.max() / y.shape[0]),
    )


# --- the study: encode the data several ways, project each, score each -------------------------------------


@dataclass(frozen=True)
class Variant:
    """One preprocessing to compare: a scaling and which columns get log1p first."""

    name: str
    scaling: str
    log1p: tuple[str, ...]


# (a)-(c) are the paper's comparison (no log1p anywhere, as the paper describes); (d) is what nta ships.
VARIANTS: tuple[Variant, ...] = (
    Variant("one-hot only", "none", ()),
    Variant("one-hot + standardisation", "standard", ()),
    Variant("one-hot + min-max", "minmax", ()),
    Variant("nta: one-hot + log1p + min-max", "minmax", DEFAULT_LOG1P),
)


@dataclass(frozen=True)
class VariantResult:
    """A variant's projection and, when the data is labelled, its binary and 5-class k-NN scores."""

    variant: Variant
    projection: Projection
    binary: KnnScore | None
    five_class: KnnScore | None


@dataclass(frozen=True)
class PcaStudy:
    """What ``nta study pca`` reports: the sampled labels and one result per variant.

    ``label5`` is (n,) class names or None for an unlabelled capture Parquet; ``rows_total`` is the row
    count before sampling.
    """

    rows_total: int
    label5: np.ndarray | None
    results: list[VariantResult]


def read_study_frame(path: Path) -> tuple[pl.DataFrame, bool]:
    """Read NSL-KDD text or a features Parquet; a Parquet without labels is accepted (plot only).

    Returns the frame (the 41 KDD features, plus ``label5`` when labelled) and whether it is labelled.

    Raises:
        InputError: unreadable file, missing feature columns, unknown labels.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            is_parquet = fh.read(4) == b"PAR1"
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if is_parquet:
        try:
            with open(path, "rb") as fh:  # file objects: polars cannot encode a non-UTF-8 file name
                names = pl.read_parquet_schema(fh).keys()
        except (pl.exceptions.PolarsError, OSError) as e:
            raise InputError(f"{path}: unreadable Parquet: {' '.join(str(e).split())[:200]}") from None
        if "label" not in names and "label5" not in names:
            missing = [c for c in KDD_FEATURES if c not in names]
            if missing:
                raise InputError(f"{path}: missing feature column(s): {', '.join(missing[:5])}")
            with open(path, "rb") as fh:
                df = pl.read_parquet(fh, columns=list(KDD_FEATURES))
            return df.with_columns(pl.col(c).cast(t) for c, t in KDD_SCHEMA.items()), False
    return read_labeled(path), True


def run_pca_study(
    df: pl.DataFrame,
    *,
    labelled: bool,
    columns: tuple[str, ...] = KDD_FEATURES,
    sample: int = 20_000,
    seed: int = 0,
    k: int = 5,
    folds: int = 5,
    variants: tuple[Variant, ...] = VARIANTS,
    progress: ProgressFn = no_progress,
) -> PcaStudy:
    """Sample ``sample`` rows (seeded), then encode, project and (if labelled) score each variant.

    Each spec is fitted on the sample itself: the question is what the preprocessing does to *this* data.
    ``progress(done, total)`` counts variants.
    """
    if df.height == 0:
        raise InputError("no rows to study")
    rows_total = df.height
    if sample > 0 and df.height > sample:
        keep = np.sort(np.random.default_rng(seed).choice(df.height, size=sample, replace=False))
        df = df[keep]
    if labelled and df.height < folds:
        raise InputError(f"{df.height} labelled row(s): the {folds}-fold separability score needs at least {folds}")
    label5 = df.get_column("label5").to_numpy().astype(str) if labelled else None
    y5 = y2 = None
    if label5 is not None:
        y5 = np.searchsorted(np.array(sorted(set(label5))), label5)  # (n,) dense class index
        y2 = (label5 != "normal").astype(np.int64)  # (n,) 1 = attack
    results: list[VariantResult] = []
    for i, v in enumerate(variants):
        spec = FeatureSpec.fit(df, list(columns), scaling=v.scaling, log1p=v.log1p)
        x, _ = spec.transform(df)  # (n, F)
        proj = pca_2d(x)
        binary = knn_cv_score(proj.z, y2, k=k, folds=folds, seed=seed) if y2 is not None else None
        five = knn_cv_score(proj.z, y5, k=k, folds=folds, seed=seed) if y5 is not None else None
        results.append(VariantResult(v, proj, binary, five))
        progress(i + 1, len(variants))
    return PcaStudy(rows_total=rows_total, label5=label5, results=results)


def write_pca_tables(study: PcaStudy, out: Path) -> int:
    """Write ``pca_separability.csv`` (a row per variant and task) and ``pca_points.csv``; returns the rows projected."""
    make_parent(out / "pca_separability.csv")
    n = study.results[0].projection.z.shape[0]
    rows: list[dict[str, object]] = []
    for r in study.results:
        base = {
            "variant": r.variant.name,
            "scaling": r.variant.scaling,
            "log1p": " ".join(r.variant.log1p),
            "rows": n,
            "pc1_variance": float(r.projection.explained[0]),
            "pc2_variance": float(r.projection.explained[1]),
        }
        for task, s in (("normal-vs-attack", r.binary), ("5-class", r.five_class)):
            if s is not None:
                rows.append(
                    {
                        **base,
                        "task": task,
                        "knn_k": 5,
                        "folds": 5,
                        "knn_accuracy": s.accuracy,
                        "knn_balanced_accuracy": s.balanced_accuracy,
                        "majority_accuracy": s.majority,
                    }
                )
        if r.binary is None:
            rows.append({**base, "task": "unlabelled"})
    with atomic_path(out / "pca_separability.csv") as tmp:
        pl.DataFrame(rows).write_csv(tmp, float_precision=4)
    points: dict[str, np.ndarray] = {}
    if study.label5 is not None:
        points["label5"] = study.label5
    for i, r in enumerate(study.results):
        points[f"v{i + 1}_pc1"] = r.projection.z[:, 0]
        points[f"v{i + 1}_pc2"] = r.projection.z[:, 1]
    with atomic_path(out / "pca_points.csv") as tmp:
        pl.DataFrame(points).write_csv(tmp, float_precision=6)
    return n
