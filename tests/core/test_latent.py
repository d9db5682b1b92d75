"""A small latent diffusion model learns toy sequences: loss falls and samples beat noise."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.diffusion import DiffusionConfig
from latentdiff.core.latent import LatentDiffusion, LatentDiffusionConfig
from latentdiff.core.models import latent_diffusion_spec, load_model
from latentdiff.core.nets import BackboneConfig
from latentdiff.core.training import Trainer, TrainerConfig
from latentdiff.toy.data import (
    SequenceDataset,
    ToyDataConfig,
    band_energy,
    dominant_frequency,
    make_sequences,
    wasserstein_1d,
)

DATA = ToyDataConfig(length=64, min_freq=0.05, max_freq=0.15, n_train=512)


def _trainer_cfg(steps: int, lr: float) -> TrainerConfig:
    return TrainerConfig(
        steps=steps,
        batch_size=32,
        lr=lr,
        warmup_steps=20,
        ema_decay=0.99,
        log_every=10,
        ckpt_every=1000,
        tensorboard=False,
        progress=False,
        seed=0,
    )


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[LatentDiffusion, Path]:
    torch.manual_seed(0)
    root = tmp_path_factory.mktemp("latent")
    train = make_sequences(DATA.n_train, DATA, seed=0)
    ae = Autoencoder1D(AutoencoderConfig(latent_channels=4, channels=16, strides=(2, 2)))
    ae_trainer = Trainer(
        ae, lambda m, b, s: m(b), SequenceDataset(train), _trainer_cfg(150, 3e-3), root / "ae"
    )
    ae_trainer.fit()
    ae = ae_trainer.ema_model
    ae.fit_latent_stats([torch.from_numpy(train)])
    cfg = LatentDiffusionConfig(
        backbone=BackboneConfig(name="unet", unet_channels=(32, 64), embed_dim=64),
        diffusion=DiffusionConfig(parameterisation="v", loss_weighting="min_snr", steps=8),
    )
    model = LatentDiffusion(cfg, ae)
    trainer = Trainer(
        model,
        lambda m, b, s: m(b, s),
        SequenceDataset(train),
        _trainer_cfg(300, 2e-3),
        root / "ldm",
        extra_state={"model": latent_diffusion_spec(model)},
    )
    trainer.fit()
    trainer.close()
    return trainer.ema_model, root / "ldm"


def test_diffusion_loss_decreases(trained: tuple[LatentDiffusion, Path]) -> None:
    log = np.genfromtxt(trained[1] / "train_log.csv", delimiter=",", names=True)
    first, last = log["loss"][0], log["loss"][-3:].mean()
    assert last < 0.7 * first, (first, last)


def test_samples_beat_noise(trained: tuple[LatentDiffusion, Path]) -> None:
    model, _ = trained
    test = make_sequences(256, DATA, seed=1)
    samples = model.sample(256, DATA.length // model.downsample, seeds=torch.arange(256)).x.numpy()
    noise = np.random.default_rng(0).standard_normal(test.shape)
    w1_model = wasserstein_1d(dominant_frequency(samples), dominant_frequency(test))
    w1_noise = wasserstein_1d(dominant_frequency(noise), dominant_frequency(test))
    band_model = band_energy(samples, DATA).mean()
    band_noise = band_energy(noise, DATA).mean()
    print(
        f"freq W1 model {w1_model:.4f} noise {w1_noise:.4f}; band {band_model:.3f} {band_noise:.3f}"
    )
    assert w1_model < 0.3 * w1_noise
    assert band_model > band_noise + 0.3


def test_checkpoint_alone_rebuilds_the_model(trained: tuple[LatentDiffusion, Path]) -> None:
    model, exp_dir = trained
    loaded = load_model(exp_dir)
    assert isinstance(loaded, LatentDiffusion)
    seeds = torch.arange(4)
    a = model.sample(4, 16, seeds=seeds, steps=2).x
    b = loaded.sample(4, 16, seeds=seeds, steps=2).x
    torch.testing.assert_close(a, b)
    assert model.sample(4, 16, seeds=seeds, steps=2).nfe == 2
