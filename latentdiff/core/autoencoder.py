"""1-D convolutional (variational) autoencoder with normalised latents and exact lookahead.

Causal mode: every convolution is a ``CausalConv1d``. Each stride-``s`` downsampling conv has
kernel ``2 s`` and sees its whole block of ``s`` input frames (``lookahead = s - 1``), and the
decoder upsamples by nearest-neighbour repetition followed by causal convolutions. Latent frame
``i`` therefore summarises input frames up to ``(i + 1) * downsample - 1``, which is the smallest
latency at which a block latent can reconstruct every frame of its block. ``cfg.lookahead`` adds
extra future input frames through the first encoder convolution.

Non-causal mode: all convolutions are centred (symmetric padding) and ``cfg.lookahead`` is ignored.

``Autoencoder1D.lookahead`` is derived from the built layers, not from the config: each layer
reports the last input frame its output frame ``t`` depends on (``t * stride + lookahead`` for a
convolution, ``t // factor`` for an upsampler, ``t + 2 * conv lookahead`` for a residual block,
``t`` for pointwise layers); composing these through decoder and encoder gives the last input frame
``F(t)`` behind output frame ``t``, and ``lookahead = max_t F(t) - t`` over one period
``t = 0 .. downsample - 1`` (``F(t + downsample) = F(t) + downsample``). In causal mode this equals
``downsample - 1 + cfg.lookahead`` and is reached at output frames that are multiples of
``downsample``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentdiff.core.layers import CausalConv1d, ChannelLayerNorm


@dataclass
class AutoencoderConfig:
    """Autoencoder shape and loss weights."""

    in_channels: int = 1
    latent_channels: int = 8
    channels: int = 64
    strides: tuple[int, ...] = (2, 2)  # downsample factor = product
    res_blocks: int = 1
    causal: bool = True
    lookahead: int = 0  # extra future input frames (causal mode only)
    kl_weight: float = 0.0  # 0 = plain autoencoder, > 0 = KL-regularised VAE
    kernel_size: int = 3
    l1_weight: float = 0.0  # optional L1 reconstruction term


_POINTWISE = (ChannelLayerNorm, nn.SiLU)


class _ResBlock(nn.Module):
    """norm -> SiLU -> conv -> norm -> SiLU -> conv, plus identity."""

    def __init__(self, channels: int, kernel_size: int, lookahead: int) -> None:
        super().__init__()
        self.conv_lookahead = lookahead
        self.body = nn.Sequential(
            ChannelLayerNorm(channels),
            nn.SiLU(),
            CausalConv1d(channels, channels, kernel_size, lookahead=lookahead),
            ChannelLayerNorm(channels),
            nn.SiLU(),
            CausalConv1d(channels, channels, kernel_size, lookahead=lookahead),
        )

    def forward(self, x: Tensor) -> Tensor:
        return x + self.body(x)

    def residual_body(self) -> list[nn.Module]:
        """The layers of ``body`` (the block computes ``x + body(x)``)."""
        return list(self.body)

    def last_input_frame(self, t: int) -> int:
        return t + 2 * self.conv_lookahead


class _Upsample(nn.Module):
    """Nearest-neighbour upsampling by an integer factor along time."""

    def __init__(self, factor: int) -> None:
        super().__init__()
        self.factor = factor

    def forward(self, x: Tensor) -> Tensor:
        # repeat_interleave, written with explicit sizes so that it exports to ONNX.
        b, c, length = x.shape
        return x[..., None].expand(b, c, length, self.factor).reshape(b, c, length * self.factor)

    def last_input_frame(self, t: int) -> int:
        return t // self.factor


def _last_input_frame(layers: Sequence[nn.Module], t: int) -> int:
    """Last input frame that output frame ``t`` of the layer sequence depends on."""
    for layer in reversed(layers):
        if isinstance(layer, _POINTWISE):
            continue
        if not isinstance(layer, CausalConv1d | _ResBlock | _Upsample):
            raise TypeError(f"cannot trace the time dependence of {type(layer).__name__}")
        t = layer.last_input_frame(t)
    return t


def pad_to_multiple(x: Tensor, multiple: int) -> tuple[Tensor, int]:
    """Right-pad (B, C, T) with zeros to a length multiple of ``multiple``; returns (x, T)."""
    length = x.shape[-1]
    return F.pad(x, (0, -length % multiple)), length


class Autoencoder1D(nn.Module):
    """Convolutional autoencoder (B, in_channels, T) <-> (B, latent_channels, T / downsample).

    ``encode`` returns normalised latents ``(z_raw - latent_mean) / latent_std`` and ``decode``
    expects them; the statistics are buffers fitted with ``fit_latent_stats``.
    """

    def __init__(self, cfg: AutoencoderConfig) -> None:
        super().__init__()
        if not cfg.strides or any(s < 1 for s in cfg.strides):
            raise ValueError(f"strides must be a non-empty tuple of ints >= 1, got {cfg.strides}")
        if cfg.lookahead < 0 or cfg.kernel_size < 1:
            raise ValueError("lookahead must be >= 0 and kernel_size >= 1")
        self.cfg = cfg
        self.variational = cfg.kl_weight > 0
        self.downsample = math.prod(cfg.strides)
        self.encoder = nn.Sequential(*self._encoder_layers(cfg))
        self.decoder = nn.Sequential(*self._decoder_layers(cfg))
        self.register_buffer("latent_mean", torch.zeros(cfg.latent_channels))
        self.register_buffer("latent_std", torch.ones(cfg.latent_channels))
        layers = [*self.encoder, *self.decoder]
        self.lookahead = max(_last_input_frame(layers, t) - t for t in range(self.downsample))

    @staticmethod
    def _conv_lookahead(cfg: AutoencoderConfig, kernel_size: int, causal_lookahead: int) -> int:
        return causal_lookahead if cfg.causal else (kernel_size - 1) // 2

    def _encoder_layers(self, cfg: AutoencoderConfig) -> list[nn.Module]:
        ch, k = cfg.channels, cfg.kernel_size
        extra = cfg.lookahead if cfg.causal else 0
        in_kernel = max(k, extra + 1)
        in_lookahead = self._conv_lookahead(cfg, in_kernel, extra)
        layers: list[nn.Module] = [
            CausalConv1d(cfg.in_channels, ch, in_kernel, lookahead=in_lookahead)
        ]
        block_la = self._conv_lookahead(cfg, k, 0)
        for stride in cfg.strides:
            layers += [_ResBlock(ch, k, block_la) for _ in range(cfg.res_blocks)]
            # Causal: the window ends at the block's last frame; else it is centred on the block.
            down_la = stride - 1 if cfg.causal else 2 * stride - 1 - stride // 2
            layers.append(CausalConv1d(ch, ch, 2 * stride, stride=stride, lookahead=down_la))
        layers += [_ResBlock(ch, k, block_la) for _ in range(cfg.res_blocks)]
        head = cfg.latent_channels * (2 if self.variational else 1)
        layers += [ChannelLayerNorm(ch), nn.SiLU(), CausalConv1d(ch, head, 1)]
        return layers

    def _decoder_layers(self, cfg: AutoencoderConfig) -> list[nn.Module]:
        ch, k = cfg.channels, cfg.kernel_size
        la = self._conv_lookahead(cfg, k, 0)
        layers: list[nn.Module] = [CausalConv1d(cfg.latent_channels, ch, k, lookahead=la)]
        layers += [_ResBlock(ch, k, la) for _ in range(cfg.res_blocks)]
        for stride in reversed(cfg.strides):
            layers += [_Upsample(stride), CausalConv1d(ch, ch, k, lookahead=la)]
            layers += [_ResBlock(ch, k, la) for _ in range(cfg.res_blocks)]
        out_conv = CausalConv1d(ch, cfg.in_channels, k, lookahead=la)
        layers += [ChannelLayerNorm(ch), nn.SiLU(), out_conv]
        return layers

    def _check_length(self, x: Tensor) -> None:
        if x.shape[-1] % self.downsample:
            raise ValueError(
                f"input length {x.shape[-1]} must be a multiple of the downsample factor "
                f"{self.downsample}; pad it with pad_to_multiple(x, {self.downsample})"
            )

    def encode_dist(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Raw (un-normalised) posterior ``(mean, logvar)``, each (B, latent_channels, T / D).

        A plain autoencoder (``kl_weight == 0``) is a point mass: its logvar is ``-inf``.
        """
        self._check_length(x)
        h = self.encoder(x)
        if self.variational:
            mean, logvar = h.chunk(2, dim=1)
            return mean, logvar.clamp(-30.0, 20.0)
        return h, torch.full_like(h, float("-inf"))

    def _sample(self, mean: Tensor, logvar: Tensor, generator: torch.Generator | None) -> Tensor:
        if not self.variational:
            return mean
        noise = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        return mean + torch.exp(0.5 * logvar) * noise

    def encode(
        self, x: Tensor, sample: bool = False, generator: torch.Generator | None = None
    ) -> Tensor:
        """Normalised latent: posterior mean, or a posterior sample when ``sample`` is true."""
        mean, logvar = self.encode_dist(x)
        return self.normalize(self._sample(mean, logvar, generator) if sample else mean)

    def decode(self, z: Tensor) -> Tensor:
        """Normalised latent (B, latent_channels, L) -> (B, in_channels, L * downsample)."""
        return self.decoder(self.denormalize(z))

    def normalize(self, z_raw: Tensor) -> Tensor:
        return (z_raw - self.latent_mean[:, None]) / self.latent_std[:, None]

    def denormalize(self, z: Tensor) -> Tensor:
        return z * self.latent_std[:, None] + self.latent_mean[:, None]

    def loss(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        """MSE (+ l1_weight * L1) reconstruction + kl_weight * KL (mean per latent element).

        Returns the scalar loss and its terms as floats ("mse", plus "l1" and "kl" when used). Works
        on raw latents, so it is unaffected by the fitted normalisation.
        """
        mean, logvar = self.encode_dist(x)
        x_hat = self.decoder(self._sample(mean, logvar, None))
        mse = F.mse_loss(x_hat, x)
        total = mse
        terms = {"mse": mse.item()}
        if self.cfg.l1_weight > 0:
            l1 = F.l1_loss(x_hat, x)
            total = total + self.cfg.l1_weight * l1
            terms["l1"] = l1.item()
        if self.variational:
            kl = 0.5 * (mean.square() + logvar.exp() - 1.0 - logvar).mean()
            total = total + self.cfg.kl_weight * kl
            terms["kl"] = kl.item()
        return total, terms

    def forward(self, x: Tensor) -> tuple[Tensor, dict[str, float]]:
        """The training objective (:meth:`loss`), so data-parallel wrappers see a forward call."""
        return self.loss(x)

    @torch.no_grad()
    def fit_latent_stats(self, batches: Iterable[Tensor]) -> None:
        """Set ``latent_mean`` / ``latent_std`` to per-channel stats of the raw posterior mean."""
        total = sum_sq = None
        count = 0
        for x in batches:
            z = self.encode_dist(x)[0].transpose(0, 1).flatten(1).double()
            total = z.sum(1) if total is None else total + z.sum(1)
            sum_sq = z.square().sum(1) if sum_sq is None else sum_sq + z.square().sum(1)
            count += z.shape[1]
        if total is None or sum_sq is None or count == 0:
            raise ValueError("fit_latent_stats needs at least one non-empty batch")
        mean = total / count
        var = (sum_sq / count - mean.square()).clamp_min(1e-12)
        self.latent_mean.copy_(mean.to(self.latent_mean.dtype))
        self.latent_std.copy_(var.sqrt().to(self.latent_std.dtype))
