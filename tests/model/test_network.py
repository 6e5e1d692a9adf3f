"""MSMRNet shapes, the MSMNet/MSMRNet difference, and the baselines' shapes."""

from __future__ import annotations

import pytest
import torch

from model.baselines import ARCHS, build_network
from model.network import MSMRNet, NetConfig


@pytest.mark.parametrize("depth", [1, 5, 10])
@pytest.mark.parametrize("n_features", [112, 125, 7])
def test_forward_shapes(depth: int, n_features: int) -> None:
    net = MSMRNet(NetConfig(n_features=n_features, n_classes=5, depth=depth, channels=8, branch_channels=4)).eval()
    assert len(net.blocks) == depth
    out = net(torch.rand(3, n_features))
    assert out.shape == (3, 5)
    assert net.cfg.seq_len == -(-n_features // net.cfg.patch)


def test_block_keeps_sequence_shape() -> None:
    net = MSMRNet(NetConfig(n_features=112, n_classes=5, depth=2))
    h = net.stem(torch.rand(4, 1, 112))
    assert h.shape == (4, 16, 7)  # (B, C, L = 112 / 16)
    assert net.blocks[0](h).shape == (4, 16, 7)


def test_msmnet_and_msmrnet_differ_only_in_shortcuts() -> None:
    torch.manual_seed(0)
    res = MSMRNet(NetConfig(n_features=40, n_classes=5, depth=3, residual=True))
    torch.manual_seed(0)
    plain = MSMRNet(NetConfig(n_features=40, n_classes=5, depth=3, residual=False))
    assert plain.cfg.arch == "msmnet" and res.cfg.arch == "msmrnet"
    assert list(res.state_dict()) == list(plain.state_dict())  # same channels: no projection, same names
    for k, v in res.state_dict().items():
        assert torch.equal(v, plain.state_dict()[k])
    x = torch.rand(6, 40)
    res.eval(), plain.eval()
    # same weights, different outputs: the only difference is the shortcut addition
    assert not torch.allclose(res(x), plain(x))
    block_in = res.stem(torch.nn.functional.pad(x, (0, res.pad)).unsqueeze(1))
    assert torch.allclose(res.blocks[0](block_in), plain.blocks[0](block_in) + block_in, atol=1e-6)


def test_projection_only_where_channels_change() -> None:
    from model.network import MultiScaleMemoryModule

    same = MultiScaleMemoryModule(8, 8, 4, (1, 3), residual=True)
    wider = MultiScaleMemoryModule(8, 16, 4, (1, 3), residual=True)
    plain = MultiScaleMemoryModule(8, 16, 4, (1, 3), residual=False)
    assert same.project is None and wider.project is not None and plain.project is None
    assert wider(torch.rand(2, 8, 5)).shape == (2, 16, 5)


@pytest.mark.parametrize("arch", ARCHS)
def test_every_arch_maps_features_to_logits(arch: str) -> None:
    net = build_network(NetConfig(n_features=112, n_classes=2, arch=arch, depth=2)).eval()
    assert net(torch.rand(5, 112)).shape == (5, 2)
