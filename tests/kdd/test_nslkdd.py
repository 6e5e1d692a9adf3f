"""The NSL-KDD reader: column names and dtypes shared with the extractor, labels, malformed input."""

from __future__ import annotations

import gzip
from pathlib import Path

import polars as pl
import pytest

from features.common import InputError
from features.kdd.columns import KDD_FEATURES, KDD_SCHEMA
from features.kdd.nslkdd import read_labeled, read_nslkdd


def test_sample_columns_dtypes_and_labels(sample_file: Path) -> None:
    df = read_nslkdd(sample_file)
    assert df.columns == [*KDD_FEATURES, "label", "label5", "difficulty"]
    assert {c: df.schema[c] for c in KDD_FEATURES} == KDD_SCHEMA
    assert df.schema["difficulty"] == pl.Int64
    assert df.height == 8
    assert df["label"].to_list()[:3] == ["normal", "normal", "neptune"]
    assert df["label5"].to_list() == ["normal", "normal", "DoS", "normal", "Probe", "R2L", "U2R", "DoS"]
    assert df["src_bytes"][0] == 491.0 and df["dst_host_count"][1] == 255.0
    assert df["difficulty"].to_list()[:3] == [20, 15, 19]


def test_gzip_detected_by_magic_not_name(sample_file: Path, tmp_path: Path) -> None:
    gz = tmp_path / "sample.data"  # no .gz suffix on purpose
    gz.write_bytes(gzip.compress(sample_file.read_bytes()))
    assert read_nslkdd(gz).equals(read_nslkdd(sample_file))


def test_malformed_row_is_one_line_error_naming_file_and_line(sample_file: Path, tmp_path: Path) -> None:
    lines = sample_file.read_text().splitlines()
    bad = tmp_path / "bad.txt"
    bad.write_text("\n".join([lines[0], lines[1].replace(",146,", ",oops,")]) + "\n")
    with pytest.raises(InputError, match=r"bad\.txt: line 2: src_bytes is not a number"):
        read_nslkdd(bad)
    short = tmp_path / "short.txt"
    short.write_text(lines[0] + "\n" + ",".join(lines[1].split(",")[:30]) + "\n")
    with pytest.raises(InputError, match=r"short\.txt: line 2: expected 43 .* got 30"):
        read_nslkdd(short)


def test_unknown_label_refused(sample_file: Path, tmp_path: Path) -> None:
    p = tmp_path / "x.txt"
    p.write_text(sample_file.read_text().replace("ipsweep", "martian"))
    with pytest.raises(InputError, match="martian"):
        read_nslkdd(p)


def test_parquet_with_label5_reads_to_same_shape(sample_file: Path, tmp_path: Path) -> None:
    df = read_nslkdd(sample_file)
    pq = tmp_path / "f.parquet"
    df.drop("label", "difficulty").with_columns(pl.lit("x").alias("src_ip")).write_parquet(pq)
    back = read_labeled(pq)
    assert back.columns == df.columns
    assert back["label"].to_list() == df["label5"].to_list()
    assert back["label5"].to_list() == df["label5"].to_list()
    assert back.drop("label", "difficulty").equals(df.drop("label", "difficulty"))


def test_parquet_without_label_refused(sample_file: Path, tmp_path: Path) -> None:
    pq = tmp_path / "f.parquet"
    read_nslkdd(sample_file).drop("label", "label5").write_parquet(pq)
    with pytest.raises(InputError, match="no label column"):
        read_labeled(pq)


@pytest.mark.parametrize(
    ("name", "rows", "counts"),
    [
        ("KDDTrain+.txt.gz", 125_973, (67_343, 45_927, 11_656, 995, 52)),
        ("KDDTrain+_20Percent.txt", 25_192, (13_449, 9_234, 2_289, 209, 11)),
        ("KDDTest+.txt", 22_544, (9_711, 7_458, 2_421, 2_754, 200)),
        ("KDDTest-21.txt", 11_850, (2_152, 4_342, 2_402, 2_754, 200)),
    ],
)
def test_real_files_match_source_md(nslkdd_dir: Path, name: str, rows: int, counts: tuple[int, ...]) -> None:
    df = read_nslkdd(nslkdd_dir / name)
    assert df.height == rows
    got = dict(df["label5"].value_counts().iter_rows())
    assert tuple(got.get(c, 0) for c in ("normal", "DoS", "Probe", "R2L", "U2R")) == counts
    assert df["difficulty"].null_count() == 0
