"""Training stages of the learned planner: trajectory autoencoder, then (latent) path diffusion.

The autoencoder learns the residuals the diffusion model will generate, so both stages name the
same residual reference and scale: the autoencoder stage in its own config keys ``reference`` and
``residual_scale`` (stored in its checkpoint's spec under ``residuals``), the diffusion stage in
``model.reference`` and ``model.residual_scale``. The diffusion stage refuses an autoencoder
trained on other residuals (checkpoints without ``residuals`` learned the route defaults).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.checkpoint import load_checkpoint, save_checkpoint
from latentdiff.core.config import load_config
from latentdiff.core.distill import DistillConfig
from latentdiff.core.models import autoencoder_spec, load_model, resolve_checkpoint, save_final
from latentdiff.core.training import TrainerConfig, fit_experiment
from latentdiff.path.data import PathDataset, load_split
from latentdiff.path.model import (
    RESIDUAL_SCALE,
    PathDiffusion,
    PathModelConfig,
    build_path_model,
    check_residuals,
    path_model_spec,
    reference_path,
    to_residual,
)


def _default_autoencoder() -> AutoencoderConfig:
    return AutoencoderConfig(in_channels=2, latent_channels=4, channels=32, causal=False)


@dataclass
class PathAutoencoderExperiment:
    """Config file of the trajectory autoencoder stage; ``reference`` and ``residual_scale`` say
    which residuals it learns (as in ``PathModelConfig``; they must match the diffusion model's)."""

    reference: str = "route"
    residual_scale: float = RESIDUAL_SCALE
    autoencoder: AutoencoderConfig = field(default_factory=_default_autoencoder)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)

    def __post_init__(self) -> None:
        check_residuals(self.reference, self.residual_scale)


