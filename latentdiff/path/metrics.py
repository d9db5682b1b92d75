"""Path quality metrics, arc-length resampling and benchmark summaries.

A path is an (N, 2) float array of (x, y) waypoints joined by straight segments.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from latentdiff.path.geometry import path_clearance as clearance

__all__ = [
    "PlanOutcome",
    "clearance",
    "length_ratio",
    "max_turn",
    "path_length",
    "resample_path",
    "smoothness",
    "summarize",
    "turning_angles",
    "vertex_preserving_resample",
]


def _as_path(path: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    return np.asarray(path, dtype=np.float64).reshape(-1, 2)


def path_length(path: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Sum of segment lengths."""
    pts = _as_path(path)
    return float(np.sum(np.hypot(*np.diff(pts, axis=0).T)))


def turning_angles(path: np.ndarray | Sequence[Sequence[float]]) -> np.ndarray:
    """Absolute heading change (radians, in [0, pi]) at each interior vertex.

    Zero-length segments (repeated waypoints) are dropped first, so duplicates add no turn.
    """
    pts = _as_path(path)
    steps = np.diff(pts, axis=0)
    steps = steps[np.hypot(steps[:, 0], steps[:, 1]) > 0.0]
    if len(steps) < 2:
        return np.zeros(0)
    headings = np.arctan2(steps[:, 1], steps[:, 0])
    return np.abs((np.diff(headings) + math.pi) % (2.0 * math.pi) - math.pi)


def smoothness(path: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Total absolute turning per unit length (rad per cell); 0 when straight, lower is smoother.

    Total turning of a polyline approximates the integral of |curvature|, so the value hardly
    depends on how densely a smooth curve is sampled (unlike sums of squared angles). A zero-length
    path scores 0.
    """
    length = path_length(path)
    return float(turning_angles(path).sum() / length) if length > 0.0 else 0.0


def max_turn(path: np.ndarray | Sequence[Sequence[float]]) -> float:
    """Largest absolute heading change at one vertex (radians); 0 for fewer than two segments."""
    angles = turning_angles(path)
    return float(angles.max()) if angles.size else 0.0


def length_ratio(path: np.ndarray | Sequence[Sequence[float]], optimum: float) -> float:
    """Path length over the optimal length (>= 1 for a valid path); 1 when both are zero."""
    length = path_length(path)
    if optimum > 0.0:
        return length / optimum
    return 1.0 if length == 0.0 else math.inf


def resample_path(
    path: np.ndarray | Sequence[Sequence[float]], n: int, keep_vertices: bool = False
) -> np.ndarray:
    """``n`` points along the polyline, endpoints kept exactly.

    By default they are equally spaced by arc length (exact piecewise-linear interpolation);
    dropping the original vertices can cut the corners the path bends around. With
    ``keep_vertices`` every bend is kept as a point and the other points split the segments as
    evenly as possible (:func:`vertex_preserving_resample`), so the result traces the same
    polyline and is exactly as collision-free; paths with more bends than ``n`` fall back to
    equal spacing.
    """
    if n < 2:
        raise ValueError(f"need at least 2 points, got {n}")
    pts = _as_path(path)
    if keep_vertices:
        bends = _bends(pts)
        if len(bends) <= n:
            return vertex_preserving_resample(bends, n)
    cumulative = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(pts, axis=0).T))])
    total = cumulative[-1]
    if total == 0.0:
        return np.repeat(pts[:1], n, axis=0)
    targets = np.linspace(0.0, total, n)
    out = np.stack([np.interp(targets, cumulative, pts[:, k]) for k in range(2)], axis=1)
    out[0], out[-1] = pts[0], pts[-1]
    return out


def _bends(pts: np.ndarray) -> np.ndarray:
    """The polyline's endpoints and the vertices where it turns (repeats and straight-through
    vertices dropped)."""
    keep = [pts[0]]
    for point, following in itertools.pairwise(pts[1:]):
        if np.array_equal(point, keep[-1]):
            continue
        a, b = point - keep[-1], following - point
        if a[0] * b[1] - a[1] * b[0] != 0.0 or a @ b < 0.0:
            keep.append(point)
    keep.append(pts[-1])
    return np.asarray(keep)


def vertex_preserving_resample(vertices: np.ndarray, n: int) -> np.ndarray:
    """``n`` points: all ``vertices`` (at most ``n``) plus points that split each segment into
    equal parts, the extra points going one by one to the segment with the longest parts."""
    lengths = np.hypot(*np.diff(vertices, axis=0).T)
    if len(vertices) < 2 or lengths.sum() == 0.0:
        return np.repeat(vertices[:1], n, axis=0)
    parts = np.ones(len(lengths), dtype=int)
    for _ in range(n - len(vertices)):
        parts[np.argmax(lengths / parts)] += 1
    pieces = [
        a + (b - a) * (np.arange(k)[:, None] / k)
        for a, b, k in zip(vertices[:-1], vertices[1:], parts, strict=True)
    ]
    return np.concatenate([*pieces, vertices[-1:]])


@dataclass(frozen=True)
class PlanOutcome:
    """One planning attempt: whether it produced a valid path, its length ratio and time."""

    success: bool
    length_ratio: float = math.nan
    time_s: float = 0.0


def summarize(results: Sequence[PlanOutcome]) -> dict[str, float]:
    """Success rate, length ratio mean/p95 over successes, and time p50/p90 over all attempts.

    Statistics without samples are NaN.
    """
    success = np.array([r.success for r in results], dtype=bool)
    ratios = np.array([r.length_ratio for r in results], dtype=np.float64)[success]
    times = np.array([r.time_s for r in results], dtype=np.float64)

    return {
        "n": float(len(results)),
        "success_rate": _mean(success.astype(np.float64)),
        "length_ratio_mean": _mean(ratios),
        "length_ratio_p95": _percentile(ratios, 95.0),
        "time_p50_s": _percentile(times, 50.0),
        "time_p90_s": _percentile(times, 90.0),
    }


def _mean(values: np.ndarray) -> float:
    return float(values.mean()) if values.size else math.nan


def _percentile(values: np.ndarray, q: float) -> float:
    return float(np.percentile(values, q)) if values.size else math.nan
