"""Conditional (latent) path diffusion: a map encoder trained jointly with the denoiser.

What each part does:

- a trajectory autoencoder (core ``Autoencoder1D``, non-causal, 2 channels = normalised (x, y)
  waypoints) maps ``n_waypoints`` points to a short latent, e.g. 4 channels x 8 frames;
- the model generates the residual ``(target - reference) / residual_scale`` between the optimal
  path and a reference path (both resampled to ``n_waypoints``). With ``reference="route"`` the
  reference is the A* + shortcut guide route: it is already close, so the residual is small and
  the autoencoder's absolute error shrinks with it, but samples tend to stay in the guide's
  homotopy class. With ``reference="straight"`` it is the straight start -> goal line
  (:func:`straight_line`) and the guide route is not used at all: the model must choose a way
  around the obstacles from the map alone (larger residuals, so a larger ``residual_scale``);
- the denoiser (core ``LatentDiffusion``) generates the residual's latent conditioned on the
  reference itself, folded to the latent frame rate (``downsample`` consecutive waypoints per
  frame) and concatenated as ``cond`` channels;
- a small strided CNN (:class:`MapEncoder`) turns the window's occupancy and signed distance field,
  plus the normalised start and goal, into the global FiLM vector of the denoiser; with
  ``local_dim`` > 0 its multi-scale feature maps are also sampled at every reference waypoint and
  passed with the reference as ``cond`` channels.

Trained on the exact any-angle optimum, the model learns to tauten the reference. Its samples
carry no guarantee: the planner verifies every candidate with the exact collision checker. With
``latent=False`` the same denoiser runs in waypoint space (``autoencoder=None``), the baseline that
measures what the latent saves.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn
from torch.nn import functional as F

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.config import from_dict, to_dict
from latentdiff.core.distill import DistillConfig, distillation_loss
from latentdiff.core.latent import LatentDiffusion, LatentDiffusionConfig
from latentdiff.core.models import register_model
from latentdiff.core.nets import count_macs
from latentdiff.path.data import SDF_SCALE

RESIDUAL_SCALE = 0.05  # default normalised units (1 = half a window) per residual unit
REFERENCES = ("route", "straight")  # what the residual is taken from, see PathModelConfig
SDF_CHANNEL = 1  # map features: occupancy, squashed signed distance
CLEARANCE = math.tanh(0.25 / SDF_SCALE)  # squashed SDF of a quarter cell from an obstacle


def to_residual(target: Tensor, reference: Tensor, scale: float = RESIDUAL_SCALE) -> Tensor:
    """Offset of the target waypoints from the reference waypoints, in units of ``scale``."""
    return (target - reference) / scale


def from_residual(residual: Tensor, reference: Tensor, scale: float = RESIDUAL_SCALE) -> Tensor:
    """Inverse of :func:`to_residual`."""
    return reference + scale * residual


def straight_line(guide: Tensor) -> Tensor:
    """(B, 2, N) waypoints evenly spaced on the segment from ``guide``'s first to last waypoint."""
    fractions = torch.linspace(0.0, 1.0, guide.shape[-1], dtype=guide.dtype)
    first, last = guide[..., :1], guide[..., -1:]
    return first + (last - first) * fractions


def check_residuals(reference: str, scale: float) -> None:
    """ValueError unless ``reference`` is one of :data:`REFERENCES` and ``scale`` > 0."""
    if reference not in REFERENCES:
        raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")
    if scale <= 0.0:
        raise ValueError(f"residual_scale must be > 0, got {scale}")


def reference_path(guide: Tensor, reference: str) -> Tensor:
    """The path residuals are taken from: ``guide`` itself ("route") or its chord ("straight")."""
    if reference == "route":
        return guide
    if reference == "straight":
        return straight_line(guide)
    raise ValueError(f"reference must be one of {REFERENCES}, got {reference!r}")