@dataclass
class PathDiffusionExperiment:
    """Config file of the path diffusion stage (latent or waypoint space, see ``model.latent``)."""

    model: PathModelConfig = field(default_factory=PathModelConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


class ResidualDataset(Dataset[Tensor]):
    """(2, N) scaled residuals of the optimal waypoints from the guide's ``reference`` path (see
    ``to_residual`` and ``reference_path``)."""

    def __init__(
        self, data: PathDataset, reference: str = "route", scale: float = RESIDUAL_SCALE
    ) -> None:
        self.paths = to_residual(data.target, reference_path(data.guide, reference), scale)

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> Tensor:
        return self.paths[index]


@dataclass
class PathDistillExperiment:
    """Config file of the few-step distillation stage (the teacher comes from the command line)."""

    distill: DistillConfig = field(default_factory=DistillConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def student_of(teacher: PathDiffusion, steps: int) -> PathDiffusion:
    """A copy of ``teacher`` whose own sampling settings are DDIM at ``steps`` steps."""
    spec = path_model_spec(teacher)
    spec["config"]["diffusion"]["diffusion"].update(sampler="ddim", steps=steps)
    student = build_path_model(spec)
    assert isinstance(student, PathDiffusion)
    student.load_state_dict(teacher.state_dict())
    return student


def train_path_distill(
    config: Path, teacher_path: Path, data_dir: Path, exp_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Distil the path diffusion model at ``teacher_path`` into a DDIM student of few steps."""
    exp = load_config(PathDistillExperiment, config, overrides)
    teacher = load_model(teacher_path)
    if not isinstance(teacher, PathDiffusion):
        raise ValueError(f"{teacher_path} is not a path diffusion model")
    teacher.eval().requires_grad_(False)
    torch.manual_seed(exp.trainer.seed)
    student = student_of(teacher, exp.distill.steps)
    dataset = PathDataset(load_split(data_dir, "train"))

    def loss_fn(
        net: nn.Module, batch: dict[str, Tensor], seeds: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        return net.distillation_loss(teacher, batch, seeds, exp.distill)  # type: ignore[operator]

    spec = path_model_spec(student)
    spec["teacher"] = str(teacher_path)
    stats, ema = fit_experiment(student, loss_fn, dataset, exp, exp_dir, spec)
    save_final(exp_dir, ema.cpu(), spec)
    return stats


def export_half(source: str | Path, destination: str | Path) -> None:
    """Copy a ``final.pt`` with float tensors stored as float16 (loading casts them back)."""
    state = load_checkpoint(source)
    weights = {k: v.half() if v.is_floating_point() else v for k, v in state["model"].items()}
    save_checkpoint(destination, {"model": weights, "ema": None, "extra": state["extra"]})


def train_path_autoencoder(
    config: Path, data_dir: Path, exp_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Train the trajectory autoencoder on train-split residuals; fit its latent statistics.

    ``overrides`` are ``key.path=value`` changes to the config file (see ``apply_overrides``).
    """
    exp = load_config(PathAutoencoderExperiment, config, overrides)
    if exp.autoencoder.in_channels != 2:
        raise ValueError("the trajectory autoencoder needs in_channels: 2 (x and y)")
    torch.manual_seed(exp.trainer.seed)
    model = Autoencoder1D(exp.autoencoder)
    dataset = ResidualDataset(
        PathDataset(load_split(data_dir, "train")), exp.reference, exp.residual_scale
    )

    def loss_fn(net: nn.Module, batch: Tensor, seeds: Tensor) -> tuple[Tensor, dict[str, float]]:
        return net(batch)

    spec = autoencoder_spec(model)
    spec["residuals"] = {"reference": exp.reference, "scale": exp.residual_scale}
    stats, ema = fit_experiment(model, loss_fn, dataset, exp, exp_dir, spec)
    ema = ema.cpu()
    assert isinstance(ema, Autoencoder1D)
    ema.fit_latent_stats(dataset.paths[i : i + 512] for i in range(0, len(dataset), 512))
    save_final(exp_dir, ema, spec)
    return stats


def autoencoder_residuals(path: Path) -> tuple[str, float]:
    """``(reference, scale)`` of the residuals the autoencoder checkpoint at ``path`` learned."""
    spec: dict[str, Any] = load_checkpoint(resolve_checkpoint(path))["extra"]["model"]
    residuals = spec.get("residuals", {})
    return residuals.get("reference", "route"), float(residuals.get("scale", RESIDUAL_SCALE))


def check_autoencoder_residuals(model: PathModelConfig, autoencoder: Path) -> None:
    """ValueError when ``autoencoder`` learned other residuals than ``model`` generates."""
    reference, scale = autoencoder_residuals(autoencoder)
    if reference != model.reference or not math.isclose(scale, model.residual_scale):
        raise ValueError(
            f"{autoencoder} learned residuals (reference={reference}, scale={scale}) but the "
            f"model generates (reference={model.reference}, scale={model.residual_scale}); "
            "train the autoencoder with the same reference and residual_scale"
        )


def train_path_diffusion(
    config: Path,
    data_dir: Path,
    exp_dir: Path,
    autoencoder: Path | None,
    overrides: Sequence[str] = (),
) -> dict[str, float]:
    """Train the path diffusion model; ``autoencoder`` is required when ``model.latent``."""
    exp = load_config(PathDiffusionExperiment, config, overrides)
    if exp.model.latent and autoencoder is None:
        raise ValueError("model.latent is true: pass the trajectory autoencoder (--autoencoder)")
    torch.manual_seed(exp.trainer.seed)
    ae = load_model(autoencoder) if exp.model.latent and autoencoder is not None else None
    if ae is not None and not isinstance(ae, Autoencoder1D):
        raise ValueError(f"{autoencoder} is not an autoencoder checkpoint")
    if ae is not None and autoencoder is not None:
        check_autoencoder_residuals(exp.model, autoencoder)
    samples = load_split(data_dir, "train")
    if exp.model.keep_vertices is None:
        exp.model.keep_vertices = samples.keep_vertices
    elif samples.keep_vertices != exp.model.keep_vertices:
        raise ValueError(
            f"model.keep_vertices={exp.model.keep_vertices} but {data_dir} was prepared with "
            f"keep_vertices={samples.keep_vertices}: set them alike or leave it unset"
        )
    model = PathDiffusion(exp.model, ae)
    dataset = PathDataset(samples)

    def loss_fn(
        net: nn.Module, batch: dict[str, Tensor], seeds: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        return net(batch, seeds)

    spec = path_model_spec(model)
    stats, ema = fit_experiment(model, loss_fn, dataset, exp, exp_dir, spec)
    save_final(exp_dir, ema.cpu(), spec)
    return stats
