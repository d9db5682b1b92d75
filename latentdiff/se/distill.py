"""Few-step distillation of a LatentSE enhancer's correction diffusion into a DDIM student.

The student is a copy of the teacher whose own sampler is DDIM at ``distill.steps`` steps. Only
its correction denoiser trains; its conditioning encoder, predictive head and autoencoder are
the teacher's, frozen, so the condition and the latent residual (clean latent minus the
predictive estimate's latent) are computed once, by the teacher, for both. The loss is the core
:func:`latentdiff.core.distill.distillation_loss` (targets from teacher DDIM sub-steps).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from latentdiff.core.config import load_config
from latentdiff.core.distill import DistillConfig, distillation_loss
from latentdiff.core.models import build_model, save_final
from latentdiff.core.training import TrainerConfig, fit_experiment
from latentdiff.se.features import SegmentConfig, SegmentDataset
from latentdiff.se.model import LatentSE, load_diffusion_enhancer, se_model_spec


@dataclass
class SEDistillExperiment:
    """Config file of the SE distillation stage (the teacher comes from the command line)."""

    distill: DistillConfig = field(default_factory=DistillConfig)
    data: SegmentConfig = field(default_factory=SegmentConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def se_student_of(teacher: LatentSE, steps: int) -> LatentSE:
    """A copy of ``teacher`` that samples with DDIM at ``steps`` steps; only its denoiser trains."""
    spec = se_model_spec(teacher)
    spec["config"]["diffusion"].update(sampler="ddim", steps=steps)
    student = build_model(spec)
    assert isinstance(student, LatentSE)
    student.load_state_dict(teacher.state_dict())
    student.requires_grad_(False)
    student.denoiser.requires_grad_(True)
    return student


def se_distillation_loss(
    student: LatentSE,
    teacher: LatentSE,
    noisy: Tensor,
    clean: Tensor,
    seeds: Tensor,
    cfg: DistillConfig,
) -> tuple[Tensor, dict[str, float]]:
    """Distillation loss of ``student``'s denoiser on (B, N) noisy / clean training segments."""
    with torch.no_grad():
        x0 = teacher.encode(teacher.target(clean))
        cond, estimate = teacher._condition(teacher.analyse(noisy)[1])
        if estimate is not None:
            anchor = teacher._anchor(estimate)
            x0 = x0 - anchor
            cond = torch.cat([cond, anchor], dim=1)
    return distillation_loss(
        student.denoiser, teacher.denoiser, x0, seeds, cfg, cond=cond, teacher_cond=cond
    )


def train_se_distill(
    config: Path, teacher_path: Path, data_dir: Path, exp_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Distil the enhancer at ``teacher_path`` into a DDIM student; writes ``exp_dir/final.pt``."""
    exp = load_config(SEDistillExperiment, config, overrides)
    teacher = load_diffusion_enhancer(teacher_path, exp.data.sample_rate)
    teacher.eval().requires_grad_(False)
    torch.manual_seed(exp.trainer.seed)
    student = se_student_of(teacher, exp.distill.steps)
    dataset = SegmentDataset(data_dir, exp.data)

    def loss_fn(net: nn.Module, batch: list[Tensor], seeds: Tensor) -> tuple[Tensor, dict]:
        assert isinstance(net, LatentSE)
        return se_distillation_loss(net, teacher, batch[0], batch[1], seeds, exp.distill)

    spec = se_model_spec(student)
    spec["teacher"] = str(teacher_path)
    stats, ema = fit_experiment(student, loss_fn, dataset, exp, exp_dir, spec)
    save_final(exp_dir, ema.cpu(), spec)
    return stats
