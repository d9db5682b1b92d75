"""Collision guidance: the cost is zero on clear paths, its gradient pushes out of obstacles."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentdiff.path.data import map_features, normalise
from latentdiff.path.model import collision_cost
from latentdiff.path.planner import Planner, PlannerConfig

from .test_planner import obstacle_map, tiny_model


def window_sdf(occ: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(map_features(occ[None])[:, 1:2])


def path_tensor(points: list[tuple[float, float]], window: int = 32) -> torch.Tensor:
    return torch.from_numpy(normalise(np.array(points), window).T[None].astype(np.float32))


def test_cost_is_zero_in_the_open_and_positive_through_an_obstacle() -> None:
    sdf = window_sdf(obstacle_map())  # block over rows 10-21, columns 12-19
    clear = path_tensor([(2.5, 4.5), (29.5, 4.5)])
    through = path_tensor([(2.5, 16.5), (29.5, 16.5)])
    assert float(collision_cost(clear, sdf)) == 0.0
    assert float(collision_cost(through, sdf)) > 0.1


def test_the_gradient_pushes_a_colliding_waypoint_out_of_the_obstacle() -> None:
    sdf = window_sdf(obstacle_map())
    points = path_tensor([(15.5, 8.0), (15.5, 10.6)]).requires_grad_(True)
    (gradient,) = torch.autograd.grad(collision_cost(points, sdf).sum(), points)
    # The end sits just below the block's top edge (y = 10): descent moves it up (smaller y).
    assert float(gradient[0, 1, 1]) > 0.0
    moved = points.detach() - 0.01 * gradient
    assert float(collision_cost(moved, sdf)) < float(collision_cost(points.detach(), sdf))


def test_guided_planning_runs_eagerly_and_verifies() -> None:
    torch.set_num_threads(1)
    with pytest.raises(ValueError, match="eager"):
        PlannerConfig(guidance=1.0)
    with pytest.raises(ValueError, match=">= 0"):
        PlannerConfig(guidance=-1.0, backend="eager")
    model = tiny_model(seed=6)
    plain = Planner(model, PlannerConfig(candidates=4, backend="eager"))
    guided = Planner(model, PlannerConfig(candidates=4, backend="eager", guidance=5.0))
    occ, start, goal = obstacle_map(), (4.5, 16.5), (28.5, 16.5)
    for planner in (plain, guided):
        result = planner.plan(occ, start, goal)
        assert result.success and result.info["nfe"] == 4
    maps = torch.from_numpy(map_features(occ[None].repeat(2, 0)))
    ends = torch.from_numpy(normalise(np.array([[*start, *goal]] * 2), 32).astype(np.float32))
    guide = path_tensor([start, goal]).repeat(2, 1, 1)  # straight through the block
    guide = torch.nn.functional.interpolate(guide, size=32, mode="linear", align_corners=True)
    seeds = torch.arange(8)
    kwargs = {"candidates": 4, "steps": 2, "sampler": "dpmpp_2m"}
    unguided, _ = model.propose(maps, ends, guide, seeds, **kwargs)
    steered, _ = model.propose(maps, ends, guide, seeds, guidance=5.0, **kwargs)
    sdf = torch.from_numpy(map_features(occ[None])[:, 1:2]).repeat(8, 1, 1, 1)
    assert float(collision_cost(steered, sdf).sum()) < float(collision_cost(unguided, sdf).sum())
