"""Taut-path refinement: shorten a valid polyline towards the shortest path of its homotopy class.

Rubber-band relaxation. For an interior vertex ``v`` between neighbours ``a`` and ``b`` with both
segments free, every obstacle inside the triangle (a, v, b) lies on the far side of the path from
``v``, so the shortest path from ``a`` to ``b`` that is homotopic to a -> v -> b is the convex chain
of ``{a, b}`` and the convex obstacle corners inside the triangle, on the side of ``v``. Passes
replace every other interior vertex by its chain (neighbours stay fixed), alternating between odd
and even vertices, until a pass changes nothing. A convex chain inside the triangle is never
longer than a -> v -> b, and every new segment is checked with the exact collision checker before
it is accepted, so the result is valid and never longer than the input. The line-of-sight
shortcutting done first may also jump to a shorter homotopy class (e.g. skip a visible loop).
"""

from __future__ import annotations

from collections.abc import Sequence

import numba
import numpy as np

from latentdiff.path.geometry import path_is_free, segments_are_free
from latentdiff.path.metrics import path_length
from latentdiff.path.search import Point, convex_corners, shortcut_path

__all__ = ["taut_path"]


@numba.njit(cache=True)
def _cross(ox: float, oy: float, px: float, py: float, qx: float, qy: float) -> float:
    """z-component of (p - o) x (q - o)."""
    return (px - ox) * (qy - oy) - (py - oy) * (qx - ox)


@numba.njit(cache=True)
def _strictly_inside(e1x: float, e1y: float, e2x: float, e2y: float, dx: float, dy: float) -> bool:
    """Whether direction d lies strictly inside the cone spanned by e1 and e2 (angle < 180)."""
    if e1x * e2y - e1y * e2x < 0.0:
        e1x, e1y, e2x, e2y = e2x, e2y, e1x, e1y
    return e1x * dy - e1y * dx > 0.0 and dx * e2y - dy * e2x > 0.0


@numba.njit(cache=True)
def _quadrant_enters_wedge(sx: float, sy: float, w1: np.ndarray, w2: np.ndarray) -> bool:
    """Whether the open quadrant (sx, sy) and the open wedge between w1 and w2 overlap.

    Two open convex cones overlap exactly when one holds an edge ray or the bisector of the
    other strictly inside.
    """
    bx = w1[0] / np.hypot(w1[0], w1[1]) + w2[0] / np.hypot(w2[0], w2[1])
    by = w1[1] / np.hypot(w1[0], w1[1]) + w2[1] / np.hypot(w2[0], w2[1])
    return (
        _strictly_inside(w1[0], w1[1], w2[0], w2[1], sx, 0.0)
        or _strictly_inside(w1[0], w1[1], w2[0], w2[1], 0.0, sy)
        or _strictly_inside(w1[0], w1[1], w2[0], w2[1], sx, sy)
        or _strictly_inside(sx, 0.0, 0.0, sy, w1[0], w1[1])
        or _strictly_inside(sx, 0.0, 0.0, sy, w2[0], w2[1])
        or _strictly_inside(sx, 0.0, 0.0, sy, bx, by)
    )


@numba.njit(cache=True)
def _chain(corners: np.ndarray, a: np.ndarray, v: np.ndarray, b: np.ndarray) -> list:
    """Interior vertices of the convex chain from ``a`` to ``b`` around the corners in (a, v, b).

    ``corners`` holds rows (x, y, sx, sy) sorted by y. A corner counts when its blocked cell
    reaches into the triangle: inside it, or on side av or vb (or at ``v``) with the blocked
    quadrant pointing inwards; only corners strictly on the ``v`` side of line ab qualify. They
    are wrapped by gift-wrapping from ``a``; an empty list means the chain is the segment ab.
    """
    side = _cross(a[0], a[1], b[0], b[1], v[0], v[1])
    chain = [(0.0, 0.0) for _ in range(0)]
    if side == 0.0:
        return chain
    sign = 1.0 if side > 0.0 else -1.0
    tri_b = _cross(a[0], a[1], v[0], v[1], b[0], b[1])
    tri_a = _cross(v[0], v[1], b[0], b[1], a[0], a[1])
    lo_x, hi_x = min(a[0], v[0], b[0]), max(a[0], v[0], b[0])
    lo_y, hi_y = min(a[1], v[1], b[1]), max(a[1], v[1], b[1])
    inside = []
    rows = corners[:, 1]
    for k in range(np.searchsorted(rows, lo_y), np.searchsorted(rows, hi_y, side="right")):
        px, py, sx, sy = corners[k, 0], corners[k, 1], corners[k, 2], corners[k, 3]
        if px < lo_x or px > hi_x:
            continue
        if sign * _cross(a[0], a[1], b[0], b[1], px, py) <= 0.0:
            continue
        in_av = _cross(a[0], a[1], v[0], v[1], px, py) * tri_b
        in_vb = _cross(v[0], v[1], b[0], b[1], px, py) * tri_a
        if in_av < 0.0 or in_vb < 0.0:
            continue
        if px == v[0] and py == v[1]:
            if not _quadrant_enters_wedge(sx, sy, a - v, b - v):
                continue
        elif in_av == 0.0:
            ex, ey = v[0] - a[0], v[1] - a[1]
            if ex * sy * tri_b <= 0.0 and -ey * sx * tri_b <= 0.0:
                continue
        elif in_vb == 0.0:
            ex, ey = b[0] - v[0], b[1] - v[1]
            if ex * sy * tri_a <= 0.0 and -ey * sx * tri_a <= 0.0:
                continue
        inside.append(k)
    cx, cy = a[0], a[1]
    for _ in range(len(inside) + 1):
        qx, qy = b[0], b[1]
        for k in inside:
            px, py = corners[k, 0], corners[k, 1]
            turn = sign * _cross(cx, cy, qx, qy, px, py)
            if turn > 0.0:
                qx, qy = px, py
            elif turn == 0.0:
                ahead = (px - cx) * (qx - cx) + (py - cy) * (qy - cy) > 0.0
                farther = (px - cx) ** 2 + (py - cy) ** 2 > (qx - cx) ** 2 + (qy - cy) ** 2
                if ahead and farther:
                    qx, qy = px, py
        if qx == b[0] and qy == b[1]:
            break
        chain.append((qx, qy))
        cx, cy = qx, qy
    return chain


