"""Causal speech-enhancement models on compressed STFT features.

Every model encodes the noisy signal's compressed complex STFT features (``Stft.to_features``,
2F channels) with a causal conditioning encoder, and generates clean *target* features: either the
compressed complex features ("complex" target, 2F channels) or the compressed magnitudes
``|X|^c`` ("magnitude" target, F channels, resynthesised with the noisy phase).

Three kinds share the STFT front end, the conditioning encoder and the backbone config:

- ``latent_se``: a frozen causal autoencoder maps clean target features to latents at a lower
  frame rate. A predictive head (a causal TCN) regresses the clean latent ``z_pred`` from the
  encoded noisy signal, and a conditional diffusion model refines it: it generates the residual
  ``z - z_pred`` conditioned on the encoder output and ``z_pred``, starting at the small noise level
  ``sigma_max`` (a correction diffusion as in StoRM), so 1-4 steps suffice. With the default
  ``head: mask`` the head estimates a gain on the noisy magnitudes, ``z_pred`` is the autoencoder
  latent of that estimate, and the output is ``estimate + D(z_pred + r) - D(z_pred)`` (``D`` the
  decoder, ``r`` the sampled residual), so the autoencoder's reconstruction error of the estimate
  cancels. ``steps=0`` keeps the predictive estimate alone. With ``hybrid: false`` the diffusion
  generates the latent itself from noise at ``sigma_max``, without a predictive head.
- ``stft_diffusion``: the same conditional diffusion directly over the target features (no
  autoencoder; one "latent" frame per STFT frame).
- ``predictive``: no diffusion; the conditioning encoder and a TCN regress the target features.

``stages`` > 1 gives the diffusion of ``latent_se`` / ``stft_diffusion`` one denoiser TCN per
noise-level interval (:mod:`latentdiff.core.stages`): a call costs one TCN, the parameters grow
``stages`` times, and it still streams, as every sampler evaluation runs at a fixed noise level.

Initial sampling noise is drawn per frame from ``mix_seed(seed, frame_index)``, so any split of a
signal into frame-aligned chunks draws the same noise. Deterministic samplers (ddim, dpmpp_2m,
heun) keep this property; ddpm's fresh per-step noise is drawn per utterance instead.

Latency (DNS rule): STFT window + hop plus the lookahead of the network, traced layer by layer
(see ``lookahead_frames``), counted in STFT hops.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentdiff.core.autoencoder import (
    Autoencoder1D,
    AutoencoderConfig,
    _last_input_frame,
    pad_to_multiple,
)
from latentdiff.core.config import from_dict, to_dict
from latentdiff.core.diffusion import Denoiser, DiffusionConfig, get_sigmas
from latentdiff.core.layers import CausalConv1d, ChannelLayerNorm
from latentdiff.core.models import load_model, register_model
from latentdiff.core.nets import (
    BackboneConfig,
    CausalTCN,
    build_backbone,
    count_macs,
    count_parameters,
)
from latentdiff.core.random import mix_seed, randn_seeded
from latentdiff.core.samplers import SAMPLERS
from latentdiff.core.stages import StagedBackbone, stage_boundaries
from latentdiff.se.stft import Stft, StftConfig

MODEL_KINDS = ("latent_se", "predictive", "stft_diffusion")
TARGETS = ("complex", "magnitude")
HEADS = ("mask", "mapping")
SPEC_KIND = "se_model"


@dataclass
class CondEncoderConfig:
    """Causal conv encoder of the noisy features."""

    channels: int = 128
    out_channels: int = 64
    res_blocks: int = 2
    kernel_size: int = 3


@dataclass
class SEModelConfig:
    """One speech-enhancement model; ``kind`` picks the variant (see the module docstring)."""

    kind: str = "latent_se"
    target: str = "complex"  # clean features generated: see ``target_features``
    stft: StftConfig = field(default_factory=StftConfig)
    cond_encoder: CondEncoderConfig = field(default_factory=CondEncoderConfig)
    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    diffusion: DiffusionConfig = field(
        default_factory=lambda: DiffusionConfig(
            sigma_data=0.5, sigma_min=0.01, sigma_max=1.0, p_mean=-1.2, p_std=1.0, steps=2
        )
    )
    head: str = "mask"  # predictive estimate: "mask" on the noisy features, or "mapping"
    hybrid: bool = True  # predictive head + correction diffusion (latent_se, stft_diffusion)
    predictive_weight: float = 1.0  # weight of the predictive loss next to the diffusion loss
    stages: int = 1  # denoiser TCNs, one per noise-level interval (diffusion kinds)

    def __post_init__(self) -> None:
        if self.kind not in MODEL_KINDS:
            raise ValueError(f"kind must be one of {MODEL_KINDS}, got {self.kind!r}")
        if self.target not in TARGETS:
            raise ValueError(f"target must be one of {TARGETS}, got {self.target!r}")
        if self.head not in HEADS:
            raise ValueError(f"head must be one of {HEADS}, got {self.head!r}")
        if self.backbone.name != "tcn":
            raise ValueError("speech-enhancement models need the causal 'tcn' backbone")
        if self.stages < 1 or (self.kind == "predictive" and self.stages != 1):
            raise ValueError(f"stages must be >= 1 (1 for a predictive model), got {self.stages}")


def target_channels(stft: Stft, target: str) -> int:
    """Channels of ``target`` features: 2F for "complex", F for "magnitude"."""
    return stft.n_freqs * (2 if target == "complex" else 1)


def target_features(stft: Stft, spec: Tensor, target: str) -> Tensor:
    """(B, F, frames) complex spectrum -> the features a model generates.

    "complex": compressed complex features ``Stft.to_features`` (B, 2F, frames); "magnitude":
    compressed magnitudes ``|X|^c`` (B, F, frames), resynthesised with the noisy phase.
    """
    return features_to_target(stft.to_features(spec), target)


def features_to_target(feats: Tensor, target: str) -> Tensor:
    """Compressed complex features (B, 2F, T) -> ``target`` features."""
    if target == "complex":
        return feats
    real, imag = feats.chunk(2, dim=1)
    return torch.sqrt(real.square() + imag.square())


def synthesis_spectrum(stft: Stft, feats: Tensor, noisy_spec: Tensor, target: str) -> Tensor:
    """Inverse of :func:`target_features`; "magnitude" takes the phase of ``noisy_spec``."""
    if target == "complex":
        return stft.from_features(feats)
    magnitude = feats.clamp_min(0.0).pow(1.0 / stft.cfg.compress)
    noisy_magnitude = noisy_spec.abs()
    unit = noisy_spec / noisy_magnitude.clamp_min(1e-12)
    phase = torch.where(noisy_magnitude > 0, unit, torch.ones_like(noisy_spec))
    return magnitude * phase


def condition_input(noisy_feats: Tensor) -> Tensor:
    """Noisy compressed features (B, 2F, T) -> the encoder input [Re; Im; log magnitude]."""
    magnitude = features_to_target(noisy_feats, "magnitude")
    return torch.cat([noisy_feats, torch.log(magnitude + 1e-3)], dim=1)


class _CausalResBlock(nn.Module):
    """norm -> SiLU -> dilated causal conv, plus identity."""

    def __init__(self, channels: int, kernel_size: int, dilation: int) -> None:
        super().__init__()
        self.norm = ChannelLayerNorm(channels)
        self.conv = CausalConv1d(channels, channels, kernel_size, dilation=dilation)

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(F.silu(self.norm(x)))

    def residual_body(self) -> list[nn.Module]:
        """The block computes ``x + body(x)`` with these layers as ``body``."""
        return [self.norm, nn.SiLU(), self.conv]


class CondEncoder(nn.Module):
    """Noisy features (B, in, T) -> conditioning (B, out, T / downsample), causal.

    The models feed it the compressed complex features and the log compressed magnitudes (3F
    channels): log magnitudes make gain estimation much faster to learn, Re/Im carry the phase.

    A strided block conv (kernel ``2 s``, lookahead ``s - 1``) summarises each block of ``s``
    frames, like the autoencoder's encoder, so both see the same future frames.
    """

    def __init__(self, in_channels: int, cfg: CondEncoderConfig, downsample: int) -> None:
        super().__init__()
        ch, k = cfg.channels, cfg.kernel_size
        layers: list[nn.Module] = [CausalConv1d(in_channels, ch, k)]
        layers += [_CausalResBlock(ch, k, 2**i) for i in range(cfg.res_blocks)]
        if downsample > 1:
            layers.append(
                CausalConv1d(ch, ch, 2 * downsample, stride=downsample, lookahead=downsample - 1)
            )
            layers += [_CausalResBlock(ch, k, 2**i) for i in range(cfg.res_blocks)]
        layers += [ChannelLayerNorm(ch), nn.SiLU(), CausalConv1d(ch, cfg.out_channels, 1)]
        self.layers = nn.Sequential(*layers)
        self.in_channels = in_channels
        self.out_channels = cfg.out_channels

    def forward(self, x: Tensor) -> Tensor:
        return self.layers(x)

    def last_input_frame(self, t: int) -> int:
        """Last input frame that output frame ``t`` depends on."""
        for layer in reversed(self.layers):
            if isinstance(layer, CausalConv1d):
                t = layer.last_input_frame(t)
        return t

    def history_frames(self) -> int:
        """Upper bound on the past input frames any output frame depends on."""
        return _history(self.layers, self._rate())

    def _rate(self) -> int:
        return max((m.stride for m in self.layers if isinstance(m, CausalConv1d)), default=1)


def _history(module: nn.Module, rate: int) -> int:
    """Upper bound on the left context of ``module``: its causal paddings, all at ``rate``."""
    return rate * sum(m.left_pad for m in module.modules() if isinstance(m, CausalConv1d))


def _zero_noise(x: Tensor) -> Tensor:
    return x.new_zeros(x.shape[0])


def frame_noise(seeds: Sequence[int], first_frame: int, frames: int, channels: int) -> Tensor:
    """(B, channels, frames) standard normal noise; frame ``i`` comes from ``mix_seed(seed, i)``."""
    rows = []
    for seed in seeds:
        frame_seeds = [mix_seed(seed, first_frame + i) for i in range(frames)]
        rows.append(randn_seeded(frame_seeds, (channels,)).T)
    return torch.stack(rows)


class StagedTCN(StagedBackbone):
    """Causal TCNs, one per noise-level interval, with the streaming interface of one TCN.

    A stream at one noise level runs one stage's TCN, so its state is that of a single TCN; every
    sampler evaluation of the streaming enhancer keeps its own state at its own fixed sigma.
    """

    def __init__(self, nets: list[CausalTCN], boundaries: list[float]) -> None:
        super().__init__(list(nets), boundaries)
        self.lookahead = nets[0].lookahead

    def tcn_for(self, c_noise: Tensor) -> CausalTCN:
        """The TCN of noise level ``c_noise`` (B,); ValueError if the batch spans stages."""
        stage = self.stage_index(c_noise)
        if bool((stage != stage[0]).any()):
            raise ValueError("a staged TCN streams one noise-level interval at a time")
        net = self.nets[int(stage[0])]
        assert isinstance(net, CausalTCN)
        return net

    def init_state(self, batch: int) -> list[Tensor]:
        """Zero streaming state of one stage (all stages have the same shapes)."""
        net = self.nets[0]
        assert isinstance(net, CausalTCN)
        return net.init_state(batch)

    def forward_stream(
        self,
        x_chunk: Tensor,
        c_noise: Tensor,
        state: list[Tensor],
        cond_chunk: Tensor | None = None,
        film: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """``CausalTCN.forward_stream`` of the stage of ``c_noise``."""
        return self.tcn_for(c_noise).forward_stream(x_chunk, c_noise, state, cond_chunk, film)


def _denoiser_net(cfg: SEModelConfig, channels: int, cond_channels: int) -> nn.Module:
    """The denoiser's TCN over ``channels``, or a :class:`StagedTCN` of ``cfg.stages`` of them."""
    nets = [
        build_backbone(cfg.backbone, channels, channels, cond_channels=cond_channels)
        for _ in range(cfg.stages)
    ]
    if cfg.stages == 1:
        return nets[0]
    return StagedTCN(nets, stage_boundaries(cfg.diffusion, cfg.stages))  # type: ignore[arg-type]


