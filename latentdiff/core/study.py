"""Training studies: several variants, each trained over several seeds, compared by their spread.

A study directory holds one run per variant and seed, ``<study>/<variant>/seed<k>/`` (each a
trainer experiment directory with ``train_log.csv`` and ``final.pt``). This module finds the runs,
reads their training curves, summarises any per-run metric by variant (mean, standard deviation,
range over seeds) and plots the curves; the tracks supply the held-out metrics.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from latentdiff.reporting import markdown_table, save_figure

_SEED_DIR = re.compile(r"seed(\d+)$")
HELDOUT_REPEATS = 4  # noise draws per held-out item
HELDOUT_SEED = 7_000_000
TARGET_FACTOR = 1.05  # target training loss: this times the reference variant's final loss


@dataclass
class StudyRun:
    """One trained run of a study: its variant, seed, directory and training curve."""

    variant: str
    seed: int
    exp_dir: Path
    log: dict[str, np.ndarray]  # train_log.csv columns

    @property
    def steps(self) -> np.ndarray:
        return self.log["step"]

    @property
    def loss(self) -> np.ndarray:
        return self.log["loss"]

    @property
    def train_seconds(self) -> float:
        return float(self.log["time"][-1])

    @property
    def rollbacks(self) -> int:
        return int(np.nansum(self.log.get("rollback", np.zeros(1))))


def read_train_log(path: Path) -> dict[str, np.ndarray]:
    """Columns of a trainer's ``train_log.csv`` as float arrays (empty cells become NaN)."""
    with path.open(newline="") as stream:
        rows = list(csv.DictReader(stream))
    if not rows:
        raise ValueError(f"{path} has no logged steps")
    return {
        key: np.array([float(row[key]) if row[key] not in ("", None) else math.nan for row in rows])
        for key in rows[0]
    }


def find_runs(study_dir: Path) -> list[StudyRun]:
    """Runs ``<study_dir>/<variant>/seed<k>`` that finished (``final.pt`` present), sorted."""
    runs = []
    for seed_dir in sorted(study_dir.glob("*/seed*")):
        match = _SEED_DIR.search(seed_dir.name)
        if match is None or not (seed_dir / "final.pt").is_file():
            continue
        log = read_train_log(seed_dir / "train_log.csv")
        runs.append(StudyRun(seed_dir.parent.name, int(match.group(1)), seed_dir, log))
    if not runs:
        raise FileNotFoundError(f"no finished runs <variant>/seed<k>/final.pt under {study_dir}")
    return sorted(runs, key=lambda run: (run.variant, run.seed))


def heldout_x0_error(
    loss_stats: Callable[[int, int, torch.Tensor], Mapping[str, float]], n: int, batch: int
) -> float:
    """Mean ``"x0_mse"`` over ``n`` held-out items (NaN where a model does not report it).

    ``loss_stats(begin, end, seeds)`` returns a model's loss statistics on items
    ``begin:end`` with the given per-item noise seeds. Every item is drawn
    :data:`HELDOUT_REPEATS` times at fixed seeds, without gradients, so the result depends on
    the model only; unweighted, unlike a training loss, so it compares across loss weightings.
    """
    total = 0.0
    with torch.no_grad():
        for repeat in range(HELDOUT_REPEATS):
            for begin in range(0, n, batch):
                end = min(begin + batch, n)
                seeds = torch.arange(begin, end) + HELDOUT_SEED + repeat * n
                total += loss_stats(begin, end, seeds).get("x0_mse", math.nan) * (end - begin)
    return total / (HELDOUT_REPEATS * n)


def time_to_loss(run: StudyRun, target: float, window: int = 3) -> float:
    """Training seconds until the running mean of ``window`` logged losses first reaches
    ``target`` (NaN if it never does); the log's ``time`` column is per logged step."""
    log = run.log
    window = min(window, len(run.loss))
    losses = np.convolve(run.loss, np.ones(window) / window, mode="valid")
    reached = np.flatnonzero(losses <= target)
    return float(log["time"][reached[0] + window - 1]) if reached.size else math.nan


def variant_values(
    runs: Sequence[StudyRun], metrics: Sequence[Mapping[str, float]], variant: str, key: str
) -> np.ndarray:
    """``key`` of every run of ``variant``, in run order (``metrics[i]`` belongs to ``runs[i]``)."""
    chosen = [m[key] for r, m in zip(runs, metrics, strict=True) if r.variant == variant]
    return np.array(chosen, dtype=float)


def target_loss(
    runs: Sequence[StudyRun], metrics: Sequence[Mapping[str, float]], reference: str
) -> float:
    """:data:`TARGET_FACTOR` times the ``reference`` variant's mean ``final_train_loss`` (NaN
    without reference runs): the loss whose :func:`time_to_loss` a study reports."""
    losses = variant_values(runs, metrics, reference, "final_train_loss")
    return TARGET_FACTOR * float(losses.mean()) if losses.size else math.nan