@numba.njit(cache=True)
def _relax(
    corners: np.ndarray, path: np.ndarray, parity: int, skip: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """Replace interior vertices ``i`` with ``i % 2 == parity`` (not in ``skip``) by their chains.

    Returns the new path and, per new segment, the index of the vertex whose chain it belongs to
    (-1 for segments carried over unchanged).
    """
    n = path.shape[0]
    processed = np.zeros(n, dtype=np.bool_)
    for i in range(1, n - 1):
        processed[i] = i % 2 == parity and not skip[i]
    points = [(path[0, 0], path[0, 1])]
    owners = [-1 for _ in range(0)]
    for i in range(1, n):
        if processed[i]:
            for point in _chain(corners, path[i - 1], path[i], path[i + 1]):
                owners.append(i)
                points.append(point)
        else:
            owners.append(i - 1 if processed[i - 1] else -1)
            points.append((path[i, 0], path[i, 1]))
    out = np.empty((len(points), 2))
    for j in range(len(points)):
        out[j, 0], out[j, 1] = points[j]
    return out, np.array(owners, dtype=np.int64)


def _relax_checked(
    occ: np.ndarray, corners: np.ndarray, path: np.ndarray, parity: int
) -> np.ndarray:
    """One relaxation half-pass; chains with a segment the exact checker rejects are undone."""
    skip = np.zeros(len(path), dtype=np.bool_)
    new, owners = _relax(corners, path, parity, skip)
    changed = owners >= 0
    free = segments_are_free(occ, new[:-1][changed], new[1:][changed])
    rejected = np.unique(owners[changed][~free])
    if rejected.size == 0:
        return new
    skip[rejected] = True
    return _relax(corners, path, parity, skip)[0]


def taut_path(
    occ: np.ndarray,
    path: np.ndarray | Sequence[Point],
    corners: np.ndarray | None = None,
    max_passes: int = 64,
) -> np.ndarray:
    """Shortcut, then rubber-band relax ``path`` until a pass changes nothing; see the module doc.

    ``corners`` may pass the precomputed :func:`latentdiff.path.search.convex_corners` of
    ``occ`` (any row order; sorted by y, as that function returns them, avoids a sort).
    The result is verified free with the same endpoints and is never longer than ``path``; an
    input that is not a valid polyline is returned unchanged.
    """
    pts = np.asarray(path, dtype=np.float64).reshape(-1, 2)
    if len(pts) <= 2 or not path_is_free(occ, pts):
        return pts.copy()
    corners = convex_corners(occ) if corners is None else np.asarray(corners, dtype=np.float64)
    if corners.ndim != 2 or corners.shape[1] != 4:
        raise ValueError(f"corners must be (M, 4) rows (x, y, sx, sy), got {corners.shape}")
    if np.any(np.diff(corners[:, 1]) < 0):
        corners = corners[np.argsort(corners[:, 1], kind="stable")]
    corners = np.ascontiguousarray(corners)
    current = shortcut_path(occ, pts)
    for _ in range(max_passes):
        before = current
        for parity in (1, 0):
            if len(current) > 2:
                current = _relax_checked(occ, corners, current, parity)
        # A dropped vertex shifts the parities, so only an unchanged path means convergence.
        if np.array_equal(before, current):
            break
    valid = (
        np.array_equal(current[0], pts[0])
        and np.array_equal(current[-1], pts[-1])
        and path_length(current) <= path_length(pts)
        and path_is_free(occ, current)
    )
    return current if valid else pts.copy()
