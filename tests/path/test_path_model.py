"""Path data, the path diffusion model spec, half-precision export and a tiny training run."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch.nn import functional as F

from latentdiff.core.models import load_model, save_final
from latentdiff.core.training import Trainer, TrainerConfig
from latentdiff.path.data import (
    PathDataConfig,
    PathDataset,
    box_fits,
    build_split,
    crop_window,
    load_split,
    normalise,
    save_split,
    window_origin,
)
from latentdiff.path.geometry import points_are_free
from latentdiff.path.model import (
    MapEncoder,
    MapEncoderConfig,
    PathDiffusion,
    PathModelConfig,
    fold,
    from_residual,
    path_model_spec,
    to_residual,
)
from latentdiff.path.train import export_half

from .test_planner import tiny_model

DATA_CFG = PathDataConfig(n_train_maps=24, n_dev_maps=4, min_size=24, max_size=80)


@pytest.fixture(scope="module")
def samples():
    torch.set_num_threads(1)
    return build_split(DATA_CFG, "train", progress=False)


def test_samples_hold_valid_windows_and_targets(samples, tmp_path: Path) -> None:
    assert len(samples) >= 30
    assert samples.occupancy.shape[1:] == (64, 64)
    assert np.all(samples.optimum_length <= samples.guide_length + 1e-3)
    # The tautened guide lies between the optimum and the guide it came from.
    assert np.all(samples.optimum_length <= samples.taut_length + 1e-3)
    assert np.all(samples.taut_length <= samples.guide_length + 1e-6)
    for i in range(0, len(samples), 7):
        assert points_are_free(
            samples.occupancy[i], np.stack([samples.start[i], samples.goal[i]])
        ).all()
        np.testing.assert_allclose(samples.target[i][0], samples.start[i], atol=1e-5)
        np.testing.assert_allclose(samples.target[i][-1], samples.goal[i], atol=1e-5)
    save_split(samples, tmp_path / "train.npz")
    loaded = load_split(tmp_path, "train")
    np.testing.assert_array_equal(loaded.occupancy, samples.occupancy)
    np.testing.assert_array_equal(loaded.target, samples.target)
    np.testing.assert_array_equal(loaded.taut_length, samples.taut_length)
    dev = build_split(DATA_CFG, "dev", progress=False)
    assert not any(np.array_equal(dev.occupancy[0], occ) for occ in samples.occupancy)


def test_window_framing() -> None:
    occ = np.zeros((100, 40), dtype=bool)
    origin = window_origin(np.array([5.0, 70.0]), np.array([30.0, 90.0]), occ.shape, 64)
    assert origin[0] == -12  # narrow side centred in the window
    assert 0 <= origin[1] <= 36 and origin[1] <= 70 and origin[1] + 64 >= 90
    crop = crop_window(occ, origin, 64)
    assert crop[:, :12].all() and not crop[:, 12:52].any() and crop[:, 52:].all()
    assert box_fits(np.array([0.0, 0.0]), np.array([40.0, 60.0]), occ.shape, 64, 2)
    assert not box_fits(np.array([0.0, 0.0]), np.array([40.0, 80.0]), occ.shape, 64, 2)


def test_spec_round_trips_through_load_model(tmp_path: Path) -> None:
    model = tiny_model(seed=3)
    save_final(tmp_path, model, path_model_spec(model))
    loaded = load_model(tmp_path / "final.pt")
    assert isinstance(loaded, PathDiffusion)
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    export_half(tmp_path / "final.pt", tmp_path / "half.pt")
    half = load_model(tmp_path / "half.pt")
    assert next(half.parameters()).dtype == torch.float32
    maps = torch.rand(2, 2, 64, 64)
    ends, guide = torch.rand(2, 4) * 2 - 1, torch.rand(2, 2, 32) * 2 - 1
    seeds = torch.arange(6)
    full_out, nfe = model.propose(
        maps, ends, guide, seeds, candidates=3, steps=2, sampler="dpmpp_2m"
    )
    half_out, _ = half.propose(maps, ends, guide, seeds, candidates=3, steps=2, sampler="dpmpp_2m")
    assert nfe == 2 and full_out.shape == (6, 2, 32)
    torch.testing.assert_close(half_out, full_out, atol=2e-2, rtol=0.0)


def test_waypoint_space_baseline_has_no_autoencoder() -> None:
    model = PathDiffusion(PathModelConfig(latent=False))
    assert model.diffusion.autoencoder is None and model.frames == 32
    costs = model.macs_per_plan(candidates=8, nfe=3)
    assert costs["decoder"] == 0.0 and costs["total"] > costs["denoiser"] > 0.0
    with pytest.raises(ValueError, match="autoencoder"):
        PathDiffusion(PathModelConfig(latent=True))


def test_tiny_training_run_reduces_the_loss(samples, tmp_path: Path) -> None:
    dataset = PathDataset(samples)
    model = tiny_model(seed=4).train()
    batch = {k: torch.stack([dataset[i][k] for i in range(32)]) for k in dataset[0]}
    seeds = torch.arange(32)

    def held_out_loss() -> float:
        with torch.no_grad():
            return float(model(batch, seeds)[0])

    before = held_out_loss()
    cfg = TrainerConfig(
        steps=60,
        batch_size=16,
        lr=3e-3,
        warmup_steps=5,
        ema_decay=0.0,
        tensorboard=False,
        progress=False,
        log_every=20,
        ckpt_every=60,
        device="cpu",
    )
    Trainer(model, lambda net, b, s: net(b, s), dataset, cfg, tmp_path).fit(resume=False)
    after = held_out_loss()
    assert after < 0.7 * before, (before, after)


def test_residual_and_fold_are_exact() -> None:
    target, guide = torch.rand(3, 2, 32), torch.rand(3, 2, 32)
    torch.testing.assert_close(from_residual(to_residual(target, guide), guide), target)
    folded = fold(torch.arange(16.0).reshape(1, 2, 8), 4)
    assert folded.shape == (1, 8, 2)
    torch.testing.assert_close(folded[0, :4, 0], torch.arange(4.0))
    torch.testing.assert_close(folded[0, 4:, 1], torch.arange(12.0, 16.0))


def test_local_features_sample_the_maps_at_the_guide_waypoints() -> None:
    """Waypoint (x, y) at a cell centre reads that cell: x is the column, y the row."""
    encoder = MapEncoder(MapEncoderConfig(channels=(4,), local_dim=2))
    assert encoder.local is not None
    with torch.no_grad():
        encoder.local.weight.zero_()
        encoder.local.bias.zero_()
        encoder.local.weight[0, 0, 0] = 1.0  # occupancy
        encoder.local.weight[1, 1, 0] = 1.0  # second map channel
    maps = torch.zeros(1, 2, 64, 64)
    maps[0, 0, 10, 20] = 1.0
    maps[0, 1] = torch.arange(64.0)  # value = column index
    cells = np.array([[20.5, 10.5], [21.5, 10.5], [5.5, 40.5], [5.0, 40.5]])
    guide = torch.from_numpy(normalise(cells, 64).T[None].astype(np.float32))
    film, local = encoder(maps, torch.zeros(1, 4), guide)
    assert film.shape == (1, 64) and local is not None and local.shape == (1, 2, 4)
    expected = F.silu(torch.tensor([[1.0, 0.0, 0.0, 0.0], [20.0, 21.0, 5.0, 4.5]]))
    torch.testing.assert_close(local[0], expected, atol=1e-5, rtol=0)


def test_local_features_widen_the_condition_and_survive_a_spec_round_trip(tmp_path: Path) -> None:
    flat, local = tiny_model(seed=3), tiny_model(seed=3, local_dim=4)
    assert (
        local.diffusion.denoiser.net.cond_channels == flat.diffusion.denoiser.net.cond_channels * 3
    )
    save_final(tmp_path, local, path_model_spec(local))
    loaded = load_model(tmp_path / "final.pt")
    assert isinstance(loaded, PathDiffusion) and loaded.cfg.map_encoder.local_dim == 4
    macs = local.macs_per_plan(candidates=4, nfe=2)
    assert macs["total"] > flat.macs_per_plan(candidates=4, nfe=2)["total"]
