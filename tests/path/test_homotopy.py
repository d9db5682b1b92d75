"""Winding numbers around obstacles, and the planner's use of them to skip useless tautening."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentdiff.path import planner as planner_module
from latentdiff.path.generators import generate_world, sample_free_pair
from latentdiff.path.homotopy import obstacle_points, same_winding, winding_numbers
from latentdiff.path.planner import PRETRAINED, Planner

from .test_planner import obstacle_map


def test_components_are_eight_connected_and_get_one_free_of_path_point_each() -> None:
    occ = np.zeros((10, 10), dtype=bool)
    occ[2, 2] = occ[3, 3] = True  # corner-touching: one obstacle
    occ[7:9, 6:9] = True
    points = obstacle_points(occ)
    assert len(points) == 2
    for x, y in points:
        assert occ[int(y), int(x)] and x % 1 == 0.5 and y % 1 == 0.5
    assert obstacle_points(np.zeros((4, 4), dtype=bool)).shape == (0, 2)


def test_winding_numbers_count_turns_with_their_sign() -> None:
    square = np.array([(0.0, 0.0), (4.0, 0.0), (4.0, 4.0), (0.0, 4.0)])
    points = np.array([(2.0, 2.0), (6.0, 2.0)])
    np.testing.assert_array_equal(winding_numbers(square, points), [1, 0])
    np.testing.assert_array_equal(winding_numbers(square[::-1], points), [-1, 0])
    twice = np.concatenate([square, square])
    np.testing.assert_array_equal(winding_numbers(twice, points), [2, 0])


def test_paths_on_the_same_side_wind_alike_and_opposite_sides_do_not() -> None:
    occ = obstacle_map()  # block over rows 10-21, columns 12-19
    points = obstacle_points(occ)
    start, goal = (4.5, 16.5), (28.5, 16.5)
    above = np.array([start, (10.0, 6.0), (22.0, 6.0), goal])
    higher = np.array([start, (8.0, 2.0), (25.0, 3.0), goal])
    below = np.array([start, (10.0, 26.0), (22.0, 26.0), goal])
    np.testing.assert_array_equal(same_winding(np.stack([higher, below]), above, points), [1, 0])
    assert same_winding(below[None], below, np.empty((0, 2))).all()


@pytest.mark.skipif(not PRETRAINED.is_file(), reason="no bundled model")
def test_skipping_same_side_samples_changes_no_plan(monkeypatch: pytest.MonkeyPatch) -> None:
    """Plans with the filter equal plans that tauten every valid sample."""
    torch.set_num_threads(1)
    planner = Planner.from_pretrained()
    problems = []
    for seed in range(12):
        occ = generate_world(("random", "bug_traps", "rooms")[seed % 3], 64, 64, 500 + seed)
        start, goal = sample_free_pair(occ, np.random.default_rng(seed), 20.0)
        problems.append((occ, start, goal))
    filtered = [planner.plan(*problem) for problem in problems]
    monkeypatch.setattr(
        planner_module, "same_winding", lambda paths, *args: np.zeros(len(paths), dtype=bool)
    )
    exhaustive = [planner.plan(*problem) for problem in problems]
    assert sum(r.info["nfe"] > 0 for r in filtered) >= 6  # the network ran on most of them
    for a, b in zip(filtered, exhaustive, strict=True):
        assert a.info["method"] == b.info["method"]
        np.testing.assert_array_equal(a.path, b.path)
