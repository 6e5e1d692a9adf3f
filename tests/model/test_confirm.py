"""model.confirm: a model whose flagged rows are voted on by networks of other seeds. The rule on real numbers, the
folder's round trip (numpy and torch), refusals of confirmers that do not fit and of tampered files, the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.numpy import load_file, save_file
from typer.testing import CliRunner

from analyzer.cli import app
from features.common import ModelError
from features.encode.spec import FeatureSpec
from model.artifacts import save_model
from model.classifier import NumpyClassifier
from model.confirm import combine
from model.files import default_model_dir, sha256_file
from model.infer import Classifier
from model.network import MSMRNet, NetConfig
from model.weights import read_model

CFG = NetConfig(n_features=112, n_classes=5, depth=2, channels=8, branch_channels=4)


def _spec() -> FeatureSpec:
    return FeatureSpec.from_dict(json.loads((default_model_dir() / "metadata.json").read_text())["feature_spec"])


def _model(
    folder: Path, seed: int, cfg: NetConfig = CFG, spec: FeatureSpec | None = None, classes: tuple[str, ...] = ()
) -> Path:
    """A model folder with random weights (seeded): enough to tell each network's probabilities apart."""
    torch.manual_seed(seed)
    net = MSMRNet(cfg).eval()
    with torch.no_grad():  # logits spread wide enough that rows differ in class (some normal, some not)
        net.head.weight.mul_(20.0)
        net.head.bias.copy_(torch.tensor([0.5, 0.0, 0.0, 0.0, 0.0][: cfg.n_classes]))
    names = classes or ("normal", "DoS", "Probe", "R2L", "U2R")[: cfg.n_classes]
    save_model(
        folder, net, cfg, spec or _spec(), names, {"feature_set": "capture", "train": {"config": {"seed": seed}}}
    )
    return folder


def _rows(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, CFG.n_features)) < 0.3).astype(np.float32) * rng.random(
        (n, CFG.n_features), dtype=np.float32
    )


@pytest.fixture
def combined(tmp_path: Path) -> tuple[Path, list[Path], Path]:
    primary = _model(tmp_path / "p", 1)
    others = [_model(tmp_path / f"c{i}", 10 + i) for i in range(3)]
    out = tmp_path / "combined"
    combine(primary, others, out)
    return primary, others, out


def test_flagged_rows_take_the_mean_of_every_network_and_the_rest_keep_the_primarys(
    combined: tuple[Path, list[Path], Path],
) -> None:
    primary, others, out = combined
    x = _rows(700)
    alone = [NumpyClassifier.load(d).predict_proba(x) for d in (primary, *others)]  # each (n, K)
    got = NumpyClassifier.load(out).predict_proba(x)
    flagged = alone[0].argmax(axis=1) != 0
    assert 50 < flagged.sum() < 650  # both kinds of row are exercised
    assert np.array_equal(got[~flagged], alone[0][~flagged])  # bit for bit: the confirmers never see them
    mean = np.mean([p.astype(np.float64) for p in alone], axis=0)
    assert np.allclose(got[flagged], mean[flagged], atol=1e-6)
    changed = got.argmax(axis=1) != alone[0].argmax(axis=1)
    assert changed.any() and not (changed & ~flagged).any()  # votes change some classes, only of flagged rows


def test_the_folder_round_trips_and_torch_agrees(combined: tuple[Path, list[Path], Path]) -> None:
    primary, others, out = combined
    meta = json.loads((out / "metadata.json").read_text())
    primary_meta = json.loads((primary / "metadata.json").read_text())
    assert meta["confirm"] == {
        "members": 3, "rule": "mean-of-flagged", "primary": primary_meta["weights_sha256"],
        "sources": [json.loads((d / "metadata.json").read_text())["weights_sha256"] for d in others],
    }  # fmt: skip
    assert meta["weights_sha256"] == sha256_file(out / "weights.safetensors") != primary_meta["weights_sha256"]
    parts = read_model(out)
    assert len(parts.confirmers) == 3 and parts.tensors.keys() == read_model(primary).tensors.keys()
    for i, d in enumerate(others):
        own = read_model(d).tensors
        assert all(np.array_equal(parts.confirmers[i][k], own[k]) for k in own)
    x = _rows(300, seed=1)
    np_clf, torch_clf = NumpyClassifier.load(out), Classifier.load(out, device="cpu")
    assert len(torch_clf.confirmers) == 3
    assert np.abs(np_clf.predict_proba(x) - torch_clf.predict_proba(x)).max() < 1e-5


def test_a_rows_result_does_not_depend_on_its_batch(combined: tuple[Path, list[Path], Path]) -> None:
    clf = NumpyClassifier.load(combined[2])
    x = _rows(600, seed=2)
    whole = clf.predict_proba(x)
    order = np.random.default_rng(3).permutation(len(x))
    assert np.array_equal(clf.predict_proba(x[order]), whole[order])
    assert np.array_equal(clf.predict_proba(x[17:40]), whole[17:40])
    clf.threads = 2
    assert np.array_equal(clf.predict_proba(x), whole)


