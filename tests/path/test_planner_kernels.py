"""The compiled network call of the planner and the fast window features match their references."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentdiff.core.samplers import initial_noise
from latentdiff.path.data import map_features
from latentdiff.path.features import signed_distance_field, window_features
from latentdiff.path.generators import WORLD_KINDS, generate_world, sample_free_pair
from latentdiff.path.geometry import path_is_free
from latentdiff.path.geometry import signed_distance_field as lattice_signed_distance_field
from latentdiff.path.kernels import ProposalGraph, proposal_kernel
from latentdiff.path.planner import PRETRAINED, Planner, PlannerConfig

from .test_planner import tiny_model


def network_inputs(pieces: int, seed: int) -> tuple[torch.Tensor, ...]:
    """Random maps, endpoints and guides of ``pieces`` 64 x 64 windows."""
    generator = torch.Generator().manual_seed(seed)
    maps = torch.rand(pieces, 2, 64, 64, generator=generator)
    endpoints = 2.0 * torch.rand(pieces, 4, generator=generator) - 1.0
    guide = 2.0 * torch.rand(pieces, 2, 32, generator=generator) - 1.0
    return maps, endpoints, guide


@pytest.mark.parametrize(
    ("sampler", "steps", "local_dim", "stages"),
    [("dpmpp_2m", 3, 0, 1), ("heun", 2, 0, 1), ("dpmpp_2m", 2, 4, 1), ("dpmpp_2m", 3, 0, 2)],
)
def test_kernel_equals_eager_propose_for_any_number_of_windows(
    sampler: str, steps: int, local_dim: int, stages: int
) -> None:
    torch.set_num_threads(1)
    model = tiny_model(seed=1, local_dim=local_dim, stages=stages)
    kernel = proposal_kernel(model, 4, steps, sampler)
    for pieces in (1, 3):
        maps, endpoints, guide = network_inputs(pieces, seed=pieces)
        seeds = torch.arange(100, 100 + 4 * pieces)
        expected, nfe = model.propose(
            maps, endpoints, guide, seeds, candidates=4, steps=steps, sampler=sampler
        )
        noise = initial_noise(seeds, kernel.noise_shape[1:]).reshape(pieces, *kernel.noise_shape)
        got = kernel(maps.numpy(), endpoints.numpy(), guide.numpy(), noise.numpy())
        assert got.shape == (4 * pieces, 2, 32)
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
        assert kernel.nfe == nfe


def test_kernels_are_cached_per_model_and_settings() -> None:
    model = tiny_model(seed=2)
    kernel = proposal_kernel(model, 2, 1, "ddim")
    assert proposal_kernel(model, 2, 1, "ddim") is kernel
    assert proposal_kernel(model, 2, 2, "ddim") is not kernel
    assert proposal_kernel(tiny_model(seed=2), 2, 1, "ddim") is not kernel


def test_samplers_with_fresh_noise_per_step_are_refused() -> None:
    with pytest.raises(ValueError, match="ddpm"):
        ProposalGraph(tiny_model(), 2, 2, "ddpm")
    with pytest.raises(ValueError, match="ddpm"):
        PlannerConfig(sampler="ddpm")
    with pytest.raises(ValueError, match="backend"):
        PlannerConfig(backend="tensorrt")
    PlannerConfig(sampler="ddpm", backend="eager")


@pytest.fixture(scope="module")
def planners() -> dict[str, Planner]:
    torch.set_num_threads(1)
    model = Planner.from_pretrained().model if PRETRAINED.is_file() else tiny_model()
    return {
        backend: Planner(model, PlannerConfig(backend=backend))
        for backend in ("onnxruntime", "eager")
    }


def test_both_backends_plan_the_same_paths(planners: dict[str, Planner]) -> None:
    rng = np.random.default_rng(4)
    networked = 0
    for kind, seed in [("random", 1), ("rooms", 2), ("bug_traps", 3), ("random", 4)]:
        occ = generate_world(kind, 64, 64, seed)
        start, goal = sample_free_pair(occ, rng, 16.0)
        compiled, eager = (planners[b].plan(occ, start, goal) for b in ("onnxruntime", "eager"))
        assert compiled.success and path_is_free(occ, compiled.path)
        np.testing.assert_allclose(compiled.path, eager.path, atol=1e-6)
        for key in ("method", "n_valid_raw", "repaired", "fallback", "nfe", "candidates"):
            assert compiled.info[key] == eager.info[key]
        networked += compiled.info["nfe"] > 0
    assert networked >= 2


def test_batched_windows_agree_between_backends(planners: dict[str, Planner]) -> None:
    occ = generate_world("random", 160, 160, 11, density=0.1)
    start, goal = sample_free_pair(occ, np.random.default_rng(2), 140.0)
    compiled, eager = (planners[b].plan(occ, start, goal) for b in ("onnxruntime", "eager"))
    assert compiled.info["windows"] >= 2
    np.testing.assert_allclose(compiled.path, eager.path, atol=1e-6)
    assert compiled.info["n_valid_raw"] == eager.info["n_valid_raw"]


def grids() -> list[np.ndarray]:
    """Generated worlds, random grids of odd sizes and densities, and the all-free / all-blocked
    corner cases."""
    rng = np.random.default_rng(0)
    worlds = [generate_world(kind, 64, 64, seed) for kind in WORLD_KINDS for seed in (1, 2)]
    shapes = [(1, 1), (1, 9), (7, 1), (13, 29), (40, 17)]
    noise = [rng.random(shape) < p for shape in shapes for p in (0.05, 0.3, 0.7)]
    blank = [np.zeros((6, 9), dtype=bool), np.ones((6, 9), dtype=bool)]
    return worlds + noise + blank


def test_signed_distance_field_equals_the_lattice_transform_exactly() -> None:
    for grid in grids():
        np.testing.assert_array_equal(
            signed_distance_field(grid), lattice_signed_distance_field(grid)
        )


def test_window_features_equal_the_training_features() -> None:
    for kind, seed in [("random", 5), ("maze", 6), ("narrow_passages", 7)]:
        crop = generate_world(kind, 64, 64, seed)
        np.testing.assert_array_equal(window_features(crop), map_features(crop[None])[0])
