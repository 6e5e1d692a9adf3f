"""Read NSL-KDD records (text, plain or gzipped) or labelled nta feature Parquet into one frame shape.

The frame has the 41 ``KDD_FEATURES`` in ``KDD_SCHEMA`` dtypes (the same names and dtypes the capture
extractor writes), then ``label`` (the attack name, e.g. ``neptune``, or ``normal``), ``label5`` (its class
from ``ATTACK_CLASS``: normal, DoS, Probe, R2L, U2R) and ``difficulty`` (NSL-KDD's 0-21 score, Int64; null
where the source has none).

NSL-KDD text files have no header: 41 features, the label, the difficulty, comma separated
(``../shared/data/nsl-kdd/SOURCE.md``). Rows with 42 fields (no difficulty, as in KDD Cup 99 files) are
accepted too, and a trailing ``.`` on the label (KDD Cup 99's ``normal.``) is dropped.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import polars as pl

from features.common import InputError
from features.kdd.columns import ATTACK_CLASS, CATEGORICAL, CLASSES, KDD_FEATURES, KDD_SCHEMA

__all__ = ["LABEL_COLUMNS", "read_labeled", "read_nslkdd"]

LABEL_COLUMNS: tuple[str, ...] = ("label", "label5", "difficulty")
_GZIP_MAGIC = b"\x1f\x8b"
_PARQUET_MAGIC = b"PAR1"


def _read_bytes(path: Path) -> bytes:
    """The file's bytes, gunzipped when it starts with the gzip magic (whatever its name says)."""
    try:
        raw = Path(path).read_bytes()
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if raw[:2] == _GZIP_MAGIC:
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as e:
            raise InputError(f"{path}: corrupt gzip data: {e}") from None
    return raw


def _first_bad_line(path: Path, raw: bytes, ncols: int) -> str:
    """Describe the first malformed line (slow path, only run after the fast parse failed)."""
    for lineno, line in enumerate(raw.decode("utf-8", errors="replace").splitlines(), start=1):
        if not line.strip():
            continue
        fields = line.split(",")
        if len(fields) != ncols:
            return f"{path}: line {lineno}: expected {ncols} comma-separated fields, got {len(fields)}"
        for name, value in zip(KDD_FEATURES, fields, strict=False):
            if name in CATEGORICAL:
                continue
            try:
                float(value)
            except ValueError:
                return f"{path}: line {lineno}: {name} is not a number: {value.strip()[:40]!r}"
        if ncols == 43:
            try:
                int(fields[42])
            except ValueError:
                return f"{path}: line {lineno}: difficulty is not an integer: {fields[42].strip()[:40]!r}"
    return f"{path}: not NSL-KDD text (41 features, label, difficulty per line)"


def _with_classes(path: Path, df: pl.DataFrame) -> pl.DataFrame:
    """Add ``label5`` from ``label``; an attack name outside ``ATTACK_CLASS`` is an InputError naming it."""
    known = {**ATTACK_CLASS, **{c: c for c in CLASSES}}
    unknown = sorted(set(df.get_column("label").unique().drop_nulls().to_list()) - set(known))
    if unknown or df.get_column("label").null_count():
        shown = ", ".join(unknown[:5]) or "(empty)"
        raise InputError(f"{path}: unknown attack label(s): {shown} (known: the names in features.kdd.columns)")
    return df.with_columns(pl.col("label").replace_strict(known, return_dtype=pl.String).alias("label5"))


def read_nslkdd(path: Path) -> pl.DataFrame:
    """Read an NSL-KDD text file (plain or gzip, detected by its magic bytes) into the common frame shape.

    Raises:
        InputError: one line naming the file and, for a malformed row, its line number and problem.
    """
    path = Path(path)
    raw = _read_bytes(path)
    first = raw.split(b"\n", 1)[0]
    ncols = first.count(b",") + 1
    if ncols not in (42, 43):
        raise InputError(f"{path}: line 1: expected 43 comma-separated fields (NSL-KDD), got {ncols}")
    names = [*KDD_FEATURES, "label", "difficulty"][:ncols]
    schema = {**KDD_SCHEMA, "label": pl.String(), "difficulty": pl.Int64()}
    try:
        df = pl.read_csv(
            io.BytesIO(raw),
            has_header=False,
            new_columns=names,
            schema_overrides={n: schema[n] for n in names},
            infer_schema=False,
        ).with_columns(pl.col(c).cast(schema[c]) for c in names)
    except (pl.exceptions.PolarsError, ValueError):
        raise InputError(_first_bad_line(path, raw, ncols)) from None
    if df.null_count().sum_horizontal().item():  # polars pads short rows and empty fields with nulls
        raise InputError(_first_bad_line(path, raw, ncols))
    if ncols == 42:
        df = df.with_columns(pl.lit(None, dtype=pl.Int64).alias("difficulty"))
    df = df.with_columns(pl.col("label").str.strip_chars().str.strip_chars_end("."))
    return _with_classes(path, df).select([*KDD_FEATURES, *LABEL_COLUMNS])


def read_labeled(path: Path) -> pl.DataFrame:
    """Read NSL-KDD text, or a Parquet of nta features with a ``label`` or ``label5`` column, into one shape.

    A Parquet's ``label`` may hold attack names or the class names themselves; if it only has ``label5``,
    ``label`` is set to the class name. Extra columns (flow identity, ...) are dropped.

    Raises:
        InputError: unreadable file, missing feature or label columns, unknown labels.
    """
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            magic = fh.read(4)
    except OSError as e:
        raise InputError(f"{path}: cannot read: {e.strerror or e}") from None
    if magic != _PARQUET_MAGIC:
        return read_nslkdd(path)
    try:
        with open(path, "rb") as fh:  # a file object: polars cannot encode a non-UTF-8 file name
            df = pl.read_parquet(fh)
    except (pl.exceptions.PolarsError, OSError) as e:
        raise InputError(f"{path}: unreadable Parquet: {' '.join(str(e).split())[:200]}") from None
    missing = [c for c in KDD_FEATURES if c not in df.columns]
    if missing:
        raise InputError(f"{path}: missing feature column(s): {', '.join(missing[:5])}")
    if "label" not in df.columns and "label5" not in df.columns:
        raise InputError(f"{path}: no label column (need 'label' or 'label5' to train or evaluate)")
    if "label" not in df.columns:
        df = df.with_columns(pl.col("label5").alias("label"))
    try:
        df = df.with_columns(
            *(pl.col(c).cast(t) for c, t in KDD_SCHEMA.items()), pl.col("label").cast(pl.String).str.strip_chars()
        )
    except pl.exceptions.PolarsError as e:
        raise InputError(f"{path}: feature columns have the wrong types: {' '.join(str(e).split())[:200]}") from None
    difficulty = (
        pl.col("difficulty").cast(pl.Int64) if "difficulty" in df.columns else pl.lit(None, dtype=pl.Int64)
    ).alias("difficulty")
    df = df.with_columns(difficulty)
    return _with_classes(path, df.drop("label5", strict=False)).select([*KDD_FEATURES, *LABEL_COLUMNS])
