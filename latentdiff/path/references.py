"""Reference paths for learning and evaluation: A* + shortcutting, resampled, plus the optimum.

Datasets are stored as one compact ``.npz``: bit-packed occupancy grids plus float32 / integer
arrays, one row per solvable (map, start, goal) query.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentdiff.path.metrics import path_length, resample_path
from latentdiff.path.search import Point, any_angle_reference, astar_any_angle


@dataclass(frozen=True)
class ReferencePath:
    """A*+shortcut path of one query, its fixed-size resampling and the two lengths."""

    start: np.ndarray
    goal: np.ndarray
    path: np.ndarray
    waypoints: np.ndarray
    length: float
    optimum_length: float


def compute_reference(
    occ: np.ndarray, start: Sequence[float], goal: Sequence[float], n_waypoints: int
) -> ReferencePath | None:
    """Reference for one query, or None when ``goal`` cannot be reached from ``start``."""
    path = astar_any_angle(occ, start, goal)
    if path is None:
        return None
    optimum, _ = any_angle_reference(occ, start, goal)
    return ReferencePath(
        start=np.asarray(start, dtype=np.float64),
        goal=np.asarray(goal, dtype=np.float64),
        path=path,
        waypoints=resample_path(path, n_waypoints),
        length=path_length(path),
        optimum_length=optimum,
    )


@dataclass(frozen=True)
class ReferenceDataset:
    """Arrays of a reference dataset; row i of the per-query arrays is query i.

    ``path_points[path_offsets[i]:path_offsets[i + 1]]`` is the A*+shortcut path of query i and
    ``pair_index`` maps rows back to the ``pairs`` given to :func:`build_dataset`.
    """

    occupancy: np.ndarray
    map_index: np.ndarray
    pair_index: np.ndarray
    start: np.ndarray
    goal: np.ndarray
    waypoints: np.ndarray
    length: np.ndarray
    optimum_length: np.ndarray
    path_points: np.ndarray
    path_offsets: np.ndarray

    def __len__(self) -> int:
        return len(self.map_index)

    def path(self, i: int) -> np.ndarray:
        """A*+shortcut path of query ``i``."""
        return self.path_points[self.path_offsets[i] : self.path_offsets[i + 1]]


def build_dataset(
    maps: Sequence[np.ndarray],
    pairs: Sequence[tuple[int, Point, Point]],
    n_waypoints: int,
    out_file: str | Path,
    progress: bool = True,
) -> int:
    """Compute references for ``(map_index, start, goal)`` pairs and write them to ``out_file``.

    All maps must share one shape. Unreachable pairs are skipped; returns the number of rows kept.
    """
    grids = np.stack([np.asarray(m, dtype=bool) for m in maps])
    rows: list[tuple[int, int, ReferencePath]] = []
    for pair_id, (map_id, start, goal) in enumerate(
        tqdm(pairs, desc="references", disable=not progress)
    ):
        reference = compute_reference(grids[map_id], start, goal, n_waypoints)
        if reference is not None:
            rows.append((pair_id, map_id, reference))
    refs = [ref for _, _, ref in rows]
    lengths = [len(ref.path) for ref in refs]
    with Path(out_file).open("wb") as stream:  # keeps the name exactly (no ".npz" appended)
        np.savez_compressed(
            stream,
            occupancy_bits=np.packbits(grids, axis=-1),
            map_shape=np.array(grids.shape[1:], dtype=np.int32),
            map_index=np.array([m for _, m, _ in rows], dtype=np.int32),
            pair_index=np.array([p for p, _, _ in rows], dtype=np.int32),
            start=np.array([ref.start for ref in refs], dtype=np.float32).reshape(-1, 2),
            goal=np.array([ref.goal for ref in refs], dtype=np.float32).reshape(-1, 2),
            waypoints=np.array([ref.waypoints for ref in refs], dtype=np.float32).reshape(
                -1, n_waypoints, 2
            ),
            length=np.array([ref.length for ref in refs], dtype=np.float32),
            optimum_length=np.array([ref.optimum_length for ref in refs], dtype=np.float32),
            path_points=np.concatenate([ref.path for ref in refs] or [np.empty((0, 2))]).astype(
                np.float32
            ),
            path_offsets=np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)]).astype(np.int64),
        )
    return len(rows)


def load_dataset(path: str | Path) -> ReferenceDataset:
    """Read a dataset written by :func:`build_dataset` (occupancy unpacked to bool)."""
    with np.load(path) as data:
        height, width = (int(v) for v in data["map_shape"])
        occupancy = np.unpackbits(data["occupancy_bits"], axis=-1, count=width).astype(bool)
        return ReferenceDataset(
            occupancy=occupancy.reshape(-1, height, width),
            map_index=data["map_index"].astype(np.int64),
            pair_index=data["pair_index"].astype(np.int64),
            start=data["start"],
            goal=data["goal"],
            waypoints=data["waypoints"],
            length=data["length"],
            optimum_length=data["optimum_length"],
            path_points=data["path_points"],
            path_offsets=data["path_offsets"],
        )
