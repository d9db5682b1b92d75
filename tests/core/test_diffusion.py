"""Schedules, per-sample randomness, preconditioning, loss weighting, dropout and guidance."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from latentdiff.core.config import from_dict, to_dict
from latentdiff.core.diffusion import (
    PARAMETERISATIONS,
    Denoiser,
    DiffusionConfig,
    get_sigmas,
    guided,
    karras_sigmas,
    loss_weight,
    train_sigmas,
    vp_cosine_sigmas,
)
from latentdiff.core.random import mix_seed, rand_seeded, randn_seeded

torch.set_num_threads(2)

DTYPE = torch.float64


def vp_targets(x0: Tensor, eps: Tensor, sigma: Tensor, sigma_data: float) -> dict[str, Tensor]:
    """Each parameterisation's regression target, from the VP view of ``x = x0 + sigma eps``."""
    sigma = sigma.reshape(-1, 1, 1)
    root = torch.sqrt(sigma**2 + sigma_data**2)
    alpha, sigma_vp = sigma_data / root, sigma / root
    c_skip, c_out = sigma_data**2 / root**2, sigma * sigma_data / root
    x = x0 + sigma * eps
    return {
        "eps": eps,
        "x0": x0 / sigma_data,
        "v": alpha * eps - sigma_vp * x0 / sigma_data,
        "edm": (x0 - c_skip * x) / c_out,
    }


class TruthBackbone(nn.Module):
    """Outputs the exact target: it recovers sigma and x from its inputs and knows x0."""

    def __init__(self, x0: Tensor, parameterisation: str, sigma_data: float) -> None:
        super().__init__()
        self.x0, self.parameterisation, self.sigma_data = x0, parameterisation, sigma_data

    def forward(
        self, x_in: Tensor, c_noise: Tensor, cond: Tensor | None = None, film: Tensor | None = None
    ) -> Tensor:
        sigma = torch.exp(4.0 * c_noise)
        x = x_in * torch.sqrt(sigma**2 + self.sigma_data**2).reshape(-1, 1, 1)
        eps = (x - self.x0) / sigma.reshape(-1, 1, 1)
        return vp_targets(self.x0, eps, sigma, self.sigma_data)[self.parameterisation]


class TinyBackbone(nn.Module):
    """Per-sample conv net with FiLM from (c_noise, film); records its last inputs and output."""

    def __init__(self, channels: int = 2, cond_channels: int = 1, film_dim: int = 3) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.cond_channels = cond_channels
        self.inp = nn.Conv1d(channels + cond_channels, 8, 3, padding=1)
        self.embed = nn.Linear(1 + film_dim, 16)
        self.out = nn.Conv1d(8, channels, 3, padding=1)
        self.film_dim = film_dim
        self.seen: dict[str, Tensor] = {}

    def forward(
        self, x_in: Tensor, c_noise: Tensor, cond: Tensor | None = None, film: Tensor | None = None
    ) -> Tensor:
        batch, _, length = x_in.shape
        if cond is None:
            cond = x_in.new_zeros(batch, self.cond_channels, length)
        if film is None:
            film = x_in.new_zeros(batch, self.film_dim)
        scale, shift = self.embed(torch.cat([c_noise[:, None], film], dim=1)).chunk(2, dim=1)
        hidden = torch.tanh(self.inp(torch.cat([x_in, cond], dim=1)))
        out = self.out(hidden * (1.0 + scale[..., None]) + shift[..., None])
        self.seen = {"x_in": x_in, "c_noise": c_noise, "cond": cond, "film": film, "out": out}
        return out


def make_batch(batch: int, length: int = 5) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    generator = torch.Generator().manual_seed(123)
    x0 = torch.randn(batch, 2, length, generator=generator, dtype=DTYPE)
    cond = torch.randn(batch, 1, length, generator=generator, dtype=DTYPE)
    film = torch.randn(batch, 3, generator=generator, dtype=DTYPE)
    return x0, cond, film, torch.arange(batch) * 7919 + 11


# --- randomness -----------------------------------------------------------------------------


def test_mix_seed_is_splitmix64_and_order_sensitive() -> None:
    assert mix_seed(0) == 0xE220A8397B1DCDAF >> 1  # first splitmix64 output of state 0
    assert mix_seed(1, 2) != mix_seed(2, 1)
    assert mix_seed(1, 2) == mix_seed(1, 2)
    assert all(0 <= mix_seed(-5, value, 10**30) < 2**63 for value in range(100))


