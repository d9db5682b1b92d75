"""Grid A*, shortcutting, connectivity, the exact any-angle optimum and reference datasets."""

from __future__ import annotations

import heapq
import math
from pathlib import Path

import numpy as np
import pytest
from scipy import ndimage
from scipy.sparse.csgraph import dijkstra

from latentdiff.path import search
from latentdiff.path.generators import generate_maze
from latentdiff.path.geometry import path_is_free, segment_is_free, segments_are_free
from latentdiff.path.metrics import path_length
from latentdiff.path.references import build_dataset, compute_reference, load_dataset
from latentdiff.path.search import (
    SHORTCUT_BLOCK,
    ConnectivityIndex,
    any_angle_reference,
    astar_any_angle,
    cell_centre,
    cell_of,
    free_cell_of,
    free_space_is_simply_connected,
    grid_astar,
    octile_length,
    reachable,
    shortcut_path,
    visibility_graph_optimum,
)

SQRT2 = math.sqrt(2.0)


def random_map(rng: np.random.Generator, size: int, density: float) -> np.ndarray:
    return rng.random((size, size)) < density


def connected_pair(
    rng: np.random.Generator, occ: np.ndarray
) -> tuple[tuple[float, float], tuple[float, float]]:
    """Two random points in distinct cells of the largest 4-connected free component."""
    labels, _ = ndimage.label(~occ)
    largest = np.argmax(np.bincount(labels.ravel())[1:]) + 1
    cells = np.argwhere(labels == largest)
    first, second = cells[rng.choice(len(cells), 2, replace=False)]
    return (
        (float(first[1] + rng.random()), float(first[0] + rng.random())),
        (float(second[1] + rng.random()), float(second[0] + rng.random())),
    )


def dijkstra_octile(occ: np.ndarray, start: tuple[int, int], goal: tuple[int, int]) -> float:
    """Independent 8-connected shortest path length without corner cutting."""
    height, width = occ.shape
    dist = {start: 0.0}
    heap = [(0.0, start)]
    while heap:
        d, (r, c) = heapq.heappop(heap)
        if (r, c) == goal:
            return d
        if d > dist[(r, c)]:
            continue
        for dr in (-1, 0, 1):
            for dc in (-1, 0, 1):
                nr, nc = r + dr, c + dc
                if (dr, dc) == (0, 0) or not (0 <= nr < height and 0 <= nc < width):
                    continue
                if occ[nr, nc] or (dr and dc and (occ[r, nc] or occ[nr, c])):
                    continue
                nd = d + (SQRT2 if dr and dc else 1.0)
                if nd < dist.get((nr, nc), math.inf):
                    dist[(nr, nc)] = nd
                    heapq.heappush(heap, (nd, (nr, nc)))
    return math.inf


def assert_valid_cell_path(occ: np.ndarray, cells: list[tuple[int, int]]) -> None:
    arr = np.array(cells)
    assert not occ[arr[:, 0], arr[:, 1]].any()
    steps = np.diff(arr, axis=0)
    assert np.all(np.abs(steps).max(axis=1) == 1), "steps must be 8-neighbour moves"
    diagonal = np.all(steps != 0, axis=1)
    here, there = arr[:-1][diagonal], arr[1:][diagonal]
    assert not occ[here[:, 0], there[:, 1]].any(), "corner cut"
    assert not occ[there[:, 0], here[:, 1]].any(), "corner cut"


def brute_force_optimum(occ: np.ndarray, start: tuple[float, float], goal: tuple[float, float]):
    """Shortest path over the full visibility graph of all lattice points plus start and goal."""
    height, width = occ.shape
    ys, xs = np.mgrid[0 : height + 1, 0 : width + 1]
    points = np.concatenate(
        [[start, goal], np.stack([xs.ravel(), ys.ravel()], axis=1).astype(float)]
    )
    i, j = np.triu_indices(len(points), k=1)
    free = segments_are_free(occ, points[i], points[j])
    weights = np.zeros((len(points), len(points)))
    lengths = np.hypot(*(points[i] - points[j]).T)
    weights[i[free], j[free]] = np.maximum(lengths[free], 1e-12)
    return float(dijkstra(weights, directed=False, indices=0)[1])


# ----------------------------------------------------------------------------- grid A*


def test_cell_helpers() -> None:
    assert cell_of((2.7, 5.0)) == (5, 2)
    assert cell_centre(5, 2) == (2.5, 5.5)
    assert octile_length([(0, 0), (1, 1), (1, 2), (2, 3)]) == pytest.approx(1 + 2 * SQRT2)
    assert octile_length([(3, 3)]) == 0.0


