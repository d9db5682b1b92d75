"""Multi-stage denoisers: equal-mass noise intervals, routing by sigma, one backbone per call."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from latentdiff.core.diffusion import DiffusionConfig, train_sigmas
from latentdiff.core.latent import LatentDiffusion, LatentDiffusionConfig
from latentdiff.core.nets import BackboneConfig, count_macs
from latentdiff.core.stages import StagedBackbone, stage_boundaries


@pytest.mark.parametrize("train_sigma", ["lognormal", "vp_cosine"])
def test_boundaries_split_the_training_sigmas_into_equal_shares(train_sigma: str) -> None:
    cfg = DiffusionConfig(train_sigma=train_sigma, sigma_max=10.0)
    boundaries = stage_boundaries(cfg, 4)
    assert boundaries == sorted(boundaries) and len(boundaries) == 3
    sigmas = train_sigmas(torch.arange(20_000), cfg)
    shares = torch.bincount(torch.bucketize(sigmas, torch.tensor(boundaries)), minlength=4) / 2e4
    torch.testing.assert_close(shares, torch.full((4,), 0.25), atol=0.015, rtol=0)


class Constant(nn.Module):
    """A backbone answering ``value`` everywhere and recording its batch sizes."""

    def __init__(self, value: float) -> None:
        super().__init__()
        self.value, self.batches = value, []

    def forward(
        self, x: Tensor, c_noise: Tensor, cond: Tensor | None, film: Tensor | None
    ) -> Tensor:
        self.batches.append(x.shape[0])
        assert cond is not None and cond.shape[0] == x.shape[0]
        return torch.full_like(x, self.value)


def test_each_sample_goes_to_the_backbone_of_its_sigma() -> None:
    low, high = Constant(1.0), Constant(2.0)
    staged = StagedBackbone([low, high], boundaries=[1.0])
    sigmas = torch.tensor([0.1, 5.0, 0.5, 2.0, 0.99])
    x, cond = torch.zeros(5, 2, 3), torch.zeros(5, 1, 3)
    out = staged(x, torch.log(sigmas) / 4.0, cond=cond)
    expected = torch.tensor([1.0, 2.0, 1.0, 2.0, 1.0]).reshape(5, 1, 1).expand(5, 2, 3)
    torch.testing.assert_close(out, expected)
    assert low.batches == [3] and high.batches == [2]
    out = staged(x[:2], torch.full((2,), math.log(0.1) / 4.0), cond=cond[:2])  # one stage only
    torch.testing.assert_close(out, torch.ones(2, 2, 3))


def test_a_two_stage_model_trains_and_costs_one_backbone_per_call() -> None:
    torch.manual_seed(0)
    backbone = BackboneConfig(name="unet", unet_channels=(8,), embed_dim=8)
    one = LatentDiffusion(LatentDiffusionConfig(backbone=backbone, data_channels=2))
    two = LatentDiffusion(LatentDiffusionConfig(backbone=backbone, data_channels=2, stages=2))
    params = [sum(p.numel() for p in m.parameters()) for m in (one, two)]
    assert params[1] == 2 * params[0]
    z = torch.zeros(1, 2, 8)
    for sigma in (0.05, 5.0):
        c_noise = torch.full((1,), math.log(sigma) / 4.0)
        assert count_macs(two.denoiser.net, z, c_noise) == count_macs(one.denoiser.net, z, c_noise)
    optimiser = torch.optim.Adam(two.parameters(), lr=1e-3)
    x = torch.randn(32, 2, 8)
    loss, _ = two.loss(x, torch.arange(32))
    loss.backward()
    optimiser.step()
    grads = [all(p.grad is not None for p in net.parameters()) for net in two.denoiser.net.nets]
    assert all(grads)  # both stages saw samples of their interval
    assert two.sample(3, 8, steps=4).x.shape == (3, 2, 8)
