"""Training studies of the speech enhancer: each variant over seeds, scored on a data dir.

Runs come from ``latentdiff train se-model ... --exp-dir <study>/<variant>/seed<k>`` (stage 11
of ``recipes/se_model.sh``). Each is scored on the first ``max_utterances`` utterances of a data
dir by

- PESQ-WB, ESTOI and SI-SDR of its output at the model's default steps
  (:func:`latentdiff.se.enhancer.evaluate_datadir`);
- ``heldout_x0_mse``: the diffusion's normalised x0 error on the same utterances' segments at
  fixed noise levels and noise (unweighted, so it compares across loss weightings);
- its cost (MACs per second of audio, parameters) and training (final loss, seconds, rollbacks);
- ``s_to_target_loss``: training seconds until its running loss reaches
  :data:`TARGET_FACTOR` times the reference variant's final loss (core
  :func:`latentdiff.core.study.time_to_loss`, as in the path study), and ``steps_to_target_loss``,
  the same in training steps (independent of the machine's load).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import torch
from matplotlib.ticker import NullFormatter
from tqdm import tqdm

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
from latentdiff.core.study import heldout_x0_error as core_heldout_x0_error
from latentdiff.reporting import (
    markdown_table,
    plot_link,
    plot_path,
    save_figure,
    write_text_atomically,
)
from latentdiff.se.enhancer import Enhancer, evaluate_datadir
from latentdiff.se.features import SegmentConfig, SegmentDataset
from latentdiff.se.model import SEModel

VARIANT_ORDER = ("base", "small", "tiny", "plain", "two_stage", "flat")
REFERENCE_VARIANT = VARIANT_ORDER[0]
HELDOUT_SEGMENT_SECONDS = 1.0
HELDOUT_BATCH = 16
QUALITY = ("pesq", "estoi", "si_sdr")


def heldout_x0_error(model: SEModel, data_dir: Path, max_utterances: int = 0) -> float:
    """Mean normalised x0 error of the model's diffusion over the 1 s segments of the first
    ``max_utterances`` utterances (0: all) at fixed per-segment seeds, NaN without diffusion
    (core :func:`latentdiff.core.study.heldout_x0_error`). Comparable across variants that share
    the autoencoder."""
    config = SegmentConfig(HELDOUT_SEGMENT_SECONDS, model.sample_rate, max_utterances)
    data = SegmentDataset(data_dir, config)
    model.eval()

    def loss_stats(begin: int, end: int, seeds: torch.Tensor) -> dict[str, float]:
        pairs = [data[index] for index in range(begin, end)]
        noisy = torch.stack([pair[0] for pair in pairs])
        clean = torch.stack([pair[1] for pair in pairs])
        return model.loss(noisy, clean, seeds)[1]

    return core_heldout_x0_error(loss_stats, len(data), HELDOUT_BATCH)


def run_metrics(
    run: StudyRun, data_dir: Path, max_utterances: int
) -> tuple[dict[str, float], dict[str, float]]:
    """Quality, held-out errors, cost and training figures of one run, and the noisy input's
    quality scores."""
    enhancer = Enhancer.from_pretrained(run.exp_dir / "final.pt")
    model = enhancer.model
    scores = evaluate_datadir(enhancer, data_dir, max_utterances=max_utterances)
    metrics = {key: scores["enhanced"][key] for key in QUALITY}
    metrics |= {
        "heldout_x0_mse": heldout_x0_error(model, data_dir, max_utterances),
        "mmacs_per_s": model.macs_per_second()["total"] / 1e6,
        "params": float(model.parameter_counts()["total"]),
        "final_train_loss": float(np.mean(run.loss[-3:])),
        "train_s": run.train_seconds,
        "rollbacks": float(run.rollbacks),
    }
    return metrics, scores["noisy"]


def add_time_to_target(runs: Sequence[StudyRun], metrics: Sequence[dict[str, float]]) -> float:
    """Add ``s_to_target_loss`` and ``steps_to_target_loss`` (NaN where never reached) and
    ``reached_target`` (0 or 1) to each run's metrics; return the target:
    :data:`TARGET_FACTOR` times the reference variant's mean ``final_train_loss`` (NaN without
    reference runs, and then no run reaches it)."""
    target = target_loss(runs, metrics, REFERENCE_VARIANT)
    for run, metric in zip(runs, metrics, strict=True):
        metric["s_to_target_loss"] = time_to_loss(run, target)
        by_step = replace(run, log={**run.log, "time": run.steps})
        metric["steps_to_target_loss"] = time_to_loss(by_step, target)
        metric["reached_target"] = float(not math.isnan(metric["s_to_target_loss"]))
    return target


def plot_pareto(rows: Sequence[dict[str, object]], path: Path) -> None:
    """PESQ-WB against MMACs per second of audio (log x): per variant, the mean over seeds with
    the standard deviation as error bar."""
    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    # Colours by sorted variant name, as in the training-curve plot.
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    names = sorted(str(row["variant"]) for row in rows)
    for row in rows:
        macs = float(row["mmacs_per_s_mean"])  # type: ignore[arg-type]
        pesq = float(row["pesq_mean"])  # type: ignore[arg-type]
        spread = float(np.nan_to_num(row["pesq_std"]))  # type: ignore[arg-type]
        colour = colours[names.index(str(row["variant"])) % len(colours)]
        ax.errorbar(macs, pesq, yerr=spread, fmt="o", capsize=3, color=colour)
        ax.annotate(str(row["variant"]), (macs, pesq), textcoords="offset points", xytext=(5, 5))
    ax.set(xscale="log", xlabel="M MACs per second of audio", ylabel="PESQ-WB")
    costs = sorted({float(row["mmacs_per_s_mean"]) for row in rows})  # type: ignore[arg-type]
    ax.set_xticks(costs, [f"{cost:.3g}" for cost in costs])
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_title("speech enhancer: quality against compute (mean ± std over seeds)")
    ax.grid(alpha=0.3, which="both")
    fig.tight_layout()
    save_figure(fig, path)


def _mean_std(row: dict[str, object], key: str, digits: int = 3) -> str:
    mean, std = float(row[f"{key}_mean"]), float(row[f"{key}_std"])  # type: ignore[arg-type]
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if not math.isnan(std) else f"{mean:.{digits}f}"


def _to_target(row: dict[str, object], key: str) -> str:
    """Mean ± std of ``key`` (time to the target loss) where every seed reaches the target, else
    how many seeds do."""
    seeds = int(row["seeds"])  # type: ignore[call-overload]
    reached = round(float(row["reached_target_mean"]) * seeds)  # type: ignore[arg-type]
    if reached == seeds:
        return _mean_std(row, key, digits=0)
    return f"{reached}/{seeds} seeds"


def _table_row(row: dict[str, object]) -> dict[str, object]:
    return {
        "variant": row["variant"],
        "seeds": row["seeds"],
        "PESQ-WB": _mean_std(row, "pesq"),
        "PESQ range": row["pesq_range"],
        "ESTOI": _mean_std(row, "estoi"),
        "SI-SDR (dB)": _mean_std(row, "si_sdr"),
        "held-out x0 error": _mean_std(row, "heldout_x0_mse"),
        "MMACs/s": row["mmacs_per_s_mean"],
        "params": int(row["params_mean"]),  # type: ignore[call-overload]
        "train s": row["train_s_mean"],
        "s to target loss": _to_target(row, "s_to_target_loss"),
        "steps to target loss": _to_target(row, "steps_to_target_loss"),
        "final loss": row["final_train_loss_mean"],
        "rollbacks": row["rollbacks_mean"],
    }


def write_study_report(
    study_dir: Path,
    data_dir: Path,
    max_utterances: int,
    results: Path,
    command: str,
    progress: bool = True,
) -> list[dict[str, object]]:
    """Score every finished run under ``study_dir``; write the report and plots; return the
    summary by variant."""
    runs = find_runs(study_dir)
    metrics = []
    noisy: dict[str, float] = {}
    for run in tqdm(runs, desc="runs", disable=not progress):
        run_metric, noisy = run_metrics(run, data_dir, max_utterances)
        metrics.append(run_metric)
    target = add_time_to_target(runs, metrics)
    summary = summarise(runs, metrics, order=VARIANT_ORDER)
    column = "x0_mse" if all("x0_mse" in run.log for run in runs) else "loss"
    title = f"speech enhancer: training {column}"
    plot_curves(runs, plot_path(results, "curves.png"), title, column)
    plot_spread(runs, [m["pesq"] for m in metrics], plot_path(results, "pesq.png"), "PESQ-WB")
    plot_pareto(summary, plot_path(results, "pareto.png"))
    table = [_table_row(row) for row in summary]
    utterances = f"first {max_utterances}" if max_utterances else "all"
    text = (
        f"# Speech-enhancement training studies ({utterances} utterances of `{data_dir}`)\n\n"
        f"Produced by:\n\n```sh\n{command}\n```\n\n"
        f"Runs: `{study_dir}/<variant>/seed<k>` (each run's settings are in its "
        "`experiment.yaml`). Quality at each model's default sampler steps; noisy input: "
        + ", ".join(f"{key} {value:.3f}" for key, value in noisy.items())
        + ". Values are mean ± std over seeds (ddof 1); PESQ range = max - min. `held-out x0 "
        "error`: the diffusion's normalised x0 error on the utterances' 1 s segments at fixed "
        "noise levels and noise (unweighted, so comparable across loss weightings). `final "
        "loss`: mean of the last 3 logged training losses; its scale depends on the loss "
        "weighting (the curves show the unweighted x0 error where every run logs it). `s to "
        "target loss`: training seconds until the running mean of 3 logged training losses "
        f"first reaches {TARGET_FACTOR} x the {REFERENCE_VARIANT} variant's mean final loss "
        f"({target:.4f}): how long a variant trains until it fits the training data about as "
        f"well as {REFERENCE_VARIANT} does at its end (wall clock, so it includes any extra cost "
        "per step, and the load of the machine; resolution: one logging interval); `steps to "
        "target loss`: the same in training steps; `k/n seeds` where only k of n seeds reach "
        f"it. Both compare only variants with the {REFERENCE_VARIANT} loss weighting, as the "
        "weighting sets the loss scale. MMACs/s "
        "and params count the whole enhancer (autoencoder included).\n\n"
        f"{markdown_table(table, list(table[0]))}\n\n"
        f"{spread_section(runs, metrics, REFERENCE_VARIANT, 'plain', (*QUALITY, 'heldout_x0_mse'))}"
        f"![PESQ-WB against MACs]({plot_link(results, 'pareto.png')})\n\n"
        f"![PESQ-WB per seed]({plot_link(results, 'pesq.png')})\n\n"
        f"![training curves]({plot_link(results, 'curves.png')})\n"
    )
    write_text_atomically(results, text)
    return summary
