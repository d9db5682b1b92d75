"""Few-step distillation: a student denoiser that samples with DDIM in ``steps`` steps.

The student's sigmas are the teacher's schedule at ``steps`` steps, ``s_0 > ... > s_steps = 0``.
For each student step ``s_i -> s_(i+1)`` and a training sample ``x0``, with ``x_t = x0 + s_i eps``:

1. the teacher integrates the probability-flow ODE from ``(x_t, s_i)`` to ``s_(i+1)`` with
   ``substeps`` DDIM steps on its own schedule between the two sigmas, reaching ``x_s``;
2. the student's target is the x0 estimate that makes one DDIM step land there:
   ``x0* = (x_s - r x_t) / (1 - r)`` with ``r = s_(i+1) / s_i`` (``x0* = x_s`` on the last step);
3. the loss is ``mean(((D_student(x_t, s_i) - x0*) / sigma_data)^2)`` averaged over the steps.

With ``substeps = 2`` one round is progressive distillation (Salimans & Ho, 2022), which halves
the steps; rounds chain (4 -> 2 -> 1). A larger ``substeps`` distils straight to few steps.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import torch
from torch import Tensor

from latentdiff.core.diffusion import Denoiser, get_sigmas
from latentdiff.core.random import mix_seeds, randn_seeded

_DISTILL_STREAM = 0xD157


@dataclass
class DistillConfig:
    """Student steps and how finely the teacher integrates each of them."""

    steps: int = 1
    substeps: int = 4

    def __post_init__(self) -> None:
        if self.steps < 1 or self.substeps < 1:
            raise ValueError(f"steps and substeps must be >= 1, got {self.steps}, {self.substeps}")


def student_sigmas(teacher: Denoiser, steps: int) -> Tensor:
    """The student's ``steps + 1`` sigmas: the teacher's schedule at ``steps`` steps."""
    cfg = teacher.cfg
    return get_sigmas(cfg.schedule, steps, cfg.sigma_min, cfg.sigma_max)


def teacher_sigmas(teacher: Denoiser, sigma_t: float, sigma_s: float, substeps: int) -> Tensor:
    """``substeps + 1`` decreasing sigmas from ``sigma_t`` to ``sigma_s`` on the teacher's schedule.

    Down to 0 the schedule ends at the teacher's ``sigma_min`` and then 0, as in sampling; from
    ``sigma_min`` itself (the last step of a student whose schedule ends there) it is one step.
    """
    cfg = teacher.cfg
    if sigma_s == 0.0:
        if sigma_t <= cfg.sigma_min * (1.0 + 1e-6):
            return torch.tensor([sigma_t, 0.0])
        return get_sigmas(cfg.schedule, substeps, cfg.sigma_min, sigma_t)
    return get_sigmas(cfg.schedule, substeps + 1, sigma_s, sigma_t)[:-1]


def ddim_target(
    teacher: Denoiser,
    x_t: Tensor,
    sigmas: Tensor,
    cond: Tensor | None,
    film: Tensor | None,
) -> Tensor:
    """Student x0 target for one DDIM step over ``sigmas[0] -> sigmas[-1]`` (see the module doc)."""
    values = [float(s) for s in sigmas]
    x = x_t
    with torch.no_grad():
        for sigma, sigma_next in itertools.pairwise(values):
            denoised = teacher(x, x.new_full((x.shape[0],), sigma), cond=cond, film=film)
            x = denoised + (sigma_next / sigma) * (x - denoised)
    ratio = values[-1] / values[0]
    return (x - ratio * x_t) / (1.0 - ratio)


def distillation_loss(
    student: Denoiser,
    teacher: Denoiser,
    x0: Tensor,
    seeds: Tensor,
    cfg: DistillConfig,
    *,
    cond: Tensor | None = None,
    film: Tensor | None = None,
    teacher_cond: Tensor | None = None,
    teacher_film: Tensor | None = None,
) -> tuple[Tensor, dict[str, float]]:
    """Mean over the student's steps of its normalised x0 error against the teacher's target.

    ``cond``/``film`` condition the student, ``teacher_cond``/``teacher_film`` the teacher (each
    model may encode the condition with its own, differently trained, encoder).
    """
    sigmas = [float(s) for s in student_sigmas(teacher, cfg.steps)]
    sigma_data = student.cfg.sigma_data
    losses = []
    for step in range(cfg.steps):
        sigma_t, sigma_s = sigmas[step], sigmas[step + 1]
        eps = randn_seeded(
            mix_seeds(seeds, _DISTILL_STREAM + step), x0.shape[1:], dtype=x0.dtype, device=x0.device
        )
        x_t = x0 + sigma_t * eps
        target = ddim_target(
            teacher,
            x_t,
            teacher_sigmas(teacher, sigma_t, sigma_s, cfg.substeps),
            teacher_cond,
            teacher_film,
        )
        prediction = student(x_t, x_t.new_full((x_t.shape[0],), sigma_t), cond=cond, film=film)
        losses.append(((prediction - target) / sigma_data).pow(2).mean())
    loss = torch.stack(losses).mean()
    stats = {"loss": float(loss.detach())}
    stats.update({f"loss_step{i}": float(v.detach()) for i, v in enumerate(losses)})
    return loss, stats