def collision_cost(
    points: Tensor, sdf: Tensor, clearance: float = CLEARANCE, per_segment: int = 4
) -> Tensor:
    """Per path (B,): sum of ``relu(clearance - sdf)^2`` over points spread along its segments.

    ``points`` (B, 2, N) are normalised (x, y) waypoints; ``sdf`` (B, 1, W, W) is the window's
    squashed signed distance field (the map features' second channel, > 0 in free space),
    sampled bilinearly, so the cost is differentiable in the points.
    """
    start, end = points[..., :-1], points[..., 1:]
    fractions = torch.arange(per_segment, dtype=points.dtype) / per_segment
    dense = start[..., None] + (end - start)[..., None] * fractions
    dense = torch.cat([dense.flatten(2), points[..., -1:]], dim=2)
    values = F.grid_sample(
        sdf, dense.transpose(1, 2).unsqueeze(1), padding_mode="border", align_corners=False
    )
    return F.relu(clearance - values).pow(2).flatten(1).sum(dim=1)


def fold(x: Tensor, factor: int) -> Tensor:
    """(B, C, T) -> (B, C * factor, T / factor): ``factor`` consecutive frames become channels."""
    return x.unflatten(2, (-1, factor)).transpose(2, 3).flatten(1, 2)


@dataclass
class MapEncoderConfig:
    """Strided CNN over the (occupancy, SDF) window; ``channels`` per stride-2 stage.

    ``local_dim`` > 0 adds local features along the reference path: the input maps and every
    stage's feature map (a multi-scale pyramid) are sampled bilinearly at each of its waypoints
    and projected to ``local_dim`` channels per waypoint, which the denoiser gets with the path.
    """

    channels: tuple[int, ...] = (8, 16, 32, 32)
    pooled: int = 4  # spatial side kept before the final linear layer
    out_dim: int = 64
    local_dim: int = 0


@dataclass
class PathModelConfig:
    """Window geometry, waypoint count, residual reference, map encoder and diffusion model.

    ``reference`` is "route" (residuals from the guide route, which also conditions the model)
    or "straight" (from the straight start -> goal line; the guide's interior is ignored);
    ``residual_scale`` is the normalised offset of one residual unit (see :func:`to_residual`).
    ``keep_vertices`` says how guides are resampled, as in the training data; None (the default)
    takes it from the data at training time, and a set value must match it.
    """

    window: int = 64
    n_waypoints: int = 32
    latent: bool = True
    reference: str = "route"
    residual_scale: float = RESIDUAL_SCALE
    keep_vertices: bool | None = None
    map_encoder: MapEncoderConfig = field(default_factory=MapEncoderConfig)
    diffusion: LatentDiffusionConfig = field(default_factory=LatentDiffusionConfig)

    def __post_init__(self) -> None:
        check_residuals(self.reference, self.residual_scale)