def test_seeded_draws_depend_only_on_own_seed() -> None:
    seeds = torch.tensor([5, 6, 7, 8])
    normal = randn_seeded(seeds, (3, 2), dtype=DTYPE)
    uniform = rand_seeded(seeds, 1000)
    assert normal.shape == (4, 3, 2) and normal.dtype == DTYPE
    torch.testing.assert_close(randn_seeded(seeds[2:3], (3, 2), dtype=DTYPE)[0], normal[2])
    torch.testing.assert_close(rand_seeded([7], 1000)[0], uniform[2])
    assert not torch.equal(normal[0], normal[1])
    assert float(uniform.min()) >= 0.0 and float(uniform.max()) < 1.0
    assert abs(float(uniform.mean()) - 0.5) < 0.02


# --- schedules ------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["karras", "vp_cosine"])
@pytest.mark.parametrize("steps", [1, 2, 10, 50])
def test_schedules_descend_from_sigma_max_to_zero(name: str, steps: int) -> None:
    sigmas = get_sigmas(name, steps, 0.002, 80.0)
    assert sigmas.shape == (steps + 1,)
    assert float(sigmas[-1]) == 0.0
    assert bool((sigmas[1:] < sigmas[:-1]).all())
    assert float(sigmas[0]) == pytest.approx(80.0, rel=1e-5)
    if steps > 1:
        assert float(sigmas[-2]) == pytest.approx(0.002, rel=1e-4)


def test_schedule_spacing() -> None:
    karras = karras_sigmas(4, 0.002, 80.0, rho=7.0)[:-1].double()
    torch.testing.assert_close(
        karras ** (1 / 7),
        torch.linspace(80.0 ** (1 / 7), 0.002 ** (1 / 7), 4, dtype=DTYPE),
        rtol=1e-6,
        atol=0.0,
    )
    times = 2.0 / math.pi * torch.atan(vp_cosine_sigmas(6, 0.002, 80.0)[:-1].double())
    assert float(times.diff().std()) < 1e-6
    with pytest.raises(ValueError, match="unknown schedule"):
        get_sigmas("linear", 4, 0.002, 80.0)


@pytest.mark.parametrize("kind", ["lognormal", "vp_cosine"])
def test_train_sigmas_follow_their_distribution(kind: str) -> None:
    cfg = DiffusionConfig(train_sigma=kind)
    seeds = torch.arange(4000)
    sigmas = train_sigmas(seeds, cfg).double()
    assert float(sigmas.min()) >= cfg.sigma_min and float(sigmas.max()) <= cfg.sigma_max
    torch.testing.assert_close(train_sigmas(seeds[17:18], cfg), sigmas[17:18].float())
    if kind == "lognormal":
        assert float(sigmas.log().mean()) == pytest.approx(cfg.p_mean, abs=0.06)
        assert float(sigmas.log().std()) == pytest.approx(cfg.p_std, abs=0.05)
    else:
        times = 2.0 / math.pi * torch.atan(sigmas)
        t_lo, t_hi = (2.0 / math.pi * math.atan(s) for s in (cfg.sigma_min, cfg.sigma_max))
        assert float(((times - t_lo) / (t_hi - t_lo)).mean()) == pytest.approx(0.5, abs=0.02)


# --- preconditioning ------------------------------------------------------------------------


@pytest.mark.parametrize("parameterisation", PARAMETERISATIONS)
@pytest.mark.parametrize("sigma_data", [1.0, 0.5])
def test_exact_target_gives_exact_x0(parameterisation: str, sigma_data: float) -> None:
    x0, _, _, _ = make_batch(6)
    eps = torch.randn(x0.shape, generator=torch.Generator().manual_seed(9), dtype=DTYPE)
    sigma = torch.tensor([0.002, 0.05, 0.5, 1.0, 7.0, 80.0], dtype=DTYPE)
    cfg = DiffusionConfig(parameterisation=parameterisation, sigma_data=sigma_data)
    denoiser = Denoiser(TruthBackbone(x0, parameterisation, sigma_data), cfg)
    x0_hat = denoiser(x0 + sigma.reshape(-1, 1, 1) * eps, sigma)
    torch.testing.assert_close(x0_hat, x0, rtol=0.0, atol=1e-8)


