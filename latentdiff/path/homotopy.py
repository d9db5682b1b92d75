"""Whether two paths with the same endpoints wind around the obstacles alike.

The closed loop "path A, then path B backwards" winds around an obstacle exactly when the two
paths pass it on different sides. Winding numbers around one point of every 8-connected obstacle
component (corner-touching blocked cells form one obstacle, as no path squeezes between them)
decide that. Equal winding numbers are necessary for two paths to be homotopic; the planner uses
them to skip tautening samples that cannot reach a shorter way round than its guide.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage

__all__ = ["obstacle_points", "same_winding", "winding_numbers"]


def obstacle_points(occ: np.ndarray) -> np.ndarray:
    """(K, 2) (x, y) centre of one cell of each 8-connected obstacle component of ``occ``."""
    labels, count = ndimage.label(occ, structure=np.ones((3, 3), dtype=bool))
    if count == 0:
        return np.empty((0, 2))
    flat = labels.ravel()
    cells = np.flatnonzero(flat)
    first = np.empty(count + 1, dtype=np.int64)
    first[flat[cells[::-1]]] = cells[::-1]  # the last write per label is its first cell
    rows, cols = np.unravel_index(first[1:], occ.shape)
    return np.stack([cols + 0.5, rows + 0.5], axis=1).astype(np.float64)


def winding_numbers(loops: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Winding numbers (..., K) of closed polylines ``loops`` (..., M, 2) around ``points`` (K, 2).

    Points must not lie on a loop (obstacle cell centres never do for a valid path).
    """
    start = loops[..., None, :, :] - points[:, None, :]
    end = np.roll(start, -1, axis=-2)
    cross = start[..., 0] * end[..., 1] - start[..., 1] * end[..., 0]
    dot = (start * end).sum(axis=-1)
    return np.rint(np.arctan2(cross, dot).sum(axis=-1) / (2.0 * np.pi)).astype(np.int64)


def same_winding(paths: np.ndarray, reference: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Per path of ``paths`` (V, N, 2): whether it winds around every point like ``reference``.

    All paths share the reference's endpoints.
    """
    if len(points) == 0:
        return np.ones(len(paths), dtype=bool)
    back = np.broadcast_to(reference[::-1][1:-1], (len(paths), len(reference) - 2, 2))
    loops = np.concatenate([paths, back], axis=1)
    return ~np.any(winding_numbers(loops, points), axis=-1)
