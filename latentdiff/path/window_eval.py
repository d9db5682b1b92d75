"""Learned planners on a data split's held-out windows: does the network beat its guide?

Every sample of ``<data_dir>/<split>.npz`` is one 64x64 query with its exact any-angle optimum
and its tautened A* + shortcut guide (the path the planner returns when the network cannot do
better). The report says where the network ran, how often one of its samples was returned, and
what that did to the length, split into the "hard" queries (tautened guide above the optimum)
and the rest.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from latentdiff.path.data import PathDataset, PathSamples
from latentdiff.path.metrics import path_length
from latentdiff.path.planner import Planner
from latentdiff.reporting import markdown_table, write_text_atomically

HARD_TOLERANCE = 1e-3


def hard_samples(samples: PathSamples, tolerance: float = HARD_TOLERANCE) -> np.ndarray:
    """Mask of queries whose tautened guide is more than ``tolerance`` (relative) above optimum."""
    return samples.taut_length > samples.optimum_length * (1.0 + tolerance)


@dataclass
class WindowOutcome:
    """Per-query outcomes of one planner on a split."""

    success: np.ndarray
    network_ran: np.ndarray
    valid_raw: np.ndarray
    from_model: np.ndarray
    repaired: np.ndarray
    repair_tried: np.ndarray
    fallback: np.ndarray
    length_ratio: np.ndarray
    ms: np.ndarray
    macs: np.ndarray
    sample_cells: np.ndarray
    guide_cells: np.ndarray


def run_windows(planner: Planner, samples: PathSamples, progress: bool = True) -> WindowOutcome:
    """Plan every query of ``samples`` one by one (timed) and record what the planner did."""
    first = samples.occupancy[0], samples.start[0].astype(float), samples.goal[0].astype(float)
    planner.plan(*first)  # builds the compiled network outside the timings
    rows = []
    for i in tqdm(range(len(samples)), desc="windows", disable=not progress):
        args = samples.occupancy[i], samples.start[i].astype(float), samples.goal[i].astype(float)
        began = time.perf_counter()
        result = planner.plan(*args)
        ms = 1e3 * (time.perf_counter() - began)
        info = result.info
        rows.append(
            (
                result.success,
                info["nfe"] > 0,
                info["n_valid_raw"] > 0,
                info["method"] == "diffusion",
                info["repaired"],
                info["repair_tried"] > 0,
                info["fallback"],
                path_length(result.path) / float(samples.optimum_length[i]),
                ms,
                info["macs"],
            )
        )
    columns = [np.array(column) for column in zip(*rows, strict=True)]
    return WindowOutcome(*columns, *sample_distances(planner, samples))


def sample_distances(
    planner: Planner, samples: PathSamples, batch: int = 64
) -> tuple[np.ndarray, np.ndarray]:
    """Per query, in cells: mean waypoint distance from the training target (the optimum) to the
    closest of the planner's raw candidates, and to the guide. Shows what the network adds."""
    data = PathDataset(samples)
    model, config = planner.model, planner.config
    k, cells_per_unit = config.candidates, model.cfg.window / 2.0
    closest, guide = [], []
    for begin in range(0, len(data), batch):
        end = min(begin + batch, len(data))
        seeds = torch.arange(begin * k, end * k) + config.seed
        proposals, _ = model.propose(
            data.maps[begin:end],
            data.endpoints[begin:end],
            data.guide[begin:end],
            seeds,
            candidates=k,
            steps=config.steps,
            sampler=config.sampler,
            guidance=config.guidance,
        )
        target = data.target[begin:end]
        gaps = (proposals.unflatten(0, (end - begin, k)) - target[:, None]).norm(dim=2)
        closest.append(gaps.mean(-1).min(1).values * cells_per_unit)
        guide.append((data.guide[begin:end] - target).norm(dim=1).mean(-1) * cells_per_unit)
    return torch.cat(closest).numpy(), torch.cat(guide).numpy()


def window_rows(name: str, outcome: WindowOutcome, samples: PathSamples) -> list[dict[str, object]]:
    """Table rows (all queries, hard queries, the rest) of one planner."""
    hard = hard_samples(samples)
    taut_ratio = samples.taut_length / samples.optimum_length
    astar_ratio = samples.guide_length / samples.optimum_length
    rows = []
    for subset, mask in (("all", np.ones_like(hard)), ("hard", hard), ("other", ~hard)):
        ran = mask & outcome.network_ran

        def share(values: np.ndarray, over: np.ndarray) -> float:
            return float(values[over].mean()) if over.any() else float("nan")

        rows.append(
            {
                "model": name,
                "queries": subset,
                "n": int(mask.sum()),
                "success": share(outcome.success, mask),
                "network_ran": share(outcome.network_ran, mask),
                "valid_raw_ran": share(outcome.valid_raw, ran),
                "model_path_returned": share(outcome.from_model, mask),
                "repaired_returned": share(outcome.repaired, mask),
                "repair_tried": share(outcome.repair_tried, mask),
                "fallback": share(outcome.fallback, mask),
                "len_mean": share(outcome.length_ratio, mask),
                "len_p95": float(np.percentile(outcome.length_ratio[mask], 95)),
                "taut_guide_len_mean": share(taut_ratio, mask),
                "astar_shortcut_len_mean": share(astar_ratio, mask),
                "closest_sample_cells": share(outcome.sample_cells, mask),
                "guide_cells": share(outcome.guide_cells, mask),
                "ms_p50": float(np.median(outcome.ms[mask])),
                "ms_p50_ran": float(np.median(outcome.ms[ran])) if ran.any() else float("nan"),
                "macs_ran": share(outcome.macs, ran),
            }
        )
    return rows


def write_report(path: Path, command: str, split: str, rows: list[dict[str, object]]) -> None:
    """Write the window report (with the command that produced it) atomically."""
    text = (
        f"# Learned planners on the {split} windows\n\nProduced by:\n\n```sh\n{command}\n```\n\n"
        "`hard` = queries whose tautened A* + shortcut guide is more than 0.1 % above the exact "
        "any-angle optimum (the only queries where a network sample can be shorter). Length "
        "ratios are over the optimum; `valid_raw_ran`, `ms_p50_ran` and `macs_ran` are over "
        "the queries where the network ran. `model_path_returned`: the returned path came from a "
        "network sample (`repaired_returned`: from a repaired one). `closest_sample_cells`: mean "
        "waypoint distance (cells) from the training target to the closest raw candidate (all "
        "queries, network run apart from planning); `guide_cells`: the same for the guide. One "
        "thread, plans timed one by one.\n\n"
        f"{markdown_table(rows, list(rows[0]))}\n"
    )
    write_text_atomically(path, text)
