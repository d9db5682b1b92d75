"""Training data of the learned planner: fixed-size map windows with guide and optimal paths.

Every sample is one (map, start, goal) query seen through a ``window`` x ``window`` crop of the
map (cells outside the map count as blocked, see :func:`window_origin`). It stores the crop, the
endpoints in window coordinates, the A* + shortcut guide and the exact any-angle optimum (both
computed on the crop and resampled to ``n_waypoints``). Splits use disjoint generator seed ranges.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import Pool
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from latentdiff.core.config import save_config
from latentdiff.path.generators import WORLD_KINDS, generate_world, sample_free_pair
from latentdiff.path.geometry import path_is_free, signed_distance_field
from latentdiff.path.metrics import path_length, resample_path
from latentdiff.path.search import astar_any_angle, visibility_graph_optimum
from latentdiff.path.taut import taut_path

SPLITS = ("train", "dev", "test")
SPLIT_SEED_OFFSETS = {"train": 0, "dev": 10_000_000, "test": 20_000_000}
SDF_SCALE = 4.0


@dataclass
class PathDataConfig:
    """Worlds, sizes and split sizes of the planner data."""

    kinds: tuple[str, ...] = WORLD_KINDS
    min_size: int = 32
    max_size: int = 96
    window: int = 64
    margin: int = 2
    n_waypoints: int = 32
    pairs_per_map: int = 2
    min_distance: float = 8.0
    corner_offset: float = 0.25  # target bends moved this far off obstacle corners (per axis)
    keep_vertices: bool = False  # guides and targets keep every bend (resample_path)
    n_train_maps: int = 3000
    n_dev_maps: int = 100
    n_test_maps: int = 100
    workers: int = 1
    seed: int = 0


def window_origin(lo: np.ndarray, hi: np.ndarray, shape: Sequence[int], window: int) -> np.ndarray:
    """Integer (x, y) origin of the window that frames the box ``[lo, hi]`` on a map of ``shape``.

    Per axis: a map side that fits the window is centred in it; otherwise the window is centred on
    the box and clamped into the map.
    """
    origin = np.zeros(2, dtype=np.int64)
    for axis, size in enumerate((shape[1], shape[0])):
        if size <= window:
            origin[axis] = -((window - size) // 2)
        else:
            centre = 0.5 * (lo[axis] + hi[axis])
            origin[axis] = int(np.clip(math.floor(centre - window / 2), 0, size - window))
    return origin


def box_fits(
    lo: np.ndarray, hi: np.ndarray, shape: Sequence[int], window: int, margin: int
) -> bool:
    """Whether a window placed by :func:`window_origin` holds the box with ``margin`` to spare.

    No margin is needed on a side where the window reaches the map border.
    """
    origin = window_origin(lo, hi, shape, window)
    sizes = np.array([shape[1], shape[0]])
    inner_lo = np.where(origin > 0, origin + margin, origin)
    inner_hi = np.where(origin + window < sizes, origin + window - margin, origin + window)
    return bool(np.all(lo >= inner_lo) and np.all(hi <= inner_hi))


def crop_window(occ: np.ndarray, origin: np.ndarray, window: int) -> np.ndarray:
    """The ``window`` x ``window`` crop at (x, y) ``origin``; cells outside the map are blocked."""
    height, width = occ.shape
    out = np.ones((window, window), dtype=bool)
    x0, y0 = int(origin[0]), int(origin[1])
    rows = slice(max(y0, 0), min(y0 + window, height))
    cols = slice(max(x0, 0), min(x0 + window, width))
    out[rows.start - y0 : rows.stop - y0, cols.start - x0 : cols.stop - x0] = occ[rows, cols]
    return out


def offset_corners(occ: np.ndarray, path: np.ndarray, offset: float) -> np.ndarray:
    """Move each bend of ``path`` that sits on a convex obstacle corner ``offset`` cells away.

    Exact optimal paths touch the corners they wrap, so a slightly imprecise copy collides; the
    shifted path keeps a little clearance. Returns ``path`` unchanged if the result is not free.
    """
    if offset <= 0.0 or len(path) <= 2:
        return path
    padded = np.pad(occ, 1, constant_values=True)
    out = path.copy()
    for i in range(1, len(path) - 1):
        x, y = path[i]
        if x != round(x) or y != round(y):
            continue
        c, r = int(x) + 1, int(y) + 1  # padded indices of the cell below-right of the corner
        quad = padded[r - 1 : r + 1, c - 1 : c + 1]
        if quad.sum() != 1:
            continue
        row, col = np.argwhere(quad)[0]
        out[i] = path[i] - offset * np.array([2.0 * col - 1.0, 2.0 * row - 1.0])
    return out if path_is_free(occ, out) else path


def map_features(crops: np.ndarray) -> np.ndarray:
    """(B, 2, W, W) float32 network input: occupancy and a squashed signed distance field."""
    sdf = np.stack([signed_distance_field(c) for c in crops])
    return np.stack([crops.astype(np.float32), np.tanh(sdf / SDF_SCALE).astype(np.float32)], 1)


def normalise(points: np.ndarray, window: int) -> np.ndarray:
    """Window coordinates [0, window] -> [-1, 1]."""
    return points * (2.0 / window) - 1.0


def denormalise(points: np.ndarray, window: int) -> np.ndarray:
    """Inverse of :func:`normalise`."""
    return (points + 1.0) * (window / 2.0)


@dataclass
class PathSamples:
    """Arrays of one split; row i is sample i (points in window coordinates)."""

    occupancy: np.ndarray  # (n, W, W) bool
    start: np.ndarray  # (n, 2)
    goal: np.ndarray  # (n, 2)
    guide: np.ndarray  # (n, N, 2) resampled A* + shortcut path
    target: np.ndarray  # (n, N, 2) resampled optimal path
    guide_length: np.ndarray  # (n,)
    taut_length: np.ndarray  # (n,) tautened guide: what the planner returns without the network
    optimum_length: np.ndarray  # (n,)
    kind: np.ndarray  # (n,) index into ``kinds``
    kinds: tuple[str, ...] = field(default_factory=tuple)
    keep_vertices: bool = False  # how guide and target were resampled (PathDataConfig)

    def __len__(self) -> int:
        return len(self.start)


def _map_samples(args: tuple[PathDataConfig, int]) -> list[dict[str, np.ndarray | float | int]]:
    """Samples of the world with generator seed ``seed`` (kind and size drawn from it)."""
    cfg, seed = args
    rng = np.random.default_rng(seed)
    kind_index = int(rng.integers(len(cfg.kinds)))
    height, width = (int(v) for v in rng.integers(cfg.min_size, cfg.max_size + 1, size=2))
    occ = generate_world(cfg.kinds[kind_index], height, width, seed)
    samples: list[dict[str, np.ndarray | float | int]] = []
    for _ in range(4 * cfg.pairs_per_map):
        if len(samples) == cfg.pairs_per_map:
            break
        try:
            start, goal = sample_free_pair(occ, rng, cfg.min_distance)
        except ValueError:
            break
        guide = astar_any_angle(occ, start, goal)
        if guide is None:
            continue
        if not box_fits(guide.min(0), guide.max(0), occ.shape, cfg.window, cfg.margin):
            continue
        origin = window_origin(guide.min(0), guide.max(0), occ.shape, cfg.window)
        crop = crop_window(occ, origin, cfg.window)
        local_start, local_goal = start - origin, goal - origin
        local_guide = astar_any_angle(crop, local_start, local_goal)
        length, optimum = visibility_graph_optimum(crop, local_start, local_goal)
        if local_guide is None or not math.isfinite(length):
            continue
        samples.append(
            {
                "occupancy": crop,
                "start": local_start,
                "goal": local_goal,
                "guide": resample_path(local_guide, cfg.n_waypoints, cfg.keep_vertices),
                "target": resample_path(
                    offset_corners(crop, optimum, cfg.corner_offset),
                    cfg.n_waypoints,
                    cfg.keep_vertices,
                ),
                "guide_length": path_length(local_guide),
                "taut_length": path_length(taut_path(crop, local_guide)),
                "optimum_length": length,
                "kind": kind_index,
            }
        )
    return samples


def build_split(cfg: PathDataConfig, split: str, progress: bool = True) -> PathSamples:
    """Generate the samples of ``split`` (maps seeded from the split's disjoint seed range)."""
    n_maps = {"train": cfg.n_train_maps, "dev": cfg.n_dev_maps, "test": cfg.n_test_maps}[split]
    base = SPLIT_SEED_OFFSETS[split] + cfg.seed * 100_000
    jobs = [(cfg, base + i) for i in range(n_maps)]
    bar = tqdm(total=n_maps, desc=f"{split} worlds", disable=not progress)
    rows: list[dict[str, np.ndarray | float | int]] = []

    def collect(results: Iterator[list[dict[str, np.ndarray | float | int]]]) -> None:
        for samples in results:
            rows.extend(samples)
            bar.update(1)

    if cfg.workers > 1:
        with Pool(cfg.workers) as pool:
            collect(pool.imap(_map_samples, jobs, chunksize=8))
    else:
        collect(map(_map_samples, jobs))
    bar.close()

    def stack(key: str, dtype: type) -> np.ndarray:
        return np.array([row[key] for row in rows], dtype=dtype)

    return PathSamples(
        occupancy=stack("occupancy", bool).reshape(-1, cfg.window, cfg.window),
        start=stack("start", np.float32).reshape(-1, 2),
        goal=stack("goal", np.float32).reshape(-1, 2),
        guide=stack("guide", np.float32).reshape(-1, cfg.n_waypoints, 2),
        target=stack("target", np.float32).reshape(-1, cfg.n_waypoints, 2),
        guide_length=stack("guide_length", np.float32),
        taut_length=stack("taut_length", np.float32),
        optimum_length=stack("optimum_length", np.float32),
        kind=stack("kind", np.int16),
        kinds=tuple(cfg.kinds),
        keep_vertices=cfg.keep_vertices,
    )


def save_split(samples: PathSamples, path: str | Path) -> None:
    """Write a split as a compressed ``.npz`` (occupancy bit-packed)."""
    with Path(path).open("wb") as stream:
        np.savez_compressed(
            stream,
            occupancy_bits=np.packbits(samples.occupancy, axis=-1),
            window=np.array(samples.occupancy.shape[-1], dtype=np.int32),
            start=samples.start,
            goal=samples.goal,
            guide=samples.guide,
            target=samples.target,
            guide_length=samples.guide_length,
            taut_length=samples.taut_length,
            optimum_length=samples.optimum_length,
            kind=samples.kind,
            kinds=np.array(samples.kinds),
            keep_vertices=np.array(samples.keep_vertices),
        )


def load_split(data_dir: str | Path, split: str) -> PathSamples:
    """Read ``<data_dir>/<split>.npz`` written by :func:`prepare`."""
    path = Path(data_dir) / f"{split}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path} missing: run `latentdiff prepare path` first")
    with np.load(path) as data:
        window = int(data["window"])
        occupancy = np.unpackbits(data["occupancy_bits"], axis=-1, count=window).astype(bool)
        return PathSamples(
            occupancy=occupancy.reshape(-1, window, window),
            start=data["start"],
            goal=data["goal"],
            guide=data["guide"],
            target=data["target"],
            guide_length=data["guide_length"],
            taut_length=data["taut_length"],
            optimum_length=data["optimum_length"],
            kind=data["kind"],
            kinds=tuple(str(k) for k in data["kinds"]),
            keep_vertices=bool(data["keep_vertices"]) if "keep_vertices" in data else False,
        )


