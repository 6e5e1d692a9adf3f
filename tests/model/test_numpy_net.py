"""model.numpy_net against torch's MSMRNet: names and shapes, logits, representations, input gradients, and a row's
bits independent of its batch; model.classifier's choice between them, and a CPU scan that never imports torch."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from features.common import ModelError
from model.artifacts import save_model
from model.classifier import NumpyClassifier
from model.files import default_full_model_dir, default_model_dir
from model.infer import Classifier
from model.network import MSMRNet, NetConfig
from model.numpy_net import BLOCK, NumpyNet, _alike_columns, param_shapes, supports
from model.scan_classifier import load_classifier

REPO = Path(__file__).resolve().parents[2]

CONFIGS = [
    NetConfig(n_features=112, n_classes=5),  # the shipped capture model's shape
    NetConfig(n_features=125, n_classes=5, depth=2, residual=False),  # MSMNet, 8 tokens
    NetConfig(n_features=7, n_classes=3, depth=1, patch=4, channels=8, branch_channels=4, kernels=(3,)),
    NetConfig(n_features=40, n_classes=2, depth=3, patch=8, channels=8, branch_channels=2, kernels=(1, 7)),
]


def _torch_net(cfg: NetConfig, seed: int) -> MSMRNet:
    """Random weights and batch-norm statistics (the folding must see more than mean 0, variance 1)."""
    torch.manual_seed(seed)
    net = MSMRNet(cfg)
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if name.endswith("running_var"):
                t.copy_(torch.rand_like(t) + 0.5)
            elif name.endswith(("running_mean", "1.bias")):
                t.copy_(torch.randn_like(t) * 0.3)
            elif name.endswith("1.weight") and t.ndim == 1:
                t.copy_(torch.rand_like(t) + 0.5)
    return net.eval()


def _numpy_net(net: MSMRNet) -> NumpyNet:
    return NumpyNet(net.cfg, {k: v.numpy() for k, v in net.state_dict().items()})


def _rows(n: int, f: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.random((n, f)) < 0.3).astype(np.float32) * rng.random((n, f), dtype=np.float32)  # (n, F), sparse


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.arch}-{c.n_features}-d{c.depth}-k{c.kernels}")
def test_names_and_shapes_are_torchs(cfg: NetConfig) -> None:
    assert param_shapes(cfg) == {k: tuple(v.shape) for k, v in MSMRNet(cfg).state_dict().items()}


@pytest.mark.parametrize("cfg", CONFIGS, ids=lambda c: f"{c.arch}-{c.n_features}-d{c.depth}-k{c.kernels}")
def test_logits_representations_and_gradients_are_torchs(cfg: NetConfig) -> None:
    net = _torch_net(cfg, seed=cfg.depth)
    npnet = _numpy_net(net)
    x = _rows(300, cfg.n_features)
    reps: list[torch.Tensor] = []
    hook = net.head.register_forward_hook(lambda _m, inp, _o: reps.append(inp[0].detach()))
    xt = torch.from_numpy(x.copy()).requires_grad_(True)
    logits_t = net(xt)  # (n, K)
    hook.remove()
    target = np.random.default_rng(1).integers(0, cfg.n_classes, len(x))
    (grad_t,) = torch.autograd.grad(logits_t.gather(1, torch.from_numpy(target)[:, None]).sum(), xt)

    logits, z = npnet.logits(x, keep_reps=True)
    scale = float(logits_t.detach().abs().max())
    np.testing.assert_allclose(logits, logits_t.detach().numpy(), rtol=0, atol=2e-5 * max(scale, 1.0))
    assert z is not None
    np.testing.assert_allclose(z, reps[0].numpy(), rtol=0, atol=2e-5 * max(float(reps[0].abs().max()), 1.0))
    grad = npnet.input_grad(x, target)
    gscale = float(grad_t.abs().max())
    assert gscale > 0
    np.testing.assert_allclose(grad, grad_t.numpy(), rtol=0, atol=2e-5 * max(gscale, 1.0))


def test_a_rows_bits_do_not_depend_on_its_batch() -> None:
    npnet = _numpy_net(_torch_net(CONFIGS[0], seed=3))
    x = _rows(2 * BLOCK + 100, 112, seed=2)
    whole, _ = npnet.logits(x)
    for size in (1, 7, 16, BLOCK - 1, BLOCK + 1):
        parts = np.concatenate([npnet.logits(x[s : s + size])[0] for s in range(0, len(x), size)])
        assert np.array_equal(parts, whole), size
    order = np.random.default_rng(0).permutation(len(x))
    assert np.array_equal(npnet.logits(x[order])[0], whole[order])


def test_other_architectures_are_refused() -> None:
    for arch in ("mlp", "cnn", "lstm"):
        assert not supports(NetConfig(n_features=112, n_classes=5, arch=arch))
    with pytest.raises(ValueError, match="mlp"):
        NumpyNet(NetConfig(n_features=112, n_classes=5, arch="mlp"), {})


@pytest.mark.parametrize("model_dir", [default_model_dir(), default_full_model_dir()], ids=["capture", "full"])
def test_the_shipped_models_give_torchs_verdicts(model_dir: Path) -> None:
    fast = NumpyClassifier.load(model_dir)
    ref = Classifier.load(model_dir, device="cpu")
    x = _rows(3000, fast.net_config.n_features, seed=5)
    p, p_ref = fast.predict_proba(x), ref.predict_proba(x)  # (n, K)
    assert p.dtype == np.float32 and np.abs(p - p_ref).max() < 1e-4
    top = np.sort(p_ref, axis=1)
    clear = top[:, -1] - top[:, -2] > 1e-3  # rows not on a tie between two classes
    assert clear.mean() > 0.99 and np.array_equal(p.argmax(1)[clear], p_ref.argmax(1)[clear])
    pred, _, off = fast.predict_supported(x)
    pred_ref, _, off_ref = ref.predict_supported(x)
    assert np.array_equal(pred[clear], pred_ref[clear]) and np.array_equal(off[clear], off_ref[clear])
    target = p_ref.argmax(1)[:64]
    a, a_ref = fast.attribute(x[:64], target), ref.attribute(x[:64], target)
    assert np.abs(a - a_ref).max() <= 1e-4 * max(float(np.abs(a_ref).max()), 1.0)
    with pytest.raises(ModelError, match="targets"):
        fast.attribute(x[:2], np.array([0, 99]))


def test_an_overflowing_network_is_refused_without_a_warning() -> None:
    """Finite weights, infinite logits: a ModelError (no verdict), as with torch, and no numpy warning on stderr."""
    import warnings

    from model.weights import read_model

    m = read_model(default_model_dir())
    tensors = {**m.tensors, "head.weight": np.full_like(m.tensors["head.weight"], 3e38)}
    clf = NumpyClassifier(net=NumpyNet(m.net_config, tensors), net_config=m.net_config, spec=m.spec, classes=m.classes)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(ModelError, match="NaN or infinite"):
            clf.predict_proba(np.ones((3, m.net_config.n_features), np.float32))
        assert not np.isfinite(
            clf.net.input_grad(np.ones((2, m.net_config.n_features), np.float32), np.zeros(2, int))
        ).all()


def test_split_over_threads_gives_the_same_probabilities() -> None:
    clf = NumpyClassifier.load(default_model_dir())
    x = _rows(3 * BLOCK + 5, clf.net_config.n_features, seed=6)
    one = clf.predict_proba(x)
    clf.threads = 3
    assert np.array_equal(clf.predict_proba(x), one)


def test_load_classifier_picks_numpy_on_the_cpu_and_torch_for_other_networks(tmp_path: Path) -> None:
    assert isinstance(load_classifier(default_model_dir(), "cpu"), NumpyClassifier)
    ref = Classifier.load(default_model_dir(), device="cpu")
    mlp = NetConfig(n_features=ref.net_config.n_features, n_classes=5, arch="mlp")
    from model.baselines import build_network

    save_model(tmp_path / "mlp", build_network(mlp), mlp, ref.spec, ref.classes, {"feature_set": "capture"})
    other = load_classifier(tmp_path / "mlp", "cpu", threads=1)
    assert type(other) is Classifier and other.threads == 1


def test_auto_takes_torch_where_an_nvidia_driver_is(monkeypatch: pytest.MonkeyPatch) -> None:
    from model import scan_classifier

    monkeypatch.setattr(scan_classifier, "cuda_present", lambda: False)
    assert type(load_classifier(default_model_dir(), "auto")) is NumpyClassifier
    monkeypatch.setattr(scan_classifier, "cuda_present", lambda: True)  # torch decides (no GPU here: the CPU)
    clf = load_classifier(default_model_dir(), "auto")
    assert type(clf) is Classifier and clf.device == ("cuda" if torch.cuda.is_available() else "cpu")


def test_a_scan_on_the_cpu_never_imports_torch(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from analyzer.pipeline import ScanConfig, run_scan\n"
        f"r = run_scan(ScanConfig(paths=(Path({str(REPO / 'sample_pcaps/demo-mixed.pcap')!r}),), "
        f"out=Path({str(tmp_path / 'out')!r}), device='cpu'))\n"
        "assert len(r.incidents) > 0, 'no incident'\n"
        "print(sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.')))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip() == "[]"


def _placed(cuts: dict[int, list[int]]) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    """A matrix product that, like OpenBLAS's Haswell kernels, gives a column other bits by its place: for a product
    of ``rows`` rows, the block's columns fall in groups starting at ``cuts[rows]``, each group shifted by its own
    amount (each column computed alone first: the machine's own product may already tell places apart)."""

    def matmul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        place = np.zeros(b.shape[1], np.float32)
        for g, cols in enumerate(np.split(np.arange(b.shape[1]), cuts[a.shape[0]])):
            place[cols] = g
        alone = np.hstack([a @ b[:, j : j + 1] for j in range(b.shape[1])])  # each column as if it were alone
        return alone + place * np.float32(1e-3)

    return matmul


@pytest.mark.parametrize(
    ("cuts", "slots"),
    [
        ({16: [], 64: []}, np.arange(BLOCK)),  # every column alike: all of them
        ({16: [8, BLOCK - 8], 64: [8, BLOCK - 8]}, np.arange(8, BLOCK - 8)),  # a panel's edges apart
        ({16: [8], 64: [BLOCK - 8]}, np.arange(8, BLOCK - 8)),  # the products' largest groups, where they meet
        ({16: [50, 100], 64: [100, 180]}, np.arange(0, 50)),  # largest groups that do not meet: the first column's
    ],
)
def test_rows_go_only_where_every_product_computes_alike(cuts: dict[int, list[int]], slots: np.ndarray) -> None:
    """``_alike_columns`` under a product whose bits depend on the column's place (where each product's groups of
    columns start -> the columns rows may take)."""
    got = _alike_columns([(16, 16), (64, 16)], matmul=_placed(cuts))
    np.testing.assert_array_equal(got, slots)
