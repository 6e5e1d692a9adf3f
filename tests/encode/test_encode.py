"""FeatureSpec: fixed vocabularies, scaling, clipping, unknown categories, JSON round trip."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from features.encode.spec import CAPTURE_FEATURES, CONTENT_FEATURES, OTHER, FeatureSpec
from features.kdd.columns import KDD_FEATURES
from features.kdd.nslkdd import read_nslkdd


def test_capture_features_drop_exactly_the_13_content_features() -> None:
    assert len(CONTENT_FEATURES) == 13 and CONTENT_FEATURES[0] == "hot" and CONTENT_FEATURES[-1] == "is_guest_login"
    assert len(CAPTURE_FEATURES) == 28
    assert [c for c in KDD_FEATURES if c not in CAPTURE_FEATURES] == list(CONTENT_FEATURES)


def test_columns_do_not_depend_on_categories_present(sample_file: Path) -> None:
    df = read_nslkdd(sample_file)
    spec = FeatureSpec.fit(df, KDD_FEATURES)
    x_all, _ = spec.transform(df)
    x_one, _ = spec.transform(df.head(1))
    assert x_all.shape == (8, len(spec.encoded_columns)) == (8, 38 + 4 + 71 + 12)
    assert x_one.shape[1] == x_all.shape[1]
    assert x_all.dtype == np.float32
    # one-hot groups sum to one per row
    for col in ("protocol_type", "service", "flag"):
        idx = [i for i, s in enumerate(spec.source_feature) if s == col]
        assert np.all(x_all[:, idx].sum(axis=1) == 1.0)
    assert x_all[0, spec.encoded_columns.index("service=ftp_data")] == 1.0


def test_unknown_categories_go_to_other_and_are_counted(sample_file: Path) -> None:
    df = read_nslkdd(sample_file)
    spec = FeatureSpec.fit(df, CAPTURE_FEATURES)
    odd = df.with_columns(
        pl.when(pl.int_range(pl.len()) < 3).then(pl.lit("quic")).otherwise("service").alias("service")
    )
    x, outside = spec.transform(odd)
    assert outside == {"service": 3}
    other = spec.encoded_columns.index(f"service={OTHER}")
    assert x[:3, other].tolist() == [1.0, 1.0, 1.0] and x[3:, other].sum() == 0


def test_minmax_clips_to_training_range_and_zero_variance_is_safe(sample_file: Path) -> None:
    df = read_nslkdd(sample_file)
    spec = FeatureSpec.fit(df, ["count", "land", "src_bytes"], log1p=["src_bytes"])
    big = df.with_columns(pl.lit(10_000.0).alias("count"), pl.lit(1e12).alias("src_bytes"), pl.lit(1.0).alias("land"))
    x, outside = spec.transform(big)
    assert outside == {}
    i = spec.encoded_columns.index
    assert np.all(x[:, i("count")] == 1.0) and np.all(x[:, i("src_bytes")] == 1.0)
    assert np.all(x[:, i("land")] == 0.0)  # land is always 0 in the sample: zero span -> 0, no NaN
    x0, _ = spec.transform(df)
    assert x0[:, i("count")].min() == 0.0 and x0[:, i("count")].max() == 1.0
    # log1p: 491 bytes sits at log1p(491)/log1p(max) of the way, not 491/max
    s = spec.stats["src_bytes"]
    assert x0[0, i("src_bytes")] == pytest.approx((np.log1p(491) - s["min"]) / (s["max"] - s["min"]), rel=1e-6)


def test_standard_scaling_has_zero_mean_unit_std_on_training_rows(sample_file: Path) -> None:
    df = read_nslkdd(sample_file)
    spec = FeatureSpec.fit(df, ["count", "dst_host_count"], scaling="standard", log1p=())
    x, _ = spec.transform(df)
    assert np.allclose(x.mean(axis=0), 0.0, atol=1e-6) and np.allclose(x.std(axis=0), 1.0, atol=1e-5)


def test_missing_numbers_counted(sample_file: Path) -> None:
    df = read_nslkdd(sample_file)
    spec = FeatureSpec.fit(df, ["count"])
    x, outside = spec.transform(df.with_columns(pl.lit(None, dtype=pl.Float64).alias("count")))
    assert outside == {"count": 8} and np.all(np.isfinite(x))


def test_json_round_trip(sample_file: Path) -> None:
    df = read_nslkdd(sample_file)
    spec = FeatureSpec.fit(df, CAPTURE_FEATURES, scaling="standard")
    back = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back == spec and back.encoded_columns == spec.encoded_columns
    np.testing.assert_array_equal(back.transform(df)[0], spec.transform(df)[0])
    assert len(back.source_feature) == len(back.encoded_columns)


def test_capture_aliases_encode_https_as_http(sample_file: Path) -> None:
    from features.encode.spec import CAPTURE_ALIASES

    df = read_nslkdd(sample_file)
    spec = FeatureSpec.fit(df, CAPTURE_FEATURES, aliases=CAPTURE_ALIASES)
    https = df.with_columns(pl.lit("http_443").alias("service"))
    x, outside = spec.transform(https)
    cols = spec.encoded_columns
    assert outside == {} and np.all(x[:, cols.index("service=http")] == 1.0)
    assert np.all(x[:, cols.index("service=http_443")] == 0.0)
    back = FeatureSpec.from_dict(json.loads(json.dumps(spec.to_dict())))
    assert back.aliases == {"service": {"http_443": "http"}}
    # specs written before aliases existed still load, with none
    d = spec.to_dict()
    del d["aliases"]
    assert FeatureSpec.from_dict(d).aliases == {}
