"""Side-by-side benchmark of learned planners and peers on the same problems, and its report.

Every returned path is re-checked here with the exact collision checker (and must join the
exact start and goal), whatever the method claims. Timings are wall-clock around each call, in
one process with one torch thread, after one untimed warm-up call per method.
"""

from __future__ import annotations

import math
import os
import platform
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from tqdm import tqdm

from latentdiff.path.benchmaps import Problem
from latentdiff.path.geometry import path_is_free
from latentdiff.path.metrics import (
    PlanOutcome,
    clearance,
    length_ratio,
    path_length,
    smoothness,
    summarize,
)
from latentdiff.path.peers import Peer
from latentdiff.path.plotting import Example, plot_examples, plot_method_summary
from latentdiff.reporting import markdown_table, write_text_atomically

__all__ = [
    "REFERENCE_METHOD",
    "Attempt",
    "LearnedPlanner",
    "PlanOutput",
    "run_benchmark",
    "summary_rows",
    "verified_path",
    "write_report",
]

REFERENCE_METHOD = "astar+shortcut"
ALL_SETS = "all"
_ENDPOINT_TOLERANCE = 1e-6


class PlanOutput(Protocol):
    """What a learned planner returns (see ``latentdiff.path.PlanResult``)."""

    path: np.ndarray
    success: bool
    info: dict[str, Any]


class LearnedPlanner(Protocol):
    """A planner with ``plan(occ, start, goal)`` (see ``latentdiff.path.Planner``)."""

    def plan(
        self, occ: np.ndarray, start: Sequence[float], goal: Sequence[float]
    ) -> PlanOutput: ...


@dataclass(frozen=True)
class Attempt:
    """One method on one problem; ``info``-based fields are NaN where a method reports none."""

    method: str
    problem_set: str
    problem: str
    returned: bool
    success: bool
    length_ratio: float
    length: float
    smoothness: float
    clearance: float
    ms: float
    raw_success: float = math.nan
    repaired: float = math.nan
    fallback: float = math.nan
    nfe: float = math.nan
    macs: float = math.nan


def verified_path(
    occ: np.ndarray, path: np.ndarray | None, start: Sequence[float], goal: Sequence[float]
) -> bool:
    """Whether ``path`` is a finite polyline from ``start`` to ``goal`` passing the exact check."""
    if path is None:
        return False
    pts = np.asarray(path, dtype=np.float64).reshape(-1, 2)
    if len(pts) == 0 or not np.isfinite(pts).all():
        return False
    ends_match = np.allclose(pts[0], start, rtol=0.0, atol=_ENDPOINT_TOLERANCE) and np.allclose(
        pts[-1], goal, rtol=0.0, atol=_ENDPOINT_TOLERANCE
    )
    return bool(ends_match and path_is_free(occ, pts))


def _info_number(info: Mapping[str, Any], key: str) -> float:
    """A numeric ``info`` entry as float (a dict of parts gives its "total"), else NaN."""
    value = info.get(key)
    if isinstance(value, Mapping):
        value = value.get("total")
    if isinstance(value, (bool, int, float, np.number)):
        return float(value)
    return math.nan


def _attempt(
    method: str, problem: Problem, path: np.ndarray | None, seconds: float, **info: float
) -> Attempt:
    success = verified_path(problem.occ, path, problem.start, problem.goal)
    good = np.asarray(path, dtype=np.float64).reshape(-1, 2) if success else None
    return Attempt(
        method=method,
        problem_set=problem.problem_set,
        problem=problem.name,
        returned=path is not None,
        success=success,
        length_ratio=length_ratio(good, problem.optimum) if good is not None else math.nan,
        length=path_length(good) if good is not None else math.nan,
        smoothness=smoothness(good) if good is not None else math.nan,
        clearance=clearance(problem.occ, good) if good is not None else math.nan,
        ms=1e3 * seconds,
        **info,
    )


def _run_learned(name: str, planner: LearnedPlanner, problem: Problem) -> tuple[Attempt, Any]:
    begin = time.perf_counter()
    result = planner.plan(problem.occ, problem.start, problem.goal)
    seconds = time.perf_counter() - begin
    info = dict(result.info)
    n_valid_raw = _info_number(info, "n_valid_raw")
    attempt = _attempt(
        name,
        problem,
        result.path if result.success else None,
        seconds,
        raw_success=float(n_valid_raw > 0) if not math.isnan(n_valid_raw) else math.nan,
        repaired=_info_number(info, "repaired"),
        fallback=_info_number(info, "fallback"),
        nfe=_info_number(info, "nfe"),
        macs=_info_number(info, "macs"),
    )
    return attempt, result


