"""``NetConfig``: everything needed to rebuild a network, as stored in a model's metadata.json (no torch here: a scan
on the CPU reads it without importing torch, ``model.numpy_net``)."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

__all__ = ["NetConfig"]


@dataclass(frozen=True)
class NetConfig:
    """Everything needed to rebuild the network (stored in metadata.json)."""

    n_features: int  # F: encoded input columns
    n_classes: int  # K
    arch: str = "msmrnet"  # msmrnet | msmnet | mlp | cnn | lstm (model.baselines.build_network)
    depth: int = 5  # number of stacked modules (the paper uses 5 and 10)
    residual: bool = True  # False: MSMNet
    patch: int = 16  # stem kernel = stride: sequence length L = ceil(F / patch)
    channels: int = 16  # C: token width, LSTM hidden size, module output channels
    branch_channels: int = 8  # per conv branch
    kernels: tuple[int, ...] = (1, 3, 5)  # the parallel branches' kernel sizes (odd: 'same' padding)
    dropout: float = 0.1  # before the classifier

    def __post_init__(self) -> None:
        # "msmnet" and "msmrnet without shortcuts" are one network: keep arch and residual in step.
        if self.arch == "msmnet" or (self.arch == "msmrnet" and not self.residual):
            object.__setattr__(self, "arch", "msmnet")
            object.__setattr__(self, "residual", False)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["kernels"] = list(self.kernels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> NetConfig:
        d = dict(d)
        d["kernels"] = tuple(d.get("kernels", (1, 3, 5)))
        return cls(**d)

    @property
    def seq_len(self) -> int:
        return -(-self.n_features // self.patch)
