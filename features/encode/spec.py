"""FeatureSpec: the frozen encoding from KDD feature columns to the model's float32 matrix.

A spec is fitted on training data only and travels with the model (JSON inside ``metadata.json``), so a
capture is encoded exactly as the training data was:

* categorical columns (protocol_type, service, flag) are one-hot over NSL-KDD's *fixed* vocabularies from
  ``features.kdd.columns`` (not the order met in training, so two specs agree whatever data they saw),
  plus an explicit ``__other__`` slot; values outside the vocabulary land there and are counted;
* numeric columns optionally go through ``log1p`` (heavy-tailed byte counts and durations: without it
  min-max squeezes 99% of rows into the first 1% of the range), are clipped to the training range (test
  and capture values beyond it would otherwise extrapolate to values the network never saw), then scaled
  by min-max (default), z-score, or not at all. A zero-variance column encodes as 0.

``CAPTURE_FEATURES`` are the 28 features a capture can really give: all 41 minus the 13 content features
(``hot`` .. ``is_guest_login``). Those need cleartext payload (login prompts, shell output, file
operations); on modern, mostly encrypted traffic the extractor can only report 0 for them, while in
NSL-KDD they are exactly what separates most R2L/U2R rows from normal. A model trained with them would
read "0" as evidence of "normal" on every capture, so the capture model never sees them.

``CAPTURE_ALIASES`` maps category values before one-hot encoding, for the capture model only. NSL-KDD's
``http_443`` rows (530 in KDDTrain+) are all attacks (neptune S0/REJ, port sweeps): the 1999 traffic had no
benign HTTPS, so a model trained on it calls every modern HTTPS flow DoS with confidence 1.0 (seen on
``sample_pcaps/demo-mixed.pcap``). HTTPS is HTTP over TLS, so the capture spec encodes ``http_443`` as
``http``: the attack rows keep their S0/REJ flags and error rates, and benign HTTPS meets the benign HTTP
rows. (ssh, imap4, ldap, netbios_* have the same problem, with no benign counterpart to map to.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from features.common import InputError
from features.kdd.columns import CATEGORICAL, FLAGS, KDD_FEATURES, PROTOCOLS, SERVICES

__all__ = [
    "CAPTURE_ALIASES",
    "CAPTURE_FEATURES",
    "CONTENT_FEATURES",
    "DEFAULT_LOG1P",
    "FEATURE_SETS",
    "OTHER",
    "SPEC_VERSION",
    "FeatureSpec",
]

SPEC_VERSION = 1
OTHER = "__other__"
CONTENT_FEATURES: tuple[str, ...] = KDD_FEATURES[KDD_FEATURES.index("hot") : KDD_FEATURES.index("is_guest_login") + 1]
CAPTURE_FEATURES: tuple[str, ...] = tuple(c for c in KDD_FEATURES if c not in CONTENT_FEATURES)
FEATURE_SETS: dict[str, tuple[str, ...]] = {"capture": CAPTURE_FEATURES, "full": KDD_FEATURES}
# Heavy-tailed counters (max in the thousands to billions, median 0): log1p before scaling.
DEFAULT_LOG1P: tuple[str, ...] = (
    "duration", "src_bytes", "dst_bytes", "hot", "num_compromised", "num_root", "num_file_creations",
    "num_access_files",
)  # fmt: skip
CAPTURE_ALIASES: dict[str, dict[str, str]] = {"service": {"http_443": "http"}}
_FIXED_VOCAB: dict[str, tuple[str, ...]] = {"protocol_type": PROTOCOLS, "service": SERVICES, "flag": FLAGS}
SCALINGS: tuple[str, ...] = ("minmax", "standard", "none")
_SCALINGS = SCALINGS


@dataclass
class FeatureSpec:
    """Ordered input columns, frozen vocabularies and per-column statistics; ``transform`` applies them.

    ``stats[col]`` = {"min", "max", "mean", "std", "log1p"}; min/max/mean/std are of the values *after*
    log1p when it is on, computed on the training rows only.
    """

    columns: list[str]
    scaling: str = "minmax"
    vocab: dict[str, list[str]] = field(default_factory=dict)
    stats: dict[str, dict[str, Any]] = field(default_factory=dict)
    aliases: dict[str, dict[str, str]] = field(default_factory=dict)  # col -> {value: value encoded instead}

    @classmethod
    def fit(
        cls,
        df: pl.DataFrame,
        columns: Sequence[str],
        scaling: str = "minmax",
        log1p: Sequence[str] = DEFAULT_LOG1P,
        aliases: dict[str, dict[str, str]] | None = None,
    ) -> FeatureSpec:
        """Fit on training rows: vocabularies are fixed, statistics come from ``df``; ``aliases`` are stored."""
        if scaling not in _SCALINGS:
            raise InputError(f"unknown scaling {scaling!r} (expected one of {', '.join(_SCALINGS)})")
        cols = list(columns)
        bad = [c for c in cols if c not in KDD_FEATURES]
        missing = [c for c in cols if c not in df.columns]
        if bad or missing:
            raise InputError(f"cannot fit a feature spec: unknown {bad} / missing {missing} column(s)")
        if df.height == 0:
            raise InputError("cannot fit a feature spec on zero rows")
        vocab = {c: [*_FIXED_VOCAB[c], OTHER] for c in cols if c in CATEGORICAL}
        stats: dict[str, dict[str, Any]] = {}
        for c in cols:
            if c in CATEGORICAL:
                continue
            v = _numeric(df, c, c in log1p)
            v = v[np.isfinite(v)]
            if v.size == 0:
                v = np.zeros(1)
            stats[c] = {
                "min": float(v.min()),
                "max": float(v.max()),
                "mean": float(v.mean()),
                "std": float(v.std()),
                "log1p": c in log1p,
            }
        used = {c: dict(m) for c, m in (aliases or {}).items() if c in vocab}
        return cls(columns=cols, scaling=scaling, vocab=vocab, stats=stats, aliases=used)

    @property
    def encoded_columns(self) -> list[str]:
        """The matrix's column names, in order: ``service=http`` for one-hots, the feature name otherwise."""
        out: list[str] = []
        for c in self.columns:
            out.extend(f"{c}={v}" for v in self.vocab[c]) if c in self.vocab else out.append(c)
        return out

    @property
    def source_feature(self) -> list[str]:
        """For each encoded column, the KDD feature it came from (to sum attributions per feature)."""
        out: list[str] = []
        for c in self.columns:
            out.extend([c] * (len(self.vocab[c]) if c in self.vocab else 1))
        return out

    def transform(self, df: pl.DataFrame) -> tuple[np.ndarray, dict[str, int]]:
        """Encode ``df`` into float32 (n, F) in ``encoded_columns`` order.

        Returns the matrix and, per input column, how many values fell outside the spec (a category not
        in the vocabulary, or a missing/non-finite number, encoded as the training minimum); columns
        with none are omitted.

        Raises:
            InputError: a column of the spec is missing from ``df``.
        """
        missing = [c for c in self.columns if c not in df.columns]
        if missing:
            raise InputError(f"features missing for the model: {', '.join(missing[:5])}")
        n = df.height
        x = np.zeros((n, len(self.encoded_columns)), dtype=np.float32)  # (n, F)
        outside: dict[str, int] = {}
        j = 0
        rows = np.arange(n)
        for c in self.columns:
            if c in self.vocab:
                vocab = self.vocab[c]
                other = len(vocab) - 1
                values = df.get_column(c).cast(pl.String)
                if c in self.aliases:
                    values = values.replace(self.aliases[c])
                codes = values.replace_strict(
                    vocab[:-1], list(range(other)), default=other, return_dtype=pl.Int32
                ).to_numpy()  # (n,) index into vocab
                x[rows, j + codes] = 1.0
                unknown = int((codes == other).sum())
                j += len(vocab)
            else:
                v = _numeric(df, c, bool(self.stats[c]["log1p"]))  # (n,) float64
                bad = ~np.isfinite(v)
                unknown = int(bad.sum())
                x[:, j] = self._scale(c, np.where(bad, self.stats[c]["min"], v))
                j += 1
            if unknown:
                outside[c] = unknown
        return x, outside

    def _scale(self, c: str, v: np.ndarray) -> np.ndarray:
        s = self.stats[c]
        v = np.clip(v, s["min"], s["max"])
        if self.scaling == "minmax":
            span = s["max"] - s["min"]
            return (v - s["min"]) / span if span > 0 else np.zeros_like(v)
        if self.scaling == "standard":
            return (v - s["mean"]) / s["std"] if s["std"] > 0 else np.zeros_like(v)
        return v

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (``encoded_columns`` included for readers; recomputed on load)."""
        return {
            "spec_version": SPEC_VERSION,
            "columns": list(self.columns),
            "scaling": self.scaling,
            "vocab": {k: list(v) for k, v in self.vocab.items()},
            "stats": {k: dict(v) for k, v in self.stats.items()},
            "aliases": {k: dict(v) for k, v in self.aliases.items()},
            "encoded_columns": self.encoded_columns,
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> FeatureSpec:
        """Inverse of ``to_dict``; InputError on a spec version or shape this code does not understand."""
        if d.get("spec_version") != SPEC_VERSION:
            raise InputError(f"feature spec version {d.get('spec_version')!r} is not {SPEC_VERSION}")
        try:
            spec = cls(
                columns=list(d["columns"]),
                scaling=str(d["scaling"]),
                vocab={k: list(v) for k, v in d["vocab"].items()},
                stats={k: dict(v) for k, v in d["stats"].items()},
                aliases={k: dict(v) for k, v in d.get("aliases", {}).items()},  # absent in older specs
            )
        except (KeyError, TypeError, AttributeError) as e:
            raise InputError(f"malformed feature spec: {e!r}") from None
        if set(spec.vocab) | set(spec.stats) != set(spec.columns):
            raise InputError("malformed feature spec: columns do not match vocab and stats")
        return spec


def _numeric(df: pl.DataFrame, c: str, log1p: bool) -> np.ndarray:
    """Column ``c`` as float64 (nulls -> NaN), log1p'd (negatives clipped to 0 first) when asked."""
    v = df.get_column(c).cast(pl.Float64).fill_null(float("nan")).to_numpy().astype(np.float64, copy=False)
    return np.log1p(np.maximum(v, 0.0)) if log1p else v
