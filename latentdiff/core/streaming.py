"""Stateful frame-by-frame twins of the causal layer stacks (conv encoders, decoders, TCNs).

A :class:`LayerStream` runs a sequence of causal layers over consecutive chunks of frames and
keeps every convolution's left context between calls, so the concatenated outputs equal the
offline forward pass over the concatenated inputs. Supported layers: ``CausalConv1d`` (causal, or a
block conv whose lookahead is ``stride - 1``, which emits one frame per complete block), pointwise
layers (``ChannelLayerNorm``, ``SiLU``), nearest-neighbour upsampling, residual blocks (with a
``residual_body()``) whose body is causal, and ``nn.Sequential``. :class:`TcnStream` does the
same for a ``CausalTCN``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor, nn

from latentdiff.core.autoencoder import _Upsample
from latentdiff.core.layers import CausalConv1d, ChannelLayerNorm
from latentdiff.core.nets import CausalTCN

_POINTWISE = (ChannelLayerNorm, nn.SiLU, nn.Identity)


def _check_conv(conv: CausalConv1d) -> None:
    if conv.lookahead not in (0, conv.stride - 1):
        raise ValueError(
            f"cannot stream a convolution with lookahead {conv.lookahead} and stride "
            f"{conv.stride}: only causal (lookahead 0) or block (lookahead stride - 1) convs"
        )


def _residual_body(layer: nn.Module) -> list[nn.Module] | None:
    """The body of a residual block ``x + body(x)`` (its ``residual_body()``), else None."""
    body = getattr(layer, "residual_body", None)
    return body() if callable(body) else None


def init_state(layer: nn.Module) -> Any:
    """Zero streaming state of one layer (None for stateless layers)."""
    if isinstance(layer, CausalConv1d):
        _check_conv(layer)
        return layer.init_state(1)
    if isinstance(layer, (*_POINTWISE, _Upsample)):
        return None
    if isinstance(layer, nn.Sequential):
        return [init_state(sub) for sub in layer]
    body = _residual_body(layer)
    if body is None:
        raise TypeError(f"cannot stream a {type(layer).__name__} layer")
    if any(isinstance(m, CausalConv1d) and (m.lookahead or m.stride > 1) for m in body):
        raise ValueError("residual blocks must be causal with stride 1 to stream")
    return [init_state(sub) for sub in body]


def step(layer: nn.Module, x: Tensor, state: Any) -> tuple[Tensor, Any]:
    """Run one layer on a chunk ``x`` (B, C, L); returns (new output frames, new state)."""
    if isinstance(layer, CausalConv1d):
        return layer.forward_stream(x, state)
    if isinstance(layer, (*_POINTWISE, _Upsample)):
        return layer(x), None
    if isinstance(layer, nn.Sequential):
        return run_layers(list(layer), x, state)
    body = _residual_body(layer)
    assert body is not None
    h, new_state = run_layers(body, x, state)
    return x + h, new_state


def run_layers(layers: Sequence[nn.Module], x: Tensor, states: list[Any]) -> tuple[Tensor, list]:
    """Run a layer sequence on a chunk; returns (output frames, new states)."""
    new_states = []
    for layer, state in zip(layers, states, strict=True):
        x, state = step(layer, x, state)
        new_states.append(state)
    return x, new_states


def _batched(state: Any, batch: int) -> Any:
    if isinstance(state, Tensor):
        return state.expand(batch, *state.shape[1:]).contiguous()
    if isinstance(state, list):
        return [_batched(s, batch) for s in state]
    return state


def state_numel(state: Any) -> int:
    """Number of elements held in a (nested) streaming state."""
    if isinstance(state, Tensor):
        return state.numel()
    if isinstance(state, list):
        return sum(state_numel(s) for s in state)
    return 0


class LayerStream:
    """Streaming twin of a sequence of causal layers, holding the states of ``batch`` streams."""

    def __init__(self, layers: Sequence[nn.Module], batch: int = 1) -> None:
        self.layers = list(layers)
        self.batch = batch
        self.reset()

    def reset(self) -> None:
        """Back to the zero left context of a new stream."""
        self.states = [_batched(init_state(layer), self.batch) for layer in self.layers]

    def __call__(self, x: Tensor) -> Tensor:
        """Chunk (B, C, L) -> the output frames now complete."""
        out, self.states = run_layers(self.layers, x, self.states)
        return out

    @property
    def numel(self) -> int:
        """Elements held in the state (constant over a stream)."""
        return state_numel(self.states)


class TcnStream:
    """Streaming twin of a causal ``CausalTCN`` (no lookahead)."""

    def __init__(self, net: CausalTCN, batch: int = 1) -> None:
        if net.lookahead:
            raise ValueError(f"cannot stream a TCN with lookahead {net.lookahead}")
        self.net = net
        self.batch = batch
        self.reset()

    def reset(self) -> None:
        """Back to the zero left context of a new stream."""
        self.states = self.net.init_state(self.batch)

    def __call__(self, x: Tensor, c_noise: Tensor, cond: Tensor | None = None) -> Tensor:
        """Chunk (B, C, L) at noise levels ``c_noise`` (B,) -> (B, out, L)."""
        out, self.states = self.net.forward_stream(x, c_noise, self.states, cond)
        return out

    @property
    def numel(self) -> int:
        """Elements held in the state (constant over a stream)."""
        return state_numel(self.states)
