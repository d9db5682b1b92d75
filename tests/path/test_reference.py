"""Residual reference of the path model: the guide route, or the straight start -> goal line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.config import from_dict, to_dict
from latentdiff.core.models import autoencoder_spec, load_model, save_final
from latentdiff.core.samplers import initial_noise
from latentdiff.path.data import PathDataset, PathSamples, load_split, save_split
from latentdiff.path.kernels import proposal_kernel
from latentdiff.path.model import (
    RESIDUAL_SCALE,
    PathDiffusion,
    PathModelConfig,
    build_path_model,
    from_residual,
    path_model_spec,
    straight_line,
    to_residual,
)
from latentdiff.path.train import (
    ResidualDataset,
    autoencoder_residuals,
    check_autoencoder_residuals,
    train_path_autoencoder,
    train_path_diffusion,
)

from .test_planner import tiny_model
from .test_planner_kernels import network_inputs

SCALE = 0.18


def tiny_reference_model(reference: str, local_dim: int = 4, seed: int = 0) -> PathDiffusion:
    """A tiny random latent path model with ``reference`` and residual scale :data:`SCALE`."""
    base = tiny_model(seed=seed, local_dim=local_dim)
    spec = path_model_spec(base)
    spec["config"].update(reference=reference, residual_scale=SCALE)
    model = build_path_model(spec)
    model.load_state_dict(base.state_dict())
    assert isinstance(model, PathDiffusion)
    return model.eval()


def with_new_interior(guide: torch.Tensor, seed: int) -> torch.Tensor:
    """``guide`` with every waypoint but the first and last redrawn."""
    other = guide.clone()
    generator = torch.Generator().manual_seed(seed)
    other[..., 1:-1] = 2.0 * torch.rand(other[..., 1:-1].shape, generator=generator) - 1.0
    return other


def test_straight_line_is_the_evenly_spaced_chord_of_the_guide() -> None:
    guide = 2.0 * torch.rand(3, 2, 32) - 1.0
    line = straight_line(guide)
    torch.testing.assert_close(line[..., 0], guide[..., 0])
    torch.testing.assert_close(line[..., -1], guide[..., -1])
    steps = line.diff(dim=-1)
    torch.testing.assert_close(steps, steps[..., :1].expand_as(steps))


@pytest.mark.parametrize("reference", ["route", "straight"])
def test_only_the_route_reference_depends_on_the_guide_interior(reference: str) -> None:
    model = tiny_reference_model(reference)
    maps, endpoints, guide = network_inputs(2, seed=3)
    other = with_new_interior(guide, seed=4)
    target = 2.0 * torch.rand(2, 2, 32) - 1.0
    seeds = torch.arange(6)

    def outputs(route: torch.Tensor) -> list[torch.Tensor]:
        cond, film = model.condition(maps, endpoints, route)
        samples, _ = model.propose(
            maps, endpoints, route, seeds, candidates=3, steps=2, sampler="dpmpp_2m", guidance=1.0
        )
        batch = {"maps": maps, "endpoints": endpoints, "guide": route, "target": target}
        with torch.no_grad():
            loss, _ = model(batch, torch.arange(2))
        return [cond, film, samples, loss]

    same = [torch.allclose(a, b) for a, b in zip(outputs(guide), outputs(other), strict=True)]
    if reference == "straight":
        assert all(same)
    else:
        assert same == [False, True, False, False]  # the FiLM vector never sees the guide


def test_residuals_round_trip_at_the_configured_scale() -> None:
    target, guide = 2.0 * torch.rand(4, 2, 32) - 1.0, 2.0 * torch.rand(4, 2, 32) - 1.0
    residual = to_residual(target, guide, SCALE)
    torch.testing.assert_close(residual, (target - guide) / SCALE)
    torch.testing.assert_close(from_residual(residual, guide, SCALE), target)
    torch.testing.assert_close(to_residual(target, guide), (target - guide) / RESIDUAL_SCALE)
    for reference, path in (("route", guide), ("straight", straight_line(guide))):
        model = tiny_reference_model(reference, local_dim=0)
        residual = model.to_residual(target, guide)
        torch.testing.assert_close(residual, (target - path) / SCALE)
        torch.testing.assert_close(model.from_residual(residual, guide), target)


def test_config_dicts_without_a_reference_load_as_the_route_model(tmp_path: Path) -> None:
    old = to_dict(PathModelConfig())
    del old["reference"], old["residual_scale"]
    cfg = from_dict(PathModelConfig, old)
    assert (cfg.reference, cfg.residual_scale) == ("route", RESIDUAL_SCALE)
    model = tiny_model(seed=2)
    spec = path_model_spec(model)
    del spec["config"]["reference"], spec["config"]["residual_scale"]
    save_final(tmp_path, model, spec)
    loaded = load_model(tmp_path / "final.pt")
    assert isinstance(loaded, PathDiffusion) and loaded.cfg.reference == "route"
    with pytest.raises(ValueError, match="reference"):
        from_dict(PathModelConfig, {"reference": "curved"})
    with pytest.raises(ValueError, match="residual_scale"):
        PathModelConfig(residual_scale=0.0)


def test_kernel_of_a_straight_model_equals_eager_propose() -> None:
    model = tiny_reference_model("straight", local_dim=4, seed=5)
    kernel = proposal_kernel(model, 3, 2, "dpmpp_2m")
    maps, endpoints, guide = network_inputs(2, seed=6)
    seeds = torch.arange(50, 56)
    expected, nfe = model.propose(
        maps, endpoints, guide, seeds, candidates=3, steps=2, sampler="dpmpp_2m"
    )
    noise = initial_noise(seeds, kernel.noise_shape[1:]).reshape(2, *kernel.noise_shape)
    other = with_new_interior(guide, seed=7)
    for route in (guide, other):
        got = kernel(maps.numpy(), endpoints.numpy(), route.numpy(), noise.numpy())
        np.testing.assert_allclose(got, expected.numpy(), atol=1e-5)
    assert kernel.nfe == nfe


def synthetic_split(n: int = 24, waypoints: int = 32, window: int = 64) -> PathSamples:
    """Free windows with random guides and targets (shapes and ranges of a real split)."""
    rng = np.random.default_rng(0)
    start, goal = rng.uniform(2, window - 2, (n, 2)), rng.uniform(2, window - 2, (n, 2))
    fractions = np.linspace(0.0, 1.0, waypoints)[None, :, None]
    line = start[:, None] + (goal - start)[:, None] * fractions
    bump = np.sin(np.pi * fractions) * rng.normal(0.0, 4.0, (n, 1, 2))
    lengths = np.linalg.norm(goal - start, axis=1).astype(np.float32)
    return PathSamples(
        occupancy=np.zeros((n, window, window), dtype=bool),
        start=start.astype(np.float32),
        goal=goal.astype(np.float32),
        guide=(line + 0.5 * bump).astype(np.float32),
        target=(line + bump).astype(np.float32),
        guide_length=lengths,
        taut_length=lengths,
        optimum_length=lengths,
        kind=np.zeros(n, dtype=np.int16),
        kinds=("random",),
    )


def test_training_stages_share_the_reference_and_scale(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    save_split(synthetic_split(), tmp_path / "train.npz")
    trainer = {"steps": 2, "batch_size": 8, "log_every": 1, "ckpt_every": 2, "tensorboard": False}
    ae_config = tmp_path / "autoencoder.yaml"
    ae_config.write_text(
        yaml.safe_dump(
            {
                "reference": "straight",
                "residual_scale": SCALE,
                "autoencoder": {"in_channels": 2, "latent_channels": 4, "channels": 8},
                "trainer": {**trainer, "progress": False},
            }
        )
    )
    train_path_autoencoder(ae_config, tmp_path, tmp_path / "ae")
    ae_path = tmp_path / "ae" / "final.pt"
    assert autoencoder_residuals(ae_path) == ("straight", SCALE)
    data = PathDataset(load_split(tmp_path, "train"))
    torch.testing.assert_close(
        ResidualDataset(data, "straight", SCALE).paths,
        (data.target - straight_line(data.guide)) / SCALE,
    )

    diffusion_config = tmp_path / "diffusion.yaml"
    model = {
        "reference": "straight",
        "residual_scale": SCALE,
        "map_encoder": {"channels": [4, 8], "out_dim": 8},
        "diffusion": {"backbone": {"name": "unet", "unet_channels": [8], "embed_dim": 8}},
    }
    diffusion_config.write_text(
        yaml.safe_dump({"model": model, "trainer": {**trainer, "progress": False}})
    )
    train_path_diffusion(diffusion_config, tmp_path, tmp_path / "straight", ae_path)
    trained = load_model(tmp_path / "straight" / "final.pt")
    assert isinstance(trained, PathDiffusion) and trained.cfg.reference == "straight"
    with pytest.raises(ValueError, match="residuals"):
        train_path_diffusion(
            diffusion_config, tmp_path, tmp_path / "route", ae_path, ["model.reference=route"]
        )


def test_autoencoders_without_residuals_learned_the_route_defaults(tmp_path: Path) -> None:
    ae = Autoencoder1D(AutoencoderConfig(in_channels=2, latent_channels=4, channels=8))
    save_final(tmp_path, ae, autoencoder_spec(ae))
    assert autoencoder_residuals(tmp_path / "final.pt") == ("route", RESIDUAL_SCALE)
    check_autoencoder_residuals(PathModelConfig(), tmp_path / "final.pt")
    with pytest.raises(ValueError, match="reference=straight"):
        check_autoencoder_residuals(
            PathModelConfig(reference="straight", residual_scale=SCALE), tmp_path / "final.pt"
        )
