"""One batched eval-mode forward pass, shared by inference (``model.infer``) and the novelty profile
(``model.novelty``): class probabilities and, when asked, the input of the network's last Linear layer.

On CUDA the batches are copied from pinned memory without blocking and run under bf16 autocast; the
probabilities and representations come back as float32 numpy arrays on every device.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from features.common import ModelError

__all__ = ["device_batches", "forward_pass", "last_linear"]


def last_linear(net: nn.Module) -> nn.Linear:
    """The network's last Linear layer (its classifier head; every nta architecture ends in one)."""
    layers = [m for m in net.modules() if isinstance(m, nn.Linear)]
    if not layers:
        raise ModelError(f"{type(net).__name__} has no Linear layer to take representations from")
    return layers[-1]


def device_batches(x: np.ndarray, batch_size: int, device: str) -> Iterator[tuple[int, torch.Tensor]]:
    """(start, device tensor) per batch of float32 (n, F) ``x``; on CUDA from pinned memory, non-blocking."""
    x = np.ascontiguousarray(x, dtype=np.float32)
    for start in range(0, len(x), batch_size):
        t = torch.from_numpy(x[start : start + batch_size])  # (b, F), shares memory with x
        if device.startswith("cuda"):
            t = t.pin_memory().to(device, non_blocking=True)
        elif device != "cpu":
            t = t.to(device)
        yield start, t


def forward_pass(
    net: nn.Module, x: np.ndarray, batch_size: int, device: str, keep_reps: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities float32 (n, K), last Linear layer's input float32 (n, D) or None without ``keep_reps``)."""
    head = last_linear(net)
    out = np.empty((len(x), head.out_features), dtype=np.float32)  # (n, K)
    reps = np.empty((len(x), head.in_features), dtype=np.float32) if keep_reps else None  # (n, D)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0])) if keep_reps else None
    net.eval()
    try:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            for start, t in device_batches(x, batch_size, device):
                p = torch.softmax(net(t).float(), dim=1)  # (b, K)
                out[start : start + len(t)] = p.cpu().numpy()
                if reps is not None:
                    reps[start : start + len(t)] = captured.pop().float().cpu().numpy()  # (b, D)
    finally:
        if hook is not None:
            hook.remove()
    return out, reps
