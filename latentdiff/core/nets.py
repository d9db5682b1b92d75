"""Denoiser backbones: a streamable causal TCN and a non-causal 1-D U-Net, plus cost counters.

All backbones share ``forward(x, c_noise, cond=None, film=None) -> (B, out_channels, T)``:
``cond`` (B, cond_channels, T) is concatenated to ``x`` on channels (zeros when omitted) and
``film`` (B, film_dim) is projected and added to the noise embedding (zeros when omitted).
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from latentdiff.core.layers import (
    CausalConv1d,
    ChannelLayerNorm,
    FiLM,
    NoiseEmbedding,
    pointwise_conv,
)


@dataclass
class BackboneConfig:
    """Backbone choice and size; tiny and full variants differ only in widths and depth."""

    name: str = "tcn"  # "tcn" | "unet"
    channels: int = 64  # tcn width
    depth: int = 6  # tcn residual blocks
    kernel_size: int = 3
    lookahead: int = 0  # tcn future input frames
    unet_channels: tuple[int, ...] = (32, 64, 128)
    blocks_per_level: int = 1
    embed_dim: int = 128
    gated: bool = True  # tanh * sigmoid gates; False uses GELU
    dilation_cycle: int = 8  # tcn dilations 1, 2, ..., 2 ** (cycle - 1), repeated; 1 = flat

    def __post_init__(self) -> None:
        _check_dilation_cycle(self.dilation_cycle)


def _check_dilation_cycle(cycle: int) -> None:
    if cycle < 1:
        raise ValueError(f"dilation_cycle must be >= 1, got {cycle}")


class ConditioningEmbedding(nn.Module):
    """Noise embedding plus projected global FiLM vector: c_noise (B,), film (B, F) -> (B, E)."""

    def __init__(self, embed_dim: int, film_dim: int) -> None:
        super().__init__()
        self.film_dim = film_dim
        self.noise = NoiseEmbedding(embed_dim)
        self.film_proj = nn.Linear(film_dim, embed_dim) if film_dim > 0 else None

    def forward(self, c_noise: Tensor, film: Tensor | None) -> Tensor:
        emb = self.noise(c_noise)
        if self.film_proj is not None:
            if film is None:
                film = emb.new_zeros(emb.shape[0], self.film_dim)
            emb = emb + self.film_proj(film)
        elif film is not None:
            raise ValueError("film vector given but the backbone was built with film_dim=0")
        return F.silu(emb)


class FiLMResBlock(nn.Module):
    """Pre-norm residual block: norm -> FiLM -> conv -> gate (or GELU) -> 1x1 conv, plus skip.

    The conv is a ``CausalConv1d`` with the given ``lookahead``; with ``lookahead == 0`` the block
    is causal and streamable.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        embed_dim: int,
        kernel_size: int,
        dilation: int = 1,
        lookahead: int = 0,
        gated: bool = True,
    ) -> None:
        super().__init__()
        self.gated = gated
        self.norm = ChannelLayerNorm(in_ch)
        self.film = FiLM(embed_dim, in_ch)
        conv_out = 2 * out_ch if gated else out_ch
        self.conv = CausalConv1d(
            in_ch, conv_out, kernel_size, dilation=dilation, lookahead=lookahead
        )
        self.proj = nn.Conv1d(out_ch, out_ch, 1)
        self.skip = nn.Conv1d(in_ch, out_ch, 1) if in_ch != out_ch else nn.Identity()

    def _activate(self, h: Tensor) -> Tensor:
        if self.gated:
            filt, gate = h.chunk(2, dim=1)
            return torch.tanh(filt) * torch.sigmoid(gate)
        return F.gelu(h)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv(self.film(self.norm(x), emb))
        return self.skip(x) + self.proj(self._activate(h))

    def forward_stream(self, x: Tensor, emb: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        h, state = self.conv.forward_stream(self.film(self.norm(x), emb), state)
        return pointwise_conv(self.skip, x) + pointwise_conv(self.proj, self._activate(h)), state


def _concat_cond(x: Tensor, cond: Tensor | None, cond_channels: int) -> Tensor:
    if cond_channels == 0:
        if cond is not None:
            raise ValueError("cond given but the backbone was built with cond_channels=0")
        return x
    if cond is None:
        cond = x.new_zeros(x.shape[0], cond_channels, x.shape[-1])
    if cond.shape[1] != cond_channels or cond.shape[-1] != x.shape[-1]:
        raise ValueError(
            f"cond must have shape (B, {cond_channels}, {x.shape[-1]}), got {tuple(cond.shape)}"
        )
    return torch.cat([x, cond], dim=1)


class CausalTCN(nn.Module):
    """Residual stack of dilated causal convolutions (dilations 1, 2, 4, ... cycling).

    Block ``i`` has dilation ``2 ** (i % dilation_cycle)``: the receptive field grows
    geometrically within a cycle (multi-scale in time); ``dilation_cycle=1`` gives a flat stack of
    undilated convolutions with the same parameters and MACs and a linear receptive field.

    The whole ``lookahead`` sits in the input convolution (kernel ``max(kernel_size,
    lookahead + 1)``); every later layer is strictly causal, so output frame ``t`` depends exactly
    on input frames ``t - receptive_field + 1 .. t + lookahead``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int = 0,
        film_dim: int = 0,
        channels: int = 64,
        depth: int = 6,
        kernel_size: int = 3,
        lookahead: int = 0,
        embed_dim: int = 128,
        gated: bool = True,
        dilation_cycle: int = 8,
    ) -> None:
        super().__init__()
        if lookahead < 0:
            raise ValueError(f"lookahead must be >= 0, got {lookahead}")
        _check_dilation_cycle(dilation_cycle)
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.cond_channels = cond_channels
        self.film_dim = film_dim
        self.lookahead = lookahead
        self.embedding = ConditioningEmbedding(embed_dim, film_dim)
        in_kernel = max(kernel_size, lookahead + 1)
        self.in_conv = CausalConv1d(
            in_channels + cond_channels, channels, in_kernel, lookahead=lookahead
        )
        dilations = [2 ** (i % dilation_cycle) for i in range(depth)]
        self.blocks = nn.ModuleList(
            FiLMResBlock(channels, channels, embed_dim, kernel_size, dilation=d, gated=gated)
            for d in dilations
        )
        self.out_norm = ChannelLayerNorm(channels)
        self.out_conv = nn.Conv1d(channels, out_channels, 1)
        self.receptive_field = in_kernel - lookahead + sum((kernel_size - 1) * d for d in dilations)

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        cond: Tensor | None = None,
        film: Tensor | None = None,
    ) -> Tensor:
        """x (B, in_channels, T), c_noise (B,) -> (B, out_channels, T)."""
        emb = self.embedding(c_noise, film)
        h = self.in_conv(_concat_cond(x, cond, self.cond_channels))
        for block in self.blocks:
            h = block(h, emb)
        return self.out_conv(F.silu(self.out_norm(h)))

    def init_state(self, batch: int) -> list[Tensor]:
        """Zero streaming state: one left-context buffer per convolution."""
        return [self.in_conv.init_state(batch)] + [b.conv.init_state(batch) for b in self.blocks]

    def forward_stream(
        self,
        x_chunk: Tensor,
        c_noise: Tensor,
        state: list[Tensor],
        cond_chunk: Tensor | None = None,
        film: Tensor | None = None,
    ) -> tuple[Tensor, list[Tensor]]:
        """Process a chunk (B, in_channels, L); returns (output chunk, new state).

        Concatenated outputs equal ``forward`` on the concatenated inputs. With ``lookahead > 0``
        the output lags the input by ``lookahead`` frames; feed ``lookahead`` zero frames (and zero
        cond) at the end to obtain the final frames.
        """
        emb = self.embedding(c_noise, film)
        h, in_state = self.in_conv.forward_stream(
            _concat_cond(x_chunk, cond_chunk, self.cond_channels), state[0]
        )
        if h.shape[-1] == 0:
            return h.new_zeros(h.shape[0], self.out_channels, 0), [in_state, *state[1:]]
        new_state = [in_state]
        for block, block_state in zip(self.blocks, state[1:], strict=True):
            h, block_state = block.forward_stream(h, emb, block_state)
            new_state.append(block_state)
        return pointwise_conv(self.out_conv, F.silu(self.out_norm(h))), new_state


class UNet1D(nn.Module):
    """Non-causal multi-scale 1-D U-Net with FiLM residual blocks and skip connections.

    ``channels[i]`` is the width at level ``i``; there are ``len(channels) - 1`` stride-2
    downsamplings, so inputs are right-padded to a multiple of ``2 ** (len(channels) - 1)`` and the
    output is cropped back to ``T``. Not causal: ``lookahead`` is ``None``.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        cond_channels: int = 0,
        film_dim: int = 0,
        channels: tuple[int, ...] = (32, 64, 128),
        blocks_per_level: int = 1,
        kernel_size: int = 3,
        embed_dim: int = 128,
        gated: bool = True,
    ) -> None:
        super().__init__()
        if not channels or blocks_per_level < 1:
            raise ValueError("UNet1D needs at least one level and one block per level")
        self.in_channels = in_channels
        self.out_channels = out_channels
        self.cond_channels = cond_channels
        self.film_dim = film_dim
        self.lookahead: int | None = None
        self.multiple = 2 ** (len(channels) - 1)
        centre = (kernel_size - 1) // 2

        def block(c_in: int, c_out: int) -> FiLMResBlock:
            return FiLMResBlock(c_in, c_out, embed_dim, kernel_size, lookahead=centre, gated=gated)

        self.embedding = ConditioningEmbedding(embed_dim, film_dim)
        self.in_conv = CausalConv1d(
            in_channels + cond_channels, channels[0], kernel_size, lookahead=centre
        )
        self.down_blocks = nn.ModuleList(
            nn.ModuleList(block(c, c) for _ in range(blocks_per_level)) for c in channels
        )
        self.downsamples = nn.ModuleList(
            nn.Conv1d(c_lo, c_hi, 3, stride=2, padding=1)
            for c_lo, c_hi in itertools.pairwise(channels)
        )
        self.middle = block(channels[-1], channels[-1])
        self.upsamples = nn.ModuleList(
            nn.ConvTranspose1d(c_hi, c_lo, 4, stride=2, padding=1)
            for c_lo, c_hi in itertools.pairwise(channels)
        )
        self.up_blocks = nn.ModuleList(
            nn.ModuleList(block(2 * c if i == 0 else c, c) for i in range(blocks_per_level))
            for c in channels
        )
        self.out_norm = ChannelLayerNorm(channels[0])
        self.out_conv = CausalConv1d(channels[0], out_channels, kernel_size, lookahead=centre)

    def forward(
        self,
        x: Tensor,
        c_noise: Tensor,
        cond: Tensor | None = None,
        film: Tensor | None = None,
    ) -> Tensor:
        """x (B, in_channels, T), c_noise (B,) -> (B, out_channels, T) for any T >= 1."""
        length = x.shape[-1]
        emb = self.embedding(c_noise, film)
        h = _concat_cond(x, cond, self.cond_channels)
        h = self.in_conv(F.pad(h, (0, -length % self.multiple)))
        skips: list[Tensor] = []
        for level, blocks in enumerate(self.down_blocks):
            for blk in blocks:
                h = blk(h, emb)
            skips.append(h)
            if level < len(self.downsamples):
                h = self.downsamples[level](h)
        h = self.middle(h, emb)
        for level in reversed(range(len(self.up_blocks))):
            if level < len(self.upsamples):
                h = self.upsamples[level](h)
            h = torch.cat([h, skips[level]], dim=1)
            for blk in self.up_blocks[level]:
                h = blk(h, emb)
        return self.out_conv(F.silu(self.out_norm(h)))[..., :length]


