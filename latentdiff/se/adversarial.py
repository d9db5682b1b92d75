"""Adversarial fine-tuning of a trained speech enhancer (a diffusion-GAN hybrid).

The enhancer's full sampling path (conditioning, predictive estimate, the few-step correction
diffusion with its seeded noise, the decoder, synthesis) runs differentiably on training segments.
Its output waveform is trained with

- a multi-resolution STFT loss against the clean speech (spectral convergence + log magnitude);
- a least-squares adversarial loss from a multi-resolution spectral discriminator (one small 2-D
  CNN per STFT resolution over log magnitudes);
- feature matching on the discriminator's hidden layers;
- optionally (``estoi_weight``), ``1 -`` a differentiable ESTOI
  (:func:`latentdiff.se.intelligibility.soft_estoi`) against the clean speech;
- optionally (``residual_noise_weight``), an asymmetric magnitude loss that only penalises
  energy above the clean speech's (:func:`residual_noise_loss`): residual noise, which
  non-intrusive quality measures such as DNSMOS BAK punish most.

Generator and discriminator share one optimiser step. The generator's terms see the
discriminator through detached copies of its weights (``torch.func.functional_call``), and the
discriminator's term sees a detached generator output, so each network only gets its own
gradients. That keeps the core ``Trainer`` (EMA, checkpoints, exact resume, divergence guard).
By default only the correction denoiser and the autoencoder's decoder are trained
(``trainable``); the predictive head and the conditioning encoder can be added. The architecture
never changes, so the streaming engine and the ONNX export work unchanged on the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import functional_call
from torch.nn import functional as F

from latentdiff.core.config import load_config
from latentdiff.core.models import save_final
from latentdiff.core.training import TrainerConfig, fit_experiment
from latentdiff.se.features import SegmentConfig, SegmentDataset
from latentdiff.se.intelligibility import soft_estoi
from latentdiff.se.model import LatentSE, load_diffusion_enhancer, se_model_spec

TRAINABLE = ("denoiser", "decoder", "head", "cond_encoder")
DEFAULT_TRAINABLE = ("denoiser", "decoder")


@dataclass
class AdversarialConfig:
    """Loss weights, discriminator shape and which parts of the enhancer are trained."""

    resolutions: tuple[tuple[int, int], ...] = ((512, 128), (1024, 256), (256, 64))
    disc_channels: int = 16
    stft_weight: float = 1.0
    adversarial_weight: float = 0.1
    feature_weight: float = 1.0
    estoi_weight: float = 0.0
    residual_noise_weight: float = 0.0
    trainable: tuple[str, ...] = DEFAULT_TRAINABLE

    def __post_init__(self) -> None:
        unknown = set(self.trainable) - set(TRAINABLE)
        if unknown or not self.trainable:
            raise ValueError(f"trainable must be a non-empty subset of {TRAINABLE}")


@dataclass
class SEAdversarialExperiment:
    """Config file of the adversarial fine-tuning stage (the enhancer comes from the CLI)."""

    adversarial: AdversarialConfig = field(default_factory=AdversarialConfig)
    data: SegmentConfig = field(default_factory=SegmentConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)


def log_magnitude(wave: Tensor, n_fft: int, hop: int, floor: float = 1e-5) -> Tensor:
    """(B, N) -> (B, 1, F, frames) log magnitude spectrogram (Hann window), magnitudes floored."""
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave, n_fft, hop, window=window, return_complex=True)
    return torch.log(spec.abs().clamp_min(floor)).unsqueeze(1)


class SpectralDiscriminator(nn.Module):
    """One 2-D CNN over the log magnitude at one STFT resolution; returns its layers' outputs."""

    def __init__(self, n_fft: int, hop: int, channels: int) -> None:
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        shapes = [(1, channels, 1), (channels, channels, 2), (channels, channels, 2)]
        self.layers = nn.ModuleList(
            nn.Conv2d(c_in, c_out, (3, 9), stride=(stride, 1), padding=(1, 4))
            for c_in, c_out, stride in shapes
        )
        self.out = nn.Conv2d(channels, 1, 3, padding=1)

    def forward(self, wave: Tensor) -> list[Tensor]:
        h = log_magnitude(wave, self.n_fft, self.hop)
        features = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            features.append(h)
        return [*features, self.out(h)]


class MultiResolutionDiscriminator(nn.Module):
    """Spectral discriminators at several STFT resolutions."""

    def __init__(self, cfg: AdversarialConfig) -> None:
        super().__init__()
        self.discriminators = nn.ModuleList(
            SpectralDiscriminator(n_fft, hop, cfg.disc_channels) for n_fft, hop in cfg.resolutions
        )

    def forward(self, wave: Tensor) -> list[list[Tensor]]:
        return [d(wave) for d in self.discriminators]


def stft_loss(estimate: Tensor, clean: Tensor, resolutions: Sequence[tuple[int, int]]) -> Tensor:
    """Multi-resolution STFT loss: spectral convergence + L1 of log magnitudes, averaged."""
    total = estimate.new_zeros(())
    for n_fft, hop in resolutions:
        est, ref = log_magnitude(estimate, n_fft, hop).exp(), log_magnitude(clean, n_fft, hop).exp()
        convergence = torch.linalg.norm(ref - est) / torch.linalg.norm(ref).clamp_min(1e-8)
        total = total + convergence + F.l1_loss(est.log(), ref.log())
    return total / len(resolutions)


