"""Plots of planning problems and benchmark summaries (headless matplotlib, atomic PNG writes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import numpy as np
from matplotlib.axes import Axes

from latentdiff.reporting import save_figure

Example = tuple[str, np.ndarray, np.ndarray, np.ndarray, Mapping[str, np.ndarray | None]]

__all__ = [
    "Example",
    "draw_problem",
    "plot_examples",
    "plot_method_summary",
    "plot_plan",
    "save_figure",
]

matplotlib.use("Agg")

_COLOURS = plt.rcParams["axes.prop_cycle"].by_key()["color"]


def draw_problem(
    ax: Axes,
    occ: np.ndarray,
    start: Sequence[float],
    goal: Sequence[float],
    paths: Mapping[str, np.ndarray | None] | None = None,
    candidates: Sequence[np.ndarray] = (),
) -> None:
    """Map (blocked cells dark, y down as in the image), start, goal, candidates and paths."""
    height, width = occ.shape
    ax.imshow(
        occ, cmap="gray_r", vmin=0, vmax=1.6, extent=(0, width, height, 0), interpolation="nearest"
    )
    for candidate in candidates:
        ax.plot(*np.asarray(candidate).T, color="tab:cyan", linewidth=0.6, alpha=0.5)
    for i, (name, path) in enumerate((paths or {}).items()):
        if path is not None and len(path):
            colour = _COLOURS[i % len(_COLOURS)]
            ax.plot(*np.asarray(path).T, color=colour, linewidth=1.4, label=name)
    ax.plot(*start, "o", color="tab:green", markersize=6, label="start")
    ax.plot(*goal, "*", color="tab:red", markersize=9, label="goal")
    ax.set(xlim=(0, width), ylim=(height, 0), xticks=[], yticks=[])
    ax.set_aspect("equal")


def plot_plan(
    path_png: str | Path,
    occ: np.ndarray,
    start: Sequence[float],
    goal: Sequence[float],
    path: np.ndarray | None,
    title: str,
    candidates: Sequence[np.ndarray] = (),
) -> None:
    """One planning query with its path (and optionally the sampled candidates)."""
    height, width = occ.shape
    scale = 6.0 / max(height, width)
    fig, ax = plt.subplots(figsize=(max(3.0, width * scale) + 0.5, max(3.0, height * scale) + 0.6))
    draw_problem(ax, occ, start, goal, {"path": path}, candidates)
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    save_figure(fig, path_png)


def plot_examples(
    path_png: str | Path,
    examples: Sequence[Example],
    columns: int = 4,
) -> None:
    """A grid of problems ``(title, occ, start, goal, {method: path})``, every method overlaid."""
    rows = max(1, -(-len(examples) // columns))
    fig, axes = plt.subplots(rows, columns, figsize=(3.2 * columns, 3.3 * rows), squeeze=False)
    for ax in axes.flat[len(examples) :]:
        ax.axis("off")
    for ax, (title, occ, start, goal, paths) in zip(axes.flat, examples, strict=False):
        draw_problem(ax, occ, start, goal, paths)
        ax.set_title(title, fontsize=8)
    if examples:
        handles, labels = axes.flat[0].get_legend_handles_labels()
        fig.legend(handles, labels, loc="lower center", ncol=min(len(labels), 8), fontsize=8)
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    save_figure(fig, path_png, dpi=90)


def plot_method_summary(
    path_png: str | Path,
    length_ratios: Mapping[str, Sequence[float]],
    ms: Mapping[str, Sequence[float]],
) -> None:
    """Box plots per method: length / any-angle optimum (successes) and wall time (ms, log)."""
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for ax, data, label in (
        (axes[0], length_ratios, "length / any-angle optimum"),
        (axes[1], ms, "wall time per plan (ms)"),
    ):
        names = list(data)
        values = [np.asarray(data[n], dtype=np.float64) for n in names]
        values = [v[np.isfinite(v)] if np.isfinite(v).any() else np.array([np.nan]) for v in values]
        ax.boxplot(values, showfliers=False)
        ax.set_xticks(range(1, len(names) + 1), names, rotation=20, fontsize=8)
        ax.set_ylabel(label)
        ax.grid(alpha=0.3, axis="y")
    axes[1].set_yscale("log")
    fig.tight_layout()
    save_figure(fig, path_png)