BackboneBuilder = Callable[[BackboneConfig, int, int, int, int], nn.Module]


def _build_tcn(
    cfg: BackboneConfig, in_channels: int, out_channels: int, cond_channels: int, film_dim: int
) -> nn.Module:
    return CausalTCN(
        in_channels,
        out_channels,
        cond_channels=cond_channels,
        film_dim=film_dim,
        channels=cfg.channels,
        depth=cfg.depth,
        kernel_size=cfg.kernel_size,
        lookahead=cfg.lookahead,
        embed_dim=cfg.embed_dim,
        gated=cfg.gated,
        dilation_cycle=cfg.dilation_cycle,
    )


def _build_unet(
    cfg: BackboneConfig, in_channels: int, out_channels: int, cond_channels: int, film_dim: int
) -> nn.Module:
    return UNet1D(
        in_channels,
        out_channels,
        cond_channels=cond_channels,
        film_dim=film_dim,
        channels=tuple(cfg.unet_channels),
        blocks_per_level=cfg.blocks_per_level,
        kernel_size=cfg.kernel_size,
        embed_dim=cfg.embed_dim,
        gated=cfg.gated,
    )


BACKBONES: dict[str, BackboneBuilder] = {"tcn": _build_tcn, "unet": _build_unet}


def build_backbone(
    cfg: BackboneConfig,
    in_channels: int,
    out_channels: int,
    cond_channels: int = 0,
    film_dim: int = 0,
) -> nn.Module:
    """Instantiate the backbone named ``cfg.name`` from the ``BACKBONES`` registry."""
    try:
        builder = BACKBONES[cfg.name]
    except KeyError:
        raise ValueError(
            f"unknown backbone {cfg.name!r}; choose one of {sorted(BACKBONES)}"
        ) from None
    return builder(cfg, in_channels, out_channels, cond_channels, film_dim)


