"""Latent diffusion: a (frozen) autoencoder and a conditional diffusion model in its latent space.

With ``autoencoder=None`` the same class diffuses directly in data space, which is the baseline
every track uses to measure what the latent space saves.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor, nn

from latentdiff.core.autoencoder import Autoencoder1D
from latentdiff.core.diffusion import Denoiser, DiffusionConfig
from latentdiff.core.nets import BackboneConfig, build_backbone
from latentdiff.core.samplers import SampleResult
from latentdiff.core.stages import StagedBackbone, stage_boundaries


@dataclass
class LatentDiffusionConfig:
    """Shape of the diffusion model; ``data_channels`` is used only without an autoencoder.

    ``stages`` > 1 gives each of that many noise-level intervals its own backbone
    (:mod:`latentdiff.core.stages`).
    """

    backbone: BackboneConfig = field(default_factory=BackboneConfig)
    diffusion: DiffusionConfig = field(default_factory=DiffusionConfig)
    data_channels: int = 1
    cond_channels: int = 0
    film_dim: int = 0
    stages: int = 1


class LatentDiffusion(nn.Module):
    """Diffusion over ``autoencoder`` latents (or over the data itself when it is ``None``)."""

    def __init__(self, cfg: LatentDiffusionConfig, autoencoder: Autoencoder1D | None = None):
        super().__init__()
        self.cfg = cfg
        self.autoencoder = autoencoder
        if autoencoder is not None:
            autoencoder.requires_grad_(False)
            autoencoder.eval()
        channels = autoencoder.cfg.latent_channels if autoencoder is not None else cfg.data_channels
        self.channels = channels
        nets = [
            build_backbone(
                cfg.backbone,
                in_channels=channels,
                out_channels=channels,
                cond_channels=cfg.cond_channels,
                film_dim=cfg.film_dim,
            )
            for _ in range(cfg.stages)
        ]
        net = (
            nets[0]
            if cfg.stages == 1
            else StagedBackbone(nets, stage_boundaries(cfg.diffusion, cfg.stages))
        )
        self.denoiser = Denoiser(net, cfg.diffusion)

    @property
    def downsample(self) -> int:
        """Data frames per latent frame."""
        return self.autoencoder.downsample if self.autoencoder is not None else 1

    def train(self, mode: bool = True) -> LatentDiffusion:
        super().train(mode)
        if self.autoencoder is not None:
            self.autoencoder.eval()
        return self

    def encode(self, x: Tensor) -> Tensor:
        """Data -> normalised latent (identity without an autoencoder)."""
        if self.autoencoder is None:
            return x
        with torch.no_grad():
            return self.autoencoder.encode(x)

    def decode(self, z: Tensor) -> Tensor:
        """Normalised latent -> data (identity without an autoencoder)."""
        if self.autoencoder is None:
            return z
        return self.autoencoder.decode(z)

    def loss(
        self,
        x: Tensor,
        seeds: Tensor,
        cond: Tensor | None = None,
        film: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """Diffusion loss on the latent of ``x``; noise drawn from per-sample ``seeds``."""
        return self.denoiser.loss(self.encode(x), seeds, cond=cond, film=film)

    def forward(
        self,
        x: Tensor,
        seeds: Tensor,
        cond: Tensor | None = None,
        film: Tensor | None = None,
    ) -> tuple[Tensor, dict[str, float]]:
        """The training objective (:meth:`loss`), so data-parallel wrappers see a forward call."""
        return self.loss(x, seeds, cond, film)

    @torch.no_grad()
    def sample(
        self,
        batch: int,
        latent_frames: int,
        *,
        cond: Tensor | None = None,
        film: Tensor | None = None,
        steps: int | None = None,
        sampler: str | None = None,
        guidance_scale: float | None = None,
        seeds: Tensor | None = None,
        decode: bool = True,
        x0_correction: Callable[[Tensor, Tensor], Tensor] | None = None,
    ) -> SampleResult:
        """Draw ``batch`` samples of ``latent_frames`` latent frames; returns data and NFE.

        ``x0_correction`` edits the latent x0 estimates (see ``Denoiser.generate``).
        """
        result = self.denoiser.generate(
            (batch, self.channels, latent_frames),
            cond=cond,
            film=film,
            seeds=seeds,
            steps=steps,
            sampler=sampler,
            guidance_scale=guidance_scale,
            x0_correction=x0_correction,
        )
        x = self.decode(result.x) if decode else result.x
        return SampleResult(x=x, nfe=result.nfe)
