"""Exact collision checking and distance fields on occupancy grids.

Conventions: ``occ`` is a 2-D bool array (H, W), True = blocked. Points are (x, y) with x along
columns and y along rows; cell (r, c) covers [c, c+1) x [r, r+1) and the map is [0, W] x [0, H].

Forbidden set (cells outside the map count as blocked): every point outside the map, the interior
of every blocked cell, every open grid edge whose two adjacent cells are blocked, and every lattice
vertex where two diagonally opposite cells are blocked ("diagonal squeeze"; this includes the four
map corners). Everything else is free, so a path may graze the edge or a lone corner of an
obstacle. A segment is free when none of its points is forbidden.

Decisions are exact for float64 input. The grid walk only needs one non-trivial predicate, on
which side of the segment's line a lattice vertex lies; it is evaluated with a floating-point
filter and, when that is inconclusive, exactly with error-free float expansions. Coordinates
below 1e-100 in magnitude (but not zero) would underflow those expansions and are decided by
:func:`segment_is_free_reference`, a direct rational-arithmetic implementation of the definition.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction
from itertools import pairwise

import numba
import numpy as np
from scipy import ndimage

__all__ = [
    "clearance_map",
    "first_collision",
    "path_clearance",
    "path_is_free",
    "point_is_free",
    "points_are_free",
    "segment_is_free",
    "segment_is_free_reference",
    "segments_are_free",
    "signed_distance_field",
]

Point = Sequence[float] | np.ndarray

_FREE = 0
_COLLISION = 1
_UNDECIDED = 2
_TINY = 1e-100
_EPS = 2.0**-53
_ORIENT_ERRBOUND = (3.0 + 16.0 * _EPS) * _EPS  # Shewchuk's ccwerrboundA
_SPLITTER = 134217729.0  # 2**27 + 1, Veltkamp split of a float64


def _as_grid(occ: np.ndarray) -> np.ndarray:
    grid = np.asarray(occ)
    if grid.ndim != 2 or grid.dtype != np.bool_:
        raise ValueError(
            f"occupancy must be a 2-D bool array (H, W), got {grid.dtype} of shape {grid.shape}; "
            "convert with latentdiff.path.maps.as_occupancy"
        )
    return np.ascontiguousarray(grid)


def _as_points(points: np.ndarray | Sequence[Point], name: str) -> np.ndarray:
    arr = np.ascontiguousarray(points, dtype=np.float64)
    if arr.ndim != 2 or arr.shape[1] != 2:
        raise ValueError(f"{name} must have shape (N, 2), got {arr.shape}")
    return arr


def _as_point(point: Point, name: str) -> np.ndarray:
    arr = np.asarray(point, dtype=np.float64)
    if arr.shape != (2,):
        raise ValueError(f"{name} must be an (x, y) pair, got shape {arr.shape}")
    return arr


# ---------------------------------------------------------------------------------------------
# Compiled kernels (compiled on first use, cached on disk).
# ---------------------------------------------------------------------------------------------


@numba.njit(cache=True)
def _blocked(occ: np.ndarray, r: int, c: int) -> bool:
    if r < 0 or c < 0 or r >= occ.shape[0] or c >= occ.shape[1]:
        return True
    return occ[r, c]


@numba.njit(cache=True)
def _squeezed(occ: np.ndarray, k: int, m: int) -> bool:
    """Whether lattice vertex (x=k, y=m) has two diagonally opposite blocked cells."""
    if _blocked(occ, m - 1, k - 1) and _blocked(occ, m, k):
        return True
    return _blocked(occ, m - 1, k) and _blocked(occ, m, k - 1)


@numba.njit(cache=True)
def _point_free(occ: np.ndarray, x: float, y: float) -> bool:
    if not (x >= 0.0 and x <= occ.shape[1] and y >= 0.0 and y <= occ.shape[0]):
        return False
    fx = np.floor(x)
    fy = np.floor(y)
    c = int(fx)
    r = int(fy)
    if fx == x and fy == y:
        return not _squeezed(occ, c, r)
    if fx == x:
        return not (_blocked(occ, r, c - 1) and _blocked(occ, r, c))
    if fy == y:
        return not (_blocked(occ, r - 1, c) and _blocked(occ, r, c))
    return not occ[r, c]


@numba.njit(cache=True)
def _two_sum(a: float, b: float) -> tuple[float, float]:
    s = a + b
    bv = s - a
    av = s - bv
    return s, (a - av) + (b - bv)


@numba.njit(cache=True)
def _split(a: float) -> tuple[float, float]:
    c = _SPLITTER * a
    hi = c - (c - a)
    return hi, a - hi


@numba.njit(cache=True)
def _two_product(a: float, b: float) -> tuple[float, float]:
    p = a * b
    ahi, alo = _split(a)
    bhi, blo = _split(b)
    err = p - ahi * bhi
    err = err - alo * bhi
    err = err - ahi * blo
    return p, alo * blo - err


@numba.njit(cache=True)
def _exact_orientation_sign(
    kx: float, ky: float, x0: float, y0: float, x1: float, y1: float
) -> int:
    """Exact sign of (kx - x0) * (y1 - y0) - (ky - y0) * (x1 - x0) as a sum of 12 floats."""
    expansion = np.empty(12)
    length = 0
    factors = (
        (kx, y1, 1.0),
        (kx, y0, -1.0),
        (x0, y1, -1.0),
        (ky, x1, -1.0),
        (ky, x0, 1.0),
        (y0, x1, 1.0),
    )
    for a, b, sign in factors:
        p, e = _two_product(a, b)
        for term in (sign * e, sign * p):
            q = term
            for i in range(length):
                q, expansion[i] = _two_sum(q, expansion[i])
            expansion[length] = q
            length += 1
    for i in range(length - 1, -1, -1):
        if expansion[i] > 0.0:
            return 1
        if expansion[i] < 0.0:
            return -1
    return 0


@numba.njit(cache=True)
def _orientation_sign(kx: float, ky: float, x0: float, y0: float, x1: float, y1: float) -> int:
    """Exact sign of (kx - x0) * (y1 - y0) - (ky - y0) * (x1 - x0)."""
    a, a_err = _two_sum(kx, -x0)
    b, b_err = _two_sum(y1, -y0)
    c, c_err = _two_sum(ky, -y0)
    d, d_err = _two_sum(x1, -x0)
    left = a * b
    right = c * d
    det = left - right
    bound = _ORIENT_ERRBOUND * (abs(left) + abs(right))
    if det > bound:
        return 1
    if -det > bound:
        return -1
    if a_err == 0.0 and b_err == 0.0 and c_err == 0.0 and d_err == 0.0:
        # Exact differences: compare a*b with c*d via exact products; rounding is monotonic, so
        # the rounded products decide unless they tie, and then the rounding errors decide.
        left, left_err = _two_product(a, b)
        right, right_err = _two_product(c, d)
        if left != right:
            return 1 if left > right else -1
        if left_err != right_err:
            return 1 if left_err > right_err else -1
        return 0
    return _exact_orientation_sign(kx, ky, x0, y0, x1, y1)


@numba.njit(cache=True)
def _axis_segment_status(occ: np.ndarray, line: float, lo: float, hi: float, vertical: bool) -> int:
    """Segment on x = line (vertical) or y = line, spanning lo < hi along the other axis."""
    fl = np.floor(line)
    k = int(fl)
    first = int(np.floor(lo))
    last = int(np.ceil(hi))
    if fl == line:
        for j in range(first, last):
            if vertical:
                both = _blocked(occ, j, k - 1) and _blocked(occ, j, k)
            else:
                both = _blocked(occ, k - 1, j) and _blocked(occ, k, j)
            if both:
                return _COLLISION
        for m in range(int(np.ceil(lo)), int(np.floor(hi)) + 1):
            hit = _squeezed(occ, k, m) if vertical else _squeezed(occ, m, k)
            if hit:
                return _COLLISION
        return _FREE
    for j in range(first, last):
        hit = _blocked(occ, j, k) if vertical else _blocked(occ, k, j)
        if hit:
            return _COLLISION
    return _FREE


@numba.njit(cache=True)
def _segment_status(occ: np.ndarray, x0: float, y0: float, x1: float, y1: float) -> int:
    if not (_point_free(occ, x0, y0) and _point_free(occ, x1, y1)):
        return _COLLISION
    if x0 == x1 and y0 == y1:
        return _FREE
    if x0 == x1:
        return _axis_segment_status(occ, x0, min(y0, y1), max(y0, y1), True)
    if y0 == y1:
        return _axis_segment_status(occ, y0, min(x0, x1), max(x0, x1), False)
    for v in (x0, y0, x1, y1):
        if v != 0.0 and abs(v) < _TINY:
            return _UNDECIDED
    sx = 1 if x1 > x0 else -1
    sy = 1 if y1 > y0 else -1
    c = int(np.floor(x0)) if sx > 0 else int(np.ceil(x0)) - 1
    r = int(np.floor(y0)) if sy > 0 else int(np.ceil(y0)) - 1
    kx = c + 1 if sx > 0 else c  # next vertical grid line to cross
    ky = r + 1 if sy > 0 else r  # next horizontal grid line to cross
    while True:
        if _blocked(occ, r, c):
            return _COLLISION
        x_done = kx >= x1 if sx > 0 else kx <= x1
        y_done = ky >= y1 if sy > 0 else ky <= y1
        if x_done and y_done:
            return _FREE
        if x_done:
            order = 1
        elif y_done:
            order = -1
        else:
            # sign(t_x - t_y) = sx * sy * orientation of vertex (kx, ky).
            order = sx * sy * _orientation_sign(float(kx), float(ky), x0, y0, x1, y1)
        if order == 0:
            if _squeezed(occ, kx, ky):
                return _COLLISION
            c += sx
            kx += sx
            r += sy
            ky += sy
        elif order < 0:
            c += sx
            kx += sx
        else:
            r += sy
            ky += sy


@numba.njit(cache=True)
def _segments_status(occ: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    out = np.empty(starts.shape[0], dtype=np.int8)
    for i in range(starts.shape[0]):
        out[i] = _segment_status(occ, starts[i, 0], starts[i, 1], ends[i, 0], ends[i, 1])
    return out


@numba.njit(cache=True)
def _path_first_flagged(occ: np.ndarray, path: np.ndarray, begin: int) -> tuple[int, int]:
    """First segment index >= begin that is colliding or undecided, with its status."""
    for i in range(begin, path.shape[0] - 1):
        status = _segment_status(occ, path[i, 0], path[i, 1], path[i + 1, 0], path[i + 1, 1])
        if status != _FREE:
            return i, status
    return -1, _FREE


@numba.njit(cache=True)
def _points_free(occ: np.ndarray, points: np.ndarray) -> np.ndarray:
    out = np.empty(points.shape[0], dtype=np.bool_)
    for i in range(points.shape[0]):
        out[i] = _point_free(occ, points[i, 0], points[i, 1])
    return out


@numba.njit(cache=True)
def _distance_to_blocked(
    occ: np.ndarray, x: float, y: float, radius: float, outside_blocked: bool
) -> float:
    """Exact distance from (x, y) to the blocked cells within ``radius`` (and the outside)."""
    h, w = occ.shape
    best = radius
    if outside_blocked:
        best = min(best, max(0.0, min(min(x, w - x), min(y, h - y))))
    r_lo = max(0, int(np.floor(y - best)))
    r_hi = min(h - 1, int(np.floor(y + best)))
    c_lo = max(0, int(np.floor(x - best)))
    c_hi = min(w - 1, int(np.floor(x + best)))
    for r in range(r_lo, r_hi + 1):
        dy = max(0.0, max(r - y, y - (r + 1)))
        if dy >= best:
            continue
        for c in range(c_lo, c_hi + 1):
            if occ[r, c]:
                dx = max(0.0, max(c - x, x - (c + 1)))
                best = min(best, math.sqrt(dx * dx + dy * dy))
    return best


@numba.njit(cache=True)
def _min_clearance(
    occ: np.ndarray,
    points: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    order: np.ndarray,
    outside_blocked: bool,
) -> float:
    """Min exact clearance over points, visited by increasing lower bound (pruned)."""
    best = np.inf
    for i in order:
        if lower[i] >= best:
            break
        radius = min(best, upper[i])
        d = _distance_to_blocked(occ, points[i, 0], points[i, 1], radius, outside_blocked)
        best = min(best, d)
    return best


# ---------------------------------------------------------------------------------------------
# Exact rational reference.
# ---------------------------------------------------------------------------------------------


def _point_free_exact(occ: np.ndarray, x: Fraction, y: Fraction) -> bool:
    h, w = occ.shape

    def blocked(r: int, c: int) -> bool:
        return not (0 <= r < h and 0 <= c < w) or bool(occ[r, c])

    if not (0 <= x <= w and 0 <= y <= h):
        return False
    c, r = math.floor(x), math.floor(y)
    on_x, on_y = c == x, r == y
    if on_x and on_y:
        return not (
            (blocked(r - 1, c - 1) and blocked(r, c)) or (blocked(r - 1, c) and blocked(r, c - 1))
        )
    if on_x:
        return not (blocked(r, c - 1) and blocked(r, c))
    if on_y:
        return not (blocked(r - 1, c) and blocked(r, c))
    return not blocked(r, c)


def segment_is_free_reference(occ: np.ndarray, p0: Point, p1: Point) -> bool:
    """Rational-arithmetic implementation of the segment rule (slow; for tests and fallbacks).

    The grid lines cut the segment at parameters t; between consecutive cuts the segment stays
    inside one open cell or one open edge, so checking every cut point and every midpoint decides
    the whole segment.
    """
    grid = _as_grid(occ)
    a, b = _as_point(p0, "p0"), _as_point(p1, "p1")
    if not (np.isfinite(a).all() and np.isfinite(b).all()):
        return False
    x0, y0, x1, y1 = (Fraction(float(v)) for v in (a[0], a[1], b[0], b[1]))
    cuts = {Fraction(0), Fraction(1)}
    for start, end in ((x0, x1), (y0, y1)):
        if start != end:
            lo, hi = min(start, end), max(start, end)
            cuts.update(
                (k - start) / (end - start) for k in range(math.ceil(lo), math.floor(hi) + 1)
            )
    ts = sorted(cuts)
    probes = ts + [(t0 + t1) / 2 for t0, t1 in pairwise(ts)]
    return all(_point_free_exact(grid, x0 + t * (x1 - x0), y0 + t * (y1 - y0)) for t in probes)


# ---------------------------------------------------------------------------------------------
# Public collision API.
# ---------------------------------------------------------------------------------------------


def point_is_free(occ: np.ndarray, p: Point) -> bool:
    """Whether point p = (x, y) lies in the map and outside the forbidden set."""
    x, y = _as_point(p, "p")
    return bool(_point_free(_as_grid(occ), float(x), float(y)))


def points_are_free(occ: np.ndarray, points: np.ndarray | Sequence[Point]) -> np.ndarray:
    """:func:`point_is_free` for an (M, 2) array of points; returns a bool array (M,)."""
    return _points_free(_as_grid(occ), _as_points(points, "points"))


def segments_are_free(
    occ: np.ndarray, p0s: np.ndarray | Sequence[Point], p1s: np.ndarray | Sequence[Point]
) -> np.ndarray:
    """Whether each segment p0s[i] -> p1s[i] is collision-free; returns a bool array (M,)."""
    grid = _as_grid(occ)
    starts, ends = _as_points(p0s, "p0s"), _as_points(p1s, "p1s")
    if starts.shape != ends.shape:
        raise ValueError(f"p0s and p1s differ in shape: {starts.shape} vs {ends.shape}")
    status = _segments_status(grid, starts, ends)
    free = status == _FREE
    for i in np.flatnonzero(status == _UNDECIDED):
        free[i] = segment_is_free_reference(grid, starts[i], ends[i])
    return free


def segment_is_free(occ: np.ndarray, p0: Point, p1: Point) -> bool:
    """Whether the straight segment p0 -> p1 is collision-free."""
    starts = _as_point(p0, "p0")[None]
    ends = _as_point(p1, "p1")[None]
    return bool(segments_are_free(occ, starts, ends)[0])


def first_collision(occ: np.ndarray, path: np.ndarray | Sequence[Point]) -> int | None:
    """Index of the first colliding segment path[i] -> path[i+1], or None if the path is free.

    A single-point path is treated as one zero-length segment (index 0).
    """
    grid = _as_grid(occ)
    pts = _as_points(path, "path")
    if len(pts) == 0:
        raise ValueError("path must contain at least one point")
    if len(pts) == 1:
        pts = np.concatenate([pts, pts])
    begin = 0
    while True:
        index, status = _path_first_flagged(grid, pts, begin)
        if index < 0:
            return None
        if status == _COLLISION or not segment_is_free_reference(grid, pts[index], pts[index + 1]):
            return int(index)
        begin = index + 1


def path_is_free(occ: np.ndarray, path: np.ndarray | Sequence[Point]) -> bool:
    """Whether every segment of the (N, 2) polyline is collision-free."""
    return first_collision(occ, path) is None


# ---------------------------------------------------------------------------------------------
# Distance fields.
# ---------------------------------------------------------------------------------------------


def _centre_distances(region: np.ndarray, outside_in_region: bool) -> np.ndarray:
    """Exact distance from every cell centre to the closed union of the ``region`` cells.

    The nearest point of a union of closed unit cells to a cell centre is always a cell centre,
    an edge midpoint or a vertex, so a Euclidean distance transform on the half-cell lattice
    (2H+1, 2W+1) is exact. Without any region cell the result is hypot(H, W) everywhere.
    """
    h, w = region.shape
    if not region.any() and not outside_in_region:
        return np.full((h, w), math.hypot(h, w))
    centres = np.zeros((2 * h + 1, 2 * w + 1), dtype=bool)
    centres[1::2, 1::2] = region
    closed = ndimage.maximum_filter(centres, size=3, mode="constant", cval=bool(outside_in_region))
    distance = ndimage.distance_transform_edt(~closed, sampling=0.5)
    return np.asarray(distance[1::2, 1::2], dtype=np.float64)


def clearance_map(occ: np.ndarray, outside_blocked: bool = True) -> np.ndarray:
    """Distance (in cells) from each cell centre to the nearest blocked cell; 0 on blocked cells.

    With ``outside_blocked`` the map border counts as an obstacle too. A map without any obstacle
    gets hypot(H, W) everywhere.
    """
    return _centre_distances(_as_grid(occ), outside_blocked)


def signed_distance_field(occ: np.ndarray, outside_blocked: bool = True) -> np.ndarray:
    """Signed distance (in cells) at each cell centre: the clearance (>= 0.5) on free cells and
    minus the distance to the nearest free cell (<= -0.5) on blocked cells.

    With ``outside_blocked`` the outside is an obstacle (it bounds the clearance of free cells),
    otherwise it is free space (it bounds the depth of blocked cells). Without any free cell,
    blocked cells get -hypot(H, W).
    """
    grid = _as_grid(occ)
    inside = _centre_distances(~grid, not outside_blocked)
    return np.where(grid, -inside, _centre_distances(grid, outside_blocked))


def path_clearance(
    occ: np.ndarray,
    path: np.ndarray | Sequence[Point],
    samples_per_cell: int = 4,
    outside_blocked: bool = True,
) -> float:
    """Minimum distance (in cells) from the path to the blocked cells, 0 if they touch.

    Each segment is sampled at ``samples_per_cell`` points per unit length (vertices included);
    the distance of every sample is exact, so the result overestimates the true minimum by at most
    half the sample spacing. Returns inf for a map without obstacles when the border is ignored.
    """
    grid = _as_grid(occ)
    pts = _as_points(path, "path")
    if len(pts) == 0:
        raise ValueError("path must contain at least one point")
    if samples_per_cell < 1:
        raise ValueError(f"samples_per_cell must be >= 1, got {samples_per_cell}")
    if not np.isfinite(pts).all():
        raise ValueError("path contains non-finite coordinates")
    if not grid.any() and not outside_blocked:
        return math.inf
    steps = np.diff(pts, axis=0)
    counts = np.maximum(1, np.ceil(np.hypot(steps[:, 0], steps[:, 1]) * samples_per_cell))
    counts = counts.astype(np.int64)
    segment = np.repeat(np.arange(len(steps)), counts)
    offsets = np.arange(int(counts.sum())) - np.repeat(np.cumsum(counts) - counts, counts)
    fractions = offsets / np.repeat(counts, counts)
    samples = np.concatenate([pts[segment] + fractions[:, None] * steps[segment], pts[-1:]])

    h, w = grid.shape
    cols = np.clip(np.floor(samples[:, 0]), 0, w - 1).astype(np.int64)
    rows = np.clip(np.floor(samples[:, 1]), 0, h - 1).astype(np.int64)
    to_centre = np.hypot(samples[:, 0] - cols - 0.5, samples[:, 1] - rows - 0.5)
    centre_clearance = _centre_distances(grid, outside_blocked)[rows, cols]
    lower = centre_clearance - to_centre - 1e-9
    upper = centre_clearance + to_centre + 1e-9
    order = np.argsort(lower, kind="stable")
    samples = np.ascontiguousarray(samples)
    return float(_min_clearance(grid, samples, lower, upper, order, outside_blocked))