def test_confirmers_that_do_not_fit_are_refused_and_nothing_is_written(tmp_path: Path) -> None:
    primary = _model(tmp_path / "p", 1)
    spec = _spec().to_dict()
    column = next(iter(spec["stats"]))
    spec["stats"][column]["max"] = spec["stats"][column]["max"] * 2  # another scale: another matrix
    bad = {
        "feature encoding": _model(tmp_path / "enc", 2, spec=FeatureSpec.from_dict(spec)),
        "network config": _model(tmp_path / "cfg", 3, cfg=NetConfig(n_features=112, n_classes=5, depth=1)),
        "classes": _model(tmp_path / "cls", 4, classes=("normal", "DoS", "Probe", "R2L", "other")),
    }
    for what, folder in bad.items():
        with pytest.raises(ModelError, match=f"{folder}: its {what} differs"):
            combine(primary, [_model(tmp_path / "ok", 5), folder], tmp_path / "out")
        assert not (tmp_path / "out").exists() and not list(tmp_path.glob(".out.*"))
    spec["stats"][column]["mean"] = 123.0  # mean and deviation are not used by min-max scaling: still fits
    spec["stats"][column]["max"] = _spec().stats[column]["max"]
    combine(primary, [_model(tmp_path / "mean", 6, spec=FeatureSpec.from_dict(spec))], tmp_path / "out")
    with pytest.raises(ModelError, match="already holds confirmers"):
        combine(tmp_path / "out", [primary], tmp_path / "again")
    with pytest.raises(ModelError, match="0 confirmers"):
        combine(primary, [], tmp_path / "none")


def _rewrite(folder: Path, tensors: dict[str, np.ndarray], confirm: dict[str, object] | None = None) -> None:
    """Tensors and metadata changed with a matching sha256: only the new checks can refuse them."""
    save_file(tensors, str(folder / "weights.safetensors"))
    meta = json.loads((folder / "metadata.json").read_text())
    meta["weights_sha256"] = sha256_file(folder / "weights.safetensors")
    if confirm is not None:
        meta["confirm"] = confirm
    (folder / "metadata.json").write_text(json.dumps(meta))


def test_tampered_combined_folders_are_refused(combined: tuple[Path, list[Path], Path]) -> None:
    out = combined[2]
    tensors = dict(load_file(str(out / "weights.safetensors")))
    meta = json.loads((out / "metadata.json").read_text())
    cases = {
        "missing": ({k: v for k, v in tensors.items() if not k.startswith("confirm2.")}, None),
        "none of the 3 confirmers": (tensors | {"confirm3.head.bias": tensors["confirm0.head.bias"]}, None),
        "wrong shape": (tensors | {"confirm1.head.bias": np.zeros(7, np.float32)}, None),
        "not mean-of-flagged": (tensors, meta["confirm"] | {"rule": "max"}),
        "outside 1..8": (tensors, meta["confirm"] | {"members": 0}),
        "NaN or infinite": (tensors | {"confirm0.head.bias": np.full(5, np.nan, np.float32)}, None),
    }
    for want, (t, confirm) in cases.items():
        _rewrite(out, t, confirm or meta["confirm"])
        with pytest.raises(ModelError, match=want):
            NumpyClassifier.load(out)


def test_the_parameter_bound_counts_every_network(
    combined: tuple[Path, list[Path], Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    import math

    from model import weights
    from model.numpy_net import param_shapes

    one = sum(math.prod(s) for s in param_shapes(CFG).values())
    monkeypatch.setattr(weights, "MAX_PARAMETERS", 2 * one)
    read_model(combined[0])  # the primary alone fits
    with pytest.raises(ModelError, match=f"{4 * one:,} parameters in 4 networks"):
        read_model(combined[2])


def test_cli_combines_scans_and_refuses(tmp_path: Path) -> None:
    primary, c1 = _model(tmp_path / "p", 1), _model(tmp_path / "c1", 11)
    runner = CliRunner()
    r = runner.invoke(app, ["confirm", str(primary), str(c1), "-o", str(tmp_path / "m")])
    assert r.exit_code == 0, r.output
    assert "confirmed by" in r.output and (tmp_path / "m" / "weights.safetensors").is_file()
    before = (tmp_path / "m" / "metadata.json").read_bytes()
    r = runner.invoke(app, ["confirm", str(primary), str(c1), str(c1), "-o", str(tmp_path / "m")])
    assert r.exit_code == 2 and "already holds a model" in r.output
    assert (tmp_path / "m" / "metadata.json").read_bytes() == before
    r = runner.invoke(app, ["confirm", str(primary), str(c1), str(c1), "-o", str(tmp_path / "m"), "--force"])
    assert r.exit_code == 0 and json.loads((tmp_path / "m" / "metadata.json").read_text())["confirm"]["members"] == 2
    other = _model(tmp_path / "deep", 2, cfg=NetConfig(n_features=112, n_classes=5, depth=1))
    r = runner.invoke(app, ["confirm", str(primary), str(other), "-o", str(tmp_path / "n")])
    assert r.exit_code == 3 and "network config differs" in r.output and len(r.output.strip().splitlines()) == 1
    r = runner.invoke(app, ["fit-support", str(tmp_path / "m"), "--data", str(tmp_path / "x.parquet")])
    assert r.exit_code == 2 and "holds confirmers" in r.output
    sample = Path(__file__).resolve().parents[2] / "sample_pcaps" / "demo-mixed.pcap"
    r = runner.invoke(app, ["scan", str(sample), "--model", str(tmp_path / "m"), "--no-write", "-q"])
    assert r.exit_code in (0, 1), r.output