def run_benchmark(
    problems: Sequence[Problem],
    planners: Mapping[str, LearnedPlanner],
    peers: Sequence[Peer],
    time_budget_s: float = 1.0,
    progress: bool = True,
) -> tuple[list[Attempt], dict[tuple[str, str], np.ndarray | None]]:
    """Run every planner and peer on every problem with one torch thread.

    Returns the attempts and the returned paths keyed by (method, problem name). A learned
    planner's path counts only when it reports success and it passes the exact re-check.
    """
    torch.set_num_threads(1)
    if problems:  # untimed warm-up: JIT compilation, lazy model loading, caches
        first = problems[0]
        for planner in planners.values():
            planner.plan(first.occ, first.start, first.goal)
        for peer in peers:
            peer.plan(first.occ, first.start, first.goal, min(time_budget_s, 0.05))
    attempts: list[Attempt] = []
    paths: dict[tuple[str, str], np.ndarray | None] = {}
    for problem in tqdm(problems, desc="benchmark", disable=not progress):
        for name, planner in planners.items():
            attempt, result = _run_learned(name, planner, problem)
            attempts.append(attempt)
            paths[name, problem.name] = result.path if result.success else None
        for peer in peers:
            answer = peer.plan(problem.occ, problem.start, problem.goal, time_budget_s)
            attempts.append(_attempt(peer.name, problem, answer.path, answer.seconds))
            paths[peer.name, problem.name] = answer.path
    return attempts, paths


def _nanmedian(values: Sequence[float]) -> float:
    array = np.asarray(values, dtype=np.float64)
    array = array[np.isfinite(array)]
    return float(np.median(array)) if array.size else math.nan


def _nanmean(values: Sequence[float]) -> float:
    array = np.asarray(values, dtype=np.float64)
    array = array[~np.isnan(array)]
    return float(array.mean()) if array.size else math.nan


def _row(
    method: str, problem_set: str, group: Sequence[Attempt], reference: Sequence[Attempt]
) -> dict[str, Any]:
    stats = summarize([PlanOutcome(a.success, a.length_ratio, a.ms / 1e3) for a in group])
    returned = [a for a in group if a.returned]
    ref_length = {a.problem: a.length for a in reference if a.success}
    ref_ms = _nanmedian([a.ms for a in reference])
    return {
        "method": method,
        "set": problem_set,
        "n": len(group),
        "success": stats["success_rate"],
        "invalid_returned": (
            sum(not a.success for a in returned) / len(returned) if returned else math.nan
        ),
        "raw_success": _nanmean([a.raw_success for a in group]),
        "repaired": _nanmean([a.repaired for a in group]),
        "fallback": _nanmean([a.fallback for a in group]),
        "len_ratio_mean": stats["length_ratio_mean"],
        "len_ratio_p50": _nanmedian([a.length_ratio for a in group]),
        "len_ratio_p95": stats["length_ratio_p95"],
        "len_vs_ref_p50": _nanmedian(
            [
                a.length / ref_length[a.problem]
                for a in group
                if a.success and a.problem in ref_length
            ]
        ),
        "smoothness_p50": _nanmedian([a.smoothness for a in group]),
        "clearance_p50": _nanmedian([a.clearance for a in group]),
        "ms_p50": 1e3 * stats["time_p50_s"],
        "ms_p90": 1e3 * stats["time_p90_s"],
        "ms_vs_ref_p50": 1e3 * stats["time_p50_s"] / ref_ms if ref_ms > 0 else math.nan,
        "nfe": _nanmean([a.nfe for a in group]),
        "macs": _nanmean([a.macs for a in group]),
    }


def summary_rows(attempts: Sequence[Attempt]) -> list[dict[str, Any]]:
    """One row per (method, problem set) and per (method, "all"), methods in first-seen order.

    Rates are fractions; ``invalid_returned`` is the share of returned paths failing the exact
    check; ``len_vs_ref_p50`` is the median per-problem length over the A*+shortcut length and
    ``ms_vs_ref_p50`` the ratio of median times, both against A*+shortcut in the same run.
    """
    methods = list(dict.fromkeys(a.method for a in attempts))
    sets = list(dict.fromkeys(a.problem_set for a in attempts))
    rows = []
    for problem_set in [ALL_SETS, *sets]:
        chosen = [a for a in attempts if problem_set in (ALL_SETS, a.problem_set)]
        reference = [a for a in chosen if a.method == REFERENCE_METHOD]
        for method in methods:
            group = [a for a in chosen if a.method == method]
            if group:
                rows.append(_row(method, problem_set, group, reference))
    return rows


