"""Multi-stage denoisers: a separate backbone per noise-level interval.

The training noise levels are split into ``stages`` intervals of equal probability under the
training sigma distribution; each interval gets its own backbone, and every sample (in training
and in each sampling step) is routed to the backbone of its sigma. A call costs one backbone's
MACs; the parameters grow ``stages`` times. Each backbone specialises on a narrower range of
noise levels (coarse structure at high sigma, detail at low sigma).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import torch
from torch import Tensor, nn

from latentdiff.core.diffusion import DiffusionConfig, vp_cosine_sigma, vp_cosine_time


def stage_boundaries(cfg: DiffusionConfig, stages: int) -> list[float]:
    """``stages - 1`` increasing sigmas splitting the training sigmas into equal-mass intervals."""
    if stages < 1:
        raise ValueError(f"stages must be >= 1, got {stages}")
    quantiles = [k / stages for k in range(1, stages)]
    if cfg.train_sigma == "lognormal":
        normal = NormalDist(cfg.p_mean, cfg.p_std if cfg.p_std > 0 else 1e-9)
        sigmas = [math.exp(normal.inv_cdf(q)) for q in quantiles]
    else:
        t_lo, t_hi = vp_cosine_time(cfg.sigma_min), vp_cosine_time(cfg.sigma_max)
        times = torch.tensor([t_lo + q * (t_hi - t_lo) for q in quantiles], dtype=torch.float64)
        sigmas = vp_cosine_sigma(times).tolist()
    return [min(max(s, cfg.sigma_min), cfg.sigma_max) for s in sigmas]


class StagedBackbone(nn.Module):
    """Backbones ``nets[k]`` for sigma in ``[boundaries[k-1], boundaries[k])``; same call as one.

    Routing uses the denoiser's ``c_noise = ln(sigma) / 4``.
    """

    def __init__(self, nets: list[nn.Module], boundaries: list[float]) -> None:
        super().__init__()
        if len(nets) != len(boundaries) + 1:
            raise ValueError("need one more backbone than boundaries")
        self.nets = nn.ModuleList(nets)
        c_noise = torch.tensor([math.log(s) / 4.0 for s in boundaries], dtype=torch.float32)
        self.register_buffer("c_noise_boundaries", c_noise, persistent=False)
        self.cond_channels = getattr(nets[0], "cond_channels", 0)

    def stage_index(self, c_noise: Tensor) -> Tensor:
        """Index of the stage (noise-level interval) of each row of ``c_noise`` (B,)."""
        return torch.bucketize(c_noise.reshape(-1), self.c_noise_boundaries.to(c_noise.dtype))

    def forward(
        self, x: Tensor, c_noise: Tensor, cond: Tensor | None = None, film: Tensor | None = None
    ) -> Tensor:
        stage = self.stage_index(c_noise)
        out: Tensor | None = None
        for index, net in enumerate(self.nets):
            rows = (stage == index).nonzero().reshape(-1)
            if rows.numel() == 0:
                continue
            y = net(
                x[rows],
                c_noise.reshape(-1)[rows],
                cond=cond[rows] if cond is not None else None,
                film=film[rows] if film is not None else None,
            )
            if out is None:
                out = y.new_zeros((x.shape[0], *y.shape[1:]))
            out = out.index_copy(0, rows, y)
        assert out is not None
        return out