def test_astar_empty_grid_goes_diagonal() -> None:
    occ = np.zeros((5, 5), dtype=bool)
    cells = grid_astar(occ, (0, 0), (4, 4))
    assert cells is not None and cells[0] == (0, 0) and cells[-1] == (4, 4)
    assert octile_length(cells) == pytest.approx(4 * SQRT2)


def test_astar_does_not_cut_corners() -> None:
    occ = np.zeros((2, 2), dtype=bool)
    occ[0, 1] = True
    cells = grid_astar(occ, (0, 0), (1, 1))
    assert cells == [(0, 0), (1, 0), (1, 1)]
    occ[1, 0] = True  # only a diagonal squeeze remains
    assert grid_astar(occ, (0, 0), (1, 1)) is None


def test_astar_around_wall_has_hand_computed_length() -> None:
    occ = np.zeros((6, 7), dtype=bool)
    occ[0:5, 3] = True  # wall in column 3, gap in row 5
    cells = grid_astar(occ, (0, 0), (0, 6))
    assert cells is not None
    assert_valid_cell_path(occ, cells)
    # The gap cell (5, 3) can only be entered from (5, 2) and left to (5, 4): diagonals next to
    # the wall end would cut its corner. (0, 0) -> (5, 2) costs 2 sqrt2 + 3, twice by symmetry.
    assert octile_length(cells) == pytest.approx(2 * (2 * SQRT2 + 3) + 2)


@pytest.mark.parametrize("seed", range(12))
def test_astar_matches_independent_dijkstra(seed: int) -> None:
    rng = np.random.default_rng(seed)
    occ = random_map(rng, 14, 0.3)
    free = np.argwhere(~occ)
    start, goal = (tuple(int(v) for v in free[k]) for k in rng.choice(len(free), 2, replace=False))
    expected = dijkstra_octile(occ, start, goal)
    cells = grid_astar(occ, start, goal)
    if math.isinf(expected):
        assert cells is None
        assert not reachable(occ, cell_centre(*start), cell_centre(*goal))
        return
    assert cells is not None and cells[0] == start and cells[-1] == goal
    assert_valid_cell_path(occ, cells)
    assert octile_length(cells) == pytest.approx(expected, abs=1e-9)
    assert reachable(occ, cell_centre(*start), cell_centre(*goal))


def test_unreachable_and_blocked_ends() -> None:
    occ = np.zeros((6, 6), dtype=bool)
    occ[:, 3] = True
    assert grid_astar(occ, (0, 0), (0, 5)) is None
    assert astar_any_angle(occ, (0.5, 0.5), (5.5, 0.5)) is None
    assert not reachable(occ, (0.5, 0.5), (5.5, 0.5))
    assert reachable(occ, (0.5, 0.5), (2.5, 5.5))
    assert grid_astar(occ, (0, 3), (0, 0)) is None  # start on an obstacle
    with pytest.raises(ValueError):
        grid_astar(occ, (0, 0), (6, 0))
    length, path = visibility_graph_optimum(occ, (0.5, 0.5), (5.5, 0.5))
    assert math.isinf(length) and path.shape == (0, 2)


def test_connectivity_index_handles_points_on_cell_edges() -> None:
    occ = np.zeros((4, 4), dtype=bool)
    occ[:, 2] = True
    index = ConnectivityIndex(occ)
    assert index.n_components == 2
    # x = 2.0 lies on the edge between free column 1 and blocked column 2.
    assert index.connected((2.0, 1.5), (0.5, 3.5))
    assert not index.connected((2.0, 1.5), (3.5, 3.5))
    assert not index.connected((2.5, 1.5), (2.5, 1.5))  # inside an obstacle


# ----------------------------------------------------------------------------- shortcutting


@pytest.mark.parametrize("seed", range(6))
def test_shortcut_shortens_keeps_endpoints_and_stays_free(seed: int) -> None:
    rng = np.random.default_rng(100 + seed)
    occ = random_map(rng, 24, 0.25)
    start, goal = connected_pair(rng, occ)
    cells = grid_astar(occ, free_cell_of(occ, start), free_cell_of(occ, goal))
    assert cells is not None
    raw = np.array([start, *[cell_centre(r, c) for r, c in cells[1:-1]], goal])
    assert path_is_free(occ, raw)
    short = shortcut_path(occ, raw)
    assert path_length(short) <= path_length(raw) + 1e-9
    np.testing.assert_array_equal(short[0], start)
    np.testing.assert_array_equal(short[-1], goal)
    assert path_is_free(occ, short)
    np.testing.assert_allclose(astar_any_angle(occ, start, goal), short)


