"""The model's feature path run block by block, and fast single-block kernels for it.

:class:`FeaturePath` holds the streaming states of every causal part of an enhancement model and
maps noisy features to enhanced target features chunk by chunk (``run``), exactly like the offline
``enhance_features``. A chunk of one block, the real-time case, can instead go through a compiled
*kernel* of the same computation with the states as explicit inputs and outputs:

- ``onnxruntime`` (default): the block exported to ONNX and run by onnxruntime; about 4x less
  time per block than eager PyTorch on one thread (Python overhead dominates such small tensors);
- ``torchscript``: a TorchScript trace of the block;
- ``eager``: plain PyTorch.

Kernels are built once per (model, steps) and shared by all sessions in the process.
"""

from __future__ import annotations

import io
import warnings
import weakref
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from latentdiff.core.diffusion import get_sigmas
from latentdiff.core.samplers import SAMPLERS
from latentdiff.core.streaming import LayerStream, TcnStream
from latentdiff.se import STREAM_BACKENDS
from latentdiff.se.model import LatentSE, PredictiveSE, SEModel, condition_input, frame_noise

BACKENDS = STREAM_BACKENDS
Kernel = Callable[[Tensor, Tensor, list[Tensor]], tuple[Tensor, list[Tensor]]]
_KERNELS: weakref.WeakKeyDictionary[SEModel, dict[tuple[int, str], Kernel]] = (
    weakref.WeakKeyDictionary()
)


class FeaturePath:
    """Noisy features -> enhanced target features of one model, keeping all streaming states."""

    def __init__(self, model: SEModel, steps: int, seed: int, backend: str = "eager") -> None:
        if backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
        self.model = model
        self.steps = steps
        self.seed = seed
        self.backend = backend
        self.cond = LayerStream(list(model.cond_encoder.layers))
        self.head: TcnStream | None = None
        self.encoder: LayerStream | None = None
        self.decoder: LayerStream | None = None
        self.samplers: list[TcnStream] = []
        if isinstance(model, PredictiveSE):
            self.head = TcnStream(model.net)
        elif isinstance(model, LatentSE):
            self._build_latent(model, steps)
        else:
            raise ValueError(f"cannot stream a {type(model).__name__}")
        self._kernel: Kernel | None = None
        self._flat: list[Tensor] | None = None  # states while single blocks use the kernel

    def _build_latent(self, model: LatentSE, steps: int) -> None:
        if model.cfg.diffusion.sampler == "ddpm" and steps > 0:
            raise ValueError("the ddpm sampler draws fresh noise per step and cannot stream")
        if steps == 0 and model.head is None:
            raise ValueError("steps=0 needs the predictive head of a hybrid model")
        self.head = TcnStream(model.head) if model.head is not None else None
        ae = model.autoencoder
        mask = model.cfg.head == "mask" and self.head is not None
        if ae is not None and steps > 0 and mask:
            self.encoder = LayerStream(list(ae.encoder))
        if ae is not None and (steps > 0 or not mask):
            # With a mask head, D(z_pred + r) and D(z_pred) run as one batch of 2.
            self.decoder = LayerStream(list(ae.decoder), batch=2 if mask and steps > 0 else 1)
        self.samplers = [TcnStream(model.denoiser.net) for _ in range(model.nfe(steps))]

    def parts(self) -> list[LayerStream | TcnStream]:
        """The stateful parts, in a fixed order."""
        parts = [self.cond, self.head, self.encoder, self.decoder, *self.samplers]
        return [part for part in parts if part is not None]

    @property
    def numel(self) -> int:
        """Elements held in the states (constant over a stream)."""
        self._unpack()
        return sum(part.numel for part in self.parts())

    def states(self) -> list[Tensor]:
        """All states, flattened in a fixed order."""
        if self._flat is not None:
            return list(self._flat)
        return [t for part in self.parts() for t in flatten_states(part.states)]

    def load_states(self, flat: Sequence[Tensor]) -> None:
        """Replace all states from a list in :meth:`states` order."""
        values = iter(flat)
        for part in self.parts():
            part.states = _unflatten(part.states, values)

    def noise(self, first_frame: int, frames: int) -> Tensor:
        """Initial sampling noise of latent frames ``first_frame ..`` (a dummy without sampler)."""
        if not self.samplers:
            return torch.zeros(1, 1, frames)
        assert isinstance(self.model, LatentSE)
        return frame_noise([self.seed], first_frame, frames, self.model.channels)

    def __call__(self, feats: Tensor, first_frame: int) -> Tensor:
        """Noisy features (1, 2F, s L) of latent frames ``first_frame ..`` -> target features.

        One block goes through the backend's kernel; longer chunks run eagerly in one pass.
        """
        frames = feats.shape[-1] // self.model.downsample
        noise = self.noise(first_frame, frames)
        if frames != 1 or self.backend == "eager":
            self._unpack()
            return self.run(feats, noise)
        if self._kernel is None:
            self._kernel = kernel(self.model, self.steps, self.backend)
        out, self._flat = self._kernel(feats, noise, self.states())
        return out

    def _unpack(self) -> None:
        """Move the kernel's flat states back into the parts."""
        if self._flat is not None:
            self.load_states(self._flat)
            self._flat = None

    def run(self, feats: Tensor, noise: Tensor) -> Tensor:
        """Eager pass over a chunk of blocks with the given per-frame sampling ``noise``."""
        model = self.model
        cond = self.cond(condition_input(feats))
        zero = cond.new_zeros(1)
        if isinstance(model, PredictiveSE):
            assert self.head is not None
            return model._estimate(self.head(cond, zero), feats)
        assert isinstance(model, LatentSE)
        estimate = model._estimate(self.head(cond, zero), feats) if self.head else None
        mask = model.cfg.head == "mask" and estimate is not None
        if self.steps == 0:
            assert estimate is not None
            return estimate if mask else self._decode(estimate)
        z_pred = estimate
        if mask and self.encoder is not None:
            assert model.autoencoder is not None
            z_pred = model.autoencoder.normalize(self._encode(estimate))
        residual = self._sample(cond, z_pred, noise)
        if z_pred is None:
            return self._decode(residual)
        if mask and self.decoder is not None:
            both = self._decode(torch.cat([z_pred + residual, z_pred]))
            return estimate + both[:1] - both[1:]
        return self._decode(z_pred + residual)

    def _encode(self, feats: Tensor) -> Tensor:
        assert self.encoder is not None and isinstance(self.model, LatentSE)
        h = self.encoder(feats)
        ae = self.model.autoencoder
        return h.chunk(2, dim=1)[0] if ae is not None and ae.variational else h

    def _decode(self, z: Tensor) -> Tensor:
        model = self.model
        assert isinstance(model, LatentSE)
        if self.decoder is None or model.autoencoder is None:
            return z
        return self.decoder(model.autoencoder.denormalize(z))

    def _sample(self, cond: Tensor, z_pred: Tensor | None, noise: Tensor) -> Tensor:
        model = self.model
        assert isinstance(model, LatentSE)
        dcfg = model.cfg.diffusion
        sigmas = get_sigmas(dcfg.schedule, self.steps, dcfg.sigma_min, dcfg.sigma_max)
        full_cond = cond if z_pred is None else torch.cat([cond, z_pred], dim=1)
        calls = iter(self.samplers)

        def denoise(x: Tensor, sigma: Tensor) -> Tensor:
            c_skip, c_out, c_in, c_noise = model.denoiser.preconditioning(sigma.to(x))
            out = next(calls)(c_in[:, None, None] * x, c_noise, full_cond)
            return c_skip[:, None, None] * x + c_out[:, None, None] * out

        seeds = torch.tensor([self.seed], dtype=torch.int64)
        return SAMPLERS[dcfg.sampler](denoise, float(sigmas[0]) * noise, sigmas, seeds=seeds).x