def test_scaled_input_is_the_unit_variance_vp_sample() -> None:
    sigma_data = 0.5
    backbone = TinyBackbone()
    denoiser = Denoiser(backbone, DiffusionConfig(sigma_data=sigma_data)).double()
    generator = torch.Generator().manual_seed(4)
    for sigma_value in (0.01, 1.0, 50.0):
        x0 = sigma_data * torch.randn(64, 2, 256, generator=generator, dtype=DTYPE)
        x = x0 + sigma_value * torch.randn(x0.shape, generator=generator, dtype=DTYPE)
        denoiser(x, torch.full((64,), sigma_value, dtype=DTYPE))
        assert float(backbone.seen["x_in"].std()) == pytest.approx(1.0, abs=0.01)
        assert float(backbone.seen["c_noise"][0]) == pytest.approx(math.log(sigma_value) / 4)


# --- loss -----------------------------------------------------------------------------------


@pytest.mark.parametrize("parameterisation", PARAMETERISATIONS)
def test_uniform_loss_is_plain_mse_in_target_space(parameterisation: str) -> None:
    sigma_data = 0.7
    cfg = DiffusionConfig(
        parameterisation=parameterisation, sigma_data=sigma_data, loss_weighting="uniform"
    )
    backbone = TinyBackbone()
    denoiser = Denoiser(backbone, cfg).double()
    x0, _, _, seeds = make_batch(8)
    loss, stats = denoiser.loss(x0, seeds)
    seen = backbone.seen
    sigma = torch.exp(4.0 * seen["c_noise"])
    x = seen["x_in"] * torch.sqrt(sigma**2 + sigma_data**2).reshape(-1, 1, 1)
    eps = (x - x0) / sigma.reshape(-1, 1, 1)
    target = vp_targets(x0, eps, sigma, sigma_data)[parameterisation]
    direct = (seen["out"] - target).pow(2).mean().detach()
    torch.testing.assert_close(loss.detach(), direct, rtol=1e-10, atol=0.0)
    assert stats["loss"] == pytest.approx(float(direct))
    assert stats["sigma_mean"] == pytest.approx(float(sigma.mean()), rel=1e-6)


def test_loss_weights() -> None:
    sigma = torch.logspace(-3, 2, 200, dtype=DTYPE)
    snr = 1.0 / sigma**2

    def weight(**kwargs: Any) -> Tensor:
        return loss_weight(sigma, DiffusionConfig(**kwargs))

    capped = weight(loss_weighting="min_snr", min_snr_gamma=5.0)
    assert float(capped.max()) == pytest.approx(5.0)
    torch.testing.assert_close(capped, snr.clamp(max=5.0))
    for parameterisation in ("eps", "v", "x0"):  # min-SNR is one x0-space weight for all
        torch.testing.assert_close(
            weight(loss_weighting="min_snr", parameterisation=parameterisation), capped
        )
    torch.testing.assert_close(weight(loss_weighting="uniform", parameterisation="eps"), snr)
    torch.testing.assert_close(weight(loss_weighting="uniform", parameterisation="v"), snr + 1)
    torch.testing.assert_close(
        weight(loss_weighting="uniform", parameterisation="x0"), torch.ones_like(sigma)
    )
    torch.testing.assert_close(weight(loss_weighting="snr"), snr)
    sigma_data = 0.5  # "edm" in raw x0 units: (sigma^2 + sd^2) / (sigma sd)^2
    edm_raw = weight(loss_weighting="edm", sigma_data=sigma_data) / sigma_data**2
    torch.testing.assert_close(edm_raw, (sigma**2 + sigma_data**2) / (sigma * sigma_data) ** 2)


def test_loss_is_reproducible_and_independent_of_batch() -> None:
    cfg = DiffusionConfig(cond_dropout=0.3)
    denoiser = Denoiser(TinyBackbone(), cfg).double()
    x0, cond, film, seeds = make_batch(4)
    batch_loss, _ = denoiser.loss(x0, seeds, cond=cond, film=film)
    again, _ = denoiser.loss(x0, seeds, cond=cond, film=film)
    singles = [
        denoiser.loss(x0[i : i + 1], seeds[i : i + 1], cond=cond[i : i + 1], film=film[i : i + 1])
        for i in range(4)
    ]
    assert torch.equal(batch_loss, again)
    torch.testing.assert_close(
        batch_loss, torch.stack([loss for loss, _ in singles]).mean(), rtol=1e-10, atol=0.0
    )
    other, _ = denoiser.loss(x0, seeds + 1, cond=cond, film=film)
    assert abs(float((other - batch_loss).detach())) > 1e-6


