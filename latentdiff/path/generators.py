"""Seeded procedural occupancy worlds.

Every generator is ``generate_<kind>(height, width, seed, **params) -> occ``, a bool array
(H, W) with True = blocked, and depends only on its arguments (numpy ``default_rng(seed)``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from scipy import ndimage

from latentdiff.path.maps import as_occupancy, validate_map_size

__all__ = [
    "WORLD_KINDS",
    "connected_components",
    "generate_bug_traps",
    "generate_corridors",
    "generate_maze",
    "generate_narrow_passages",
    "generate_random",
    "generate_rooms",
    "generate_world",
    "sample_free_pair",
]

_STEPS = ((0, 1), (1, 0), (0, -1), (-1, 0))  # (d_row, d_col): right, down, left, up


def _check_range(name: str, value: float, low: float, high: float) -> None:
    if not low <= value <= high:
        raise ValueError(f"{name} must be in [{low}, {high}], got {value}")


def _random_spanning_tree(
    rows: int, cols: int, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Recursive-backtracker spanning tree of a rows x cols lattice.

    Returns (open_right (rows, cols-1), open_down (rows-1, cols)): which lattice edges are used.
    """
    open_right = np.zeros((rows, cols - 1), dtype=bool)
    open_down = np.zeros((rows - 1, cols), dtype=bool)
    visited = np.zeros((rows, cols), dtype=bool)
    start = (int(rng.integers(rows)), int(rng.integers(cols)))
    visited[start] = True
    stack = [start]
    while stack:
        r, c = stack[-1]
        options = [
            (r + dr, c + dc)
            for dr, dc in _STEPS
            if 0 <= r + dr < rows and 0 <= c + dc < cols and not visited[r + dr, c + dc]
        ]
        if not options:
            stack.pop()
            continue
        nr, nc = options[int(rng.integers(len(options)))]
        if nr == r:
            open_right[r, min(c, nc)] = True
        else:
            open_down[min(r, nr), c] = True
        visited[nr, nc] = True
        stack.append((nr, nc))
    return open_right, open_down