class SEModel(nn.Module, ABC):
    """Common front end: waveform <-> features, conditioning, cost and latency accounting."""

    def __init__(self, cfg: SEModelConfig, downsample: int) -> None:
        super().__init__()
        self.cfg = cfg
        self.stft = Stft(cfg.stft)
        self.feature_channels = 2 * self.stft.n_freqs
        self.target_channels = target_channels(self.stft, cfg.target)
        self.downsample = downsample
        self.cond_encoder = CondEncoder(
            self.feature_channels + self.stft.n_freqs, cfg.cond_encoder, downsample
        )

    # -- features

    def analyse(self, wave: Tensor) -> tuple[Tensor, Tensor]:
        """(B, N) waveform -> complex spectrum (B, F, frames) and padded features (B, 2F, T)."""
        spec = self.stft(wave)
        return spec, pad_to_multiple(self.stft.to_features(spec), self.downsample)[0]

    def target(self, wave: Tensor) -> Tensor:
        """(B, N) clean waveform -> padded target features (B, target_channels, T)."""
        feats = target_features(self.stft, self.stft(wave), self.cfg.target)
        return pad_to_multiple(feats, self.downsample)[0]

    def waveform(self, feats: Tensor, noisy_spec: Tensor, length: int) -> Tensor:
        """Target features (B, target_channels, >= frames) -> (B, length) waveform."""
        frames = noisy_spec.shape[-1]
        spec = synthesis_spectrum(self.stft, feats[..., :frames], noisy_spec, self.cfg.target)
        return self.stft.inverse(spec, length)

    def condition(self, noisy_feats: Tensor) -> Tensor:
        """Conditioning encoder over the noisy compressed [Re; Im; log magnitude] features."""
        return self.cond_encoder(condition_input(noisy_feats))

    @property
    def head_channels(self) -> int:
        """Output channels of the predictive network at the conditioning frame rate."""
        if self.cfg.head == "mask":
            return self.stft.n_freqs * self.downsample
        return self.target_channels

    def apply_mask(self, head_out: Tensor, noisy_feats: Tensor) -> Tensor:
        """Masked noisy target features: ``sigmoid(head_out)`` gains on every STFT frame and bin.

        ``head_out`` (B, s F, L) holds the gains of the ``s = downsample`` frames of each
        conditioning frame; "complex" targets apply the same gain to the real and imaginary parts.
        """
        b, _, length = head_out.shape
        s, n_freqs = self.downsample, self.stft.n_freqs
        gains = torch.sigmoid(head_out).reshape(b, s, n_freqs, length)
        gains = gains.permute(0, 2, 3, 1).reshape(b, n_freqs, length * s)
        if self.cfg.target == "complex":
            gains = gains.repeat(1, 2, 1)
        return gains * features_to_target(noisy_feats, self.cfg.target)

    def _estimate(self, head_out: Tensor, noisy_feats: Tensor) -> Tensor:
        """Predictive estimate of the target features (mask head), or the raw head output."""
        if self.cfg.head == "mask":
            return self.apply_mask(head_out, noisy_feats)
        return head_out

    # -- interface of every kind

    @property
    def sample_rate(self) -> int:
        return self.cfg.stft.sample_rate

    @property
    def default_steps(self) -> int:
        return 0

    def nfe(self, steps: int | None = None) -> int:
        """Denoiser evaluations per enhancement."""
        return 0

    def lookahead_frames(self, steps: int | None = None) -> int:
        """Future STFT frames (hops) any output frame depends on, traced through the layers."""
        last = [self._last_input_frame(t, steps) - t for t in range(self.downsample)]
        return max(max(last), 0)

    def latency_ms(self, steps: int | None = None) -> float:
        """Algorithmic latency: STFT window + hop (DNS rule) plus the network's lookahead."""
        hop_ms = 1000.0 * self.cfg.stft.hop / self.cfg.stft.sample_rate
        return self.stft.latency_ms + self.lookahead_frames(steps) * hop_ms

    def history_samples(self, steps: int | None = None) -> int:
        """Upper bound on the past input samples an output sample depends on."""
        return (self._history_frames(steps) + 2) * self.cfg.stft.hop + self.cfg.stft.win

    def macs_per_second(self, steps: int | None = None) -> dict[str, float]:
        """MACs of enhancing one second of audio, by part (FFTs not counted), and their total."""
        parts = self._macs(self.stft.frames_for(self.sample_rate), steps)
        return {**parts, "total": float(sum(parts.values()))}

    def parameter_counts(self) -> dict[str, int]:
        """Parameters by part, and in total."""
        parts = {name: count_parameters(m) for name, m in self.named_children() if name != "stft"}
        return {**parts, "total": count_parameters(self)}

    @abstractmethod
    def _last_input_frame(self, t: int, steps: int | None) -> int:
        """Last noisy feature frame that output feature frame ``t`` depends on."""

    @abstractmethod
    def _history_frames(self, steps: int | None) -> int:
        """Upper bound on the past feature frames an output frame depends on."""

    @abstractmethod
    def _macs(self, frames: int, steps: int | None) -> dict[str, float]:
        """MACs by part for ``frames`` feature frames of input."""

    @abstractmethod
    def enhance_features(
        self, noisy: Tensor, seeds: Sequence[int], steps: int | None, first_frame: int
    ) -> Tensor:
        """Padded noisy features (B, 2F, T) -> estimated target features (B, channels, T)."""

    @abstractmethod
    def loss(self, noisy: Tensor, clean: Tensor, seeds: Tensor) -> tuple[Tensor, dict[str, float]]:
        """Training loss for (B, N) noisy and clean waveforms and per-sample noise seeds."""

    def forward(
        self, noisy: Tensor, clean: Tensor, seeds: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        """The training objective (:meth:`loss`), so data-parallel wrappers see a forward call."""
        return self.loss(noisy, clean, seeds)

    @torch.no_grad()
    def enhance(
        self,
        noisy: Tensor,
        seeds: Sequence[int],
        steps: int | None = None,
        first_frame: int = 0,
    ) -> Tensor:
        """(B, N) noisy waveform -> (B, N) enhanced waveform.

        ``first_frame`` is the index of the first latent frame within the whole signal, so that a
        chunk starting at a latent-frame boundary draws the same noise as the whole signal does.
        """
        if len(seeds) != noisy.shape[0]:
            raise ValueError(f"need one seed per signal: {noisy.shape[0]} signals, {len(seeds)}")
        spec, feats = self.analyse(noisy)
        clean = self.enhance_features(feats, seeds, steps, first_frame)
        return self.waveform(clean, spec, noisy.shape[-1])


class PredictiveSE(SEModel):
    """Conditioning encoder + TCN regressing the clean features directly (no diffusion)."""

    def __init__(self, cfg: SEModelConfig) -> None:
        super().__init__(cfg, downsample=1)
        self.net = build_backbone(cfg.backbone, self.cond_encoder.out_channels, self.head_channels)

    def _predict(self, feats: Tensor) -> Tensor:
        cond = self.condition(feats)
        return self._estimate(self.net(cond, _zero_noise(cond)), feats)

    def enhance_features(
        self, noisy: Tensor, seeds: Sequence[int], steps: int | None, first_frame: int
    ) -> Tensor:
        return self._predict(noisy)

    def loss(self, noisy: Tensor, clean: Tensor, seeds: Tensor) -> tuple[Tensor, dict[str, float]]:
        clean_feats = self.target(clean)
        estimate = self._predict(self.analyse(noisy)[1])
        mse = F.mse_loss(estimate, clean_feats)
        return mse, {"feature_mse": float(mse.detach())}

    def _last_input_frame(self, t: int, steps: int | None) -> int:
        return max(self.cond_encoder.last_input_frame(t + self.net.lookahead), t)

    def _history_frames(self, steps: int | None) -> int:
        return self.cond_encoder.history_frames() + _history(self.net, 1)

    def _macs(self, frames: int, steps: int | None) -> dict[str, float]:
        feats = torch.zeros(1, self.cond_encoder.in_channels, frames)
        cond = torch.zeros(1, self.cond_encoder.out_channels, frames)
        return {
            "cond_encoder": float(count_macs(self.cond_encoder, feats)),
            "net": float(count_macs(self.net, cond, torch.zeros(1))),
        }


class LatentSE(SEModel):
    """Conditional (correction) diffusion over autoencoder latents, or over features without one."""

    def __init__(self, cfg: SEModelConfig, autoencoder: Autoencoder1D | None) -> None:
        if (cfg.kind == "latent_se") != (autoencoder is not None):
            raise ValueError(
                f"kind {cfg.kind!r} {'needs' if autoencoder is None else 'takes no'} autoencoder"
            )
        super().__init__(cfg, downsample=autoencoder.downsample if autoencoder else 1)
        self.autoencoder = autoencoder
        if autoencoder is not None:
            if autoencoder.cfg.in_channels != self.target_channels or not autoencoder.cfg.causal:
                raise ValueError(
                    f"the autoencoder must be causal with in_channels={self.target_channels} "
                    f"(target {cfg.target!r})"
                )
            autoencoder.requires_grad_(False)
            autoencoder.eval()
        self.channels = autoencoder.cfg.latent_channels if autoencoder else self.target_channels
        cond_ch = self.cond_encoder.out_channels
        head_out = self.head_channels if cfg.head == "mask" else self.channels  # mapping: latent
        self.head = build_backbone(cfg.backbone, cond_ch, head_out) if cfg.hybrid else None
        net = _denoiser_net(cfg, self.channels, cond_ch + (self.channels if cfg.hybrid else 0))
        self.denoiser = Denoiser(net, cfg.diffusion)

    def train(self, mode: bool = True) -> LatentSE:
        super().train(mode)
        if self.autoencoder is not None:
            self.autoencoder.eval()
        return self

    @property
    def default_steps(self) -> int:
        return self.cfg.diffusion.steps

    def nfe(self, steps: int | None = None) -> int:
        steps = self.default_steps if steps is None else steps
        if steps == 0:
            return 0
        return 2 * steps - 1 if self.cfg.diffusion.sampler == "heun" else steps

    def _denoiser_tcn(self) -> nn.Module:
        """One denoiser TCN (every stage's has the same shape)."""
        net = self.denoiser.net
        return net.nets[0] if isinstance(net, StagedBackbone) else net

    def _sigma_range(self) -> tuple[float, float]:
        return self.cfg.diffusion.sigma_min, self.cfg.diffusion.sigma_max

    # -- spaces

    def encode(self, feats: Tensor) -> Tensor:
        """Clean features -> diffusion target space (normalised latent, or the features)."""
        if self.autoencoder is None:
            return feats
        with torch.no_grad():
            return self.autoencoder.encode(feats)

    def decode(self, z: Tensor) -> Tensor:
        return z if self.autoencoder is None else self.autoencoder.decode(z)

    def _condition(self, noisy_feats: Tensor) -> tuple[Tensor, Tensor | None]:
        """Conditioning, and the predictive estimate (target features for a mask head, else the
        head's latent), or None without a head."""
        cond = self.condition(noisy_feats)
        if self.head is None:
            return cond, None
        return cond, self._estimate(self.head(cond, _zero_noise(cond)), noisy_feats)

    def _anchor(self, estimate: Tensor) -> Tensor:
        """Predictive estimate -> the latent the correction diffusion starts from."""
        return self.encode(estimate) if self.cfg.head == "mask" else estimate

    # -- training

    def loss(self, noisy: Tensor, clean: Tensor, seeds: Tensor) -> tuple[Tensor, dict[str, float]]:
        clean_feats = self.target(clean)
        target = self.encode(clean_feats)
        cond, estimate = self._condition(self.analyse(noisy)[1])
        if estimate is None:
            return self.denoiser.loss(target, seeds, cond=cond)
        # A mask head is trained on the features it masks, a mapping head on the latent.
        pred_loss = F.mse_loss(estimate, clean_feats if self.cfg.head == "mask" else target)
        anchor = self._anchor(estimate).detach()
        diff_loss, stats = self.denoiser.loss(
            target - anchor, seeds, cond=torch.cat([cond, anchor], dim=1)
        )
        total = diff_loss + self.cfg.predictive_weight * pred_loss
        stats = {**stats, "diffusion_loss": stats["loss"], "pred_mse": float(pred_loss.detach())}
        return total, stats

    # -- inference

    def enhance_features(
        self, noisy: Tensor, seeds: Sequence[int], steps: int | None, first_frame: int
    ) -> Tensor:
        steps = self.default_steps if steps is None else steps
        if steps < 0:
            raise ValueError(f"steps must be >= 0, got {steps}")
        cond, estimate = self._condition(noisy)
        if steps == 0:
            if estimate is None:
                raise ValueError("steps=0 needs the predictive head of a hybrid model")
            return estimate if self.cfg.head == "mask" else self.decode(estimate)
        z_pred = self._anchor(estimate) if estimate is not None else None
        dcfg = self.cfg.diffusion
        sigmas = get_sigmas(dcfg.schedule, steps, *self._sigma_range()).to(noisy.device)
        noise = frame_noise(seeds, first_frame, cond.shape[-1], self.channels).to(noisy)
        full_cond = cond if z_pred is None else torch.cat([cond, z_pred], dim=1)

        def denoise(x: Tensor, sigma: Tensor) -> Tensor:
            return self.denoiser(x, sigma, cond=full_cond)

        seed_tensor = torch.tensor(list(seeds), dtype=torch.int64)
        result = SAMPLERS[dcfg.sampler](
            denoise, float(sigmas[0]) * noise, sigmas, seeds=seed_tensor
        )
        if z_pred is None:
            return self.decode(result.x)
        if self.cfg.head == "mask" and self.autoencoder is not None:
            # Add the decoded correction to the estimate: the autoencoder's own reconstruction
            # error of the estimate cancels instead of replacing the estimate's detail.
            return estimate + self.decode(z_pred + result.x) - self.decode(z_pred)
        return self.decode(z_pred + result.x)

    # -- accounting

    def _decoder_layers(self) -> list[nn.Module]:
        return list(self.autoencoder.decoder) if self.autoencoder is not None else []

    def _last_input_frame(self, t: int, steps: int | None) -> int:
        nfe = self.nfe(steps)
        if nfe == 0 and self.cfg.head == "mask":
            return self._estimate_last_frame(t)
        latent = _last_input_frame(self._decoder_layers(), t) + nfe * self.denoiser.net.lookahead
        last = self.cond_encoder.last_input_frame(latent)
        if self.head is None:
            return last
        if self.cfg.head == "mapping":
            return max(last, self.cond_encoder.last_input_frame(latent + self.head.lookahead))
        encoder = list(self.autoencoder.encoder) if self.autoencoder is not None else []
        frame = _last_input_frame(encoder, latent)  # last masked frame behind that latent frame
        # The output also adds the estimate's own frame t (see enhance_features).
        return max(last, self._estimate_last_frame(frame), self._estimate_last_frame(t))

    def _estimate_last_frame(self, t: int) -> int:
        """Last noisy frame behind frame ``t`` of the mask head's estimate."""
        assert self.head is not None
        cond_frame = t // self.downsample + self.head.lookahead
        return max(self.cond_encoder.last_input_frame(cond_frame), t)

    def _history_frames(self, steps: int | None) -> int:
        rate = self.downsample
        latent_rate = _history(self._denoiser_tcn(), rate) * self.nfe(steps)
        if self.head is not None:
            latent_rate += _history(self.head, rate)
        if self.autoencoder is not None:
            latent_rate += _history(self.autoencoder, rate)
        return self.cond_encoder.history_frames() + latent_rate

    def _macs(self, frames: int, steps: int | None) -> dict[str, float]:
        frames += -frames % self.downsample
        latent = frames // self.downsample
        cond_ch = self.cond_encoder.out_channels
        feats = torch.zeros(1, self.cond_encoder.in_channels, frames)
        cond = torch.zeros(1, cond_ch, latent)
        z = torch.zeros(1, self.channels, latent)
        full_cond = torch.zeros(1, self.denoiser.net.cond_channels, latent)
        parts = {"cond_encoder": float(count_macs(self.cond_encoder, feats))}
        if self.head is not None:
            parts["predictive_head"] = float(count_macs(self.head, cond, torch.zeros(1)))
        nfe = self.nfe(steps)
        per_nfe = count_macs(self.denoiser.net, z, torch.zeros(1), full_cond)
        parts["denoiser"] = float(per_nfe * nfe)
        if self.autoencoder is not None and self.cfg.head == "mask" and nfe > 0:
            estimate = torch.zeros(1, self.target_channels, frames)
            parts["encoder"] = float(count_macs(self.autoencoder.encoder, estimate))
        if self.autoencoder is not None and (nfe > 0 or self.cfg.head == "mapping"):
            decodes = 2 if self.cfg.head == "mask" else 1  # D(z_pred + r) and D(z_pred)
            parts["decoder"] = decodes * float(count_macs(self.autoencoder.decoder, z))
        return parts


def build_se_model(cfg: SEModelConfig, autoencoder: Autoencoder1D | None = None) -> SEModel:
    """The model of ``cfg.kind`` (``latent_se`` needs a trained ``autoencoder``)."""
    if cfg.kind == "predictive":
        if autoencoder is not None:
            raise ValueError("the predictive model takes no autoencoder")
        return PredictiveSE(cfg)
    return LatentSE(cfg, autoencoder)


def se_model_spec(model: SEModel) -> dict[str, Any]:
    """Checkpoint spec rebuilding ``model`` through :func:`latentdiff.core.models.load_model`."""
    ae = model.autoencoder if isinstance(model, LatentSE) else None
    return {
        "kind": SPEC_KIND,
        "config": to_dict(model.cfg),
        "autoencoder": to_dict(ae.cfg) if ae is not None else None,
    }


def load_diffusion_enhancer(path: str | Path, sample_rate: int) -> LatentSE:
    """The diffusion enhancer (latent_se / stft_diffusion) at ``path``, for a training stage on
    ``sample_rate`` data; ValueError for another model kind or another rate."""
    model = load_model(path)
    if not isinstance(model, LatentSE):
        raise ValueError(f"{path} is not a diffusion enhancer (latent_se / stft_diffusion)")
    if sample_rate != model.sample_rate:
        raise ValueError("data.sample_rate differs from the enhancer's sample rate")
    return model


@register_model(SPEC_KIND)
def _build_from_spec(spec: dict[str, Any]) -> nn.Module:
    ae_cfg = spec.get("autoencoder")
    ae = Autoencoder1D(from_dict(AutoencoderConfig, ae_cfg)) if ae_cfg is not None else None
    return build_se_model(from_dict(SEModelConfig, spec["config"]), ae)
