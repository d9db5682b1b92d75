"""SE few-step distillation: the student is a DDIM copy of the teacher whose denoiser alone
learns, and the stage writes a loadable enhancer that samples at the student's steps."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentdiff.core.distill import DistillConfig
from latentdiff.core.models import load_model, save_final
from latentdiff.se.distill import se_distillation_loss, se_student_of, train_se_distill
from latentdiff.se.model import LatentSE, se_model_spec

from .test_adversarial import segments
from .test_enhancer import tiny_model
from .test_model import _clip_datadir


def test_student_copies_the_teacher_and_only_its_denoiser_learns() -> None:
    teacher = tiny_model()
    assert isinstance(teacher, LatentSE)
    student = se_student_of(teacher, steps=2)
    assert student.cfg.diffusion.sampler == "ddim" and student.default_steps == 2
    for (name, a), b in zip(
        teacher.state_dict().items(), student.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    trainable = {n for n, p in student.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith("denoiser.") for n in trainable)
    noisy, clean = segments()
    loss, stats = se_distillation_loss(
        student, teacher, noisy, clean, torch.arange(2), DistillConfig(steps=2, substeps=2)
    )
    assert np.isfinite(stats["loss"]) and {"loss_step0", "loss_step1"} <= stats.keys()
    grads = torch.autograd.grad(loss, [p for p in student.parameters() if p.requires_grad])
    assert any(float(g.abs().sum()) > 0 for g in grads)


def test_a_teacher_is_its_own_target_at_one_substep() -> None:
    # With one teacher sub-step per student step the target is the teacher's own DDIM step, so a
    # student equal to the teacher has zero loss.
    teacher = tiny_model()
    assert isinstance(teacher, LatentSE)
    student = se_student_of(teacher, steps=1)
    noisy, clean = segments()
    loss, _ = se_distillation_loss(
        student, teacher, noisy, clean, torch.arange(2), DistillConfig(steps=1, substeps=1)
    )
    assert float(loss.detach()) == pytest.approx(0.0, abs=1e-10)


def test_stage_writes_a_student_with_only_the_denoiser_changed(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    teacher = tiny_model()
    save_final(tmp_path / "teacher", teacher, se_model_spec(teacher))
    config = tmp_path / "distill.yaml"
    trainer = {"steps": 3, "batch_size": 2, "lr": 1e-3, "log_every": 1, "ckpt_every": 3}
    trainer |= {"tensorboard": False, "progress": False}
    data = {"segment_seconds": 0.5}
    config.write_text(yaml.safe_dump({"data": data, "trainer": trainer}))
    stats = train_se_distill(
        config,
        tmp_path / "teacher" / "final.pt",
        _clip_datadir(tmp_path),
        tmp_path / "student",
        ["distill.steps=1", "distill.substeps=3"],
    )
    assert stats["step"] == 3 and np.isfinite(stats["loss"])
    student = load_model(tmp_path / "student" / "final.pt")
    assert isinstance(student, LatentSE) and student.default_steps == 1
    before, after = teacher.state_dict(), student.state_dict()
    changed = {k for k in before if not torch.equal(before[k], after[k])}
    assert changed and all(k.startswith("denoiser.") for k in changed)
    noisy, _ = segments(1)
    assert student.enhance(noisy, seeds=[0, 1]).shape == noisy.shape
