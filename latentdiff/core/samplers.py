"""Samplers over a denoiser ``D(x, sigma) -> x0_hat`` in sigma space (k-diffusion style).

A noisy sample is ``x = x0 + sigma * eps``. Every sampler takes the initial noise ``x`` already
scaled by ``sigmas[0]`` and a descending schedule ending with 0.0 (n steps = ``len(sigmas) - 1``),
and returns the final sample together with the exact number of denoiser evaluations (NFE).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import pairwise
from typing import Protocol

import torch
from torch import Tensor
from tqdm.auto import tqdm

from latentdiff.core.random import mix_seeds, randn_seeded

DenoiserFn = Callable[[Tensor, Tensor], Tensor]

DEFAULT_SEED = 0
_INIT_STREAM = 0x1A17
_DDPM_STREAM = 0xDD93


@dataclass
class SampleResult:
    """Final sample and the number of denoiser calls made to get it."""

    x: Tensor
    nfe: int


class SamplerFn(Protocol):
    def __call__(
        self,
        denoiser: DenoiserFn,
        x: Tensor,
        sigmas: Tensor,
        *,
        seeds: Tensor | None = None,
        generator: torch.Generator | None = None,
        progress: bool = False,
    ) -> SampleResult: ...


class CountingDenoiser:
    """Wraps a denoiser, broadcasting a scalar sigma to ``(B,)`` and counting the calls."""

    def __init__(self, denoiser: DenoiserFn) -> None:
        self.denoiser = denoiser
        self.calls = 0

    def __call__(self, x: Tensor, sigma: float) -> Tensor:
        self.calls += 1
        return self.denoiser(x, x.new_full((x.shape[0],), sigma))


def _default_generator() -> torch.Generator:
    return torch.Generator(device="cpu").manual_seed(DEFAULT_SEED)


def _steps(sigmas: Tensor, progress: bool) -> Iterable[tuple[int, float, float]]:
    """``(index, sigma, sigma_next)`` per step, validated, as Python floats."""
    values = [float(s) for s in sigmas.detach().cpu().tolist()]
    if len(values) < 2 or values[-1] != 0.0:
        raise ValueError("sigmas must hold at least two values and end with 0.0")
    if any(a <= b for a, b in pairwise(values)):
        raise ValueError("sigmas must be strictly decreasing")
    steps = [(i, values[i], values[i + 1]) for i in range(len(values) - 1)]
    return tqdm(steps, disable=not progress, leave=False)


def sample_ddim(
    denoiser: DenoiserFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SampleResult:
    """DDIM with eta=0: in sigma space, the Euler step of the probability-flow ODE.

    ``x <- x + (sigma_next - sigma) * (x - D(x, sigma)) / sigma``; n steps cost n NFE.
    Deterministic: ``seeds`` and ``generator`` are accepted for a uniform interface and unused.
    """
    model = CountingDenoiser(denoiser)
    for _, sigma, sigma_next in _steps(sigmas, progress):
        denoised = model(x, sigma)
        x = denoised + (sigma_next / sigma) * (x - denoised)
    return SampleResult(x=x, nfe=model.calls)


def sample_ddpm(
    denoiser: DenoiserFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SampleResult:
    """Ancestral sampling with eta=1, i.e. the DDPM posterior step in sigma space.

    With ``r = sigma_next^2 / sigma^2``:
    ``x <- D + r (x - D) + sigma_next sqrt(1 - r) z``, the exact mean and variance of
    ``q(x_next | x, x0 = D)``. Fresh noise ``z`` comes from per-sample ``seeds`` (mixed with the
    step index, so a sample's result does not depend on its batch), else from ``generator``, else
    from a generator seeded with ``DEFAULT_SEED``. n steps cost n NFE.
    """
    model = CountingDenoiser(denoiser)
    noise_generator = generator if generator is not None else _default_generator()
    for index, sigma, sigma_next in _steps(sigmas, progress):
        denoised = model(x, sigma)
        if sigma_next == 0.0:
            x = denoised
            continue
        ratio = (sigma_next / sigma) ** 2
        if seeds is not None:
            step_seeds = mix_seeds(seeds, _DDPM_STREAM, index)
            noise = randn_seeded(step_seeds, x.shape[1:], dtype=x.dtype, device=x.device)
        else:
            noise = torch.randn(
                x.shape, generator=noise_generator, dtype=x.dtype, device=noise_generator.device
            ).to(x.device)
        x = denoised + ratio * (x - denoised) + sigma_next * math.sqrt(1.0 - ratio) * noise
    return SampleResult(x=x, nfe=model.calls)


def sample_dpmpp_2m(
    denoiser: DenoiserFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SampleResult:
    """DPM-Solver++(2M) (Lu et al. 2022) in log-sigma time ``t = -ln sigma``, ``h = t_next - t``.

    ``x <- (sigma_next / sigma) x - expm1(-h) D'`` with ``D' = D`` on the first step and
    ``D' = (1 + 1/(2r)) D - 1/(2r) D_prev``, ``r = h_prev / h``, afterwards; the final step to
    sigma=0 is first order (``x <- D``). n steps cost n NFE. Deterministic: ``seeds`` and
    ``generator`` are accepted for a uniform interface and unused.
    """
    model = CountingDenoiser(denoiser)
    previous: Tensor | None = None
    h_previous = 0.0
    for _, sigma, sigma_next in _steps(sigmas, progress):
        denoised = model(x, sigma)
        if sigma_next == 0.0:
            x = denoised
            continue
        h = math.log(sigma / sigma_next)
        target = denoised
        if previous is not None:
            half_inv_r = h / (2.0 * h_previous)
            target = (1.0 + half_inv_r) * denoised - half_inv_r * previous
        x = (sigma_next / sigma) * x - math.expm1(-h) * target
        previous, h_previous = denoised, h
    return SampleResult(x=x, nfe=model.calls)


def sample_heun(
    denoiser: DenoiserFn,
    x: Tensor,
    sigmas: Tensor,
    *,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> SampleResult:
    """Deterministic Heun sampler (EDM, Karras et al. 2022, Algorithm 1).

    Euler predictor plus trapezoidal corrector on the probability-flow ODE
    ``dx/dsigma = (x - D(x, sigma)) / sigma``; the last step to sigma=0 is plain Euler, so n steps
    cost 2n - 1 NFE. Deterministic: ``seeds`` and ``generator`` are unused.
    """
    model = CountingDenoiser(denoiser)
    for _, sigma, sigma_next in _steps(sigmas, progress):
        slope = (x - model(x, sigma)) / sigma
        x_euler = x + (sigma_next - sigma) * slope
        if sigma_next == 0.0:
            x = x_euler
            continue
        slope_next = (x_euler - model(x_euler, sigma_next)) / sigma_next
        x = x + (sigma_next - sigma) * 0.5 * (slope + slope_next)
    return SampleResult(x=x, nfe=model.calls)


SAMPLERS: dict[str, SamplerFn] = {
    "ddpm": sample_ddpm,
    "ddim": sample_ddim,
    "dpmpp_2m": sample_dpmpp_2m,
    "heun": sample_heun,
}


def initial_noise(
    seeds: Tensor,
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Standard normal start of sampling, (len(seeds), *shape), before scaling by ``sigmas[0]``."""
    return randn_seeded(mix_seeds(seeds, _INIT_STREAM), shape, dtype=dtype, device=device)


def sample(
    name: str,
    denoiser: DenoiserFn,
    shape: Sequence[int],
    sigmas: Tensor,
    *,
    seeds: Tensor | None = None,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    progress: bool = False,
) -> SampleResult:
    """Draw initial noise ``sigmas[0] * N(0, I)`` of ``shape`` and run sampler ``name``.

    With per-sample ``seeds`` (B,) the initial noise (and DDPM's fresh noise) of each sample
    depends only on its seed; otherwise noise comes from ``generator`` (default: ``DEFAULT_SEED``).
    """
    if name not in SAMPLERS:
        raise ValueError(f"unknown sampler {name!r}; choose from {sorted(SAMPLERS)}")
    if seeds is not None:
        if seeds.shape != (shape[0],):
            raise ValueError(f"seeds must have shape ({shape[0]},), got {tuple(seeds.shape)}")
        noise = initial_noise(seeds, shape[1:], dtype=dtype, device=device)
    else:
        if generator is None:
            generator = _default_generator()
        noise = torch.randn(
            tuple(shape), generator=generator, dtype=dtype, device=generator.device
        ).to(device)
    x = float(sigmas[0]) * noise
    return SAMPLERS[name](denoiser, x, sigmas, seeds=seeds, generator=generator, progress=progress)