def summarise(
    runs: Sequence[StudyRun], metrics: Sequence[Mapping[str, float]], order: Sequence[str] = ()
) -> list[dict[str, object]]:
    """Per variant: seeds, and mean / std / min / max over seeds of every metric.

    ``metrics[i]`` belongs to ``runs[i]``; ``order`` lists variants to put first.
    """
    present = [run.variant for run in runs]
    variants = dict.fromkeys([*(v for v in order if v in present), *present])
    rows = []
    for variant in variants:
        keys = next(m for r, m in zip(runs, metrics, strict=True) if r.variant == variant)
        row: dict[str, object] = {"variant": variant, "seeds": present.count(variant)}
        for key in keys:
            values = variant_values(runs, metrics, variant, key)
            row[f"{key}_mean"] = float(values.mean())
            row[f"{key}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            row[f"{key}_range"] = float(values.max() - values.min())
        rows.append(row)
    return rows


def spread_comparison(
    runs: Sequence[StudyRun],
    metrics: Sequence[Mapping[str, float]],
    stabilised: str,
    plain: str,
    keys: Sequence[str],
) -> list[dict[str, object]]:
    """Seed spread of each metric in ``keys``: standard deviation over the seeds of the
    ``stabilised`` and the ``plain`` variant, their ratio (plain / stabilised), and the two-sided
    F-test p-value of equal variances. Empty when either variant has fewer than two seeds."""
    from scipy.stats import f as f_distribution

    rows: list[dict[str, object]] = []
    for key in keys:
        a = variant_values(runs, metrics, stabilised, key)
        b = variant_values(runs, metrics, plain, key)
        if len(a) < 2 or len(b) < 2:
            return []
        std_a, std_b = float(a.std(ddof=1)), float(b.std(ddof=1))
        if std_a > 0.0 and std_b > 0.0:
            tail = float(f_distribution.sf((std_b / std_a) ** 2, len(b) - 1, len(a) - 1))
            p_value = min(1.0, 2.0 * min(tail, 1.0 - tail))
        else:  # a constant metric: equal spreads if both are constant, else no test
            p_value = 1.0 if std_a == std_b else math.nan
        rows.append(
            {
                "metric": key,
                f"std_{stabilised}": std_a,
                f"std_{plain}": std_b,
                "std_ratio": std_b / std_a if std_a > 0.0 else (1.0 if std_b == 0.0 else math.inf),
                "seeds": f"{len(a)} / {len(b)}",
                "f_test_p": p_value,
            }
        )
    return rows


def spread_section(
    runs: Sequence[StudyRun],
    metrics: Sequence[Mapping[str, float]],
    stabilised: str,
    plain: str,
    keys: Sequence[str],
) -> str:
    """Markdown section with the :func:`spread_comparison` table (empty without the seeds)."""
    rows = spread_comparison(runs, metrics, stabilised, plain, keys)
    if not rows:
        return ""
    return (
        f"## Seed spread: {stabilised} against {plain}\n\n"
        f"Standard deviation over seeds (ddof 1) of each final metric; `std_ratio` = {plain} / "
        f"{stabilised} (> 1: {stabilised} spreads less); `f_test_p`: two-sided F-test of equal "
        "variances (normal metrics assumed).\n\n"
        f"{markdown_table(rows, list(rows[0]))}\n\n"
    )


def plot_curves(runs: Sequence[StudyRun], path: Path, title: str, column: str = "loss") -> None:
    """A logged ``column`` against step: one colour per variant, one line per seed (log scale)."""
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    variants = list(dict.fromkeys(run.variant for run in runs))
    fig, ax = plt.subplots(figsize=(7.5, 4.5))
    for run in runs:
        colour = colours[variants.index(run.variant) % len(colours)]
        label = (
            run.variant
            if run.seed == min(r.seed for r in runs if r.variant == run.variant)
            else None
        )
        ax.plot(run.steps, run.log[column], color=colour, linewidth=1.0, alpha=0.8, label=label)
    ax.set(xlabel="step", ylabel=column, yscale="log", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    save_figure(fig, path)


def plot_spread(runs: Sequence[StudyRun], values: Sequence[float], path: Path, ylabel: str) -> None:
    """One dot per seed and the mean per variant of a final metric."""
    variants = list(dict.fromkeys(run.variant for run in runs))
    fig, ax = plt.subplots(figsize=(1.2 * len(variants) + 2.5, 4.0))
    for index, variant in enumerate(variants):
        chosen = [v for r, v in zip(runs, values, strict=True) if r.variant == variant]
        ax.scatter([index] * len(chosen), chosen, color="tab:blue", s=18)
        ax.hlines(np.mean(chosen), index - 0.25, index + 0.25, color="black")
    ax.set_xticks(range(len(variants)), variants, rotation=30, ha="right")
    ax.set(ylabel=ylabel)
    ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    save_figure(fig, path)
