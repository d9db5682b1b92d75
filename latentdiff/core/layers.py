"""Small shared layers: streamable causal convolution, noise embedding, FiLM, channel norm."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

_MATMUL_MAX_FRAMES = 8  # streaming chunks up to this many output frames use a matrix product


class CausalConv1d(nn.Module):
    """1-D convolution that sees at most ``lookahead`` future input frames.

    The input is padded with ``(kernel_size - 1) * dilation - lookahead`` zeros on the left and
    ``lookahead`` zeros on the right, so output frame ``j`` depends only on input frames
    ``<= j * stride + lookahead`` and the output length is ``ceil(T / stride)``. Setting
    ``lookahead = (kernel_size - 1) * dilation // 2`` gives a centred ("same") convolution.

    Streaming: ``forward_stream`` keeps the not yet consumed tail of the (left-padded) input as its
    state and emits every output frame whose receptive field is complete. Fed any sequence of chunk
    lengths (any stride), the concatenated outputs equal the offline ``forward`` output; with
    ``lookahead > 0`` the outputs lag by ``lookahead`` input frames, and feeding ``lookahead`` zero
    frames after the last chunk reproduces the offline right padding. With ``lookahead == 0`` and
    chunk lengths that are multiples of ``stride``, every chunk of length ``L`` yields exactly
    ``L / stride`` frames and the state length stays ``(kernel_size - 1) * dilation``; other
    chunkings are still exact but the state length varies.
    """

    def __init__(
        self,
        in_ch: int,
        out_ch: int,
        kernel_size: int,
        stride: int = 1,
        dilation: int = 1,
        lookahead: int = 0,
        bias: bool = True,
    ) -> None:
        super().__init__()
        span = (kernel_size - 1) * dilation
        if not 0 <= lookahead <= span:
            raise ValueError(
                f"lookahead must be in [0, (kernel_size - 1) * dilation = {span}], got {lookahead}"
            )
        if stride < 1:
            raise ValueError(f"stride must be >= 1, got {stride}")
        self.in_channels = in_ch
        self.out_channels = out_ch
        self.stride = stride
        self.lookahead = lookahead
        self.left_pad = span - lookahead
        self.span = span + 1
        self.conv = nn.Conv1d(
            in_ch, out_ch, kernel_size, stride=stride, dilation=dilation, bias=bias
        )

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_ch, T) -> (B, out_ch, ceil(T / stride))."""
        return self.conv(F.pad(x, (self.left_pad, self.lookahead)))

    def last_input_frame(self, t: int) -> int:
        """Index of the last input frame that output frame ``t`` depends on."""
        return t * self.stride + self.lookahead

    def init_state(
        self, batch: int, device: torch.device | None = None, dtype: torch.dtype | None = None
    ) -> Tensor:
        """Initial streaming state: the left zero padding, shape (batch, in_ch, left_pad)."""
        weight = self.conv.weight
        return torch.zeros(
            batch,
            self.in_channels,
            self.left_pad,
            device=weight.device if device is None else device,
            dtype=weight.dtype if dtype is None else dtype,
        )

    def forward_stream(self, x_chunk: Tensor, state: Tensor) -> tuple[Tensor, Tensor]:
        """Consume a chunk (B, in_ch, L >= 0); return (newly complete outputs, new state)."""
        buffer = torch.cat([state, x_chunk], dim=-1) if state.shape[-1] else x_chunk
        n_out = (buffer.shape[-1] - self.span) // self.stride + 1
        if n_out <= 0:
            empty = buffer.new_zeros(buffer.shape[0], self.out_channels, 0)
            return empty, buffer
        consumed = n_out * self.stride
        window = buffer[..., : consumed - self.stride + self.span]
        out = self.conv(window) if n_out > _MATMUL_MAX_FRAMES else self._conv_matmul(window)
        return out, buffer[..., consumed:]

    def _conv_matmul(self, window: Tensor) -> Tensor:
        """The convolution as one matrix product: much faster than conv1d for a few frames.

        Each output frame's taps are one strided slice of ``window``, flattened channel-major
        like ``weight.flatten(1)``.
        """
        conv = self.conv
        batch = window.shape[0]
        n_out = (window.shape[-1] - self.span) // self.stride + 1
        dilation = conv.dilation[0]
        columns = [
            window[..., t * self.stride : t * self.stride + self.span : dilation].reshape(
                batch, 1, -1
            )
            for t in range(n_out)
        ]
        stacked = columns[0] if n_out == 1 else torch.cat(columns, dim=1)
        out = F.linear(stacked, conv.weight.flatten(1), conv.bias)  # (B, n_out, out_ch)
        return out.reshape(batch, -1, 1) if n_out == 1 else out.transpose(1, 2)


def pointwise_conv(conv: nn.Module, x: Tensor) -> Tensor:
    """A kernel-1 ``nn.Conv1d`` (or ``nn.Identity``) as a matrix product: fast on a few frames."""
    if not isinstance(conv, nn.Conv1d):
        return conv(x)
    return F.linear(x.transpose(1, 2), conv.weight[:, :, 0], conv.bias).transpose(1, 2)


class ChannelLayerNorm(nn.Module):
    """LayerNorm over channels at every frame independently (per-sample and causal-safe)."""

    def __init__(self, channels: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, T) -> (B, C, T)."""
        normed = F.layer_norm(
            x.transpose(1, 2), self.weight.shape, self.weight, self.bias, self.eps
        )
        return normed.transpose(1, 2)


class NoiseEmbedding(nn.Module):
    """Sinusoidal features of a scalar noise level followed by a two-layer MLP: (B,) -> (B, dim).

    Frequencies are ``max_period ** (-i / (dim / 2))`` for ``i = 0 .. dim/2 - 1``; they suit
    ``c_noise`` values of order 1 (e.g. ``ln(sigma) / 4``) up to order ``max_period``.
    """

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        if dim < 2 or dim % 2:
            raise ValueError(f"embedding dim must be an even number >= 2, got {dim}")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)
        self.mlp = nn.Sequential(nn.Linear(dim, dim), nn.SiLU(), nn.Linear(dim, dim))

    def forward(self, c_noise: Tensor) -> Tensor:
        """(B,) float -> (B, dim)."""
        angles = c_noise.to(self.freqs.dtype)[:, None] * self.freqs[None, :]
        features = torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)
        return self.mlp(features.to(self.mlp[0].weight.dtype))


class FiLM(nn.Module):
    """Feature-wise affine modulation ``(1 + scale) * h + shift`` from a global vector."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.proj = nn.Linear(cond_dim, 2 * channels)

    def forward(self, h: Tensor, cond: Tensor) -> Tensor:
        """h (B, C, T), cond (B, cond_dim) -> (B, C, T)."""
        scale, shift = self.proj(cond)[:, :, None].chunk(2, dim=1)
        return (1 + scale) * h + shift