def residual_noise_loss(
    estimate: Tensor, clean: Tensor, n_fft: int = 512, hop: int = 128, compress: float = 0.3
) -> Tensor:
    """Mean squared excess of the estimate's compressed magnitudes over the clean speech's.

    Only over-estimation counts (residual noise, not speech distortion); ``|X|^compress``
    weighs quiet time-frequency bins, where residual noise is audible, like loud ones.
    """

    def compressed(wave: Tensor) -> Tensor:
        return (compress * log_magnitude(wave, n_fft, hop, floor=1e-8)).exp()

    return F.relu(compressed(estimate) - compressed(clean)).pow(2).mean()


class AdversarialSE(nn.Module):
    """Enhancer + discriminator; ``forward`` is the joint training loss (see the module doc)."""

    def __init__(self, enhancer: LatentSE, cfg: AdversarialConfig) -> None:
        super().__init__()
        decoder = enhancer.autoencoder.decoder if enhancer.autoencoder is not None else None
        parts = {
            "denoiser": enhancer.denoiser,
            "decoder": decoder,
            "head": enhancer.head,
            "cond_encoder": enhancer.cond_encoder,
        }
        trainable = tuple(name for name in cfg.trainable if parts.get(name) is not None)
        if not trainable:
            raise ValueError(f"this enhancer has none of the trainable parts {cfg.trainable}")
        cfg = replace(cfg, trainable=trainable)
        self.enhancer = enhancer
        self.discriminator = MultiResolutionDiscriminator(cfg)
        self.cfg = cfg
        enhancer.requires_grad_(False)
        for name in trainable:
            parts[name].requires_grad_(True)

    def enhance_differentiably(self, noisy: Tensor, seeds: Tensor) -> Tensor:
        """(B, N) noisy -> (B, N) enhanced, with gradients, at the enhancer's default steps."""
        spec, feats = self.enhancer.analyse(noisy)
        estimate = self.enhancer.enhance_features(feats, seeds.tolist(), None, 0)
        return self.enhancer.waveform(estimate, spec, noisy.shape[-1])

    def forward(
        self, noisy: Tensor, clean: Tensor, seeds: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        cfg = self.cfg
        fake = self.enhance_differentiably(noisy, seeds)
        # Discriminator: real -> 1, detached fake -> 0 (least squares).
        real_out = self.discriminator(clean)
        fake_out = self.discriminator(fake.detach())
        d_loss = sum(
            (r[-1] - 1).pow(2).mean() + f[-1].pow(2).mean()
            for r, f in zip(real_out, fake_out, strict=True)
        )
        # Generator: through frozen copies of the discriminator's weights.
        frozen = {name: p.detach() for name, p in self.discriminator.named_parameters()}
        fake_for_g = functional_call(self.discriminator, frozen, (fake,))
        adversarial = sum((f[-1] - 1).pow(2).mean() for f in fake_for_g)
        features = sum(
            F.l1_loss(ff, rf.detach())
            for f, r in zip(fake_for_g, real_out, strict=True)
            for ff, rf in zip(f[:-1], r[:-1], strict=True)
        )
        spectral = stft_loss(fake, clean, cfg.resolutions)
        g_loss = (
            cfg.stft_weight * spectral
            + cfg.adversarial_weight * adversarial
            + cfg.feature_weight * features
        )
        stats = {}
        if cfg.estoi_weight > 0.0:
            estoi = soft_estoi(fake, clean, self.enhancer.sample_rate).mean()
            g_loss = g_loss + cfg.estoi_weight * (1.0 - estoi)
            stats["estoi"] = float(estoi.detach())
        if cfg.residual_noise_weight > 0.0:
            residual = residual_noise_loss(fake, clean)
            g_loss = g_loss + cfg.residual_noise_weight * residual
            stats["residual_noise"] = float(residual.detach())
        stats |= {
            "stft": float(spectral.detach()),
            "adversarial": float(adversarial.detach()),
            "features": float(features.detach()),
            "discriminator": float(d_loss.detach()),
        }
        return g_loss + d_loss, stats


def train_se_adversarial(
    config: Path, enhancer: Path, data_dir: Path, exp_dir: Path, overrides: Sequence[str] = ()
) -> dict[str, float]:
    """Fine-tune the enhancer at ``enhancer`` adversarially; writes ``exp_dir/final.pt``."""
    exp = load_config(SEAdversarialExperiment, config, overrides)
    model = load_diffusion_enhancer(enhancer, exp.data.sample_rate)
    torch.manual_seed(exp.trainer.seed)
    joint = AdversarialSE(model, exp.adversarial)
    dataset = SegmentDataset(data_dir, exp.data)

    def loss_fn(net: nn.Module, batch: list[Tensor], seeds: Tensor) -> tuple[Tensor, dict]:
        return net(batch[0], batch[1], seeds)

    spec = se_model_spec(model)
    stats, ema = fit_experiment(joint, loss_fn, dataset, exp, exp_dir, spec)
    assert isinstance(ema, AdversarialSE)
    save_final(exp_dir, ema.enhancer.cpu(), spec)
    return stats