def generate_random(
    height: int,
    width: int,
    seed: int,
    density: float = 0.2,
    max_size: int | None = None,
    disc_fraction: float = 0.5,
) -> np.ndarray:
    """Random axis-aligned rectangles and discs until ``density`` of the cells are blocked.

    Shapes have sides (or diameters) up to ``max_size`` cells (default: min side // 8, >= 2), so
    the density overshoots the target by at most one shape.
    """
    validate_map_size(height, width)
    _check_range("density", density, 0.0, 0.9)
    _check_range("disc_fraction", disc_fraction, 0.0, 1.0)
    size = max_size if max_size is not None else max(2, min(height, width) // 8)
    _check_range("max_size", size, 1, min(height, width))
    rng = np.random.default_rng(seed)
    occ = np.zeros((height, width), dtype=bool)
    target = round(density * height * width)
    blocked = 0
    while blocked < target:
        if rng.random() < disc_fraction:
            radius = rng.uniform(0.5, max(0.5, size / 2))
            cy, cx = rng.uniform(0.0, height), rng.uniform(0.0, width)
            top, left = max(0, int(cy - radius)), max(0, int(cx - radius))
            rr = np.arange(top, min(height, int(cy + radius) + 1))[:, None] + 0.5
            cc = np.arange(left, min(width, int(cx + radius) + 1))[None, :] + 0.5
            shape = (rr - cy) ** 2 + (cc - cx) ** 2 <= radius**2
        else:
            sh, sw = (int(v) for v in rng.integers(1, size + 1, size=2))
            top, left = int(rng.integers(0, height - sh + 1)), int(rng.integers(0, width - sw + 1))
            shape = np.ones((sh, sw), dtype=bool)
        window = occ[top : top + shape.shape[0], left : left + shape.shape[1]]
        blocked += int(np.count_nonzero(shape & ~window))
        window |= shape
    return occ


def generate_maze(
    height: int,
    width: int,
    seed: int,
    corridor_width: int = 2,
    wall_width: int = 1,
    braid: float = 0.0,
) -> np.ndarray:
    """Recursive-backtracker maze with corridors ``corridor_width`` cells wide.

    The coarse lattice has as many cells as fit at pitch corridor_width + wall_width; the maze is
    centred and any leftover margin is blocked. ``braid`` opens each remaining interior wall with
    that probability (0 = perfect maze, one route between any two cells).
    """
    validate_map_size(height, width)
    _check_range("corridor_width", corridor_width, 1, min(height, width))
    _check_range("wall_width", wall_width, 1, min(height, width))
    _check_range("braid", braid, 0.0, 1.0)
    pitch = corridor_width + wall_width
    rows, cols = (height - wall_width) // pitch, (width - wall_width) // pitch
    if rows < 1 or cols < 1:
        raise ValueError(f"a {height}x{width} map is too small for a maze of pitch {pitch}")
    rng = np.random.default_rng(seed)
    open_right, open_down = _random_spanning_tree(rows, cols, rng)
    open_right |= rng.random(open_right.shape) < braid
    open_down |= rng.random(open_down.shape) < braid
    coarse = np.ones((2 * rows + 1, 2 * cols + 1), dtype=bool)
    coarse[1::2, 1::2] = False
    coarse[1::2, 2:-1:2] = ~open_right
    coarse[2:-1:2, 1::2] = ~open_down
    row_sizes = np.where(np.arange(2 * rows + 1) % 2 == 0, wall_width, corridor_width)
    col_sizes = np.where(np.arange(2 * cols + 1) % 2 == 0, wall_width, corridor_width)
    maze = np.repeat(np.repeat(coarse, row_sizes, axis=0), col_sizes, axis=1)
    occ = np.ones((height, width), dtype=bool)
    top, left = (height - maze.shape[0]) // 2, (width - maze.shape[1]) // 2
    occ[top : top + maze.shape[0], left : left + maze.shape[1]] = maze
    return occ


def generate_rooms(
    height: int,
    width: int,
    seed: int,
    room_size: int = 16,
    door_width: int = 2,
    wall_width: int = 1,
    closed_door_fraction: float = 0.3,
) -> np.ndarray:
    """A grid of rooms about ``room_size`` cells apart, separated by walls with doors.

    Every pair of neighbouring rooms shares one door of ``door_width`` cells at a random place.
    The doors of a random spanning tree of the rooms always stay open (all rooms reachable);
    each other door is closed with probability ``closed_door_fraction``.
    """
    validate_map_size(height, width)
    _check_range("room_size", room_size, 1, max(height, width))
    _check_range("door_width", door_width, 1, min(height, width))
    _check_range("wall_width", wall_width, 1, min(height, width))
    _check_range("closed_door_fraction", closed_door_fraction, 0.0, 1.0)
    rows, cols = max(1, round(height / room_size)), max(1, round(width / room_size))
    row_bounds = [round(i * height / rows) for i in range(rows + 1)]
    col_bounds = [round(j * width / cols) for j in range(cols + 1)]

    def spans(bounds: list[int]) -> list[tuple[int, int]]:
        return [(b + (wall_width if i else 0), bounds[i + 1]) for i, b in enumerate(bounds[:-1])]

    row_spans, col_spans = spans(row_bounds), spans(col_bounds)
    if min(hi - lo for lo, hi in row_spans + col_spans) < door_width + 1:
        raise ValueError(
            f"room_size {room_size} leaves rooms too small for doors of width {door_width}"
        )
    rng = np.random.default_rng(seed)
    occ = np.zeros((height, width), dtype=bool)
    for b in row_bounds[1:-1]:
        occ[b : b + wall_width, :] = True
    for b in col_bounds[1:-1]:
        occ[:, b : b + wall_width] = True
    open_right, open_down = _random_spanning_tree(rows, cols, rng)
    open_right |= rng.random(open_right.shape) >= closed_door_fraction
    open_down |= rng.random(open_down.shape) >= closed_door_fraction
    for i, j in zip(*np.nonzero(open_right), strict=True):
        lo, hi = row_spans[i]
        start = int(rng.integers(lo, hi - door_width + 1))
        wall = col_bounds[j + 1]
        occ[start : start + door_width, wall : wall + wall_width] = False
    for i, j in zip(*np.nonzero(open_down), strict=True):
        lo, hi = col_spans[j]
        start = int(rng.integers(lo, hi - door_width + 1))
        wall = row_bounds[i + 1]
        occ[wall : wall + wall_width, start : start + door_width] = False
    return occ


def generate_corridors(
    height: int,
    width: int,
    seed: int,
    free_fraction: float = 0.3,
    min_width: int = 1,
    max_width: int = 3,
    turns: int = 6,
    max_length: int | None = None,
) -> np.ndarray:
    """Long winding corridors carved out of solid rock until ``free_fraction`` of cells are free.

    Each corridor has a random width in [min_width, max_width] and ``turns`` straight legs of up
    to ``max_length`` cells (default: min side // 3), turning 90 degrees between legs. Every
    corridor after the first starts inside an earlier one, so all free cells are connected.
    """
    validate_map_size(height, width)
    _check_range("free_fraction", free_fraction, 0.01, 0.9)
    _check_range("min_width", min_width, 1, min(height, width))
    _check_range("max_width", max_width, min_width, min(height, width))
    _check_range("turns", turns, 1, 10_000)
    longest = max_length if max_length is not None else max(4, min(height, width) // 3)
    _check_range("max_length", longest, 2, 10 * max(height, width))
    rng = np.random.default_rng(seed)
    occ = np.ones((height, width), dtype=bool)
    target = free_fraction * height * width
    while np.count_nonzero(~occ) < target:
        free = np.flatnonzero(~occ)
        cell = int(rng.integers(height * width)) if free.size == 0 else int(rng.choice(free))
        r, c = divmod(cell, width)
        thickness = int(rng.integers(min_width, max_width + 1))
        offset = thickness // 2
        direction = int(rng.integers(4))
        for _ in range(turns):
            dr, dc = _STEPS[direction]
            length = int(rng.integers(2, longest + 1))
            r1 = min(max(r + dr * length, 0), height - 1)
            c1 = min(max(c + dc * length, 0), width - 1)
            top, left = max(0, min(r, r1) - offset), max(0, min(c, c1) - offset)
            occ[top : max(r, r1) - offset + thickness, left : max(c, c1) - offset + thickness] = (
                False
            )
            r, c = r1, c1
            direction = (direction + (1 if rng.random() < 0.5 else 3)) % 4
    return occ


def generate_bug_traps(
    height: int,
    width: int,
    seed: int,
    n_traps: int | None = None,
    trap_size: int | None = None,
    thickness: int = 1,
    start: tuple[float, float] | None = None,
    max_attempts: int = 200,
) -> np.ndarray:
    """U-shaped traps whose open side faces ``start`` (default: (0.1 W, 0.5 H), x right, y down).

    Trap sides are drawn in [trap_size // 2, trap_size] (default trap_size: min side // 5, at
    least 7). Traps keep 2 free cells from each other, from the map border and from ``start``,
    so the free space stays connected. Up to ``n_traps`` (default: one per 3 trap_size**2 cells)
    are placed by rejection sampling; ValueError if not even one fits.
    """
    validate_map_size(height, width)
    size = trap_size if trap_size is not None else max(7, min(height, width) // 5)
    n_traps = n_traps if n_traps is not None else max(1, round(height * width / (3 * size**2)))
    _check_range("thickness", thickness, 1, min(height, width))
    _check_range("trap_size", size, 2 * thickness + 1, min(height, width) - 4)
    _check_range("n_traps", n_traps, 1, height * width)
    sx, sy = start if start is not None else (0.1 * width, 0.5 * height)
    if not (0.0 <= sx <= width and 0.0 <= sy <= height):
        raise ValueError(f"start ({sx:g}, {sy:g}) is outside the map")
    rng = np.random.default_rng(seed)
    occ = np.zeros((height, width), dtype=bool)
    keep_out = np.zeros((height, width), dtype=bool)  # placed traps grown by the 2-cell margin
    smallest = max(2 * thickness + 1, size // 2)
    placed = 0
    for _ in range(n_traps * max_attempts):
        if placed == n_traps:
            break
        th, tw = (int(v) for v in rng.integers(smallest, size + 1, size=2))
        top, left = int(rng.integers(2, height - th - 1)), int(rng.integers(2, width - tw - 1))
        near_start = top - 2 <= sy <= top + th + 2 and left - 2 <= sx <= left + tw + 2
        if near_start or keep_out[top : top + th, left : left + tw].any():
            continue
        trap = np.ones((th, tw), dtype=bool)
        trap[thickness:-thickness, thickness:-thickness] = False
        dx, dy = sx - (left + tw / 2), sy - (top + th / 2)
        if abs(dx) >= abs(dy):
            mouth = (
                slice(thickness, -thickness),
                slice(None, thickness) if dx < 0 else slice(-thickness, None),
            )
        else:
            mouth = (
                slice(None, thickness) if dy < 0 else slice(-thickness, None),
                slice(thickness, -thickness),
            )
        trap[mouth] = False
        occ[top : top + th, left : left + tw] |= trap
        keep_out[max(0, top - 2) : top + th + 2, max(0, left - 2) : left + tw + 2] = True
        placed += 1
    if placed == 0:
        raise ValueError(f"no bug trap of size {size} fits a {height}x{width} map")
    return occ


def generate_narrow_passages(
    height: int,
    width: int,
    seed: int,
    n_walls: int | None = None,
    thickness: int = 1,
    max_gap: int = 2,
    max_gaps_per_wall: int = 2,
    vertical: bool | None = None,
) -> np.ndarray:
    """Parallel walls across the map, each with 1..max_gaps_per_wall gaps of 1..max_gap cells.

    Walls are vertical or horizontal (random unless ``vertical`` is given), about evenly spaced
    (default: one per 16 cells) with at least 2 free cells between neighbours.
    """
    validate_map_size(height, width)
    _check_range("thickness", thickness, 1, min(height, width))
    _check_range("max_gap", max_gap, 1, min(height, width))
    _check_range("max_gaps_per_wall", max_gaps_per_wall, 1, max(height, width))
    rng = np.random.default_rng(seed)
    if vertical is None:
        vertical = bool(rng.random() < 0.5)
    along, across = (height, width) if vertical else (width, height)
    walls = n_walls if n_walls is not None else max(1, across // 16)
    spacing = across / (walls + 1)
    if walls < 1 or spacing < thickness + 3:
        raise ValueError(f"{walls} walls of thickness {thickness} do not fit across {across} cells")
    jitter = int((spacing - thickness - 3) // 2)
    occ = np.zeros((along, across), dtype=bool)
    for i in range(walls):
        position = round((i + 1) * spacing - thickness / 2) + int(rng.integers(-jitter, jitter + 1))
        position = min(max(position, 1), across - thickness - 1)
        occ[:, position : position + thickness] = True
        for _ in range(int(rng.integers(1, max_gaps_per_wall + 1))):
            gap = int(rng.integers(1, min(max_gap, along) + 1))
            first = int(rng.integers(0, along - gap + 1))
            occ[first : first + gap, position : position + thickness] = False
    return occ if vertical else np.ascontiguousarray(occ.T)


_GENERATORS: dict[str, Callable[..., np.ndarray]] = {
    "random": generate_random,
    "maze": generate_maze,
    "rooms": generate_rooms,
    "corridors": generate_corridors,
    "bug_traps": generate_bug_traps,
    "narrow_passages": generate_narrow_passages,
}
WORLD_KINDS: tuple[str, ...] = tuple(_GENERATORS)


def generate_world(kind: str, height: int, width: int, seed: int, **params: Any) -> np.ndarray:
    """Dispatch to ``generate_<kind>``; ``kind`` is one of WORLD_KINDS."""
    if kind not in _GENERATORS:
        raise ValueError(f"unknown world kind {kind!r}; choose from {', '.join(WORLD_KINDS)}")
    return _GENERATORS[kind](height, width, seed, **params)


def connected_components(occ: np.ndarray) -> np.ndarray:
    """Labels (H, W) of the free space: 0 on blocked cells, 1..n per connected free component.

    Components use 4-connectivity, which equals 8-connectivity under the diagonal-squeeze rule
    (a diagonal move needs both side cells free, so it can always be replaced by two side moves).
    """
    labels, _ = ndimage.label(~as_occupancy(occ))
    return labels


def sample_free_pair(
    occ: np.ndarray, rng: np.random.Generator, min_distance: float, max_tries: int = 100
) -> tuple[np.ndarray, np.ndarray]:
    """Start and goal (x, y) at centres of free cells of one component, >= min_distance apart.

    Picks a random free cell, then a random cell of its component far enough away; retries from
    another start up to ``max_tries`` times, then raises ValueError.
    """
    labels = connected_components(occ)
    rows, cols = np.nonzero(labels)
    if rows.size == 0:
        raise ValueError("the map has no free cell")
    component = labels[rows, cols]
    for _ in range(max_tries):
        i = int(rng.integers(rows.size))
        far = np.hypot(rows - rows[i], cols - cols[i]) >= min_distance
        candidates = np.flatnonzero(far & (component == component[i]))
        if candidates.size:
            j = int(candidates[rng.integers(candidates.size)])
            start = np.array([cols[i] + 0.5, rows[i] + 0.5])
            return start, np.array([cols[j] + 0.5, rows[j] + 0.5])
    raise ValueError(
        f"found no connected pair of free cells at least {min_distance} apart in {max_tries} tries"
    )
