"""The model's feature path run block by block.

:class:`FeaturePath` holds the streaming states of every causal part of an enhancement model and
maps noisy features to enhanced target features chunk by chunk (``run``), exactly like the offline
``enhance_features``. Compiled single-block kernels of the same computation are in
``latentdiff.se.stream_kernels``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import torch
from torch import Tensor

from latentdiff.core.diffusion import get_sigmas
from latentdiff.core.samplers import SAMPLERS
from latentdiff.core.streaming import LayerStream, TcnStream
from latentdiff.se.model import LatentSE, PredictiveSE, SEModel, condition_input, frame_noise


class FeaturePath:
    """Noisy features -> enhanced target features of one model, keeping all streaming states."""

    def __init__(self, model: SEModel, steps: int, seed: int) -> None:
        self.model = model
        self.steps = steps
        self.seed = seed
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
        return sum(part.numel for part in self.parts())

    def states(self) -> list[Tensor]:
        """All states, flattened in a fixed order."""
        return [t for part in self.parts() for t in flatten_states(part.states)]

    def load_states(self, flat: Sequence[Tensor]) -> None:
        """Replace all states from a list in :meth:`states` order."""
        values = iter(flat)
        for part in self.parts():
            part.states = _unflatten(part.states, values)

    def noise(self, first_frame: int, frames: int) -> Tensor:
        """Initial sampling noise of latent frames ``first_frame ..`` (a dummy without sampler)."""
        if not isinstance(self.model, LatentSE):
            return torch.zeros(1, 1, frames)
        if not self.samplers:
            return torch.zeros(1, self.model.channels, frames)
        return frame_noise([self.seed], first_frame, frames, self.model.channels)

    def __call__(self, feats: Tensor, first_frame: int) -> Tensor:
        """Noisy features (1, 2F, s L) of latent frames ``first_frame ..`` -> target features."""
        return self.run(feats, self.noise(first_frame, feats.shape[-1] // self.model.downsample))

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
