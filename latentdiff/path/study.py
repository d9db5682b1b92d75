"""Training studies of the path model: each variant over seeds, scored on held-out windows.

Runs come from ``latentdiff train path-diffusion ... --exp-dir <study>/<variant>/seed<k>`` (the
recipe's study stage). Each is scored on a data split by

- ``heldout_x0_mse``: the denoiser's unweighted x0 error on the split at fixed noise
  (deterministic, so it shows the seed spread of the model itself, not of the scoring);
- the planner on the split's windows (:mod:`latentdiff.path.window_eval`): share of queries with a
  verified raw sample where the network ran, success, length ratio, plan time and MACs.
"""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch

from latentdiff.core.study import (
    TARGET_FACTOR,
    StudyRun,
    find_runs,
    plot_curves,
    plot_spread,
    spread_section,
    summarise,
    target_loss,
    time_to_loss,
)
from latentdiff.core.study import (
    heldout_x0_error as core_heldout_x0_error,
)
from latentdiff.path.data import PathDataset, PathSamples
from latentdiff.path.model import PathDiffusion
from latentdiff.path.planner import Planner
from latentdiff.path.window_eval import run_windows
from latentdiff.reporting import (
    markdown_table,
    plot_link,
    plot_path,
    save_figure,
    write_text_atomically,
)

SPREAD_KEYS = ("heldout_x0_mse", "valid_raw_ran", "len_mean")  # metrics compared by seed spread


def heldout_x0_error(model: PathDiffusion, samples: PathSamples, batch: int = 256) -> float:
    """Mean normalised x0 error of the denoiser over ``samples`` at fixed per-sample seeds
    (core :func:`latentdiff.core.study.heldout_x0_error`)."""
    data = PathDataset(samples)
    model.eval()

    def loss_stats(begin: int, end: int, seeds: torch.Tensor) -> dict[str, float]:
        keys = ("maps", "endpoints", "guide", "target")
        return model({k: getattr(data, k)[begin:end] for k in keys}, seeds)[1]

    return core_heldout_x0_error(loss_stats, len(data), batch)


def run_metrics(run: StudyRun, samples: PathSamples) -> dict[str, float]:
    """Held-out loss, planner outcomes and training cost of one run."""
    planner = Planner.from_pretrained(run.exp_dir / "final.pt")
    model = planner.model
    outcome = run_windows(planner, samples, progress=False)
    ran = outcome.network_ran
    config = planner.config
    return {
        "heldout_x0_mse": heldout_x0_error(model, samples),
        "final_train_loss": float(np.mean(run.loss[-3:])),
        "valid_raw_ran": float(outcome.valid_raw[ran].mean()) if ran.any() else math.nan,
        "success": float(outcome.success.mean()),
        "len_mean": float(outcome.length_ratio.mean()),
        "ms_p50_ran": float(np.median(outcome.ms[ran])) if ran.any() else math.nan,
        "mmacs_per_window": model.macs_per_plan(config.candidates, config.steps)["total"] / 1e6,
        "train_s": run.train_seconds,
        "rollbacks": float(run.rollbacks),
    }


def plot_pareto(rows: list[dict[str, object]], path: Path) -> None:
    """Per variant: raw-valid share and plan time against MACs per window (seed means).

    Variants often share a MAC count, so each has its own colour in a legend rather than a label
    beside its point.
    """
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4))
    for index, row in enumerate(rows):
        macs = float(row["mmacs_per_window_mean"])  # type: ignore[arg-type]
        style = {"color": f"C{index % 10}", "marker": "os^"[index // 10 % 3]}
        for ax, key in ((left, "valid_raw_ran_mean"), (right, "ms_p50_ran_mean")):
            ax.scatter(macs, float(row[key]), label=str(row["variant"]), **style)  # type: ignore[arg-type]
    left.set(xlabel="M MACs per window", ylabel="raw sample verified (where the network ran)")
    right.set(xlabel="M MACs per window", ylabel="median plan time where the network ran (ms)")
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.legend(*left.get_legend_handles_labels(), loc="center right", fontsize=8)
    fig.tight_layout(rect=(0, 0, 0.85, 1))
    save_figure(fig, path)


def write_study_report(
    study_dir: Path, samples: PathSamples, split: str, results: Path, command: str
) -> list[dict[str, object]]:
    """Score every finished run under ``study_dir``; write tables and plots; return the summary."""
    runs = find_runs(study_dir)
    metrics = [run_metrics(run, samples) for run in runs]
    target = target_loss(runs, metrics, "default")
    for run, metric in zip(runs, metrics, strict=True):
        metric["s_to_target_loss"] = time_to_loss(run, target)
    summary = summarise(runs, metrics, order=["default"])
    column = "x0_mse" if all("x0_mse" in run.log for run in runs) else "loss"
    title = f"path diffusion: training {column}"
    plot_curves(runs, plot_path(results, "curves.png"), title, column)
    plot_spread(
        runs,
        [m["heldout_x0_mse"] for m in metrics],
        plot_path(results, "heldout_x0_mse.png"),
        f"held-out x0 error ({split})",
    )
    plot_pareto(summary, plot_path(results, "pareto.png"))
    per_run = [
        {"variant": run.variant, "seed": run.seed, **metric}
        for run, metric in zip(runs, metrics, strict=True)
    ]
    summary_keys = ["variant", "seeds"] + [
        f"{key}_{stat}"
        for key in ("heldout_x0_mse", "valid_raw_ran", "len_mean", "ms_p50_ran")
        for stat in ("mean", "std", "range")
    ]
    summary_keys += [
        "mmacs_per_window_mean",
        "train_s_mean",
        "s_to_target_loss_mean",
        "rollbacks_mean",
    ]
    text = (
        f"# Path diffusion training studies ({split} windows)\n\nProduced by:\n\n```sh\n"
        f"{command}\n```\n\nRuns: `{study_dir}/<variant>/seed<k>` (the variants' settings are in "
        "each run's `experiment.yaml`). `heldout_x0_mse`: the denoiser's normalised x0 error on "
        "the split at fixed noise levels and noise (unweighted, so comparable across loss "
        "weightings). `valid_raw_ran`: share of queries with a verified raw sample, over the "
        "queries where the network ran. `s_to_target_loss`: training seconds until the running "
        f"mean of 3 logged losses reaches {TARGET_FACTOR} x the default variant's final loss "
        f"({target:.4f}); comparable only between variants with the default loss weighting, as "
        "the weighting sets the loss scale. std is over seeds (ddof 1); range = max - min.\n\n"
        f"## Summary by variant\n\n{markdown_table(summary, summary_keys)}\n\n"
        f"{spread_section(runs, metrics, 'default', 'plain', SPREAD_KEYS)}"
        f"![training curves]({plot_link(results, 'curves.png')})\n\n"
        f"![held-out x0 error per seed]({plot_link(results, 'heldout_x0_mse.png')})\n\n"
        f"![quality and time against MACs]({plot_link(results, 'pareto.png')})\n\n"
        f"## Every run\n\n{markdown_table(per_run, list(per_run[0]))}\n"
    )
    write_text_atomically(results, text)
    return summary
