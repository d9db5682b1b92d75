"""Training stages of the speech-enhancement track: the feature autoencoder, then a model.

Both stages read random fixed-length segments from a Kaldi data dir (wav.scp noisy, spk1.scp
clean), apply a per-sample random gain (drawn from the trainer's per-sample seeds, the same for
noisy and clean), and train with the core Trainer (EMA, clipping, warm-up, checkpoints, resume).
Each stage ends by writing ``<exp_dir>/final.pt``: EMA weights plus the model spec, loadable with
``latentdiff.core.models.load_model``.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig, pad_to_multiple
from latentdiff.core.config import load_config, to_dict
from latentdiff.core.models import autoencoder_spec, load_model, save_final
from latentdiff.core.random import mix_seeds, rand_seeded
from latentdiff.core.training import TrainerConfig, fit_experiment
from latentdiff.se.features import SegmentConfig, SegmentDataset
from latentdiff.se.model import (
    TARGETS,
    SEModel,
    SEModelConfig,
    build_se_model,
    se_model_spec,
    target_channels,
    target_features,
)
from latentdiff.se.stft import Stft, StftConfig

_GAIN_STREAM = 0x6A17
_STATS_SEGMENTS = 256


@dataclass
class SEAutoencoderExperiment:
    """Config file of the autoencoder stage.

    ``in_channels`` must be 2F ("complex" target) or F ("magnitude"), F = n_fft // 2 + 1.
    """

    target: str = "complex"  # see latentdiff.se.model.target_features
    stft: StftConfig = field(default_factory=StftConfig)
    autoencoder: AutoencoderConfig = field(
        default_factory=lambda: AutoencoderConfig(
            in_channels=162, latent_channels=24, channels=96, strides=(2,)
        )
    )
    data: SegmentConfig = field(default_factory=SegmentConfig)
    gain_db: float = 10.0  # random training gain in [-gain_db, +gain_db] dB
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


@dataclass
class SEModelExperiment:
    """Config file of a model stage (latent_se, predictive or stft_diffusion)."""

    model: SEModelConfig = field(default_factory=SEModelConfig)
    data: SegmentConfig = field(default_factory=SegmentConfig)
    gain_db: float = 10.0
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def random_gain(seeds: Tensor, gain_db: float) -> Tensor:
    """Per-sample linear gains (B, 1), uniform in dB over [-gain_db, gain_db], from ``seeds``."""
    uniform = rand_seeded(mix_seeds(seeds, _GAIN_STREAM), 1)
    return 10.0 ** ((2.0 * uniform - 1.0) * gain_db / 20.0)


def clean_features(stft: Stft, wave: Tensor, target: str, downsample: int) -> Tensor:
    """(B, N) waveform -> ``target`` features (B, C, frames) padded to ``downsample``."""
    stft = stft.to(wave.device)
    return pad_to_multiple(target_features(stft, stft(wave), target), downsample)[0]


def train_se_autoencoder(
    config: Path, data_dir: Path, exp_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Train the causal feature autoencoder on clean speech and fit its latent statistics.

    ``overrides`` are ``key.path=value`` changes to the config file (see ``apply_overrides``).
    """
    exp = load_config(SEAutoencoderExperiment, config, overrides)
    if exp.target not in TARGETS:
        raise ValueError(f"target must be one of {TARGETS}, got {exp.target!r}")
    stft = Stft(exp.stft)
    n_features = target_channels(stft, exp.target)
    if exp.autoencoder.in_channels != n_features:
        raise ValueError(
            f"autoencoder.in_channels must be {n_features} for the {exp.target} target with "
            f"n_fft={exp.stft.n_fft}, got {exp.autoencoder.in_channels}"
        )
    if exp.data.sample_rate != exp.stft.sample_rate:
        raise ValueError("data.sample_rate and stft.sample_rate differ")
    torch.manual_seed(exp.trainer.seed)
    model = Autoencoder1D(exp.autoencoder)
    dataset = SegmentDataset(data_dir, exp.data)

    def loss_fn(net: nn.Module, batch: list[Tensor], seeds: Tensor) -> tuple[Tensor, dict]:
        clean = batch[1] * random_gain(seeds, exp.gain_db).to(batch[1])
        return net(clean_features(stft, clean, exp.target, model.downsample))

    spec = autoencoder_spec(model)
    stats, ema = fit_experiment(model, loss_fn, dataset, exp, exp_dir, spec)
    assert isinstance(ema, Autoencoder1D)
    count = min(len(dataset), _STATS_SEGMENTS)
    device = next(ema.parameters()).device
    ema.fit_latent_stats(
        clean_features(
            stft,
            torch.stack([dataset[i][1] for i in range(start, min(start + 32, count))]).to(device),
            exp.target,
            ema.downsample,
        )
        for start in range(0, count, 32)
    )
    save_final(exp_dir, ema, spec)
    return stats


def train_se_model(
    config: Path,
    data_dir: Path,
    exp_dir: Path,
    autoencoder: Path | None = None,
    overrides: Sequence[str] = (),
) -> dict[str, float]:
    """Train a speech-enhancement model (``latent_se`` needs the autoencoder checkpoint)."""
    exp = load_config(SEModelExperiment, config, overrides)
    if exp.data.sample_rate != exp.model.stft.sample_rate:
        raise ValueError("data.sample_rate and model.stft.sample_rate differ")
    if (exp.model.kind == "latent_se") != (autoencoder is not None):
        raise ValueError(
            f"model kind {exp.model.kind!r} "
            + ("needs --autoencoder" if autoencoder is None else "takes no --autoencoder")
        )
    torch.manual_seed(exp.trainer.seed)
    ae = load_model(autoencoder) if autoencoder is not None else None
    if ae is not None and not isinstance(ae, Autoencoder1D):
        raise ValueError(f"{autoencoder} does not hold an autoencoder")
    model = build_se_model(exp.model, ae)
    dataset = SegmentDataset(data_dir, exp.data)

    def loss_fn(net: nn.Module, batch: list[Tensor], seeds: Tensor) -> tuple[Tensor, dict]:
        gain = random_gain(seeds, exp.gain_db).to(batch[0])
        return net(batch[0] * gain, batch[1] * gain, seeds)

    spec = se_model_spec(model)
    stats, ema = fit_experiment(model, loss_fn, dataset, exp, exp_dir, spec)
    save_final(exp_dir, ema, spec)
    return stats


def model_report(model: SEModel, steps: int | None = None) -> dict[str, Any]:
    """Kind, parameters, MACs per second of audio, NFE and latency of a model."""
    return {
        "kind": model.cfg.kind,
        "parameters": model.parameter_counts(),
        "macs_per_second": model.macs_per_second(steps),
        "nfe": model.nfe(steps),
        "lookahead_frames": model.lookahead_frames(steps),
        "latency_ms": model.latency_ms(steps),
        "config": to_dict(model.cfg),
    }
