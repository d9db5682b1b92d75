"""The learned planner: a guide route refined by latent diffusion, verified by the exact checker.

1. Guide: A* + line-of-sight shortcutting (always valid when the goal is reachable), tautened
   to the shortest path of its homotopy class (:mod:`latentdiff.path.taut`). It is returned
   without the network when it is provably optimal: a straight line, or the free space has no
   holes (every obstacle joined to the border, as in mazes), so there is only one class.
2. The A* guide is split into pieces whose bounding box fits the model's window (one piece for
   maps up to the window size); each piece is refined in its own window crop.
3. All pieces of all problems go through the network in one batch (a compiled kernel by default,
   see :class:`PlannerConfig`): ``candidates`` samples each, decoded, endpoints pinned, verified
   segment by segment; valid ones are tautened, so the network mainly proposes homotopy classes
   (ways around obstacles) other than the guide's.
4. Per piece the shortest valid path wins, the tautened guide piece included. Repair (re-routing
   the colliding stretches of the least-colliding sample with A*) runs only when no sample is
   valid and some sample is shorter than the tautened guide piece; a failed repair keeps the
   guide (a fallback). Pieces are joined, tautened and compared with the tautened guide.

A path is reported as a success only when :func:`latentdiff.path.geometry.path_is_free` accepts it.
``info`` records ``method`` ("diffusion" when the path came from a sample, else "guide"), the
length of that sample or guide before and after tautening, ``n_valid_raw``, ``repair_tried``
(pieces where repair ran), ``repaired`` (the returned path came from a repaired sample) and
``fallback`` (a needed repair failed); ``skipped`` says why the network did not run, if so.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentdiff.core.models import load_model, resolve_checkpoint
from latentdiff.core.quantize import ONNX_PRECISIONS, check_precision
from latentdiff.core.random import mix_seed
from latentdiff.core.samplers import initial_noise
from latentdiff.path.data import (
    box_fits,
    crop_window,
    denormalise,
    normalise,
    window_origin,
)
from latentdiff.path.features import window_features
from latentdiff.path.geometry import path_is_free, points_are_free, segments_are_free
from latentdiff.path.homotopy import obstacle_points, same_winding
from latentdiff.path.kernels import ProposalKernel, proposal_kernel
from latentdiff.path.maps import as_occupancy, validate_endpoints
from latentdiff.path.metrics import path_length, resample_path
from latentdiff.path.model import PathDiffusion
from latentdiff.path.search import (
    ConnectivityIndex,
    astar_any_angle,
    convex_corners,
    free_space_is_simply_connected,
    shortcut_path,
)
from latentdiff.path.taut import taut_path

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained" / "path" / "planner.pt"

Problem = tuple[Any, Sequence[float], Sequence[float]]

_TOLERANCE = 1e-9

BACKENDS = ("onnxruntime", "eager")


@dataclass
class PlannerConfig:
    """Sampling and selection settings (the model itself comes from its checkpoint).

    ``steps`` and ``sampler`` default to the model's own (its training config's; a distilled
    model's are its student settings). ``backend`` runs the network call as a compiled kernel
    ("onnxruntime", see :mod:`latentdiff.path.kernels`) or as eager PyTorch ("eager"); both draw
    the same noise and give the same samples within float rounding. ``precision`` is the compiled
    kernel's (fp32, int8 or fp16, see :mod:`latentdiff.core.quantize`); eager runs fp32 only.
    ``guidance`` > 0 steers every sampling step away from obstacles through the decoder
    (:func:`latentdiff.path.model.collision_cost`, eager backend only).
    """

    candidates: int = 8
    steps: int | None = None
    sampler: str | None = None
    seed: int = 0
    margin: int = 2
    repair: bool = True
    backend: str = "onnxruntime"
    precision: str = "fp32"
    guidance: float = 0.0

    def __post_init__(self) -> None:
        if self.backend not in BACKENDS:
            raise ValueError(f"backend must be one of {BACKENDS}, got {self.backend!r}")
        if self.backend == "onnxruntime" and self.sampler == "ddpm":
            raise ValueError("ddpm draws fresh noise at every step; use backend='eager' for it")
        if self.guidance < 0.0:
            raise ValueError(f"guidance must be >= 0, got {self.guidance}")
        if self.guidance > 0.0 and self.backend != "eager":
            raise ValueError("collision guidance needs gradients: use backend='eager' with it")
        if self.backend == "eager" and self.precision != "fp32":
            raise ValueError(f"the eager backend runs fp32 only, got precision {self.precision!r}")
        check_precision(self.precision, ONNX_PRECISIONS)

    def for_model(self, model: PathDiffusion) -> PlannerConfig:
        """These settings with ``steps`` and ``sampler`` filled in from ``model`` where unset."""
        own = model.cfg.diffusion.diffusion
        return replace(
            self,
            steps=self.steps if self.steps is not None else own.steps,
            sampler=self.sampler if self.sampler is not None else own.sampler,
        )


@dataclass
class PlanResult:
    """A plan: ``path`` (N, 2) of (x, y) points from start to goal, verified when ``success``.

    Unreachable goals give ``success=False`` and the two-point path ``[start, goal]``.
    """

    path: np.ndarray
    success: bool
    info: dict[str, Any] = field(default_factory=dict)


@dataclass
class _Piece:
    """One window of one problem: the guide piece, its window origin and the network inputs."""

    problem: int
    index: int
    points: np.ndarray
    origin: np.ndarray
    crop: np.ndarray
    maps: np.ndarray
    endpoints: np.ndarray
    guide: np.ndarray


@dataclass
class _Choice:
    """The path kept for a piece and where it came from."""

    path: np.ndarray
    source: str  # "diffusion" | "repaired" | "guide" | "fallback"
    n_valid_raw: int
    raw_length: float  # length of the chosen sample (or guide) before tautening
    repair_tried: bool = False


def densify(path: np.ndarray, max_step: float) -> np.ndarray:
    """Insert points so that no segment of ``path`` is longer than ``max_step``."""
    out = [path[:1]]
    for a, b in itertools.pairwise(path):
        parts = max(1, math.ceil(float(np.hypot(*(b - a))) / max_step))
        out.append(a + (b - a) * (np.arange(1, parts + 1)[:, None] / parts))
    return np.concatenate(out)


def split_route(
    path: np.ndarray, shape: Sequence[int], window: int, margin: int
) -> list[np.ndarray]:
    """Consecutive pieces of ``path`` (sharing their end points) that each fit one window."""
    pts = densify(path, (window - 2 * margin) / 2)
    pieces, anchor = [], 0
    while anchor < len(pts) - 1:
        end = anchor + 1
        while end + 1 < len(pts):
            span = pts[anchor : end + 2]
            if not box_fits(span.min(0), span.max(0), shape, window, margin):
                break
            end += 1
        pieces.append(pts[anchor : end + 1])
        anchor = end
    return pieces


def repair(occ: np.ndarray, points: np.ndarray) -> np.ndarray | None:
    """Re-route every colliding stretch of ``points`` with A* between its free neighbours.

    The first and last points must be free. Returns the shortcut result, or None if a stretch
    cannot be bridged.
    """
    free_points = points_are_free(occ, points)
    free_segments = segments_are_free(occ, points[:-1], points[1:])
    out, i = [points[0]], 0
    while i < len(points) - 1:
        if free_segments[i]:
            out.append(points[i + 1])
            i += 1
            continue
        j = i + 1
        while not free_points[j]:
            j += 1
        bridge = astar_any_angle(occ, points[i], points[j])
        if bridge is None:
            return None
        out.extend(bridge[1:])
        i = j
    return shortcut_path(occ, np.asarray(out))


class Planner:
    """Plans collision-free any-angle paths on occupancy grids; see the module docstring.

    With the "onnxruntime" backend the constructor builds the network kernel (about a second,
    once per model and sampling settings in a process), so the first plan is not slowed down.
    """

    def __init__(self, model: PathDiffusion, config: PlannerConfig | None = None) -> None:
        self.model = model.eval()
        self.config = (config if config is not None else PlannerConfig()).for_model(model)
        self._window_macs: dict[int, float] = {}
        if self.config.backend == "onnxruntime":  # build the kernel now, not in the first plan
            self._kernel()

    def window_macs(self, nfe: int) -> float:
        """Multiply-accumulates of refining one window with ``nfe`` evaluations (cached)."""
        if nfe not in self._window_macs:
            self._window_macs[nfe] = self.model.macs_per_plan(self.config.candidates, nfe)["total"]
        return self._window_macs[nfe]

    @classmethod
    def from_pretrained(
        cls, path: str | Path | None = None, config: PlannerConfig | None = None
    ) -> Planner:
        """The bundled model, or a model file / experiment dir (``final.pt`` preferred)."""
        if path is None:
            if not PRETRAINED.is_file():
                raise FileNotFoundError(f"bundled planner model missing: {PRETRAINED}")
            source = PRETRAINED
        else:
            path = Path(path)
            final = path / "final.pt"
            source = final if final.is_file() else resolve_checkpoint(path)
        model = load_model(source)
        if not isinstance(model, PathDiffusion):
            raise ValueError(f"{source} holds a {type(model).__name__}, not a path model")
        return cls(model, config)

    def plan(self, occupancy: Any, start: Sequence[float], goal: Sequence[float]) -> PlanResult:
        """Plan one query; raises ValueError when start or goal is outside the map or blocked."""
        return self.plan_batch([(occupancy, start, goal)])[0]

    def plan_batch(self, problems: Sequence[Problem]) -> list[PlanResult]:
        """Plan several queries with one batched network call; equal to planning one by one.

        The "network" timing of each result is the time of the shared batched call.
        """
        results: list[PlanResult | None] = []
        pieces: list[_Piece] = []
        contexts: list[dict[str, Any]] = []
        for index, (occupancy, start, goal) in enumerate(problems):
            began = time.perf_counter()
            occ = as_occupancy(occupancy)
            start_xy, goal_xy = validate_endpoints(occ, start, goal)
            context: dict[str, Any] = {"occ": occ, "start": start_xy, "goal": goal_xy}
            timings = {"validate": time.perf_counter() - began}
            tick = time.perf_counter()
            guide = None
            if ConnectivityIndex(occ).connected(start_xy, goal_xy):
                guide = astar_any_angle(occ, start_xy, goal_xy)
            timings["guide"] = time.perf_counter() - tick
            context.update(guide=guide, timings=timings, began=began)
            contexts.append(context)
            if guide is not None:
                tick = time.perf_counter()
                context["corners"] = convex_corners(occ)
                context["taut_guide"] = taut_path(occ, guide, context["corners"])
                context["guide_length"] = path_length(guide)
                timings["taut_guide"] = time.perf_counter() - tick
            if guide is None or len(context["taut_guide"]) == 2:
                results.append(self._direct(context, "straight"))
                continue
            tick = time.perf_counter()
            one_class = free_space_is_simply_connected(occ)
            timings["topology"] = time.perf_counter() - tick
            if one_class:
                results.append(self._direct(context, "one homotopy class"))
                continue
            tick = time.perf_counter()
            new = self._pieces(index, occ, guide)
            timings["windows"] = time.perf_counter() - tick
            context["pieces"] = range(len(pieces), len(pieces) + len(new))
            pieces.extend(new)
            results.append(None)
        proposals, nfe, network_time = self._propose(pieces)
        for index, result in enumerate(results):
            if result is None:
                context = contexts[index]
                context["timings"]["network"] = network_time
                results[index] = self._select(context, pieces, proposals, nfe)
        return [r for r in results if r is not None]

    def _direct(self, context: dict[str, Any], why: str) -> PlanResult:
        """Result without the network: unreachable, or a tautened guide that is already optimal
        (a straight line, or the free space has one homotopy class)."""
        guide = context["guide"]
        if guide is None:
            path = np.stack([context["start"], context["goal"]])
            info = self._info(context, method="guide", reason="unreachable", skipped="unreachable")
            return PlanResult(path=path, success=False, info=info)
        path = context["taut_guide"]
        verified = path_is_free(context["occ"], path)
        info = self._info(
            context,
            method="guide",
            reason="ok" if verified else "unverified",
            skipped=why,
            length_before_taut=context["guide_length"],
            length_after_taut=path_length(path),
        )
        return PlanResult(path=path, success=verified, info=info)

    def _pieces(self, problem: int, occ: np.ndarray, guide: np.ndarray) -> list[_Piece]:
        window = self.model.cfg.window
        n, keep_vertices = self.model.cfg.n_waypoints, bool(self.model.cfg.keep_vertices)
        out = []
        for index, points in enumerate(split_route(guide, occ.shape, window, self.config.margin)):
            origin = window_origin(points.min(0), points.max(0), occ.shape, window)
            local = points - origin
            crop = crop_window(occ, origin, window)
            ends = np.concatenate([local[0], local[-1]])
            out.append(
                _Piece(
                    problem=problem,
                    index=index,
                    points=points,
                    origin=origin,
                    crop=crop,
                    maps=window_features(crop),
                    endpoints=normalise(ends, window).astype(np.float32),
                    guide=normalise(resample_path(local, n, keep_vertices), window).T.astype(
                        np.float32
                    ),
                )
            )
        return out

    def _propose(self, pieces: list[_Piece]) -> tuple[np.ndarray, int, float]:
        """Decoded samples (pieces, candidates, n_waypoints, 2) in map coordinates."""
        k = self.config.candidates
        if not pieces:
            return np.empty((0, k, self.model.cfg.n_waypoints, 2)), 0, 0.0
        began = time.perf_counter()
        maps = np.stack([p.maps for p in pieces])
        endpoints = np.stack([p.endpoints for p in pieces])
        guide = np.stack([p.guide for p in pieces])
        seeds = torch.cat([self._seeds(p.index) for p in pieces])
        if self.config.backend == "eager":
            samples, nfe = self.model.propose(
                torch.from_numpy(maps),
                torch.from_numpy(endpoints),
                torch.from_numpy(guide),
                seeds,
                candidates=k,
                steps=self.config.steps,
                sampler=self.config.sampler,
                guidance=self.config.guidance,
            )
            samples = samples.numpy()
        else:
            kernel = self._kernel()
            shape = kernel.noise_shape
            noise = initial_noise(seeds, shape[1:]).reshape(len(pieces), *shape).numpy()
            samples, nfe = kernel(maps, endpoints, guide, noise), kernel.nfe
        window = self.model.cfg.window
        points = denormalise(samples.astype(np.float64).transpose(0, 2, 1), window)
        points = points.reshape(len(pieces), k, -1, 2)
        points += np.stack([p.origin for p in pieces])[:, None, None, :]
        return points, nfe, time.perf_counter() - began

    def _kernel(self) -> ProposalKernel:
        config = self.config
        return proposal_kernel(
            self.model, config.candidates, config.steps, config.sampler, config.precision
        )

    def _seeds(self, piece: int) -> torch.Tensor:
        """Sampling seeds of the candidates of the ``piece``-th window of a route."""
        seed, k = self.config.seed, self.config.candidates
        return torch.tensor([mix_seed(seed, piece, c) for c in range(k)], dtype=torch.int64)

    def _choose(
        self, context: dict[str, Any], piece: _Piece, candidates: np.ndarray, guide: np.ndarray
    ) -> _Choice:
        """Shortest tautened path for one piece among the valid samples and the tautened guide.

        Repair runs only when no sample verified and some sample is shorter than the tautened
        guide piece (otherwise it could not win); a failed repair keeps the guide (a fallback).
        """
        occ, corners = context["occ"], context["corners"]
        candidates = candidates.copy()
        candidates[:, 0], candidates[:, -1] = piece.points[0], piece.points[-1]
        k, n = candidates.shape[:2]
        free = segments_are_free(
            occ, candidates[:, :-1].reshape(-1, 2), candidates[:, 1:].reshape(-1, 2)
        ).reshape(k, n - 1)
        valid = np.flatnonzero(free.all(axis=1))
        guide_length = path_length(guide)
        if valid.size:
            # A sample that passes every obstacle on the guide's side tautens to the guide.
            if "obstacle_points" not in context:
                context["obstacle_points"] = obstacle_points(occ)
            points = context["obstacle_points"]
            other = valid[~same_winding(candidates[valid], guide, points)]
            tautened = [(candidates[i], taut_path(occ, candidates[i], corners)) for i in other]
            if tautened:
                raw, best = min(tautened, key=lambda pair: path_length(pair[1]))
                if path_length(best) < guide_length - _TOLERANCE:
                    return _Choice(best, "diffusion", int(valid.size), path_length(raw))
            return _Choice(guide, "guide", int(valid.size), guide_length)
        raw_lengths = np.array([path_length(c) for c in candidates])
        if raw_lengths.min() >= guide_length - _TOLERANCE:
            return _Choice(guide, "guide", 0, guide_length)
        if self.config.repair:
            order = np.lexsort((raw_lengths, (~free).sum(axis=1)))
            repaired = repair(piece.crop, candidates[order[0]] - piece.origin)
            if repaired is not None and path_is_free(occ, repaired + piece.origin):
                repaired = taut_path(occ, repaired + piece.origin, corners)
                if path_length(repaired) < guide_length - _TOLERANCE:
                    return _Choice(repaired, "repaired", 0, float(raw_lengths[order[0]]), True)
                return _Choice(guide, "guide", 0, guide_length, True)
        return _Choice(guide, "fallback", 0, guide_length, self.config.repair)

    def _select(
        self, context: dict[str, Any], pieces: list[_Piece], proposals: np.ndarray, nfe: int
    ) -> PlanResult:
        tick = time.perf_counter()
        occ, corners, taut_guide = context["occ"], context["corners"], context["taut_guide"]
        ids = list(context["pieces"])
        guides = (
            [taut_guide]
            if len(ids) == 1
            else [taut_path(occ, pieces[i].points, corners) for i in ids]
        )
        choices = [
            self._choose(context, pieces[i], proposals[i], guide)
            for i, guide in zip(ids, guides, strict=True)
        ]
        joined = np.concatenate([choices[0].path] + [c.path[1:] for c in choices[1:]])
        path = joined if len(choices) == 1 else taut_path(occ, joined, corners)
        sources = {c.source for c in choices}
        from_model = bool(sources & {"diffusion", "repaired"})
        if not from_model or path_length(path) >= path_length(taut_guide) - _TOLERANCE:
            path, from_model = taut_guide, False
        verified = path_is_free(occ, path)
        context["timings"]["select"] = time.perf_counter() - tick
        before = sum(c.raw_length for c in choices) if from_model else context["guide_length"]
        info = self._info(
            context,
            method="diffusion" if from_model else "guide",
            reason="ok" if verified else "unverified",
            nfe=nfe,
            candidates=self.config.candidates * len(choices),
            windows=len(choices),
            macs=len(choices) * self.window_macs(nfe),
            n_valid_raw=sum(c.n_valid_raw for c in choices),
            repaired=from_model and "repaired" in sources,
            fallback="fallback" in sources,
            repair_tried=sum(c.repair_tried for c in choices),
            length_before_taut=before,
            length_after_taut=path_length(path),
        )
        return PlanResult(path=path, success=verified, info=info)

    @staticmethod
    def _info(context: dict[str, Any], **values: Any) -> dict[str, Any]:
        timings = {name: 1000.0 * t for name, t in context["timings"].items()}
        timings["total"] = 1000.0 * (time.perf_counter() - context["began"])
        defaults = {
            "nfe": 0,
            "candidates": 0,
            "windows": 0,
            "macs": 0.0,
            "n_valid_raw": 0,
            "repaired": False,
            "fallback": False,
            "repair_tried": 0,
            "skipped": "",
            "length_before_taut": math.nan,
            "length_after_taut": math.nan,
        }
        return {**defaults, **values, "timings_ms": timings}