@pytest.mark.parametrize("rate", [0.0, 0.25])
def test_cond_dropout_rate(rate: float) -> None:
    backbone = TinyBackbone()
    denoiser = Denoiser(backbone, DiffusionConfig(cond_dropout=rate)).double()
    x0, cond, film, seeds = make_batch(4000, length=2)
    _, stats = denoiser.loss(x0, seeds, cond=cond, film=film)
    seen_cond, seen_film = backbone.seen["cond"], backbone.seen["film"]
    dropped = (seen_cond == 0).all(dim=2).all(dim=1)
    assert torch.equal(dropped, (seen_film == 0).all(dim=1))
    assert torch.equal(seen_cond[~dropped], cond[~dropped])
    assert torch.equal(seen_film[~dropped], film[~dropped])
    assert float(dropped.double().mean()) == pytest.approx(rate, abs=0.025)
    assert stats["cond_dropped"] == pytest.approx(float(dropped.double().mean()))


# --- guidance and generation ----------------------------------------------------------------


class CountingConditional:
    def __init__(self) -> None:
        self.calls = 0

    def __call__(
        self, x: Tensor, sigma: Tensor, cond: Tensor | None = None, film: Tensor | None = None
    ) -> Tensor:
        self.calls += 1
        out = x / (1.0 + sigma.reshape(-1, 1, 1) ** 2)
        if cond is not None:
            out = out + cond
        if film is not None:
            out = out + film[:, :1, None]
        return out


def test_guidance() -> None:
    x, cond, film, _ = make_batch(3)
    cond = cond.expand(-1, 2, -1)
    sigma = torch.tensor([0.5, 1.0, 2.0], dtype=DTYPE)
    model = CountingConditional()
    plain = guided(model, cond, film, 1.0)(x, sigma)
    assert model.calls == 1
    torch.testing.assert_close(plain, CountingConditional()(x, sigma, cond=cond, film=film))
    model = CountingConditional()
    strong = guided(model, cond, film, 3.0)(x, sigma)
    assert model.calls == 2
    reference = CountingConditional()
    conditional = reference(x, sigma, cond=cond, film=film)
    unconditional = reference(x, sigma, cond=torch.zeros_like(cond), film=torch.zeros_like(film))
    torch.testing.assert_close(strong, unconditional + 3.0 * (conditional - unconditional))
    model = CountingConditional()
    guided(model, None, None, 3.0)(x, sigma)
    assert model.calls == 1


def test_generate_uses_config_sampler_and_guidance() -> None:
    cfg = DiffusionConfig(steps=3, sampler="dpmpp_2m", guidance_scale=2.0)
    denoiser = Denoiser(TinyBackbone(), cfg)
    _, cond, film, _ = make_batch(2, length=6)
    cond, film, seeds = cond.float(), film.float(), torch.tensor([1, 2])
    result = denoiser.generate((2, 2, 6), cond=cond, film=film, seeds=seeds)
    assert result.nfe == 6 and result.x.shape == (2, 2, 6)
    again = denoiser.generate((2, 2, 6), cond=cond, film=film, seeds=seeds)
    assert torch.equal(result.x, again.x)
    single = denoiser.generate((1, 2, 6), cond=cond[1:], film=film[1:], seeds=seeds[1:])
    torch.testing.assert_close(single.x[0], result.x[1], rtol=1e-5, atol=1e-6)
    assert denoiser.generate((2, 2, 6), steps=1, guidance_scale=1.0).nfe == 1


def test_config_round_trip_and_validation() -> None:
    cfg = from_dict(DiffusionConfig, {"parameterisation": "eps", "steps": 8})
    assert cfg.parameterisation == "eps" and cfg.steps == 8 and cfg.sampler == "dpmpp_2m"
    assert from_dict(DiffusionConfig, to_dict(cfg)) == cfg
    with pytest.raises(ValueError, match="parameterisation"):
        DiffusionConfig(parameterisation="score")
    with pytest.raises(ValueError, match="sampler"):
        from_dict(DiffusionConfig, {"sampler": "plms"})
    with pytest.raises(ValueError):
        DiffusionConfig(sigma_min=1.0, sigma_max=0.5)