def count_parameters(module: nn.Module) -> int:
    """Total number of parameter elements."""
    return sum(p.numel() for p in module.parameters())


def _layer_macs(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> int:
    if isinstance(layer, nn.Conv1d):
        return output.numel() * (layer.in_channels // layer.groups) * layer.kernel_size[0]
    if isinstance(layer, nn.ConvTranspose1d):
        return inputs[0].numel() * (layer.out_channels // layer.groups) * layer.kernel_size[0]
    if isinstance(layer, nn.Linear):
        return output.numel() * layer.in_features
    return 0


def count_macs(module: nn.Module, *example_inputs: object) -> int:
    """Multiply-accumulates of all Conv1d, ConvTranspose1d and Linear calls in one forward pass.

    Counts the whole batch of ``example_inputs`` (use batch size 1 for per-example cost); biases,
    norms and activations are not counted. Layers called several times are counted every time.
    """
    total = 0

    def hook(layer: nn.Module, inputs: tuple[Tensor, ...], output: Tensor) -> None:
        nonlocal total
        total += _layer_macs(layer, inputs, output)

    counted = (nn.Conv1d, nn.ConvTranspose1d, nn.Linear)
    handles = [m.register_forward_hook(hook) for m in module.modules() if isinstance(m, counted)]
    try:
        with torch.no_grad():
            module(*example_inputs)
    finally:
        for handle in handles:
            handle.remove()
    return total
