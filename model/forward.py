"""One batched eval-mode forward pass, shared by inference (``model.infer``) and the novelty profile
(``model.novelty``): class probabilities and, when asked, the input of the network's last Linear layer.

On CUDA the batches are copied from pinned memory without blocking and run under bf16 autocast; the
probabilities and representations come back as float32 numpy arrays on every device.

Threads on the CPU (``threads=AUTO``): torch's default uses one thread per core, which is best on a quiet
machine and a disaster on a busy one: its OpenMP threads spin waiting for each other, and when another
process (or nta's own reader) holds a core, one batch takes ten times as long (measured here on 2 cores with
one core busy: 13,700 flows/s with 2 threads, 89,000 with 1; quiet: 161,000 with 2, 91,000 with 1).
``pick_threads`` times a small slice with 1 thread and with every core this process may use and keeps the
faster; the pass runs batch by batch and measures again every ``REPICK_S`` seconds, and at once when a batch
runs at less than a third of the speed the choice was made at, so the choice follows the machine's load.
Probabilities do not depend on the thread count (checked bitwise on KDDTest+).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn

from features.common import ModelError

__all__ = ["AUTO", "device_batches", "forward_pass", "last_linear", "pick_threads"]

# A batch of fewer rows is padded with zero rows to this many (their outputs dropped): on the CPU, torch's
# kernels take another path for tiny batches (measured: fewer than 16 rows on 1 thread, 1 row on 2) whose
# last bits differ. Padded, every probability is the same whatever the batching, chunking and thread count
# (checked bitwise on KDDTest+ for every batch size from 1 to 129 and shuffled batches).
MIN_ROWS = 16
AUTO = 0  # forward_pass(threads=AUTO): pick_threads chooses; None: leave torch's setting alone
REPICK_S = 2.0  # how long a thread choice stands before it is measured again
PROBE_ROWS = 512
_picked: dict[str, float] = {}  # "threads", "at": the last choice and when it was made
_pick_lock = threading.Lock()


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask; a container's cpuset)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def pick_threads(net: nn.Module, x: np.ndarray, force: bool = False) -> int:
    """The faster of 1 thread and every usable core for ``net`` on a slice of float32 (n, F) ``x``, on the CPU.

    Cached for ``REPICK_S`` seconds (``force``: measure now). Each candidate runs twice on ``PROBE_ROWS`` rows
    (the first run warms the thread pool) and the second is timed: a few milliseconds on a quiet machine.
    """
    most = usable_cores()
    if most <= 1 or len(x) == 0:
        return 1
    with _pick_lock:
        now = time.monotonic()
        if _picked and now - _picked["at"] < REPICK_S and not force:
            return int(_picked["threads"])
        sample = torch.from_numpy(np.ascontiguousarray(x[:PROBE_ROWS], dtype=np.float32))
        best, best_s = 1, float("inf")
        with torch.inference_mode():
            for n in (1, most):
                torch.set_num_threads(n)
                net(sample)
                t0 = time.perf_counter()
                net(sample)
                took = time.perf_counter() - t0
                if took < best_s:
                    best, best_s = n, took
        _picked.update(threads=best, at=time.monotonic())
        return best


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


def _auto_threads(
    net: nn.Module, x: np.ndarray, batch_size: int, keep_reps: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """``forward_pass`` on the CPU batch by batch, torch's threads chosen (and chosen again) by ``pick_threads``."""
    probs: list[np.ndarray] = []
    reps: list[np.ndarray] = []
    picked_at, ref, force = 0.0, 0.0, False
    for start in range(0, len(x), batch_size):
        xb = x[start : start + batch_size]
        if force or time.monotonic() - picked_at >= REPICK_S:
            torch.set_num_threads(pick_threads(net, xb, force))
            picked_at, ref, force = time.monotonic(), 0.0, False
        t0 = time.perf_counter()
        p, r = forward_pass(net, xb, batch_size, "cpu", keep_reps)
        rate = len(xb) / max(time.perf_counter() - t0, 1e-9)  # rows/s of this batch
        if len(xb) == batch_size:  # a short last batch says little
            force = ref > 0 and rate < ref / 3  # the machine got busier (or quieter) since the choice
            ref = max(ref, rate)
        probs.append(p)
        if r is not None:
            reps.append(r)
    n_out = last_linear(net).out_features
    out = np.concatenate(probs) if probs else np.zeros((0, n_out), np.float32)
    if not keep_reps:
        return out, None
    return out, (np.concatenate(reps) if reps else np.zeros((0, last_linear(net).in_features), np.float32))


def forward_pass(
    net: nn.Module, x: np.ndarray, batch_size: int, device: str, keep_reps: bool, threads: int | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    """(probabilities float32 (n, K), last Linear layer's input float32 (n, D) or None without ``keep_reps``).

    ``threads``: torch threads on the CPU for this pass (``AUTO``: ``pick_threads``; None: torch's setting).
    """
    if threads is not None and device == "cpu":
        before = torch.get_num_threads()
        net.eval()
        try:
            if threads:
                torch.set_num_threads(threads)
                return forward_pass(net, x, batch_size, device, keep_reps)
            return _auto_threads(net, x, batch_size, keep_reps)
        finally:
            torch.set_num_threads(before)
    head = last_linear(net)
    out = np.empty((len(x), head.out_features), dtype=np.float32)  # (n, K)
    reps = np.empty((len(x), head.in_features), dtype=np.float32) if keep_reps else None  # (n, D)
    captured: list[torch.Tensor] = []
    hook = head.register_forward_hook(lambda _m, inp, _o: captured.append(inp[0])) if keep_reps else None
    net.eval()
    try:
        with torch.inference_mode(), torch.autocast("cuda", dtype=torch.bfloat16, enabled=device.startswith("cuda")):
            for start, t in device_batches(x, batch_size, device):
                n = len(t)
                if n < MIN_ROWS:  # see MIN_ROWS
                    t = torch.cat([t, t.new_zeros((MIN_ROWS - n, t.shape[1]))])
                p = torch.softmax(net(t).float(), dim=1)[:n]  # (b, K)
                out[start : start + n] = p.cpu().numpy()
                if reps is not None:
                    reps[start : start + n] = captured.pop()[:n].float().cpu().numpy()  # (b, D)
    finally:
        if hook is not None:
            hook.remove()
    return out, reps
