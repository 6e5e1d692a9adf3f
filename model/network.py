"""MSMRNet: a multi-scale memory residual network over the encoded NSL-KDD feature vector.

After Wang, Wang & Sun, "Network Traffic Anomaly Detection Method Based on Multi-scale Memory Residual
Network" (Computer Science 49(8), 2022): the encoded feature vector is read as a 1-channel sequence; each
*multi-scale memory residual module* runs parallel Conv1d branches of several kernel sizes (batch norm +
ReLU each), merges them by concatenation, runs an LSTM along the sequence, and adds an identity shortcut
(a 1x1 convolution only where the channel count changes); modules are stacked ``depth`` times; then
Flatten, one fully connected layer, and the class logits (softmax is applied by the caller, so training
can use the numerically stable cross-entropy on logits). ``residual=False`` gives MSMNet: the same
modules, parameters and names, without the shortcut additions.

The sequence: a patch stem, not one position per encoded column. A direct reading steps the LSTM across
all ~120 encoded positions in every module; measured here that gives ~180 flows/s, 2-8 min per epoch on
the 20% subset and worse accuracy than an MLP. So the first layer is a strided convolution with
kernel = stride = ``patch`` (ViT-style patch embedding): it cuts the encoded vector into non-overlapping
patches of ``patch`` adjacent columns and embeds each as a ``channels``-wide token. With ``patch=16`` the
112 capture columns become 7 tokens (125 full columns: 8). Measured on one loaded core, going from
patch 8 / 32 channels to patch 16 / 16 channels made training 2.2x and inference 3.3x faster; the
LSTM's sequential steps, not its width, dominate the cost. The encoding keeps related columns adjacent
(the protocol/service/flag one-hots, the 2-second window rates, the 100-connection host rates), so a patch
is a meaningful local group and the multi-scale convolutions then mix neighbouring groups at several
widths, while the LSTM carries memory across the whole (short) sequence. The rest of the design is the
paper's.
"""

from __future__ import annotations

import torch
from torch import nn

from model.config import NetConfig

__all__ = ["MSMRNet", "MultiScaleMemoryModule", "NetConfig"]


class MultiScaleMemoryModule(nn.Module):
    """Parallel Conv1d branches -> concat -> LSTM over the sequence -> (+ shortcut).

    Input (B, C_in, L) -> output (B, C_out, L).
    """

    def __init__(self, c_in: int, c_out: int, branch_channels: int, kernels: tuple[int, ...], residual: bool) -> None:
        super().__init__()
        self.residual = residual
        self.branches = nn.ModuleList(
            nn.Sequential(
                nn.Conv1d(c_in, branch_channels, k, padding=k // 2, bias=False),
                nn.BatchNorm1d(branch_channels),
                nn.ReLU(inplace=True),
            )
            for k in kernels
        )
        self.lstm = nn.LSTM(branch_channels * len(kernels), c_out, batch_first=True)
        # A 1x1 projection only where the channel count changes (and only when there is a shortcut),
        # so MSMNet and MSMRNet have the same parameter names wherever channels match.
        self.project = nn.Conv1d(c_in, c_out, 1, bias=False) if residual and c_in != c_out else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, C_in, L)
        m = torch.cat([b(x) for b in self.branches], dim=1)  # (B, n_branches * branch_channels, L)
        h, _ = self.lstm(m.transpose(1, 2))  # (B, L, C_out)
        h = h.transpose(1, 2)  # (B, C_out, L)
        if not self.residual:
            return h
        shortcut = x if self.project is None else self.project(x)  # (B, C_out, L)
        return h + shortcut


class MSMRNet(nn.Module):
    """Patch stem -> ``depth`` multi-scale memory modules -> Flatten -> Linear -> logits (B, K)."""

    def __init__(self, cfg: NetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.pad = cfg.seq_len * cfg.patch - cfg.n_features  # zeros appended so F divides into patches
        self.stem = nn.Sequential(
            nn.Conv1d(1, cfg.channels, cfg.patch, stride=cfg.patch, bias=False),
            nn.BatchNorm1d(cfg.channels),
            nn.ReLU(inplace=True),
        )
        self.blocks = nn.ModuleList(
            MultiScaleMemoryModule(cfg.channels, cfg.channels, cfg.branch_channels, cfg.kernels, cfg.residual)
            for _ in range(cfg.depth)
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.head = nn.Linear(cfg.channels * cfg.seq_len, cfg.n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, F) float32 encoded features
        h = nn.functional.pad(x, (0, self.pad)).unsqueeze(1)  # (B, 1, L * patch)
        h = self.stem(h)  # (B, C, L)
        for block in self.blocks:
            h = block(h)  # (B, C, L)
        return self.head(self.dropout(h.flatten(1)))  # (B, C * L) -> (B, K)
