"""Compiled network call of the learned planner.

:class:`ProposalGraph` is :meth:`PathDiffusion.propose` as one pure tensor function: map encoder,
conditioning, the sampler unrolled at its fixed sigmas, decoder. The sampling noise is an explicit
input drawn by :func:`initial_noise` from the same per-sample seeds that ``propose`` uses, so both
give the same samples (within float rounding). Only the batch axis (window pieces) is dynamic.
The tensors are tiny, so per-operator overhead, not arithmetic, dominates the eager call;
onnxruntime on one thread runs the exported graph about three times faster.

Kernels run at a ``precision`` of :data:`latentdiff.core.quantize.ONNX_PRECISIONS` (int8: dynamic
quantization of the graph's matrix products; the map encoder's 2-D convolutions stay float32).
They are built once per (model, candidates, steps, sampler, precision) and shared by every planner
of the process; a kernel keeps the weights the model had when it was built.
"""

from __future__ import annotations

import io
import warnings
import weakref

import numpy as np
import torch
from torch import Tensor, nn

from latentdiff.core.diffusion import get_sigmas, guided
from latentdiff.core.onnx import single_thread_session
from latentdiff.core.quantize import ONNX_PRECISIONS, check_precision, quantize_onnx
from latentdiff.core.samplers import SAMPLERS
from latentdiff.path.model import PathDiffusion

OPSET = 17
INPUTS = ("maps", "endpoints", "guide", "noise")
OUTPUT = "samples"

_KernelKey = tuple[int, int, str, str]
_KERNELS: weakref.WeakKeyDictionary[PathDiffusion, dict[_KernelKey, ProposalKernel]] = (
    weakref.WeakKeyDictionary()
)


class ProposalGraph(nn.Module):
    """``(maps, endpoints, guide, noise) -> samples`` for one (candidates, steps, sampler).

    Inputs as for ``PathDiffusion.propose``, with ``noise`` (B, candidates, channels, frames) from
    :func:`initial_noise` in place of the seeds; output (B * candidates, 2, n_waypoints).
    """

    def __init__(self, model: PathDiffusion, candidates: int, steps: int, sampler: str) -> None:
        super().__init__()
        if sampler not in SAMPLERS:
            raise ValueError(f"unknown sampler {sampler!r}; choose from {sorted(SAMPLERS)}")
        if sampler == "ddpm":
            raise ValueError("the ddpm sampler draws fresh noise at every step; run it eagerly")
        self.model = model.eval()
        self.candidates = candidates
        self.sampler = sampler
        cfg = model.diffusion.denoiser.cfg
        self.sigmas = get_sigmas(cfg.schedule, steps, cfg.sigma_min, cfg.sigma_max)
        self.noise_shape = (candidates, model.diffusion.channels, model.frames)
        self.evaluations = 0  # denoiser calls of the last forward (guidance counts twice)

    def forward(self, maps: Tensor, endpoints: Tensor, guide: Tensor, noise: Tensor) -> Tensor:
        cond, film = self.model.condition(maps, endpoints, guide)
        denoiser = self.model.diffusion.denoiser
        self.evaluations = 0

        def counted(
            x: Tensor, sigma: Tensor, cond: Tensor | None = None, film: Tensor | None = None
        ) -> Tensor:
            self.evaluations += 1
            return denoiser(x, sigma, cond=cond, film=film)

        def per_candidate(t: Tensor) -> Tensor:
            # repeat_interleave, written so that the exported batch axis stays dynamic
            return t.unsqueeze(1).expand(t.shape[0], self.candidates, *t.shape[1:]).flatten(0, 1)

        denoise = guided(
            counted, per_candidate(cond), per_candidate(film), denoiser.cfg.guidance_scale
        )
        x = float(self.sigmas[0]) * noise.flatten(0, 1)
        latent = SAMPLERS[self.sampler](denoise, x, self.sigmas).x
        return self.model.from_residual(self.model.diffusion.decode(latent), per_candidate(guide))

    def example_inputs(self, pieces: int = 1) -> tuple[Tensor, ...]:
        """Zero inputs for ``pieces`` windows."""
        cfg = self.model.cfg
        return (
            torch.zeros(pieces, 2, cfg.window, cfg.window),
            torch.zeros(pieces, 4),
            torch.zeros(pieces, 2, cfg.n_waypoints),
            torch.zeros(pieces, *self.noise_shape),
        )


class ProposalKernel:
    """The exported :class:`ProposalGraph` at ``precision``, run by onnxruntime on one thread
    (float32 numpy I/O at every precision)."""

    def __init__(self, graph: ProposalGraph, precision: str = "fp32") -> None:
        check_precision(precision, ONNX_PRECISIONS)
        inputs = graph.example_inputs()
        with torch.no_grad():
            graph(*inputs)
        self.nfe = graph.evaluations
        self.noise_shape = graph.noise_shape
        self.precision = precision
        self._session = single_thread_session(quantize_onnx(_export(graph, inputs), precision))

    def __call__(
        self, maps: np.ndarray, endpoints: np.ndarray, guide: np.ndarray, noise: np.ndarray
    ) -> np.ndarray:
        """Decoded samples (B * candidates, 2, n_waypoints) for B windows."""
        feed = dict(zip(INPUTS, (maps, endpoints, guide, noise), strict=True))
        return self._session.run(None, feed)[0]


def _export(graph: ProposalGraph, inputs: tuple[Tensor, ...]) -> bytes:
    """ONNX bytes of ``graph`` with a dynamic batch axis."""
    buffer = io.BytesIO()
    batch = {0: "pieces"}
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is legacy
        warnings.simplefilter("ignore", torch.jit.TracerWarning)  # sigmas are graph constants
        # Strided slices stay unfolded in the export; onnxruntime folds them when it loads.
        warnings.filterwarnings("ignore", "Constant folding - Only steps=1", UserWarning)
        torch.onnx.export(
            graph,
            inputs,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=list(INPUTS),
            output_names=[OUTPUT],
            dynamic_axes={**{name: batch for name in INPUTS}, OUTPUT: {0: "rows"}},
            do_constant_folding=True,
        )
    return buffer.getvalue()


def proposal_kernel(
    model: PathDiffusion, candidates: int, steps: int, sampler: str, precision: str = "fp32"
) -> ProposalKernel:
    """The cached kernel of ``model``; ValueError for samplers that need fresh noise per step and
    for precisions onnxruntime does not run (checked by :class:`ProposalKernel`)."""
    cache = _KERNELS.setdefault(model, {})
    key = (candidates, steps, sampler, precision)
    if key not in cache:
        graph = ProposalGraph(model, candidates, steps, sampler)
        cache[key] = ProposalKernel(graph, precision)
    return cache[key]
