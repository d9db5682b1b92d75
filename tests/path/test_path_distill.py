"""``latentdiff train path-distill``: a few-step DDIM student of a path model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import yaml

from latentdiff.core.models import load_model, save_final
from latentdiff.path.data import PathDataConfig, build_split, save_split
from latentdiff.path.model import PathDiffusion, path_model_spec
from latentdiff.path.planner import Planner, PlannerConfig
from latentdiff.path.train import student_of, train_path_distill

from .test_planner import obstacle_map, tiny_model


def test_student_copies_the_teacher_and_samples_with_ddim() -> None:
    teacher = tiny_model(seed=4)
    student = student_of(teacher, 2)
    own = student.cfg.diffusion.diffusion
    assert (own.sampler, own.steps) == ("ddim", 2)
    assert student.diffusion.denoiser.cfg is own
    weights = student.state_dict()
    for name, value in teacher.state_dict().items():
        assert torch.equal(value, weights[name]), name
    assert teacher.cfg.diffusion.diffusion.sampler == "dpmpp_2m"  # the teacher is untouched


def test_distillation_stage_writes_a_student_the_planner_runs_at_its_steps(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    teacher = tiny_model(seed=5)
    save_final(tmp_path / "teacher", teacher, path_model_spec(teacher))
    data = build_split(PathDataConfig(n_train_maps=8, min_size=24, max_size=48), "train", False)
    save_split(data, tmp_path / "train.npz")
    config = tmp_path / "distill.yaml"
    trainer = {"steps": 6, "batch_size": 4, "log_every": 2, "ckpt_every": 3, "tensorboard": False}
    config.write_text(yaml.safe_dump({"distill": {"steps": 1, "substeps": 2}, "trainer": trainer}))
    stats = train_path_distill(
        config,
        tmp_path / "teacher" / "final.pt",
        tmp_path,
        tmp_path / "student",
        ["trainer.lr=0.0001"],
    )
    assert stats["step"] == 6 and np.isfinite(stats["loss"])
    student = load_model(tmp_path / "student" / "final.pt")
    assert isinstance(student, PathDiffusion)
    assert student.cfg.diffusion.diffusion.steps == 1
    planner = Planner.from_pretrained(tmp_path / "student", PlannerConfig(candidates=2))
    occ, start, goal = obstacle_map(), (4.5, 16.5), (28.5, 16.5)
    result = planner.plan(occ, start, goal)
    assert result.success and result.info["nfe"] == 1
