"""Toy-domain stages: prepare data, train the autoencoder, train latent diffusion, evaluate."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.config import load_config, save_config
from latentdiff.core.latent import LatentDiffusion, LatentDiffusionConfig
from latentdiff.core.models import (
    autoencoder_spec,
    latent_diffusion_spec,
    load_model,
    save_final,
)
from latentdiff.core.nets import count_macs, count_parameters
from latentdiff.core.training import TrainerConfig, fit_experiment
from latentdiff.toy.data import (
    SequenceDataset,
    ToyDataConfig,
    band_energy,
    dominant_frequency,
    make_sequences,
    spectrum_distance,
    wasserstein_1d,
)


@dataclass
class ToyAutoencoderExperiment:
    """Config file of the toy autoencoder stage."""

    autoencoder: AutoencoderConfig = field(default_factory=AutoencoderConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class ToyDiffusionExperiment:
    """Config file of the toy diffusion stage (latent, or data space without autoencoder)."""

    model: LatentDiffusionConfig = field(default_factory=LatentDiffusionConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def prepare(data_dir: Path, cfg: ToyDataConfig) -> None:
    """Write train/test arrays and the data config."""
    data_dir.mkdir(parents=True, exist_ok=True)
    np.save(data_dir / "train.npy", make_sequences(cfg.n_train, cfg, seed=cfg.seed))
    np.save(data_dir / "test.npy", make_sequences(cfg.n_test, cfg, seed=cfg.seed + 1))
    save_config(cfg, data_dir / "data.yaml")


def _load_split(data_dir: Path, split: str) -> np.ndarray:
    path = data_dir / f"{split}.npy"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run the data preparation stage first")
    return np.load(path)


def train_autoencoder(config: Path, data_dir: Path, exp_dir: Path) -> dict[str, float]:
    """Train the autoencoder, then fit and store its latent statistics."""
    exp = load_config(ToyAutoencoderExperiment, config)
    torch.manual_seed(exp.trainer.seed)
    model = Autoencoder1D(exp.autoencoder)
    train = _load_split(data_dir, "train")

    def loss_fn(net: torch.nn.Module, batch: torch.Tensor, seeds: torch.Tensor):
        return net(batch)

    spec = autoencoder_spec(model)
    stats, ema = fit_experiment(model, loss_fn, SequenceDataset(train), exp, exp_dir, spec)
    ema.fit_latent_stats(torch.from_numpy(train[i : i + 256]) for i in range(0, len(train), 256))
    save_final(exp_dir, ema, autoencoder_spec(ema))
    return stats


def train_diffusion(
    config: Path, data_dir: Path, exp_dir: Path, autoencoder: Path | None
) -> dict[str, float]:
    """Train diffusion in the latent space of ``autoencoder`` (or in data space when None)."""
    exp = load_config(ToyDiffusionExperiment, config)
    torch.manual_seed(exp.trainer.seed)
    ae = load_model(autoencoder) if autoencoder is not None else None
    model = LatentDiffusion(exp.model, ae)  # type: ignore[arg-type]

    def loss_fn(net: torch.nn.Module, batch: torch.Tensor, seeds: torch.Tensor):
        return net(batch, seeds)

    spec = latent_diffusion_spec(model)
    dataset = SequenceDataset(_load_split(data_dir, "train"))
    stats, ema = fit_experiment(model, loss_fn, dataset, exp, exp_dir, spec)
    save_final(exp_dir, ema, spec)
    return stats


@dataclass
class SamplerScore:
    """Quality and cost of one model / sampler / step-count combination."""

    model: str
    sampler: str
    steps: int
    nfe: int
    freq_w1: float
    spectrum_tv: float
    band_energy: float
    seconds: float
    macs_per_sample: float


def score_samples(samples: np.ndarray, reference: np.ndarray, data_cfg: ToyDataConfig) -> dict:
    """Distribution distances between generated ``samples`` and held-out ``reference``."""
    return {
        "freq_w1": wasserstein_1d(dominant_frequency(samples), dominant_frequency(reference)),
        "spectrum_tv": spectrum_distance(samples, reference),
        "band_energy": float(np.mean(band_energy(samples, data_cfg))),
    }


def diffusion_macs(model: LatentDiffusion, length: int) -> float:
    """MACs of one network evaluation on one sequence of ``length`` data frames."""
    frames = length // model.downsample
    x = torch.zeros(1, model.channels, frames)
    return float(count_macs(model.denoiser.net, x, torch.zeros(1)))


def decoder_macs(model: LatentDiffusion, length: int) -> float:
    """MACs of decoding one sequence (0 without an autoencoder)."""
    if model.autoencoder is None:
        return 0.0
    z = torch.zeros(1, model.channels, length // model.downsample)
    return float(count_macs(model.autoencoder.decoder, z))


def load_diffusion_models(paths: dict[str, Path]) -> dict[str, LatentDiffusion]:
    """Load each named (latent) diffusion checkpoint once."""
    models = {}
    for name, path in paths.items():
        model = load_model(path)
        if not isinstance(model, LatentDiffusion):
            raise ValueError(f"{path} holds a {type(model).__name__}, not a diffusion model")
        models[name] = model
    return models


def evaluate(
    data_dir: Path,
    models: dict[str, LatentDiffusion],
    *,
    samplers: tuple[str, ...] = ("ddim", "dpmpp_2m", "heun", "ddpm"),
    steps: tuple[int, ...] = (1, 2, 4, 8, 16),
    n_samples: int = 500,
) -> list[SamplerScore]:
    """Sample every model with every sampler and step count; score against the test set."""
    data_cfg = load_config(ToyDataConfig, data_dir / "data.yaml")
    test = _load_split(data_dir, "test")[:n_samples]
    seeds = torch.arange(len(test))
    scores: list[SamplerScore] = []
    noise = np.random.default_rng(0).standard_normal(test.shape).astype(np.float32)
    scores.append(
        SamplerScore(
            "gaussian noise",
            "-",
            0,
            0,
            **score_samples(noise, test, data_cfg),
            seconds=0.0,
            macs_per_sample=0.0,
        )
    )
    for name, model in models.items():
        per_nfe, decode = (
            diffusion_macs(model, data_cfg.length),
            decoder_macs(model, data_cfg.length),
        )
        frames = data_cfg.length // model.downsample
        for sampler in samplers:
            for n in steps:
                start = time.perf_counter()
                result = model.sample(len(test), frames, steps=n, sampler=sampler, seeds=seeds)
                seconds = time.perf_counter() - start
                metrics = score_samples(result.x.numpy(), test, data_cfg)
                scores.append(
                    SamplerScore(
                        name,
                        sampler,
                        n,
                        result.nfe,
                        **metrics,
                        seconds=seconds,
                        macs_per_sample=result.nfe * per_nfe + decode,
                    )
                )
    return scores


def model_summary(models: dict[str, LatentDiffusion], length: int) -> list[dict[str, float | str]]:
    """Parameters and per-evaluation MACs of each model."""
    rows = []
    for name, model in models.items():
        rows.append(
            {
                "model": name,
                "denoiser_params": count_parameters(model.denoiser),
                "autoencoder_params": count_parameters(model.autoencoder)
                if model.autoencoder
                else 0,
                "macs_per_nfe": diffusion_macs(model, length),
                "latent_shape": f"{model.channels}x{length // model.downsample}",
            }
        )
    return rows
