"""The comparison networks (MLP, plain 1-D CNN, plain LSTM) and ``build_network``, which builds any arch.

All take the same ``NetConfig`` (its ``arch`` field picks the network) and map (B, F) float32 to logits
(B, K), so training, saving and inference treat them alike. They are sized to the same budget as the
shipped MSMRNet (tens of thousands of parameters, seconds per epoch here), not tuned against it.
"""

from __future__ import annotations

import torch
from torch import nn

from features.common import ModelError
from model.files import ARCHS
from model.network import MSMRNet, NetConfig

__all__ = ["ARCHS", "CNN1D", "MLP", "PlainLSTM", "build_network"]


class MLP(nn.Module):
    """F -> 256 -> 128 -> K, batch norm + ReLU + dropout between layers."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Linear(cfg.n_features, 256),
            nn.BatchNorm1d(256),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(256, 128),
            nn.BatchNorm1d(128),
            nn.ReLU(inplace=True),
            nn.Dropout(cfg.dropout),
            nn.Linear(128, cfg.n_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)  # (B, F) -> (B, K)


class CNN1D(nn.Module):
    """Plain 1-D CNN over the 1-channel encoded vector: two conv/BN/ReLU/max-pool stages, Flatten, FC."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        c = cfg.channels
        self.features = nn.Sequential(
            nn.Conv1d(1, c, 3, padding=1, bias=False),
            nn.BatchNorm1d(c),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(2),
            nn.Conv1d(c, 2 * c, 3, padding=1, bias=False),
            nn.BatchNorm1d(2 * c),
            nn.ReLU(inplace=True),
            nn.MaxPool1d(2),
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * c * (cfg.n_features // 4), cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.features(x.unsqueeze(1))  # (B, 1, F) -> (B, 2C, F // 4)
        return self.head(self.dropout(h.flatten(1)))  # (B, K)


class PlainLSTM(nn.Module):
    """Plain 2-layer LSTM over the encoded vector cut into ``patch``-wide steps; last hidden state -> FC.

    Stepping over all ~120 single columns was too slow here (see model.network); the patches are the same
    ones MSMRNet's stem sees, fed raw, so the comparison isolates what the conv/residual modules add.
    """

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.patch = cfg.patch
        self.pad = cfg.seq_len * cfg.patch - cfg.n_features
        self.lstm = nn.LSTM(cfg.patch, 2 * cfg.channels, num_layers=2, batch_first=True)
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(2 * cfg.channels, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        seq = nn.functional.pad(x, (0, self.pad)).unflatten(1, (-1, self.patch))  # (B, L, patch)
        h, _ = self.lstm(seq)  # (B, L, 2C)
        return self.head(self.dropout(h[:, -1]))  # (B, K)


def build_network(cfg: NetConfig) -> nn.Module:
    """The network ``cfg.arch`` names ("msmnet" is MSMRNet without shortcuts)."""
    if cfg.arch in ("msmrnet", "msmnet"):
        return MSMRNet(cfg)
    builders: dict[str, type[nn.Module]] = {"mlp": MLP, "cnn": CNN1D, "lstm": PlainLSTM}
    if cfg.arch not in builders:
        raise ModelError(f"unknown network architecture {cfg.arch!r} (known: {', '.join(ARCHS)})")
    return builders[cfg.arch](cfg)
