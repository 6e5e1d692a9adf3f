"""MSMRNet in eval mode, in numpy: class logits and their input gradients on the CPU without importing torch.

Why: a scan's network is small (five modules of 16 channels over 7 tokens) and ``import torch`` is not: about 1.3 s of
CPU alone and 2 s while the scan's reader competes for the cores, more than the inference of a 1M-packet capture
(87,762 flows: 1.0-1.4 CPU-s in torch, about 0.6 here). A scan on the CPU runs this arithmetic instead
(``model.classifier``); training, the studies, CUDA and the other architectures (``model.baselines``) keep torch's
network.

The same operations as ``model.network.MSMRNet`` in eval mode, in float32: batch norm folded into the convolution
before it, the parallel convolution branches as one matrix over a window of the widest kernel, the LSTM's gates
reordered (input, forget, output, cell) and its sigmoids computed as ``0.5 * tanh(z / 2) + 0.5`` so one ``tanh``
covers all four gates (the halving is folded into the weights: exact, a power of two), dropout off; activations laid
out with a block's rows last (``NumpyNet``). Logits agree with torch's to about 1e-5 (``tests/model/test_numpy_net.py``),
and ``input_grad`` is the gradient torch's autograd gives.

Every row is computed in a block of ``BLOCK`` columns (the rest zero), so that a row's bits do not depend on how many
rows came with it, or where: chunking, deduplication and the engine leave its probabilities unchanged. That needs the
BLAS's matrix products to give a column the same bits wherever it sits in the block, and OpenBLAS's do not always:
its Haswell kernels (AVX2 machines, and AMD Zen, AVX-512 ones included) compute the first and last 8 columns of each
panel of 256 (for 512 columns) in another order than the rest (``OPENBLAS_CORETYPE=Haswell``, as this workplace's
machines set it: a row's logits changed in their last bits with its place). So a row takes only block columns that
the products give the same bits (``slots``, found for this process's BLAS when the network is built: 240 of 256
there, all of them with OpenBLAS's SkylakeX kernels); the others stay zero.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from model.config import NetConfig

__all__ = ["BLOCK", "NumpyNet", "param_shapes", "supports"]

# Columns of a block: the shipped network took 0.53 CPU-s for 87,762 rows in blocks of 256 and 0.83 in blocks of 512
# with OpenBLAS's SkylakeX kernels, 0.82 and 1.22 with its Haswell kernels (on an AMD EPYC, 2026-12-07); 128 as 256.
BLOCK = 256
BN_EPS = 1e-5  # torch.nn.BatchNorm1d's default, which model.network uses
F32 = np.float32


def supports(cfg: NetConfig) -> bool:
    """Whether ``cfg`` is a network this module computes (MSMRNet or MSMNet; the baselines stay in torch)."""
    return cfg.arch in ("msmrnet", "msmnet") and all(k % 2 == 1 for k in cfg.kernels)


def _bn(prefix: str, n: int) -> dict[str, tuple[int, ...]]:
    shapes: dict[str, tuple[int, ...]] = {
        f"{prefix}.{k}": (n,) for k in ("weight", "bias", "running_mean", "running_var")
    }
    shapes[f"{prefix}.num_batches_tracked"] = ()
    return shapes


def param_shapes(cfg: NetConfig) -> dict[str, tuple[int, ...]]:
    """The state-dict names and shapes of ``model.network.MSMRNet(cfg)``: a weights file is checked against them."""
    c, b, n_in = cfg.channels, cfg.branch_channels, cfg.branch_channels * len(cfg.kernels)
    shapes: dict[str, tuple[int, ...]] = {"stem.0.weight": (c, 1, cfg.patch), **_bn("stem.1", c)}
    for i in range(cfg.depth):
        for j, k in enumerate(cfg.kernels):
            shapes[f"blocks.{i}.branches.{j}.0.weight"] = (b, c, k)
            shapes.update(_bn(f"blocks.{i}.branches.{j}.1", b))
        shapes[f"blocks.{i}.lstm.weight_ih_l0"] = (4 * c, n_in)
        shapes[f"blocks.{i}.lstm.weight_hh_l0"] = (4 * c, c)
        shapes[f"blocks.{i}.lstm.bias_ih_l0"] = (4 * c,)
        shapes[f"blocks.{i}.lstm.bias_hh_l0"] = (4 * c,)
    shapes["head.weight"] = (cfg.n_classes, c * cfg.seq_len)
    shapes["head.bias"] = (cfg.n_classes,)
    return shapes


def _folded(t: Mapping[str, np.ndarray], conv: str, bn: str) -> tuple[np.ndarray, np.ndarray]:
    """A bias-free convolution followed by eval-mode batch norm, as one convolution: (out, in, k) weight, (out,) bias."""
    w = t[f"{conv}.weight"].astype(np.float64)
    scale = t[f"{bn}.weight"].astype(np.float64) / np.sqrt(t[f"{bn}.running_var"].astype(np.float64) + BN_EPS)
    bias = t[f"{bn}.bias"].astype(np.float64) - t[f"{bn}.running_mean"].astype(np.float64) * scale
    return w * scale[:, None, None], bias


@dataclass(frozen=True)
class _Module:
    """One multi-scale memory module, arranged for the arithmetic below (rows of a block are the last axis)."""

    conv: np.ndarray  # (M, W * C): every branch over a window of W = the widest kernel positions
    conv_bias: np.ndarray  # (M, 1)
    w_ih: np.ndarray  # (4C, M): gates (i, f, o, g), the sigmoid gates' rows halved
    w_hh: np.ndarray  # (4C, C): the same
    bias: np.ndarray  # (4C, 1): bias_ih + bias_hh, the same
    g_ih: np.ndarray  # (M, 4C): gates (i, f, o, g), not halved, transposed: the backward pass
    g_hh: np.ndarray  # (C, 4C)


class NumpyNet:
    """``model.network.MSMRNet(cfg)`` with the given (checked) weights, in eval mode.

    A block's activations are laid out (L, channels, rows): a token's channels for every row of the block are one
    contiguous slab, so the LSTM's per-step gate slices, and each token's window of neighbours for the convolutions
    (a strided view, no copy), are contiguous matrices."""

    def __init__(self, cfg: NetConfig, tensors: Mapping[str, np.ndarray]) -> None:
        if not supports(cfg):
            raise ValueError(f"NumpyNet computes msmrnet and msmnet with odd kernels, not {cfg.arch} {cfg.kernels}")
        self.cfg = cfg
        c, width = cfg.channels, max(cfg.kernels)
        self.width = width
        stem_w, stem_b = _folded(tensors, "stem.0", "stem.1")
        self.stem = stem_w[:, 0, :].astype(F32)  # (C, P)
        self.stem_bias = stem_b.astype(F32)[:, None]  # (C, 1)
        # sigmoid(z) = 0.5 * tanh(z / 2) + 0.5: the gates i, f, o are halved, g is not
        order = np.r_[0 : 2 * c, 3 * c : 4 * c, 2 * c : 3 * c]  # torch's (i, f, g, o) -> (i, f, o, g)
        half = np.r_[np.full(3 * c, 0.5), np.ones(c)][:, None]
        self.modules: list[_Module] = []
        for i in range(cfg.depth):
            m = cfg.branch_channels * len(cfg.kernels)
            conv = np.zeros((m, width, c))  # output channel, window position, input channel
            conv_bias = np.zeros(m)
            for j, k in enumerate(cfg.kernels):
                w, b = _folded(tensors, f"blocks.{i}.branches.{j}.0", f"blocks.{i}.branches.{j}.1")  # (B, C, k)
                off = (width - k) // 2  # a narrower kernel sits in the middle of the window ('same' padding)
                rows = slice(j * cfg.branch_channels, (j + 1) * cfg.branch_channels)
                conv[rows, off : off + k, :] = w.transpose(0, 2, 1)
                conv_bias[rows] = b
            g_ih = tensors[f"blocks.{i}.lstm.weight_ih_l0"].astype(F32)[order]  # (4C, M)
            g_hh = tensors[f"blocks.{i}.lstm.weight_hh_l0"].astype(F32)[order]  # (4C, C)
            bias = (tensors[f"blocks.{i}.lstm.bias_ih_l0"] + tensors[f"blocks.{i}.lstm.bias_hh_l0"]).astype(F32)[order]
            self.modules.append(
                _Module(
                    conv=conv.reshape(m, width * c).astype(F32),
                    conv_bias=conv_bias.astype(F32)[:, None],
                    w_ih=(g_ih * half).astype(F32),
                    w_hh=(g_hh * half).astype(F32),
                    bias=(bias[:, None] * half).astype(F32),
                    g_ih=np.ascontiguousarray(g_ih.T),
                    g_hh=np.ascontiguousarray(g_hh.T),
                )
            )
        head = tensors["head.weight"].astype(F32)  # (K, C * L), torch flattens (C, L)
        # in the (L, C) order of the tokens here: (K, L * C)
        self.head = np.ascontiguousarray(
            head.reshape(cfg.n_classes, c, cfg.seq_len).transpose(0, 2, 1).reshape(cfg.n_classes, -1)
        )
        self.head_bias = tensors["head.bias"].astype(F32)[:, None]  # (K, 1)
        self.slots = _alike_columns(self._products())  # block columns that hold rows; the others are zero

    def _products(self) -> list[tuple[int, int]]:
        """(rows, depth) of each matrix product of a block's forward pass (its right side: (depth, BLOCK))."""
        m = self.modules[0]
        return [self.stem.shape, m.conv.shape, m.w_ih.shape, m.w_hh.shape, self.head.shape]

    @property
    def reps_dims(self) -> int:
        """Width of the head's input (the novelty profile's representation)."""
        return self.cfg.channels * self.cfg.seq_len

    def logits(self, x: np.ndarray, keep_reps: bool = False) -> tuple[np.ndarray, np.ndarray | None]:
        """float32 (n, F) -> logits float32 (n, K), and the head's input float32 (n, C * L) in torch's flatten
        order when ``keep_reps`` (the novelty profile's representation)."""
        n, k = len(x), self.cfg.n_classes
        out = np.empty((n, k), F32)
        reps = np.empty((n, self.reps_dims), F32) if keep_reps else None
        with np.errstate(over="ignore", invalid="ignore"):  # as in torch: non-finite results are the caller's to refuse
            self._logits(x, out, reps)
        return out, reps

    @property
    def rows_per_block(self) -> int:
        """Rows computed in one block (its ``slots``)."""
        return len(self.slots)

    def _logits(self, x: np.ndarray, out: np.ndarray, reps: np.ndarray | None) -> None:
        n, step = len(x), len(self.slots)
        for start in range(0, n, step):
            xb = x[start : start + step]
            at = self.slots[: len(xb)]  # the block columns of these rows
            h = self._tokens_out(self._tokens_in(xb, at), None)  # (L, C, BLOCK)
            out[start : start + len(xb)] = (self.head @ h.reshape(-1, BLOCK) + self.head_bias).T[at]  # whole blocks
            if reps is not None:
                reps[start : start + len(xb)] = h[:, :, at].transpose(2, 1, 0).reshape(len(xb), -1)  # torch's order

    def input_grad(self, x: np.ndarray, target: np.ndarray) -> np.ndarray:
        """d logit[target] / d x per row: float32 (n, F) (``model.infer.Classifier.attribute`` multiplies by x)."""
        cfg = self.cfg
        n, f = x.shape
        grad = np.empty((n, f), F32)
        with np.errstate(over="ignore", invalid="ignore"):
            for start in range(0, n, BLOCK):
                xb = x[start : start + BLOCK]
                m = len(xb)
                cache: list[Any] = []
                self._tokens_out(self._tokens_in(xb, np.arange(m)), cache)
                dh = np.zeros((cfg.seq_len * cfg.channels, BLOCK), F32)  # (L * C, BLOCK)
                dh[:, :m] = self.head[target[start : start + m]].T
                grad[start : start + m] = self._backward(dh.reshape(cfg.seq_len, cfg.channels, BLOCK), cache)[:m]
        return grad

    # --- the arithmetic, on one block of BLOCK rows ----------------------------------------------------------------

    def _tokens_in(self, xb: np.ndarray, at: np.ndarray) -> np.ndarray:
        """(m, F) -> the patches (L, P, BLOCK), row i at block column ``at[i]``: zero in the other columns, and zero
        features to the last patch's end (torch's pad)."""
        cfg = self.cfg
        xp = np.zeros((BLOCK, cfg.seq_len * cfg.patch), F32)
        xp[at, : cfg.n_features] = xb
        return np.ascontiguousarray(xp.reshape(BLOCK, cfg.seq_len, cfg.patch).transpose(1, 2, 0))

    def _tokens_out(self, patches: np.ndarray, cache: list[Any] | None) -> np.ndarray:
        """Patches (L, P, BLOCK) -> the last module's output (L, C, BLOCK); ``cache`` collects what the backward pass
        needs."""
        cfg = self.cfg
        seq, c = cfg.seq_len, cfg.channels
        s = self.stem @ patches + self.stem_bias  # (L, C, BLOCK)
        if cache is not None:
            cache.append(s > 0)
        h = np.maximum(s, 0)
        for mod in self.modules:
            pre = mod.conv @ self._windows(h) + mod.conv_bias  # (L, M, BLOCK)
            if cache is not None:
                cache.append(pre > 0)
            gx = mod.w_ih @ np.maximum(pre, 0) + mod.bias  # (L, 4C, BLOCK): the gates' input part, every step
            hs = np.empty((seq, c, BLOCK), F32)  # the LSTM's outputs
            cell = np.zeros((c, BLOCK), F32)
            steps: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []  # per step: gates, cell before, tanh(cell)
            for t in range(seq):
                g = gx[t]  # (4C, BLOCK) pre-activations
                if t:
                    g += mod.w_hh @ hs[t - 1]
                np.tanh(g, out=g)
                sig = g[: 3 * c]
                sig *= 0.5
                sig += 0.5  # i, f, o = sigmoid
                prev = cell
                cell = g[c : 2 * c] * prev + g[:c] * g[3 * c :]  # f * c + i * g
                tc = np.tanh(cell)
                np.multiply(g[2 * c : 3 * c], tc, out=hs[t])  # o * tanh(c)
                if cache is not None:
                    steps.append((g, prev, tc))
            if cache is not None:
                cache.append(steps)
            h = hs + h if cfg.residual else hs
        return h

    def _windows(self, h: np.ndarray) -> np.ndarray:
        """(L, C, n) -> (L, W * C, n): each token with its neighbours, zero beyond the ends ('same' padding); a view
        of one padded copy, windows overlapping."""
        seq, c, n = h.shape
        half = self.width // 2
        padded = np.zeros((seq + 2 * half, c, n), F32)
        padded[half : half + seq] = h
        step = padded.strides[0]
        return np.lib.stride_tricks.as_strided(
            padded,
            shape=(seq, self.width * c, n),
            strides=(step, padded.strides[1], padded.strides[2]),
            writeable=False,
        )

    def _backward(self, dh: np.ndarray, cache: list[Any]) -> np.ndarray:
        """The last module's output gradient (L, C, BLOCK) -> the input gradient (BLOCK, F)."""
        cfg = self.cfg
        seq, c, half = cfg.seq_len, cfg.channels, self.width // 2
        for i in range(cfg.depth - 1, -1, -1):
            mod = self.modules[i]
            mask, steps = cache[1 + 2 * i], cache[2 + 2 * i]
            dz = np.empty((seq, 4 * c, BLOCK), F32)  # gradient of the gates' pre-activations, (i, f, o, g)
            dh_next = np.zeros((c, BLOCK), F32)
            dc_next = np.zeros((c, BLOCK), F32)
            for t in range(seq - 1, -1, -1):
                g, prev, tc = steps[t]
                gi, gf, go, gg = g[:c], g[c : 2 * c], g[2 * c : 3 * c], g[3 * c :]
                dht = dh[t] + dh_next
                dc = dht * go * (1 - tc * tc) + dc_next
                dzt = dz[t]
                dzt[:c] = dc * gg * gi * (1 - gi)
                dzt[c : 2 * c] = dc * prev * gf * (1 - gf)
                dzt[2 * c : 3 * c] = dht * tc * go * (1 - go)
                dzt[3 * c :] = dc * gi * (1 - gg * gg)
                dc_next = dc * gf
                dh_next = mod.g_hh @ dzt
            dpre = (mod.g_ih @ dz) * mask  # (L, M, BLOCK)
            dwin = mod.conv.T @ dpre  # (L, W * C, BLOCK)
            dpad = np.zeros((seq + 2 * half, c, BLOCK), F32)
            for j in range(self.width):
                dpad[j : j + seq] += dwin[:, j * c : (j + 1) * c]
            dconv = dpad[half : half + seq]
            dh = dconv + dh if cfg.residual else dconv
        ds = dh * cache[0]  # (L, C, BLOCK)
        dpatch = self.stem.T @ ds  # (L, P, BLOCK)
        return dpatch.transpose(2, 0, 1).reshape(BLOCK, -1)[:, : cfg.n_features]


def _alike_columns(
    products: list[tuple[int, int]],
    tries: int = 2,
    matmul: Callable[[np.ndarray, np.ndarray], np.ndarray] = np.matmul,
) -> np.ndarray:
    """Block columns (sorted) to which every product ``(rows, depth) @ (depth, BLOCK)`` gives the same bits: the same
    column of numbers put in every place of the right side and the result's columns compared, for ``tries`` random
    columns. The columns in each product's largest group of alike ones, where those meet; else those alike to the
    first column in every product (the first column at least). ``matmul``: the product (a test's stand-in)."""
    rng = np.random.default_rng(0)
    largest, first = np.ones(BLOCK, bool), np.ones(BLOCK, bool)
    for rows, depth in products:
        a = rng.standard_normal((rows, depth)).astype(F32)
        for _ in range(tries):
            c = matmul(a, np.repeat(rng.standard_normal((depth, 1)).astype(F32), BLOCK, axis=1))  # (rows, BLOCK)
            _, group, count = np.unique(c.T, axis=0, return_inverse=True, return_counts=True)
            group = group.reshape(-1)
            largest &= group == np.argmax(count)
            first &= group == group[0]
    return np.flatnonzero(largest if largest.any() else first)
