"""The Planner API: verified paths, endpoint errors, unreachable goals, batching, windows."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.latent import LatentDiffusionConfig
from latentdiff.core.nets import BackboneConfig
from latentdiff.path import Planner, PlanResult
from latentdiff.path.generators import generate_world, sample_free_pair
from latentdiff.path.geometry import path_is_free
from latentdiff.path.metrics import path_length
from latentdiff.path.model import MapEncoderConfig, PathDiffusion, PathModelConfig
from latentdiff.path.planner import PRETRAINED, PlannerConfig, split_route
from latentdiff.path.search import astar_any_angle, visibility_graph_optimum
from latentdiff.path.taut import taut_path


def tiny_model(seed: int = 0, local_dim: int = 0, stages: int = 1) -> PathDiffusion:
    """A small randomly initialised latent path model."""
    torch.manual_seed(seed)
    ae = Autoencoder1D(
        AutoencoderConfig(in_channels=2, latent_channels=4, channels=16, causal=False)
    )
    cfg = PathModelConfig(
        map_encoder=MapEncoderConfig(channels=(4, 8, 8, 8), out_dim=16, local_dim=local_dim),
        diffusion=LatentDiffusionConfig(
            backbone=BackboneConfig(name="unet", unet_channels=(16,), embed_dim=16), stages=stages
        ),
    )
    return PathDiffusion(cfg, ae).eval()


@pytest.fixture(scope="module")
def planner() -> Planner:
    torch.set_num_threads(1)
    if PRETRAINED.is_file():
        return Planner.from_pretrained(config=PlannerConfig(candidates=4, steps=2))
    return Planner(tiny_model(), PlannerConfig(candidates=4, steps=2))


def obstacle_map() -> np.ndarray:
    """32x32 map with a block in the middle: the grid guide around it is not taut."""
    occ = np.zeros((32, 32), dtype=bool)
    occ[10:22, 12:20] = True
    return occ


def test_paths_are_verified_with_exact_endpoints(planner: Planner) -> None:
    rng = np.random.default_rng(0)
    for kind, seed in [("random", 1), ("rooms", 2), ("maze", 3), ("narrow_passages", 4)]:
        occ = generate_world(kind, 40, 48, seed)
        start, goal = sample_free_pair(occ, rng, 12.0)
        result = planner.plan(occ, start, goal)
        assert isinstance(result, PlanResult)
        assert result.success and result.info["reason"] == "ok"
        assert path_is_free(occ, result.path)
        assert np.array_equal(result.path[0], start) and np.array_equal(result.path[-1], goal)
        assert result.info["method"] in ("diffusion", "guide")
        guide = astar_any_angle(occ, start, goal)
        assert path_length(result.path) <= path_length(guide) + 1e-9


def test_invalid_endpoints_name_which(planner: Planner) -> None:
    occ = obstacle_map()
    with pytest.raises(ValueError, match=r"start .* outside"):
        planner.plan(occ, (-1.0, 3.0), (5.5, 5.5))
    with pytest.raises(ValueError, match=r"goal .* obstacle"):
        planner.plan(occ, (2.5, 2.5), (15.5, 15.5))
    with pytest.raises(ValueError, match=r"start .* obstacle"):
        planner.plan(occ, (15.5, 15.5), (2.5, 2.5))


def test_unreachable_goal_is_reported_not_raised(planner: Planner) -> None:
    occ = np.zeros((64, 64), dtype=bool)
    occ[:, 30] = True
    result = planner.plan(occ, (3.5, 3.5), (60.5, 60.5))
    assert not result.success
    assert result.info["reason"] == "unreachable"
    assert result.info["nfe"] == 0
    assert result.info["timings_ms"]["total"] < 1000.0


def test_plan_batch_equals_plan_one_by_one(planner: Planner) -> None:
    rng = np.random.default_rng(1)
    problems = []
    for kind, seed in [("random", 5), ("corridors", 6), ("bug_traps", 7)]:
        occ = generate_world(kind, 48, 48, seed)
        start, goal = sample_free_pair(occ, rng, 16.0)
        problems.append((occ, start, goal))
    problems.append((obstacle_map(), (2.5, 2.5), (29.5, 29.5)))
    batched = planner.plan_batch(problems)
    for problem, together in zip(problems, batched, strict=True):
        alone = planner.plan(*problem)
        assert together.success == alone.success
        np.testing.assert_allclose(together.path, alone.path, atol=1e-6)
        for key in ("method", "n_valid_raw", "repaired", "repair_tried", "fallback", "nfe"):
            assert together.info[key] == alone.info[key]


def test_suboptimal_guide_is_never_made_longer(planner: Planner) -> None:
    occ = obstacle_map()
    start, goal = (2.5, 2.5), (29.5, 29.5)
    guide = astar_any_angle(occ, start, goal)
    optimum, _ = visibility_graph_optimum(occ, start, goal)
    result = planner.plan(occ, start, goal)
    assert result.success and path_is_free(occ, result.path)
    assert optimum - 1e-9 <= path_length(result.path) <= path_length(guide) + 1e-9
    assert result.info["nfe"] > 0 and result.info["candidates"] == 4


def test_non_boolean_maps_are_thresholded(planner: Planner) -> None:
    occ = obstacle_map()
    as_float = np.where(occ, 0.8, 0.2)
    as_image = np.where(occ, 0, 255).astype(np.uint8)
    reference = planner.plan(occ, (2.5, 2.5), (29.5, 29.5))
    for grid in (as_float, as_image):
        result = planner.plan(grid, (2.5, 2.5), (29.5, 29.5))
        np.testing.assert_array_equal(result.path, reference.path)


def test_large_map_is_planned_in_windows(planner: Planner) -> None:
    occ = generate_world("random", 160, 160, 11, density=0.1)
    start, goal = sample_free_pair(occ, np.random.default_rng(2), 140.0)
    result = planner.plan(occ, start, goal)
    assert result.success and path_is_free(occ, result.path)
    assert result.info["windows"] >= 2 or result.info["nfe"] == 0


def test_split_route_pieces_fit_and_join() -> None:
    path = np.array([[1.0, 1.0], [150.0, 20.0], [155.0, 158.0]])
    pieces = split_route(path, (160, 160), 64, 2)
    assert len(pieces) >= 3
    for a, b in itertools.pairwise(pieces):
        np.testing.assert_array_equal(a[-1], b[0])
    for piece in pieces:
        assert np.all(piece.max(0) - piece.min(0) <= 60.0)
    np.testing.assert_array_equal(pieces[0][0], path[0])
    np.testing.assert_array_equal(pieces[-1][-1], path[-1])


def test_one_homotopy_class_skips_the_network(planner: Planner) -> None:
    occ = generate_world("maze", 40, 40, 3)
    start, goal = sample_free_pair(occ, np.random.default_rng(3), 20.0)
    result = planner.plan(occ, start, goal)
    optimum, _ = visibility_graph_optimum(occ, start, goal)
    assert result.success and result.info["nfe"] == 0
    assert result.info["skipped"] == "one homotopy class"
    assert path_length(result.path) == pytest.approx(optimum, abs=1e-9)
    assert path_length(result.path) < path_length(astar_any_angle(occ, start, goal)) - 0.5


def test_guide_is_tautened_and_info_records_lengths(planner: Planner) -> None:
    occ = obstacle_map()
    start, goal = (2.5, 2.5), (29.5, 29.5)
    guide = astar_any_angle(occ, start, goal)
    result = planner.plan(occ, start, goal)
    info = result.info
    assert info["length_after_taut"] == pytest.approx(path_length(result.path), abs=1e-12)
    assert info["length_after_taut"] <= info["length_before_taut"] + 1e-12
    if info["method"] == "guide":
        assert info["length_before_taut"] == pytest.approx(path_length(guide), abs=1e-12)
    # One block: the tautened guide wraps a single corner and is optimal.
    optimum, _ = visibility_graph_optimum(occ, start, goal)
    assert path_length(result.path) == pytest.approx(optimum, abs=1e-9)
    assert not info["fallback"] and not (info["repaired"] and info["n_valid_raw"] > 0)


def test_a_valid_sample_in_a_shorter_class_than_the_guide_is_returned(
    planner: Planner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The network's only way to help: a sample around an obstacle on the other side."""
    occ = generate_world("random", 48, 48, 1)
    start, goal = sample_free_pair(occ, np.random.default_rng(1), 20.0)
    guide = taut_path(occ, astar_any_angle(occ, start, goal))
    optimum_length, optimum = visibility_graph_optimum(occ, start, goal)
    assert path_length(guide) > optimum_length + 0.2  # the guide goes the long way round
    n, k = planner.model.cfg.n_waypoints, planner.config.candidates
    # Every candidate is the optimum's polyline, padded to n waypoints at the goal.
    sample = np.concatenate([optimum, np.repeat(optimum[-1:], n - len(optimum), axis=0)])

    def propose(pieces: list) -> tuple[np.ndarray, int, float]:
        return np.broadcast_to(sample, (len(pieces), k, n, 2)).copy(), 2, 0.0

    monkeypatch.setattr(planner, "_propose", propose)
    result = planner.plan(occ, start, goal)
    assert result.success and path_is_free(occ, result.path)
    assert result.info["method"] == "diffusion" and result.info["n_valid_raw"] == k
    assert path_length(result.path) == pytest.approx(optimum_length, abs=1e-9)
