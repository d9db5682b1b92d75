"""Compiled single-block kernels of the streaming enhancer.

A kernel runs one whole block (STFT analysis of the new samples, the model's feature path with its
sampler unrolled, synthesis and overlap-add: :class:`~latentdiff.se.onnx_export.BlockEnhancer`)
with every state as an explicit input and output. It computes what the eager streaming path
computes, with far less per-block overhead (tiny tensors make Python and operator dispatch the
main cost):

- ``onnxruntime``: the block's ONNX graph, run by onnxruntime on one thread;
- ``torchscript``: a TorchScript trace of the block.

Kernels run at a ``precision`` (:mod:`latentdiff.core.quantize`): onnxruntime quantizes or
converts the block's graph (fp32, int8, fp16; no bf16 CPU kernels), TorchScript traces the block of
the int8 model copy or under autocast (every precision).

Kernels are built once per (model, steps, backend, precision) and shared by all sessions in the
process.
"""

from __future__ import annotations

import warnings
import weakref
from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from latentdiff.core.onnx import single_thread_session
from latentdiff.core.quantize import ONNX_PRECISIONS, PRECISIONS, autocast, quantize_module
from latentdiff.se import COMPILED_BACKENDS
from latentdiff.se.model import SEModel
from latentdiff.se.onnx_export import BlockEnhancer, to_onnx

KERNEL_PRECISIONS = {"onnxruntime": ONNX_PRECISIONS, "torchscript": PRECISIONS}

# (audio (1, block), noise, stft pending, overlap-add tail, model states) ->
# (enhanced (1, block), stft pending, overlap-add tail, model states)
BlockKernel = Callable[
    [Tensor, Tensor, Tensor, Tensor, list[Tensor]], tuple[Tensor, Tensor, Tensor, list[Tensor]]
]
_Flat = Callable[..., list[Tensor]]
_KERNELS: weakref.WeakKeyDictionary[SEModel, dict[tuple[int, str, str], BlockKernel]] = (
    weakref.WeakKeyDictionary()
)


def check_kernel_precision(backend: str, precision: str) -> None:
    """ValueError unless the compiled ``backend`` runs ``precision``."""
    if backend not in COMPILED_BACKENDS:
        raise ValueError(f"backend must be one of {COMPILED_BACKENDS}, got {backend!r}")
    choices = KERNEL_PRECISIONS[backend]
    if precision not in choices:
        raise ValueError(f"the {backend} backend runs precisions {choices}, got {precision!r}")


def block_kernel(model: SEModel, steps: int, backend: str, precision: str = "fp32") -> BlockKernel:
    """The cached kernel of ``model`` at ``steps`` and ``precision``; ValueError if the model
    cannot run per block or the backend not at that precision."""
    check_kernel_precision(backend, precision)
    cache = _KERNELS.setdefault(model, {})
    key = (steps, backend, precision)
    if key not in cache:
        if any(p.requires_grad for p in model.parameters()):
            raise ValueError("streaming kernels need a frozen model: call requires_grad_(False)")
        if backend == "onnxruntime":
            block = BlockEnhancer(model, steps)
            run = _onnxruntime(block, precision)
        else:
            source = quantize_module(model, precision) if precision == "int8" else model
            block = BlockEnhancer(source, steps)
            run = _torchscript(block, precision)
        cache[key] = _with_model_states(run, block.model_state_template)
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


def _torchscript(block: BlockEnhancer, precision: str) -> _Flat:
    """A trace of ``block``; under autocast it records the casts of bf16 / fp16. Its outputs
    are float32 at every precision, like its inputs."""
    audio, noise = torch.zeros(1, block.block_samples), torch.zeros(block.noise_shape)
    with torch.no_grad(), autocast(precision), warnings.catch_warnings():
        warnings.simplefilter("ignore")
        traced = torch.jit.trace(block, (audio, noise, *block.initial_states()), check_trace=False)

    def run(*inputs: Tensor) -> list[Tensor]:
        with torch.no_grad():
            return [out.float() for out in traced(*inputs)]

    return run


def _onnxruntime(block: BlockEnhancer, precision: str) -> _Flat:
    session = single_thread_session(to_onnx(block, precision).SerializeToString())
    names = [value.name for value in session.get_inputs()]

    def run(*inputs: Tensor) -> list[Tensor]:
        feed = {name: value.numpy() for name, value in zip(names, inputs, strict=True)}
        return [torch.from_numpy(np.asarray(out)) for out in session.run(None, feed)]

    return run