QUALITY_COLUMNS = [
    "method",
    "set",
    "n",
    "success",
    "invalid_returned",
    "raw_success",
    "repaired",
    "fallback",
    "len_ratio_p50",
    "len_ratio_mean",
    "len_ratio_p95",
    "len_vs_ref_p50",
    "smoothness_p50",
    "clearance_p50",
]
SPEED_COLUMNS = ["method", "set", "n", "ms_p50", "ms_p90", "ms_vs_ref_p50", "nfe", "macs"]


def _examples(
    problems: Sequence[Problem],
    methods: Sequence[str],
    paths: Mapping[tuple[str, str], np.ndarray | None],
    count: int,
) -> list[Example]:
    """One problem from each of the first ``count`` problem sets."""
    first: dict[str, Problem] = {}
    for problem in problems:
        first.setdefault(problem.problem_set, problem)
    return [
        (p.name, p.occ, p.start, p.goal, {m: paths.get((m, p.name)) for m in methods})
        for p in list(first.values())[:count]
    ]


def _cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else what :mod:`platform` knows."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_report(
    results: Path,
    problems: Sequence[Problem],
    attempts: Sequence[Attempt],
    paths: Mapping[tuple[str, str], np.ndarray | None],
    *,
    command: str,
    time_budget_s: float,
    skipped: Mapping[str, str] | None = None,
    n_examples: int = 8,
) -> list[dict[str, Any]]:
    """Write ``results`` (markdown) with plots in ``plots/`` beside it; returns the summary rows."""
    rows = summary_rows(attempts)
    methods = list(dict.fromkeys(a.method for a in attempts))
    plots = results.parent / "plots"
    plot_examples(plots / "path_examples.png", _examples(problems, methods, paths, n_examples))
    plot_method_summary(
        plots / "path_methods.png",
        {m: [a.length_ratio for a in attempts if a.method == m and a.success] for m in methods},
        {m: [a.ms for a in attempts if a.method == m] for m in methods},
    )
    overall = [r for r in rows if r["set"] == ALL_SETS]
    per_set = [r for r in rows if r["set"] != ALL_SETS]
    sets = ", ".join(
        f"{name} ({sum(p.problem_set == name for p in problems)})"
        for name in dict.fromkeys(p.problem_set for p in problems)
    )
    skipped_text = "".join(f"\n- `{name}` skipped: {why}" for name, why in (skipped or {}).items())
    text = "\n\n".join(
        [
            "# Results: path planning benchmark",
            f"Produced by:\n\n```sh\n{command}\n```",
            f"Machine: {platform.machine()}, {_cpu_name()}, {os.cpu_count()} logical CPUs, "
            f"{platform.system()} {platform.release()}, python {platform.python_version()}, "
            f"torch {torch.__version__}, {torch.get_num_threads()} torch thread(s), one process. "
            f"Peer time budget: {time_budget_s:g} s per plan.",
            f"Problem sets (problems): {sets}.{skipped_text}",
            "Every returned path is re-checked with the exact collision checker. `success` = "
            "share of problems solved with a valid path; `invalid_returned` = share of returned "
            "paths that fail the exact check (OMPL validates motions by sampling, so it can clip "
            "corners); `raw_success`, `repaired`, `fallback` = share of plans whose raw samples "
            "held a valid path, that needed repair, that fell back to search (learned planners "
            "only). Length ratios are over the exact any-angle optimum (successes only); "
            "`len_vs_ref_p50` and `ms_vs_ref_p50` compare with A*+shortcut in this same run "
            "(median per-problem length ratio; ratio of median times). Times are wall-clock ms "
            "per plan; `macs` = multiply-accumulates per plan where reported.",
            "## All problems\n\n" + markdown_table(overall, QUALITY_COLUMNS),
            markdown_table(overall, SPEED_COLUMNS),
            "![length ratio and time per method](plots/path_methods.png)",
            "![example problems](plots/path_examples.png)",
            "## Per problem set\n\n" + markdown_table(per_set, QUALITY_COLUMNS),
            markdown_table(per_set, SPEED_COLUMNS),
        ]
    )
    write_text_atomically(results, text + "\n")
    return rows
