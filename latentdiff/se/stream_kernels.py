"""Compiled single-block kernels of the streaming enhancer.

A kernel runs one whole block (STFT analysis of the new samples, the model's feature path with its
sampler unrolled, synthesis and overlap-add: :class:`~latentdiff.se.onnx_export.BlockEnhancer`)
with every state as an explicit input and output. It computes what the eager streaming path
computes, with far less per-block overhead (tiny tensors make Python and operator dispatch the
main cost):

- ``onnxruntime``: the block's ONNX graph, run by onnxruntime on one thread;
- ``torchscript``: a TorchScript trace of the block.

Kernels are built once per (model, steps, backend) and shared by all sessions in the process.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from latentdiff.core.onnx import single_thread_session
from latentdiff.se.model import SEModel
from latentdiff.se.onnx_export import BlockEnhancer, to_onnx

COMPILED_BACKENDS = ("onnxruntime", "torchscript")

# (audio (1, block), noise, stft pending, overlap-add tail, model states) ->
# (enhanced (1, block), stft pending, overlap-add tail, model states)
BlockKernel = Callable[
    [Tensor, Tensor, Tensor, Tensor, list[Tensor]], tuple[Tensor, Tensor, Tensor, list[Tensor]]
]
_Flat = Callable[..., list[Tensor]]
_KERNELS: weakref.WeakKeyDictionary[SEModel, dict[tuple[int, str], BlockKernel]] = (
    weakref.WeakKeyDictionary()
)


def block_kernel(model: SEModel, steps: int, backend: str) -> BlockKernel:
    """The cached kernel of ``model`` at ``steps``; ValueError if the model cannot run per block."""
    if backend not in COMPILED_BACKENDS:
        raise ValueError(f"backend must be one of {COMPILED_BACKENDS}, got {backend!r}")
    cache = _KERNELS.setdefault(model, {})
    key = (steps, backend)
    if key not in cache:
        if any(p.requires_grad for p in model.parameters()):
            raise ValueError("streaming kernels need a frozen model: call requires_grad_(False)")
        block = BlockEnhancer(model, steps)
        build = _onnxruntime if backend == "onnxruntime" else _torchscript
        cache[key] = _with_model_states(build(block), block.model_state_template)
    return cache[key]


def _with_model_states(run: _Flat, template: list[Tensor]) -> BlockKernel:
    """Pass only the non-empty model states to ``run``; put the empty ones back afterwards."""

    def kernel(
        audio: Tensor, noise: Tensor, pending: Tensor, tail: Tensor, states: list[Tensor]
    ) -> tuple[Tensor, Tensor, Tensor, list[Tensor]]:
        given = [state for state in states if state.numel()]
        out, pending, tail, *new = run(audio, noise, pending, tail, *given)
        returned = iter(new)
        return out, pending, tail, [next(returned) if t.numel() else t for t in template]

    return kernel


def _torchscript(block: BlockEnhancer) -> _Flat:
    audio, noise = torch.zeros(1, block.block_samples), torch.zeros(block.noise_shape)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(block, (audio, noise, *block.initial_states()), check_trace=False)

    def run(*inputs: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return list(traced(*inputs))

    return run


def _onnxruntime(block: BlockEnhancer) -> _Flat:
    session = single_thread_session(to_onnx(block).SerializeToString())
    names = [value.name for value in session.get_inputs()]

    def run(*inputs: Tensor) -> list[Tensor]:
        feed = {name: value.numpy() for name, value in zip(names, inputs, strict=True)}
        return [torch.from_numpy(np.asarray(out)) for out in session.run(None, feed)]

    return run
