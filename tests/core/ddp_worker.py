"""Toy training task for the trainer tests; run as a script (plain or under torchrun) to train it.

The task: a tiny Conv1d net learns a fixed linear convolution on a random dataset, with seeded
input noise drawn from the per-sample seeds the trainer hands to the loss.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.data import Dataset

from latentdiff.core.random import randn_seeded
from latentdiff.core.training import LossFn, Trainer, TrainerConfig

CHANNELS = 2
HIDDEN = 16
LENGTH = 16
INPUT_NOISE = 0.05
MODEL_SEED = 0


class ToyDataset(Dataset[tuple[Tensor, Tensor]]):
    """Random inputs and their image under a fixed random convolution."""

    def __init__(self, size: int = 64, seed: int = 1234) -> None:
        generator = torch.Generator().manual_seed(seed)
        self.inputs = torch.randn(size, CHANNELS, LENGTH, generator=generator)
        kernel = torch.randn(CHANNELS, CHANNELS, 3, generator=generator) / 3
        self.targets = F.conv1d(self.inputs, kernel, padding=1)

    def __len__(self) -> int:
        return self.inputs.shape[0]

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        return self.inputs[index], self.targets[index]


class ToyNet(nn.Module):
    """Two 3-tap convolutions with a SiLU between them (no dropout, no normalisation)."""

    def __init__(self) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(CHANNELS, HIDDEN, 3, padding=1),
            nn.SiLU(),
            nn.Conv1d(HIDDEN, CHANNELS, 3, padding=1),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


def toy_loss(
    model: nn.Module, batch: tuple[Tensor, Tensor], seeds: Tensor
) -> tuple[Tensor, dict[str, float]]:
    """MSE of the model on seeded noisy inputs; logs the RMS of the drawn noise."""
    inputs, targets = batch
    noise = randn_seeded(seeds, inputs.shape[1:], dtype=inputs.dtype, device=inputs.device)
    prediction = model(inputs + INPUT_NOISE * noise)
    loss = F.mse_loss(prediction.float(), targets)
    return loss, {"noise_rms": float(noise.pow(2).mean().sqrt())}


def toy_model() -> ToyNet:
    """The toy net with its fixed initial weights."""
    torch.manual_seed(MODEL_SEED)
    return ToyNet()


def toy_config(**overrides: Any) -> TrainerConfig:
    """A fast CPU config for the toy task; keyword arguments override fields."""
    fields: dict[str, Any] = {
        "steps": 40,
        "batch_size": 8,
        "lr": 1e-2,
        "warmup_steps": 5,
        "ema_decay": 0.9,
        "log_every": 1,
        "ckpt_every": 10,
        "keep_checkpoints": 2,
        "tensorboard": False,
        "progress": False,
        "device": "cpu",
    }
    return TrainerConfig(**{**fields, **overrides})


def toy_trainer(out_dir: Path, cfg: TrainerConfig, loss_fn: LossFn = toy_loss) -> Trainer:
    """A trainer for the toy task writing to ``out_dir``."""
    extra = {"model": {"channels": CHANNELS, "hidden": HIDDEN}}
    return Trainer(toy_model(), loss_fn, ToyDataset(), cfg, out_dir, extra_state=extra)


class StallingLoss:
    """``toy_loss`` that, when called for step ``stall_step``, touches ``marker`` and hangs."""

    def __init__(self, stall_step: int, marker: Path) -> None:
        self.stall_step = stall_step
        self.marker = marker
        self.calls = 0

    def __call__(
        self, model: nn.Module, batch: tuple[Tensor, Tensor], seeds: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        if self.calls == self.stall_step:
            self.marker.touch()
            time.sleep(600)
        self.calls += 1
        return toy_loss(model, batch, seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--steps", type=int, default=40)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--ckpt-every", type=int, default=10)
    parser.add_argument("--stall-at-step", type=int, help="hang before this step (to be killed)")
    parser.add_argument("--marker", type=Path, help="file touched when the run starts to hang")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cfg = toy_config(steps=args.steps, batch_size=args.batch_size, ckpt_every=args.ckpt_every)
    loss_fn: LossFn = toy_loss
    if args.stall_at_step is not None:
        loss_fn = StallingLoss(args.stall_at_step, args.marker)
    toy_trainer(args.out, cfg, loss_fn).fit()


if __name__ == "__main__":
    main()
