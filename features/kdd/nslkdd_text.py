"""Write KDD feature rows as NSL-KDD text: 41 comma-separated columns per line, no header, LF line ends.

Numbers are written as NSL-KDD writes them (``../shared/data/nsl-kdd/SOURCE.md``): the ``*_rate``
columns with two decimals (``0.00``, ``1.00``), every other numeric column as an integer (``0``,
``491``). A file written here reads back with ``features.kdd.nslkdd.read_nslkdd`` once a label (and
difficulty) column is appended, and any NSL-KDD tool that reads the 41 feature columns reads it.
Rows whose ``protocol_type`` NSL-KDD lacks (GRE, ESP, ...) are left out and counted.
"""

from __future__ import annotations

from pathlib import Path

import polars as pl

from features.common import atomic_path
from features.kdd.columns import CATEGORICAL, KDD_FEATURES, PROTOCOLS

RATE_COLUMNS: tuple[str, ...] = tuple(c for c in KDD_FEATURES if c.endswith("_rate"))


def _text(col: str) -> pl.Expr:
    if col in CATEGORICAL:
        return pl.col(col)
    if col in RATE_COLUMNS:
        hundredths = (pl.col(col) * 100).round(0).cast(pl.Int64)
        return pl.concat_str(
            (hundredths // 100).cast(pl.String), pl.lit("."), (hundredths % 100).cast(pl.String).str.zfill(2)
        )
    return pl.col(col).round(0).cast(pl.Int64).cast(pl.String)


def nslkdd_lines(features: pl.DataFrame) -> tuple[pl.Series, int]:
    """The NSL-KDD text line of each in-view row, and how many rows were left out (other IP protocols)."""
    keep = features.filter(pl.col("protocol_type").is_in(list(PROTOCOLS)))
    lines = keep.select(pl.concat_str([_text(c) for c in KDD_FEATURES], separator=",").alias("line"))
    return lines.get_column("line"), features.height - keep.height


def write_nslkdd(features: pl.DataFrame, path: Path) -> tuple[int, int]:
    """Write ``features`` (the 41 KDD_FEATURES, extra columns ignored) to ``path`` atomically.

    Returns:
        (rows written, rows left out because NSL-KDD has no protocol_type for them).
    """
    lines, left_out = nslkdd_lines(features)
    with atomic_path(Path(path)) as tmp, open(tmp, "wb") as fh:  # polars cannot encode non-UTF-8 names
        lines.to_frame().write_csv(fh, include_header=False, quote_style="never", line_terminator="\n")
    return lines.len(), left_out