def flatten_states(states: Any) -> list[Tensor]:
    """The tensors of a (nested) streaming state, in ``FeaturePath.states`` order."""
    if isinstance(states, Tensor):
        return [states]
    if isinstance(states, list):
        return [t for sub in states for t in flatten_states(sub)]
    return []


def _unflatten(template: Any, values: Iterator[Tensor]) -> Any:
    """``template``'s nested structure, refilled from ``values`` in ``flatten_states`` order."""
    if isinstance(template, Tensor):
        return next(values)
    if isinstance(template, list):
        return [_unflatten(sub, values) for sub in template]
    return template


class _Block(nn.Module):
    """One block of a fresh :class:`FeaturePath` as a function of (feats, noise, *states)."""

    def __init__(self, model: SEModel, steps: int) -> None:
        super().__init__()
        self.model = model
        self.path = FeaturePath(model, steps, seed=0)

    def example(self) -> tuple[Tensor, ...]:
        feats = torch.zeros(1, self.model.feature_channels, self.model.downsample)
        return (feats, self.path.noise(0, 1), *self.path.states())

    def forward(self, feats: Tensor, noise: Tensor, *flat: Tensor) -> tuple[Tensor, ...]:
        self.path.load_states(flat)
        return (self.path.run(feats, noise), *self.path.states())


def kernel(model: SEModel, steps: int, backend: str) -> Kernel:
    """The cached single-block kernel of ``model`` at ``steps`` for ``backend``."""
    cache = _KERNELS.setdefault(model, {})
    key = (steps, backend)
    if key not in cache:
        if any(p.requires_grad for p in model.parameters()):
            raise ValueError("streaming kernels need a frozen model: call requires_grad_(False)")
        build = _onnxruntime_kernel if backend == "onnxruntime" else _torchscript_kernel
        with torch.no_grad(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            cache[key] = build(_Block(model, steps))
    return cache[key]


def _torchscript_kernel(block: _Block) -> Kernel:
    traced = torch.jit.trace(block, block.example(), check_trace=False)

    def run(feats: Tensor, noise: Tensor, flat: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        out, *states = traced(feats, noise, *flat)
        return out, states

    return run


def _onnxruntime_kernel(block: _Block) -> Kernel:
    import onnxruntime as ort

    example = block.example()
    names = ["feats", "noise", *(f"state_{i}" for i in range(len(example) - 2))]
    buffer = io.BytesIO()
    torch.onnx.export(block, example, buffer, input_names=names, dynamo=False, opset_version=17)
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(buffer.getvalue(), options, providers=["CPUExecutionProvider"])
    used = [i for i, name in enumerate(names) if name in {x.name for x in session.get_inputs()}]
    used_names = [names[i] for i in used]

    def run(feats: Tensor, noise: Tensor, flat: list[Tensor]) -> tuple[Tensor, list[Tensor]]:
        values = [feats, noise, *flat]
        feed = {name: values[i].numpy() for name, i in zip(used_names, used, strict=True)}
        out, *states = session.run(None, feed)
        return torch.from_numpy(out), [torch.from_numpy(np.asarray(s)) for s in states]

    return run
