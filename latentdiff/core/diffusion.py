"""Diffusion maths in sigma space: schedules, training noise, preconditioning, loss, guidance.

A noisy sample is ``x = x0 + sigma * eps`` with ``eps ~ N(0, I)``; ``snr = sigma_data^2 / sigma^2``.
A VP schedule is the same process seen through ``x_vp = x / sqrt(sigma^2 + sigma_data^2)``; for
``sigma_data = 1`` that is ``alpha = 1 / sqrt(1 + sigma^2)``, ``sigma = sqrt((1 - abar) / abar)``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import torch
from torch import Tensor, nn

from latentdiff.core.random import SeedsLike, mix_seeds, rand_seeded, randn_seeded
from latentdiff.core.samplers import SAMPLERS, DenoiserFn, SampleResult, sample

PARAMETERISATIONS = ("eps", "v", "x0", "edm")
TRAIN_SIGMAS = ("lognormal", "vp_cosine")
LOSS_WEIGHTINGS = ("uniform", "snr", "min_snr", "edm")
SCHEDULES = ("karras", "vp_cosine")

_SIGMA_STREAM = 0x5161
_NOISE_STREAM = 0xE955
_DROPOUT_STREAM = 0xD209


def _check_range(sigma_min: float, sigma_max: float) -> None:
    if not 0.0 < sigma_min < sigma_max:
        raise ValueError(f"need 0 < sigma_min < sigma_max, got {sigma_min}, {sigma_max}")


def karras_sigmas(n: int, sigma_min: float, sigma_max: float, rho: float = 7.0) -> Tensor:
    """Karras et al. (2022) schedule: n sigmas uniform in ``sigma^(1/rho)``, then 0.0."""
    if n < 1:
        raise ValueError(f"need at least one step, got {n}")
    _check_range(sigma_min, sigma_max)
    ramp = torch.linspace(0.0, 1.0, n, dtype=torch.float64)
    lo, hi = sigma_min ** (1.0 / rho), sigma_max ** (1.0 / rho)
    sigmas = (hi + ramp * (lo - hi)) ** rho
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def vp_cosine_sigma(t: Tensor) -> Tensor:
    """Cosine VP schedule ``abar(t) = cos^2(pi t / 2)`` as noise level ``sigma = tan(pi t / 2)``."""
    return torch.tan(0.5 * math.pi * t)


def vp_cosine_time(sigma: float) -> float:
    """Inverse of :func:`vp_cosine_sigma`: ``t = 2 atan(sigma) / pi``."""
    return 2.0 * math.atan(sigma) / math.pi


def vp_cosine_sigmas(n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """n sigmas with cosine-VP times uniform between t(sigma_max) and t(sigma_min), then 0.0."""
    if n < 1:
        raise ValueError(f"need at least one step, got {n}")
    _check_range(sigma_min, sigma_max)
    times = torch.linspace(
        vp_cosine_time(sigma_max), vp_cosine_time(sigma_min), n, dtype=torch.float64
    )
    sigmas = vp_cosine_sigma(times).clamp(sigma_min, sigma_max)
    return torch.cat([sigmas, sigmas.new_zeros(1)]).float()


def get_sigmas(name: str, n: int, sigma_min: float, sigma_max: float) -> Tensor:
    """Sampling schedule by name ("karras" | "vp_cosine"): n+1 descending values ending with 0.0."""
    if name == "karras":
        return karras_sigmas(n, sigma_min, sigma_max)
    if name == "vp_cosine":
        return vp_cosine_sigmas(n, sigma_min, sigma_max)
    raise ValueError(f"unknown schedule {name!r}; choose from {SCHEDULES}")


@dataclass
class DiffusionConfig:
    """Parameterisation, training noise, loss weighting, guidance and sampling settings."""

    parameterisation: str = "v"
    sigma_data: float = 1.0
    sigma_min: float = 0.002
    sigma_max: float = 80.0
    train_sigma: str = "lognormal"
    p_mean: float = -1.2
    p_std: float = 1.2
    loss_weighting: str = "min_snr"
    min_snr_gamma: float = 5.0
    cond_dropout: float = 0.0
    sampler: str = "dpmpp_2m"
    steps: int = 4
    schedule: str = "karras"
    guidance_scale: float = 1.0

    def __post_init__(self) -> None:
        choices: dict[str, tuple[str, Sequence[str]]] = {
            "parameterisation": (self.parameterisation, PARAMETERISATIONS),
            "train_sigma": (self.train_sigma, TRAIN_SIGMAS),
            "loss_weighting": (self.loss_weighting, LOSS_WEIGHTINGS),
            "sampler": (self.sampler, tuple(SAMPLERS)),
            "schedule": (self.schedule, SCHEDULES),
        }
        for field, (value, allowed) in choices.items():
            if value not in allowed:
                raise ValueError(f"{field} must be one of {tuple(allowed)}, got {value!r}")
        _check_range(self.sigma_min, self.sigma_max)
        if self.sigma_data <= 0.0 or self.min_snr_gamma <= 0.0 or self.p_std < 0.0:
            raise ValueError("sigma_data and min_snr_gamma must be > 0, p_std >= 0")
        if not 0.0 <= self.cond_dropout < 1.0:
            raise ValueError(f"cond_dropout must be in [0, 1), got {self.cond_dropout}")
        if self.steps < 1:
            raise ValueError(f"steps must be >= 1, got {self.steps}")


def train_sigmas(seeds: SeedsLike, cfg: DiffusionConfig) -> Tensor:
    """Training noise levels (B,), one per seed, clipped to [sigma_min, sigma_max].

    "lognormal": ``ln sigma ~ N(p_mean, p_std^2)`` (EDM); "vp_cosine": cosine-VP time uniform over
    the times of [sigma_min, sigma_max].
    """
    if cfg.train_sigma == "lognormal":
        normal = randn_seeded(seeds, (1,), dtype=torch.float64)[:, 0]
        sigmas = torch.exp(cfg.p_mean + cfg.p_std * normal)
    else:
        t_lo, t_hi = vp_cosine_time(cfg.sigma_min), vp_cosine_time(cfg.sigma_max)
        uniform = rand_seeded(seeds, 1, dtype=torch.float64)[:, 0]
        sigmas = vp_cosine_sigma(t_lo + uniform * (t_hi - t_lo))
    return sigmas.clamp(cfg.sigma_min, cfg.sigma_max).float()


def loss_weight(sigma: Tensor, cfg: DiffusionConfig) -> Tensor:
    """Weight on the normalised x0 error ``mean(((x0_hat - x0) / sigma_data)^2)`` per sample.

    "uniform" is a plain MSE in the parameterisation's own target space: snr for eps, 1 for x0,
    snr + 1 for v and edm. "snr" is snr; "min_snr" is ``min(snr, gamma)`` (Hang et al. 2023, i.e.
    ``min(snr, gamma) / snr`` on an eps loss, ``/ (snr + 1)`` on a v loss); "edm" is
    ``(sigma^2 + sigma_data^2) / (sigma sigma_data)^2`` in raw x0 units, i.e. snr + 1.
    """
    snr = cfg.sigma_data**2 / sigma**2
    if cfg.loss_weighting == "uniform":
        if cfg.parameterisation == "eps":
            return snr
        if cfg.parameterisation == "x0":
            return torch.ones_like(snr)
        return snr + 1.0
    if cfg.loss_weighting == "snr":
        return snr
    if cfg.loss_weighting == "min_snr":
        return snr.clamp(max=cfg.min_snr_gamma)
    return snr + 1.0


def cond_dropout_mask(seeds: SeedsLike, prob: float) -> Tensor:
    """Per-sample classifier-free dropout decisions (B,) bool, True with probability ``prob``."""
    return rand_seeded(mix_seeds(seeds, _DROPOUT_STREAM), 1)[:, 0] < prob


def _expand(values: Tensor, like: Tensor) -> Tensor:
    return values.reshape(-1, *([1] * (like.dim() - 1)))


class Denoiser(nn.Module):
    """Preconditioned denoiser ``D(x, sigma) = c_skip x + c_out F(c_in x, c_noise, cond, film)``.

    With ``s = sigma_data``, ``c_in = 1 / sqrt(sigma^2 + s^2)`` (so ``c_in x`` is the VP sample
    ``alpha x0/s + sigma_vp eps`` with ``alpha = s c_in``, ``sigma_vp = sigma c_in``) and
    ``c_noise = ln(sigma) / 4``. The backbone output F targets:

    - eps: ``eps``; ``c_skip = 1``, ``c_out = -sigma``.
    - x0:  ``x0 / s``; ``c_skip = 0``, ``c_out = s``.
    - v:   ``alpha eps - sigma_vp x0 / s``; ``c_skip = s^2 / (sigma^2 + s^2)``,
      ``c_out = -sigma s / sqrt(sigma^2 + s^2)``.
    - edm: ``(x0 - c_skip x) / c_out`` with the v coefficients but ``c_out > 0`` (that is, ``-v``).
    """

    def __init__(self, net: nn.Module, cfg: DiffusionConfig | None = None) -> None:
        super().__init__()
        self.net = net
        self.cfg = cfg if cfg is not None else DiffusionConfig()

    def preconditioning(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
        """``(c_skip, c_out, c_in, c_noise)``, each shaped like ``sigma``."""
        sd = self.cfg.sigma_data
        root = torch.sqrt(sigma**2 + sd**2)
        c_in = 1.0 / root
        c_noise = torch.log(sigma) / 4.0
        kind = self.cfg.parameterisation
        if kind == "eps":
            return torch.ones_like(sigma), -sigma, c_in, c_noise
        if kind == "x0":
            return torch.zeros_like(sigma), torch.full_like(sigma, sd), c_in, c_noise
        c_skip = sd**2 / root**2
        c_out = sigma * sd / root
        return c_skip, (-c_out if kind == "v" else c_out), c_in, c_noise

    def forward(
        self,
        x: Tensor,
        sigma: Tensor,
        cond: Tensor | None = None,
        film: Tensor | None = None,
    ) -> Tensor:
        """x0 estimate for noisy ``x`` (B, C, T) at noise levels ``sigma`` (B,)."""
        sigma = sigma.to(dtype=x.dtype, device=x.device).reshape(-1).expand(x.shape[0])
        c_skip, c_out, c_in, c_noise = self.preconditioning(sigma)
        out = self.net(_expand(c_in, x) * x, c_noise, cond=cond, film=film)
        return _expand(c_skip, x) * x + _expand(c_out, x) * out

    def loss(
        self,
        x0: Tensor,
        seeds: Tensor,
        cond: Tensor | None = None,
        film: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Weighted denoising loss; sigma, noise and condition dropout come from ``seeds`` (B,).

        Per sample: ``loss_weight(sigma) * mean(((D(x0 + sigma eps, sigma) - x0) / sigma_data)^2)``,
        averaged over the batch, so a sample's term does not depend on the batch it is in.
        """
        cfg = self.cfg
        sigma = train_sigmas(mix_seeds(seeds, _SIGMA_STREAM), cfg).to(x0.device, x0.dtype)
        eps = randn_seeded(
            mix_seeds(seeds, _NOISE_STREAM), x0.shape[1:], dtype=x0.dtype, device=x0.device
        )
        dropped = torch.zeros(x0.shape[0], dtype=torch.bool, device=x0.device)
        if cfg.cond_dropout > 0.0 and (cond is not None or film is not None):
            dropped = cond_dropout_mask(seeds, cfg.cond_dropout).to(x0.device)
            if cond is not None:
                cond = torch.where(_expand(dropped, cond), torch.zeros_like(cond), cond)
            if film is not None:
                film = torch.where(_expand(dropped, film), torch.zeros_like(film), film)
        x0_hat = self(x0 + _expand(sigma, x0) * eps, sigma, cond=cond, film=film)
        mse = ((x0_hat - x0) / cfg.sigma_data).pow(2).flatten(1).mean(dim=1)
        loss = (loss_weight(sigma, cfg) * mse).mean()
        stats = {
            "loss": float(loss.detach()),
            "x0_mse": float(mse.detach().mean()),
            "sigma_mean": float(sigma.mean()),
            "cond_dropped": float(dropped.float().mean()),
        }
        return loss, stats

    @torch.no_grad()
    def generate(
        self,
        shape: Sequence[int],
        *,
        cond: Tensor | None = None,
        film: Tensor | None = None,
        seeds: Tensor | None = None,
        generator: torch.Generator | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        x0_correction: Callable[[Tensor, Tensor], Tensor] | None = None,
        progress: bool = False,
    ) -> SampleResult:
        """Sample ``shape`` with the configured sampler, schedule and guidance (overridable).

        ``x0_correction(x0, sigma)``, when given, replaces every x0 estimate before the sampler
        uses it (e.g. a cost-gradient step: reconstruction guidance). The returned ``nfe`` counts
        evaluations of this denoiser, so classifier-free guidance doubles it.
        """
        cfg = self.cfg
        sigmas = get_sigmas(
            cfg.schedule, steps if steps is not None else cfg.steps, cfg.sigma_min, cfg.sigma_max
        )
        scale = guidance_scale if guidance_scale is not None else cfg.guidance_scale
        device = next((p.device for p in self.parameters()), torch.device("cpu"))
        evaluations = 0

        def counted(
            x: Tensor, sigma: Tensor, cond: Tensor | None = None, film: Tensor | None = None
        ) -> Tensor:
            nonlocal evaluations
            evaluations += 1
            return self(x, sigma, cond=cond, film=film)

        estimate = guided(counted, cond, film, scale)

        def denoise(x: Tensor, sigma: Tensor) -> Tensor:
            x0 = estimate(x, sigma)
            return x0 if x0_correction is None else x0_correction(x0, sigma)

        result = sample(
            sampler if sampler is not None else cfg.sampler,
            denoise,
            shape,
            sigmas,
            seeds=seeds,
            generator=generator,
            dtype=torch.float32,
            device=device,
            progress=progress,
        )
        return SampleResult(x=result.x, nfe=evaluations)


class ConditionalDenoiser(Protocol):
    def __call__(
        self, x: Tensor, sigma: Tensor, cond: Tensor | None = ..., film: Tensor | None = ...
    ) -> Tensor: ...


def guided(
    denoiser: ConditionalDenoiser,
    cond: Tensor | None,
    film: Tensor | None,
    scale: float,
) -> DenoiserFn:
    """Classifier-free guidance ``D_uncond + scale (D_cond - D_uncond)`` as a plain denoiser.

    The unconditional branch uses the null condition (zeros for cond and film), matching training
    dropout. Scale 1.0, or no condition at all, is the conditional denoiser alone (one call).
    """
    if scale == 1.0 or (cond is None and film is None):
        return lambda x, sigma: denoiser(x, sigma, cond=cond, film=film)
    null_cond = torch.zeros_like(cond) if cond is not None else None
    null_film = torch.zeros_like(film) if film is not None else None

    def guided_denoiser(x: Tensor, sigma: Tensor) -> Tensor:
        conditional = denoiser(x, sigma, cond=cond, film=film)
        unconditional = denoiser(x, sigma, cond=null_cond, film=null_film)
        return unconditional + scale * (conditional - unconditional)

    return guided_denoiser
