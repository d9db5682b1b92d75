"""Few-step distillation: the teacher's targets are exact ODE steps, and a student learns them."""

from __future__ import annotations

import math

import pytest
import torch
from torch import Tensor, nn

from latentdiff.core.diffusion import Denoiser, DiffusionConfig
from latentdiff.core.distill import (
    DistillConfig,
    ddim_target,
    distillation_loss,
    student_sigmas,
    teacher_sigmas,
)

DATA_STD = 0.5  # data ~ N(0, DATA_STD^2) per element


class ExactGaussianNet(nn.Module):
    """Backbone whose preconditioned denoiser is the exact one for N(0, DATA_STD^2) data."""

    def __init__(self, cfg: DiffusionConfig) -> None:
        super().__init__()
        self.denoiser_cfg = cfg

    def forward(
        self, x: Tensor, c_noise: Tensor, cond: Tensor | None, film: Tensor | None
    ) -> Tensor:
        sigma = torch.exp(4.0 * c_noise).reshape(-1, 1, 1)
        root = torch.sqrt(sigma**2 + self.denoiser_cfg.sigma_data**2)
        noisy = x * root  # undo c_in
        exact = noisy * DATA_STD**2 / (DATA_STD**2 + sigma**2)
        c_skip = self.denoiser_cfg.sigma_data**2 / root**2
        c_out = -sigma * self.denoiser_cfg.sigma_data / root  # v parameterisation
        return (exact - c_skip * noisy) / c_out


class ScaleNet(nn.Module):
    """Learns one output scale per noise level: enough for a Gaussian's exact ODE map."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4))

    def forward(
        self, x: Tensor, c_noise: Tensor, cond: Tensor | None, film: Tensor | None
    ) -> Tensor:
        features = torch.stack([torch.ones_like(c_noise), c_noise, c_noise**2, c_noise**3], -1)
        return x * (features @ self.weight).reshape(-1, 1, 1)


CFG = DiffusionConfig(sigma_data=DATA_STD, sigma_max=20.0, schedule="karras", steps=8)


def teacher() -> Denoiser:
    return Denoiser(ExactGaussianNet(CFG), CFG)


def test_the_target_is_the_exact_ode_step_of_a_gaussian() -> None:
    """ODE x(sigma) = x_t sqrt((s^2 + sigma^2) / (s^2 + sigma_t^2)) for N(0, s^2) data."""
    x_t = torch.randn(64, 1, 3, generator=torch.Generator().manual_seed(0)) * 3.0
    for sigma_t, sigma_s in ((20.0, 1.0), (1.0, 0.0), (3.0, 0.5)):
        sigmas = teacher_sigmas(teacher(), sigma_t, sigma_s, 400)
        assert float(sigmas[0]) == pytest.approx(sigma_t) and float(sigmas[-1]) == sigma_s
        target = ddim_target(teacher(), x_t, sigmas, None, None)
        exact_end = x_t * math.sqrt((DATA_STD**2 + sigma_s**2) / (DATA_STD**2 + sigma_t**2))
        ratio = sigma_s / sigma_t
        landed = target + ratio * (x_t - target)  # one DDIM step with the target as x0
        torch.testing.assert_close(landed, exact_end, atol=2e-3, rtol=2e-3)


def test_a_student_equal_to_its_teacher_has_zero_loss_at_one_substep() -> None:
    """With one DDIM substep the target is the teacher's own x0 estimate."""
    model = teacher()
    x0 = torch.randn(8, 1, 4) * DATA_STD
    loss, stats = distillation_loss(
        model, model, x0, torch.arange(8), DistillConfig(steps=2, substeps=1)
    )
    assert float(loss) == pytest.approx(0.0, abs=1e-10)
    assert set(stats) == {"loss", "loss_step0", "loss_step1"}


def test_a_one_step_student_learns_the_teachers_distribution() -> None:
    """The teacher's one-step DDIM sample collapses; the distilled student matches its 16 steps."""
    torch.manual_seed(0)
    student = Denoiser(ScaleNet(), CFG)
    optimiser = torch.optim.Adam(student.parameters(), lr=0.05)
    config = DistillConfig(steps=1, substeps=16)
    for step in range(300):
        x0 = torch.randn(256, 1, 2) * DATA_STD
        loss, _ = distillation_loss(student, teacher(), x0, torch.arange(256) + 256 * step, config)
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()
    sigma_max = float(student_sigmas(teacher(), 1)[0])
    noise = torch.randn(4096, 1, 2, generator=torch.Generator().manual_seed(1)) * sigma_max
    sigma = torch.full((4096,), sigma_max)
    with torch.no_grad():
        student_sample = student(noise, sigma)
        teacher_one_step = teacher()(noise, sigma)
    teacher_sample = ddim_target(
        teacher(), noise, teacher_sigmas(teacher(), sigma_max, 0.0, 16), None, None
    )
    assert float(teacher_one_step.std()) < 0.1 * DATA_STD
    # 16 DDIM steps of the exact denoiser reach 0.44 of the data's 0.5.
    assert float(student_sample.std()) == pytest.approx(float(teacher_sample.std()), rel=0.03)


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match="steps and substeps"):
        DistillConfig(steps=0)


def test_the_last_step_of_a_student_ending_at_sigma_min_is_one_teacher_step() -> None:
    # A 2-step Karras student goes sigma_max -> sigma_min -> 0; float32 rounding can put its
    # middle sigma a hair below the teacher's sigma_min.
    for sigma_t in (CFG.sigma_min, float(torch.tensor(CFG.sigma_min, dtype=torch.float32))):
        sigmas = teacher_sigmas(teacher(), sigma_t, 0.0, 6)
        assert sigmas.tolist() == pytest.approx([sigma_t, 0.0])
