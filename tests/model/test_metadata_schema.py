"""A model folder is checked before anything is built from it: metadata.json against bounds, the network's
shapes on torch's meta device, weights and probabilities for NaN. Every case starts from a copy of the shipped
model (real files) with one thing changed, and must be one ModelError (exit 3) naming what is wrong, fast."""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file
from typer.testing import CliRunner

from analyzer.cli import app
from features.common import ModelError
from model.artifacts import METADATA, WEIGHTS, _sha256, read_metadata
from model.infer import Classifier, default_full_model_dir, default_model_dir

SAMPLES = Path(__file__).resolve().parents[2] / "sample_pcaps"


@pytest.fixture
def model(tmp_path: Path) -> Path:
    dst = tmp_path / "model"
    shutil.copytree(default_model_dir(), dst)
    return dst


def _edit(model: Path, change: Callable[[dict[str, Any]], None]) -> None:
    meta = json.loads((model / METADATA).read_text())
    change(meta)
    (model / METADATA).write_text(json.dumps(meta))


def _refused(model: Path, *words: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(ModelError) as e:
        Classifier.load(model, device="cpu")
    assert time.monotonic() - t0 < 5, "refused, but only after building or allocating"
    msg = str(e.value)
    assert "\n" not in msg and e.value.exit_code == 3
    for w in words:
        assert w in msg, (w, msg)


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(meta: dict[str, Any]) -> None:
        *parents, key = path.split(".")
        d = meta
        for k in parents:
            d = d[k]
        d[key] = value

    return change


@pytest.mark.parametrize("which", [default_model_dir, default_full_model_dir])
def test_the_shipped_models_are_inside_the_bounds(which: Callable[[], Path]) -> None:
    assert read_metadata(which())["classes"][0] == "normal"


@pytest.mark.parametrize(
    ("path", "value", "words"),
    [
        ("net_config.channels", 1_000_000, ["net_config.channels: 1000000 is outside 1..512"]),
        ("net_config.depth", 10_000_000, ["net_config.depth: 10000000 is outside 1..32"]),
        ("net_config.depth", 5.0, ["net_config.depth: 5.0 is not an integer"]),
        ("net_config.kernels", [1, 4], ["net_config.kernels[1]: 4 is even"]),
        ("net_config.dropout", 1.5, ["net_config.dropout"]),
        ("net_config.arch", "transformer", ["net_config.arch: 'transformer' is not one of"]),
        ("net_config.extra", 1, ["net_config: unknown keys ['extra']"]),
        ("classes", ["benign", "DoS", "Probe", "R2L", "U2R"], ["the first class must be 'normal'"]),
        ("classes", ["normal", "DoS", "DoS", "R2L", "U2R"], ["classes: names repeat"]),
        ("classes", ["normal", "DoS"], ["classes: 2 names for a 5-class network"]),
        ("feature_spec.stats.count.min", 1e9, ["feature_spec.stats.count: min"]),
        ("feature_spec.stats.count.log1p", "yes", ["feature_spec.stats.count.log1p"]),
        ("feature_spec.scaling", "zscore", ["feature_spec.scaling"]),
        ("weights_sha256", "x" * 64, ["weights_sha256"]),
        ("novelty.quantile", 7, ["novelty.quantile: 7 is outside 0..1"]),
    ],
)
def test_a_field_out_of_bounds_is_refused_by_name(model: Path, path: str, value: Any, words: list[str]) -> None:
    _edit(model, _set(path, value))
    _refused(model, str(model / METADATA), *words)


def test_nan_in_the_json_is_refused(model: Path) -> None:
    text = (model / METADATA).read_text()
    stats_min = json.loads(text)["feature_spec"]["stats"]["count"]["min"]
    (model / METADATA).write_text(text.replace(f'"min": {stats_min}', '"min": NaN', 1))
    _refused(model, "NaN is not a number nta accepts")


@pytest.mark.parametrize(("depth", "words"), [(100_000, ["nested too deep"]), (40, ["nested more than 32 levels"])])
def test_deep_nesting_anywhere_is_refused(model: Path, depth: int, words: list[str]) -> None:
    text = (model / METADATA).read_text().rstrip().removesuffix("}")
    (model / METADATA).write_text(text + ', "notes": ' + "[" * depth + "]" * depth + "}")
    _refused(model, *words)


def test_a_huge_file_is_refused_unread(model: Path) -> None:
    _edit(model, _set("notes", "x" * (5 << 20)))
    _refused(model, "larger than 4 MiB")


def test_a_config_inside_the_bounds_but_too_big_is_not_built(model: Path) -> None:
    _edit(model, lambda m: m["net_config"].update(channels=512, branch_channels=512, depth=32))
    _refused(model, "parameters", "(at most 20,000,000)")  # the shipped model's networks together (model.confirm)


def test_a_config_that_does_not_match_the_weights_is_refused_before_building(model: Path) -> None:
    # 3.3 million parameters a network: the shipped model's four (model.confirm) stay inside the bound
    _edit(model, lambda m: m["net_config"].update(channels=128, branch_channels=128, depth=8))
    _refused(model, "tensors do not fit", "wrong shape")


def _rewrite_weights(model: Path, change: Callable[[dict[str, torch.Tensor]], object]) -> None:
    tensors = load_file(str(model / WEIGHTS))
    change(tensors)
    save_file(tensors, str(model / WEIGHTS), metadata={"format": "pt"})
    _edit(model, _set("weights_sha256", _sha256(model / WEIGHTS)))  # "with the hash updated"


def test_an_all_nan_model_with_a_matching_hash_is_refused(model: Path) -> None:
    _rewrite_weights(model, lambda t: [v.fill_(float("nan")) for v in t.values() if v.is_floating_point()])
    _refused(model, "weights are NaN or infinite")
    res = CliRunner().invoke(
        app, ["scan", str(SAMPLES / "syn-flood.pcap"), "-o", str(model.parent / "o"), "--model", str(model), "-q"]
    )
    assert res.exit_code == 3 and res.stderr.count("\n") == 1 and "NaN" in res.stderr
    assert not (model.parent / "o").exists()


def test_finite_weights_that_overflow_give_no_verdict(model: Path) -> None:
    """Finite weights, infinite logits: the probabilities are NaN, and NaN is never turned into "normal"."""
    head = next(k for k in load_file(str(model / WEIGHTS)) if k.endswith("weight") and "head" in k)

    def overflow(t: dict[str, torch.Tensor]) -> None:
        t[head].fill_(3e38)

    _rewrite_weights(model, overflow)
    clf = Classifier.load(model, device="cpu")
    with pytest.raises(ModelError, match=r"probabilities are NaN or infinite for \d"):
        clf.predict_proba(np.ones((3, clf.net_config.n_features), np.float32))
    res = CliRunner().invoke(
        app,
        ["scan", str(SAMPLES / "syn-flood.pcap"), "-o", str(model.parent / "o"), "--model", str(model), "-q",
         "--fail-on", "any"],
    )  # fmt: skip
    assert res.exit_code == 3, res.output
    assert res.stderr.startswith("nta: error: model ") and "no verdict is given" in res.stderr
    assert not (model.parent / "o").exists()