def test_shortcut_on_a_long_maze_route_needs_n_log_n_segment_tests(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    occ = generate_maze(256, 256, 0)
    free = np.argwhere(~occ)
    start, goal = cell_centre(*free[0]), cell_centre(*free[-1])
    cells = grid_astar(occ, free_cell_of(occ, start), free_cell_of(occ, goal))
    assert cells is not None and len(cells) > 2000
    raw = np.array([start, *[cell_centre(r, c) for r, c in cells[1:-1]], goal])
    tested = []

    def counting(grid: np.ndarray, p0s: np.ndarray, p1s: np.ndarray) -> np.ndarray:
        tested.append(len(p0s))
        return segments_are_free(grid, p0s, p1s)

    monkeypatch.setattr(search, "segments_are_free", counting)
    short = shortcut_path(occ, raw)
    # Each kept anchor tests one block plus a gallop and a bisection: O(N log N) in all, where
    # testing every later point from every anchor would take about len(short) * N / 2.
    per_anchor = SHORTCUT_BLOCK + 2 * math.ceil(math.log2(len(raw))) + 2
    assert sum(tested) <= per_anchor * (len(short) - 1)
    assert sum(tested) < len(raw) * len(short) / 20
    assert path_is_free(occ, short) and path_length(short) <= path_length(raw) + 1e-9
    np.testing.assert_array_equal(short[[0, -1]], raw[[0, -1]])
    assert len(short) < len(raw) / 3


def test_shortcut_gallops_past_the_first_block_on_a_straight_run() -> None:
    occ = np.zeros((4, 200), dtype=bool)
    points = np.stack([np.linspace(0.5, 199.5, 150), np.full(150, 2.0)], axis=1)
    points[75, 1] = 2.5  # a kink far beyond the first block
    short = shortcut_path(occ, points)
    np.testing.assert_array_equal(short, points[[0, -1]])


def test_simply_connected_free_space_means_obstacles_reach_the_border() -> None:
    occ = np.zeros((10, 10), dtype=bool)
    assert free_space_is_simply_connected(occ)
    occ[0:6, 4] = True  # a wall from the border
    assert free_space_is_simply_connected(occ)
    occ[7, 7] = True  # an island: paths pass it on either side
    assert not free_space_is_simply_connected(occ)
    occ[8, 8] = occ[9, 9] = True  # joined to the border through squeeze points
    assert free_space_is_simply_connected(occ)
    assert free_space_is_simply_connected(generate_maze(33, 33, 1))


def test_astar_any_angle_on_empty_map_is_straight() -> None:
    occ = np.zeros((8, 8), dtype=bool)
    path = astar_any_angle(occ, (0.2, 0.3), (7.9, 6.1))
    np.testing.assert_array_equal(path, [[0.2, 0.3], [7.9, 6.1]])


# ----------------------------------------------------------------------------- exact optimum


def test_optimum_on_empty_map_is_straight_line() -> None:
    occ = np.zeros((16, 16), dtype=bool)
    length, path = visibility_graph_optimum(occ, (0.5, 1.0), (15.0, 12.5))
    assert length == pytest.approx(math.hypot(14.5, 11.5))
    np.testing.assert_array_equal(path, [[0.5, 1.0], [15.0, 12.5]])


def test_optimum_around_square_obstacle() -> None:
    occ = np.zeros((10, 10), dtype=bool)
    occ[4:6, 4:6] = True  # square [4, 6] x [4, 6]
    length, path = visibility_graph_optimum(occ, (1.0, 5.0), (9.0, 5.0))
    # (1,5) -> corner (4,4) -> corner (6,4) -> (9,5), or its mirror image below.
    assert length == pytest.approx(2.0 + 2.0 * math.sqrt(10.0), abs=1e-9)
    assert path_length(path) == pytest.approx(length)
    assert path_is_free(occ, path)
    assert len(path) == 4


def test_optimum_through_corridor_gap() -> None:
    occ = np.zeros((10, 11), dtype=bool)
    occ[0:7, 5] = True  # wall x in [5, 6], open below y = 7
    length, path = visibility_graph_optimum(occ, (2.5, 1.5), (8.5, 1.5))
    assert length == pytest.approx(2.0 * math.hypot(2.5, 5.5) + 1.0, abs=1e-9)
    np.testing.assert_allclose(path, [[2.5, 1.5], [5.0, 7.0], [6.0, 7.0], [8.5, 1.5]])


def test_optimum_through_s_shaped_corridor() -> None:
    occ = np.zeros((8, 12), dtype=bool)
    occ[0:6, 3] = True  # first wall, open at the bottom (y >= 6)
    occ[2:8, 8] = True  # second wall, open at the top (y <= 2)
    start, goal = (1.0, 1.0), (11.0, 7.0)
    length, path = visibility_graph_optimum(occ, start, goal)
    # Corners (4, 6) bottom-right of wall 1 and (8, 2) top-left of wall 2; the middle leg
    # clears both walls, so the path bends at (3, 6), (4, 6), (8, 2), (9, 2).
    expected = math.hypot(2, 5) + 1 + math.hypot(4, 4) + 1 + math.hypot(2, 5)
    assert length == pytest.approx(expected, abs=1e-9)
    assert path_is_free(occ, path)


@pytest.mark.parametrize("seed", range(10))
def test_optimum_matches_brute_force(seed: int) -> None:
    rng = np.random.default_rng(200 + seed)
    occ = random_map(rng, 10, 0.3)
    start, goal = connected_pair(rng, occ)
    while segment_is_free(occ, start, goal):  # make the query need at least one bend
        start, goal = connected_pair(rng, occ)
    length, path = visibility_graph_optimum(occ, start, goal)
    expected = brute_force_optimum(occ, start, goal)
    assert length == pytest.approx(expected, abs=1e-9)
    assert path_length(path) == pytest.approx(length)
    np.testing.assert_array_equal(path[0], start)
    np.testing.assert_array_equal(path[-1], goal)
    assert path_is_free(occ, path)


@pytest.mark.parametrize("seed", range(4))
def test_optimum_between_straight_line_and_astar_shortcut(seed: int) -> None:
    rng = np.random.default_rng(300 + seed)
    occ = random_map(rng, 40, 0.2)
    for _ in range(3):
        start, goal = connected_pair(rng, occ)
        length, path = any_angle_reference(occ, start, goal)
        baseline = astar_any_angle(occ, start, goal)
        assert baseline is not None
        assert math.dist(start, goal) - 1e-9 <= length <= path_length(baseline) + 1e-9
        assert path_is_free(occ, path)
        again, _ = visibility_graph_optimum(occ, start, goal)
        assert again == length


# ----------------------------------------------------------------------------- references


def test_compute_reference_fields() -> None:
    occ = np.zeros((10, 11), dtype=bool)
    occ[0:7, 5] = True
    ref = compute_reference(occ, (2.5, 1.5), (8.5, 1.5), n_waypoints=16)
    assert ref is not None
    assert ref.waypoints.shape == (16, 2)
    np.testing.assert_array_equal(ref.waypoints[[0, -1]], [[2.5, 1.5], [8.5, 1.5]])
    assert ref.length == pytest.approx(path_length(ref.path))
    assert ref.optimum_length == pytest.approx(2.0 * math.hypot(2.5, 5.5) + 1.0)
    assert ref.optimum_length <= ref.length + 1e-9
    occ[:, 5] = True
    assert compute_reference(occ, (2.5, 1.5), (8.5, 1.5), n_waypoints=16) is None


def test_dataset_round_trip(tmp_path: Path) -> None:
    first = np.zeros((9, 13), dtype=bool)  # width not a multiple of 8
    first[2:7, 4:6] = True
    first[5, 9:12] = True
    second = np.zeros((9, 13), dtype=bool)
    second[:, 6] = True  # two halves
    maps = [first, second]
    pairs = [
        (0, (0.5, 4.25), (12.5, 6.75)),
        (1, (0.5, 0.5), (12.5, 8.5)),  # unreachable: skipped
        (1, (0.5, 0.5), (5.5, 8.5)),
    ]
    out = tmp_path / "refs.data"  # any name, kept as given
    assert build_dataset(maps, pairs, n_waypoints=8, out_file=out, progress=False) == 2
    data = load_dataset(out)
    assert len(data) == 2
    np.testing.assert_array_equal(data.occupancy, np.stack(maps))
    np.testing.assert_array_equal(data.pair_index, [0, 2])
    np.testing.assert_array_equal(data.map_index, [0, 1])
    assert data.waypoints.shape == (2, 8, 2) and data.waypoints.dtype == np.float32
    for row, pair_id in enumerate(data.pair_index):
        map_id, start, goal = pairs[pair_id]
        ref = compute_reference(maps[map_id], start, goal, n_waypoints=8)
        assert ref is not None
        np.testing.assert_allclose(data.path(row), ref.path, atol=1e-5)
        assert path_is_free(maps[map_id], data.path(row).astype(np.float64))
        np.testing.assert_allclose(data.waypoints[row], ref.waypoints, atol=1e-5)
        np.testing.assert_allclose(data.start[row], start)
        np.testing.assert_allclose(data.goal[row], goal)
        assert data.length[row] == pytest.approx(ref.length, rel=1e-6)
        assert data.optimum_length[row] == pytest.approx(ref.optimum_length, rel=1e-6)
        assert data.optimum_length[row] <= data.length[row]