class MapEncoder(nn.Module):
    """(B, 2, W, W) map features, (B, 4) endpoints and (B, 2, N) reference waypoints ->
    (B, out_dim) FiLM vector and (B, local_dim, N) features along them (None if disabled).
    """

    def __init__(self, cfg: MapEncoderConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        in_ch = 2
        for ch in cfg.channels:
            layers += [nn.Conv2d(in_ch, ch, 3, stride=2, padding=1), nn.SiLU()]
            in_ch = ch
        self.convs = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(cfg.pooled)
        self.head = nn.Sequential(
            nn.Linear(in_ch * cfg.pooled**2 + 4, cfg.out_dim),
            nn.SiLU(),
            nn.Linear(cfg.out_dim, cfg.out_dim),
        )
        pyramid = 2 + sum(cfg.channels)
        self.local = nn.Conv1d(pyramid, cfg.local_dim, 1) if cfg.local_dim > 0 else None

    def forward(
        self, maps: Tensor, endpoints: Tensor, reference: Tensor
    ) -> tuple[Tensor, Tensor | None]:
        levels = [maps]
        h = maps
        for layer in self.convs:
            h = layer(h)
            if isinstance(layer, nn.SiLU):
                levels.append(h)
        film = self.head(torch.cat([self.pool(h).flatten(1), endpoints], dim=1))
        if self.local is None:
            return film, None
        # Normalised (x, y) in [-1, 1] are grid_sample's coordinates (pixel edges at +-1).
        grid = reference.transpose(1, 2).unsqueeze(1)
        sampled = [
            F.grid_sample(level, grid, mode="bilinear", padding_mode="border", align_corners=False)
            for level in levels
        ]
        return film, F.silu(self.local(torch.cat(sampled, dim=1).squeeze(2)))


class PathDiffusion(nn.Module):
    """Map encoder + (latent) diffusion over waypoint sequences; ``forward`` is the training loss.

    Batches are dicts with ``maps`` (B, 2, W, W), ``endpoints`` (B, 4) normalised (start, goal),
    ``guide`` and ``target`` (B, 2, n_waypoints) normalised waypoints. Every method that takes a
    guide uses it through :meth:`reference` only.
    """

    def __init__(self, cfg: PathModelConfig, autoencoder: Autoencoder1D | None = None) -> None:
        super().__init__()
        if cfg.latent and autoencoder is None:
            raise ValueError("a latent path model needs its trajectory autoencoder")
        if not cfg.latent:
            autoencoder = None
        self.cfg = cfg
        downsample = autoencoder.downsample if autoencoder is not None else 1
        diffusion_cfg = LatentDiffusionConfig(
            backbone=cfg.diffusion.backbone,
            diffusion=cfg.diffusion.diffusion,
            data_channels=2,
            cond_channels=(2 + cfg.map_encoder.local_dim) * downsample,
            film_dim=cfg.map_encoder.out_dim,
            stages=cfg.diffusion.stages,
        )
        self.map_encoder = MapEncoder(cfg.map_encoder)
        self.diffusion = LatentDiffusion(diffusion_cfg, autoencoder)

    @property
    def frames(self) -> int:
        """Frames of the generated sequence (latent frames, or waypoints in waypoint space)."""
        return self.cfg.n_waypoints // self.diffusion.downsample

    def reference(self, guide: Tensor) -> Tensor:
        """The reference path of ``guide`` (B, 2, N) under ``cfg.reference``."""
        return reference_path(guide, self.cfg.reference)

    def to_residual(self, target: Tensor, guide: Tensor) -> Tensor:
        """The residual this model generates for ``target`` given ``guide``."""
        return to_residual(target, self.reference(guide), self.cfg.residual_scale)

    def from_residual(self, residual: Tensor, guide: Tensor) -> Tensor:
        """Waypoints of a generated ``residual`` given ``guide`` (inverse of ``to_residual``)."""
        return from_residual(residual, self.reference(guide), self.cfg.residual_scale)

    def condition(self, maps: Tensor, endpoints: Tensor, guide: Tensor) -> tuple[Tensor, Tensor]:
        """``(cond, film)``: the reference path of ``guide`` (with the map features along it,
        when enabled) folded to the model's frame rate, and the map / endpoint FiLM vector."""
        reference = self.reference(guide)
        film, local = self.map_encoder(maps, endpoints, reference)
        route = reference if local is None else torch.cat([reference, local], dim=1)
        return fold(route, self.diffusion.downsample), film

    def forward(self, batch: dict[str, Tensor], seeds: Tensor) -> tuple[Tensor, dict[str, float]]:
        cond, film = self.condition(batch["maps"], batch["endpoints"], batch["guide"])
        residual = self.to_residual(batch["target"], batch["guide"])
        return self.diffusion.loss(residual, seeds, cond=cond, film=film)

    def distillation_loss(
        self, teacher: PathDiffusion, batch: dict[str, Tensor], seeds: Tensor, cfg: DistillConfig
    ) -> tuple[Tensor, dict[str, float]]:
        """Few-step distillation loss of this (student) model against ``teacher``.

        Both see the same batch, each through its own map encoder; the student's autoencoder is
        the teacher's (frozen), so both work on the same latent.
        """
        cond, film = self.condition(batch["maps"], batch["endpoints"], batch["guide"])
        with torch.no_grad():
            teacher_cond, teacher_film = teacher.condition(
                batch["maps"], batch["endpoints"], batch["guide"]
            )
        latent = self.diffusion.encode(self.to_residual(batch["target"], batch["guide"]))
        return distillation_loss(
            self.diffusion.denoiser,
            teacher.diffusion.denoiser,
            latent,
            seeds,
            cfg,
            cond=cond,
            film=film,
            teacher_cond=teacher_cond,
            teacher_film=teacher_film,
        )

    @torch.no_grad()
    def propose(
        self,
        maps: Tensor,
        endpoints: Tensor,
        guide: Tensor,
        seeds: Tensor,
        *,
        candidates: int,
        steps: int,
        sampler: str,
        guidance: float = 0.0,
    ) -> tuple[Tensor, int]:
        """``candidates`` decoded samples per problem, (B * candidates, 2, n_waypoints), and NFE.

        Row ``i * candidates + k`` belongs to problem ``i``; ``seeds`` holds one seed per row.
        ``guidance`` > 0 moves every latent x0 estimate down the gradient of the decoded path's
        :func:`collision_cost` (through the decoder) by that step size.
        """
        cond, film = self.condition(maps, endpoints, guide)
        guide = guide.repeat_interleave(candidates, dim=0)
        cond = cond.repeat_interleave(candidates, dim=0)
        film = film.repeat_interleave(candidates, dim=0)
        correction = None
        if guidance > 0.0:
            sdf = maps[:, SDF_CHANNEL : SDF_CHANNEL + 1].repeat_interleave(candidates, dim=0)

            def correction(z0: Tensor, sigma: Tensor) -> Tensor:
                with torch.enable_grad():
                    z = z0.detach().requires_grad_(True)
                    points = self.from_residual(self.diffusion.decode(z), guide)
                    (gradient,) = torch.autograd.grad(collision_cost(points, sdf).sum(), z)
                return z0 - guidance * gradient

        result = self.diffusion.sample(
            cond.shape[0],
            self.frames,
            cond=cond,
            film=film,
            steps=steps,
            sampler=sampler,
            seeds=seeds,
            x0_correction=correction,
        )
        return self.from_residual(result.x, guide), result.nfe

    def macs_per_plan(self, candidates: int, nfe: int) -> dict[str, float]:
        """Multiply-accumulates of one single-window plan, split by component."""
        window = self.cfg.window
        maps, ends = torch.zeros(1, 2, window, window), torch.zeros(1, 4)
        guide = torch.zeros(1, 2, self.cfg.n_waypoints)
        map_macs = float(count_macs(self.map_encoder, maps, ends, guide)) + conv2d_macs(
            self.map_encoder, maps
        )
        ae = self.diffusion.autoencoder
        z = torch.zeros(1, self.diffusion.channels, self.frames)
        net = self.diffusion.denoiser.net
        per_nfe = float(
            count_macs(
                net,
                z,
                torch.zeros(1),
                z.new_zeros(1, net.cond_channels, self.frames),
                torch.zeros(1, self.cfg.map_encoder.out_dim),
            )
        )
        dec = float(count_macs(ae.decoder, z)) if ae is not None else 0.0
        denoise = candidates * nfe * per_nfe
        return {
            "map_encoder": map_macs,
            "denoiser": denoise,
            "decoder": candidates * dec,
            "total": map_macs + denoise + candidates * dec,
        }


def conv2d_macs(encoder: MapEncoder, maps: Tensor) -> float:
    """Multiply-accumulates of the map encoder's 2-D convolutions on ``maps``."""
    total = 0.0
    h = maps
    with torch.no_grad():
        for layer in encoder.convs:
            out = layer(h)
            if isinstance(layer, nn.Conv2d):
                total += out.numel() * (layer.in_channels // layer.groups) * 9
            h = out
    return total


def path_model_spec(model: PathDiffusion) -> dict[str, Any]:
    """Spec rebuilding a :class:`PathDiffusion` (see :func:`latentdiff.core.models.load_model`)."""
    ae = model.diffusion.autoencoder
    return {
        "kind": "path_diffusion",
        "config": to_dict(model.cfg),
        "autoencoder": to_dict(ae.cfg) if ae is not None else None,
    }


@register_model("path_diffusion")
def build_path_model(spec: dict[str, Any]) -> nn.Module:
    """Untrained :class:`PathDiffusion` of a spec."""
    ae_cfg = spec.get("autoencoder")
    ae = Autoencoder1D(from_dict(AutoencoderConfig, ae_cfg)) if ae_cfg is not None else None
    return PathDiffusion(from_dict(PathModelConfig, spec["config"]), ae)
