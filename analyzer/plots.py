"""Figures for ``nta study``: PCA scatter panels and loss curves, as small PNGs (matplotlib, optional).

matplotlib is the ``plots`` extra: ``available()`` says whether it is installed and every study command
still writes its CSVs without it, printing ``PLOTS_HINT``. Figures are drawn with the non-interactive Agg
backend (no display needed), scatter points rasterised and the DPI kept modest so each PNG stays well
under 200 KB for checking into ``docs/results/``.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from features.common import atomic_path

__all__ = ["PLOTS_HINT", "Curve", "Panel", "available", "loss_curves_figure", "pca_figure"]

PLOTS_HINT = "figures need matplotlib: pip install '.[plots]' (or pip install 'matplotlib>=3.8')"

# Colour-blind-safe (Okabe-Ito); normal first so it is always the same blue.
_COLOURS = ("#0072B2", "#D55E00", "#009E73", "#CC79A7", "#E69F00", "#56B4E9", "#000000")
_DPI = 90


def available() -> bool:
    """True when matplotlib can be imported."""
    return importlib.util.find_spec("matplotlib") is not None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # files only; never needs a display
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=_DPI, bbox_inches="tight")


@dataclass(frozen=True)
class Panel:
    """One PCA scatter: a title, (n, 2) coordinates and the (2,) explained-variance fractions."""

    title: str
    z: np.ndarray
    explained: np.ndarray
    note: str = ""  # e.g. the k-NN score, printed in the panel's corner


def pca_figure(
    panels: Sequence[Panel], labels: np.ndarray | None, classes: Sequence[str], path: Path, title: str
) -> None:
    """Draw the panels side by side, points coloured by ``labels`` (names from ``classes``) or one colour.

    Classes are drawn largest first so rare ones (U2R: a few dozen rows) stay visible on top.
    """
    plt = _pyplot()
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.0), squeeze=False)
    order = sorted(classes, key=lambda c: -int(np.sum(labels == c))) if labels is not None else []
    for ax, p in zip(axes[0], panels, strict=True):
        if labels is None:
            ax.scatter(p.z[:, 0], p.z[:, 1], s=3, alpha=0.5, c=_COLOURS[0], linewidths=0, rasterized=True)
        else:
            for c in order:
                m = labels == c
                if m.any():
                    colour = _COLOURS[list(classes).index(c) % len(_COLOURS)]
                    ax.scatter(
                        p.z[m, 0], p.z[m, 1], s=3, alpha=0.5, c=colour, linewidths=0, label=f"{c} ({int(m.sum())})",
                        rasterized=True,
                    )  # fmt: skip
        ax.set_title(p.title, fontsize=10)
        ax.set_xlabel(f"PC1 ({p.explained[0]:.1%} of variance)", fontsize=9)
        ax.set_ylabel(f"PC2 ({p.explained[1]:.1%} of variance)", fontsize=9)
        ax.tick_params(labelsize=7)
        if p.note:
            ax.text(0.02, 0.98, p.note, transform=ax.transAxes, va="top", fontsize=8,
                    bbox={"facecolor": "white", "alpha": 0.8, "linewidth": 0})  # fmt: skip
    if labels is not None:
        handles, names = axes[0][0].get_legend_handles_labels()
        legend = fig.legend(handles, names, loc="lower center", ncol=len(names), fontsize=8, markerscale=4)
        for h in legend.legend_handles:
            h.set_alpha(1)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout(rect=(0, 0.07 if labels is not None else 0, 1, 0.95))
    _save(fig, path)
    plt.close(fig)


@dataclass(frozen=True)
class Curve:
    """Per-epoch losses of one model (epochs numbered from 1)."""

    train: Sequence[float]
    val: Sequence[float]


def loss_curves_figure(curves: Mapping[str, Curve], path: Path, title: str) -> None:
    """Two panels, training loss and validation loss per epoch, one line per model (log-scaled y)."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4), sharey=True)
    # One colour per depth ("MSMNet-10" and "MSMRNet-10" share one), so each pair reads as a pair.
    groups: dict[str, int] = {}
    for name in curves:
        groups.setdefault(name.rsplit("-", 1)[-1], len(groups))
    for name, c in curves.items():
        colour = _COLOURS[groups[name.rsplit("-", 1)[-1]] % len(_COLOURS)]
        # Dashed = no shortcuts (MSMNet), solid = with (MSMRNet): the comparison the figure is about.
        style = "--" if "MSMNet" in name else "-"
        for ax, values in ((axes[0], c.train), (axes[1], c.val)):
            ax.plot(range(1, len(values) + 1), values, style, color=colour, label=name, marker=".", markersize=4)
    for ax, what in ((axes[0], "training loss"), (axes[1], "validation loss")):
        ax.set_title(what, fontsize=10)
        ax.set_xlabel("epoch", fontsize=9)
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("cross-entropy", fontsize=9)
    axes[1].legend(fontsize=8)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    _save(fig, path)
    plt.close(fig)