def prepare(out_dir: str | Path, cfg: PathDataConfig, progress: bool = True) -> dict[str, int]:
    """Write train/dev/test ``.npz`` files and ``data.yaml``; returns the sample counts."""
    for kind in cfg.kinds:
        if kind not in WORLD_KINDS:
            raise ValueError(f"unknown world kind {kind!r}; choose from {WORLD_KINDS}")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    counts = {}
    for split in SPLITS:
        samples = build_split(cfg, split, progress)
        save_split(samples, out / f"{split}.npz")
        counts[split] = len(samples)
    save_config(cfg, out / "data.yaml")
    return counts


class PathDataset(Dataset[dict[str, torch.Tensor]]):
    """Network-ready tensors of a split: map features, normalised endpoints, guide and target."""

    def __init__(self, samples: PathSamples) -> None:
        window = samples.occupancy.shape[-1]
        self.maps = torch.from_numpy(map_features(samples.occupancy))
        self.endpoints = torch.from_numpy(
            normalise(np.concatenate([samples.start, samples.goal], 1), window).astype(np.float32)
        )
        self.guide = torch.from_numpy(normalise(samples.guide, window).transpose(0, 2, 1).copy())
        self.target = torch.from_numpy(normalise(samples.target, window).transpose(0, 2, 1).copy())

    def __len__(self) -> int:
        return len(self.target)

    def __getitem__(self, index: int) -> dict[str, torch.Tensor]:
        return {
            "maps": self.maps[index],
            "endpoints": self.endpoints[index],
            "guide": self.guide[index],
            "target": self.target[index],
        }
