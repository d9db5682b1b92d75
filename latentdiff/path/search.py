"""Classical planners on occupancy grids: grid A*, LOS shortcutting and the exact any-angle optimum.

Occupancy is an (H, W) bool array (True = blocked). Points are (x, y) with x along columns and y
along rows; cell (r, c) covers [c, c+1) x [r, r+1). Collision queries go through
:mod:`latentdiff.path.geometry`, the single definition of what a free segment is.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import OrderedDict
from collections.abc import Sequence

import numpy as np
from nano_astar import astar as _nano_astar
from scipy import ndimage

from latentdiff.path.geometry import point_is_free, segments_are_free

Cell = tuple[int, int]
Point = tuple[float, float]

_SQRT2 = math.sqrt(2.0)


def cell_of(point: Sequence[float]) -> Cell:
    """Cell (r, c) whose half-open square contains ``point`` (floor of y and x)."""
    return math.floor(point[1]), math.floor(point[0])


def cell_centre(r: int, c: int) -> Point:
    """Centre (x, y) of cell (r, c)."""
    return c + 0.5, r + 0.5


def octile_length(cells: Sequence[Cell]) -> float:
    """Length of a cell path with unit orthogonal and sqrt(2) diagonal steps (octile metric)."""
    if len(cells) < 2:
        return 0.0
    steps = np.abs(np.diff(np.asarray(cells, dtype=np.int64), axis=0))
    return float(np.sum(steps.max(axis=1) + (_SQRT2 - 1.0) * steps.min(axis=1)))


def grid_astar(occ: np.ndarray, start_cell: Cell, goal_cell: Cell) -> list[Cell] | None:
    """Shortest 8-connected cell path (octile costs) from ``start_cell`` to ``goal_cell``.

    A diagonal step is taken only when both orthogonal neighbours it passes are free (no corner
    cutting), which nano-astar enforces for ``diagonal=True``. Returns None when no path exists or
    either end is blocked; raises ValueError for cells outside the grid.
    """
    height, width = occ.shape
    for name, (r, c) in (("start", start_cell), ("goal", goal_cell)):
        if not (0 <= r < height and 0 <= c < width):
            raise ValueError(f"{name} cell {(r, c)} is outside a {height}x{width} grid")
    if occ[start_cell] or occ[goal_cell]:
        return None
    grid = np.ascontiguousarray(occ, dtype=np.uint8)
    result = _nano_astar(grid, start_cell, goal_cell, heuristic="octile", diagonal=True)
    if result is None:
        return None
    return [(int(r), int(c)) for r, c in result[0]]


def _containing_cells(occ: np.ndarray, point: Sequence[float]) -> list[Cell]:
    """Cells of the grid whose closed square contains ``point``, the floor cell first."""
    height, width = occ.shape
    x, y = float(point[0]), float(point[1])

    def candidates(value: float, size: int) -> list[int]:
        base = math.floor(value)
        return [i for i in ([base, base - 1] if value == base else [base]) if 0 <= i < size]

    return [(r, c) for r in candidates(y, height) for c in candidates(x, width)]


def free_cell_of(occ: np.ndarray, point: Sequence[float]) -> Cell | None:
    """A free cell whose closed square contains ``point`` (the floor cell when free), else None."""
    return next((cell for cell in _containing_cells(occ, point) if not occ[cell]), None)


SHORTCUT_BLOCK = 32


def _farthest_visible(occ: np.ndarray, pts: np.ndarray, anchor: int) -> int:
    """A later point visible from ``pts[anchor]``, as far along as a bounded search finds.

    All of the next :data:`SHORTCUT_BLOCK` points are tested in one call; when the last of them is
    visible the search gallops (doubling steps) and then bisects between a visible and a hidden
    point, so one anchor costs at most ``SHORTCUT_BLOCK + 2 log2(N)`` segment tests. When no
    later point is visible (an invalid input segment) the next point is returned.
    """
    last = len(pts) - 1
    block = np.arange(anchor + 1, min(last, anchor + SHORTCUT_BLOCK) + 1)
    visible = np.flatnonzero(
        segments_are_free(occ, np.broadcast_to(pts[anchor], (block.size, 2)), pts[block])
    )
    if visible.size == 0:
        return anchor + 1
    seen = int(block[visible[-1]])
    if seen < block[-1] or seen == last:
        return seen

    def sees(index: int) -> bool:
        return bool(segments_are_free(occ, pts[anchor][None], pts[index][None])[0])

    step, hidden = SHORTCUT_BLOCK, last + 1
    while seen < last:
        probe = min(last, seen + step)
        if not sees(probe):
            hidden = probe
            break
        seen, step = probe, 2 * step
    while hidden - seen > 1:
        middle = (seen + hidden) // 2
        if sees(middle):
            seen = middle
        else:
            hidden = middle
    return seen


def shortcut_path(occ: np.ndarray, points: np.ndarray | Sequence[Point]) -> np.ndarray:
    """Greedy line-of-sight shortcutting: from each anchor jump to a far visible later point.

    The jump target is the farthest visible point among the next :data:`SHORTCUT_BLOCK` points,
    extended by a galloping and bisecting search beyond them (see :func:`_farthest_visible`), so
    long routes cost O(N log N) segment tests. Every kept segment is verified free (unless the
    input itself has a colliding segment, which is then kept as is); start and goal are kept
    exactly and, by the triangle inequality, the length never increases.
    """
    pts = np.asarray(points, dtype=np.float64).reshape(-1, 2)
    if len(pts) <= 2:
        return pts.copy()
    keep = [0]
    while keep[-1] < len(pts) - 1:
        keep.append(_farthest_visible(occ, pts, keep[-1]))
    return pts[keep]


def astar_any_angle(
    occ: np.ndarray, start: Sequence[float], goal: Sequence[float]
) -> np.ndarray | None:
    """A* on cells, then line-of-sight shortcutting: the classical "A* + LOS shortcutting" baseline.

    The cell path is turned into points through the cell centres, with the exact ``start`` and
    ``goal`` replacing the first and last centres. Returns an (N, 2) path or None if unreachable.
    """
    if not (point_is_free(occ, start) and point_is_free(occ, goal)):
        return None
    start_cell, goal_cell = free_cell_of(occ, start), free_cell_of(occ, goal)
    if start_cell is None or goal_cell is None:
        return None
    cells = grid_astar(occ, start_cell, goal_cell)
    if cells is None:
        return None
    inner = [cell_centre(r, c) for r, c in cells[1:-1]]
    points = np.array([tuple(start), *inner, tuple(goal)], dtype=np.float64)
    return shortcut_path(occ, points)


class ConnectivityIndex:
    """4-connected components of the free cells; ``connected`` answers in O(1) per query.

    Under the collision rule two free cells sharing only a corner are joined only through a free
    orthogonal neighbour, so 4-connectivity of cells is exactly connectivity of the free space.
    """

    def __init__(self, occ: np.ndarray) -> None:
        self.occ = np.asarray(occ, dtype=bool)
        self.labels, self.n_components = ndimage.label(~self.occ)

    def component(self, point: Sequence[float]) -> int:
        """Component label of a free point (>= 1), or 0 for a point that is not free."""
        if not point_is_free(self.occ, point):
            return 0
        cell = free_cell_of(self.occ, point)
        return 0 if cell is None else int(self.labels[cell])

    def connected(self, p: Sequence[float], q: Sequence[float]) -> bool:
        """Whether free points ``p`` and ``q`` lie in the same free component."""
        label = self.component(p)
        return label > 0 and label == self.component(q)


def free_space_is_simply_connected(occ: np.ndarray) -> bool:
    """Whether the free space has no holes: every obstacle is joined to the map's outside.

    Blocked cells sharing an edge or only a corner are joined (the shared edge or squeeze point
    is forbidden too), and the outside of the map is blocked. Then each free component is simply
    connected, all paths between two of its points are homotopic, and the shortest path of that
    one class is the optimum.
    """
    padded = np.pad(np.asarray(occ, dtype=bool), 1, constant_values=True)
    _, n_obstacles = ndimage.label(padded, structure=np.ones((3, 3), dtype=bool))
    return n_obstacles == 1


def reachable(occ: np.ndarray, start: Sequence[float], goal: Sequence[float]) -> bool:
    """Whether ``goal`` is reachable from ``start``; a ConnectivityIndex serves repeated queries."""
    return ConnectivityIndex(occ).connected(start, goal)


def convex_corners(occ: np.ndarray) -> np.ndarray:
    """Convex obstacle corners as rows (x, y, sx, sy), sorted by y then x; shape (M, 4).

    A convex corner is a lattice point with exactly one blocked cell among the four around it
    (cells outside the map count as blocked, so border points never qualify); (sx, sy) in
    {-1, 1}^2 points from it towards that cell. Locally shortest paths bend only at these points.
    """
    padded = np.pad(np.asarray(occ, dtype=bool), 1, constant_values=True)
    upper_left, upper_right = padded[:-1, :-1], padded[:-1, 1:]
    lower_left, lower_right = padded[1:, :-1], padded[1:, 1:]
    count = upper_left.astype(np.int8) + upper_right + lower_left + lower_right
    rows, cols = np.nonzero(count == 1)
    sx = np.where(upper_right[rows, cols] | lower_right[rows, cols], 1.0, -1.0)
    sy = np.where(lower_left[rows, cols] | lower_right[rows, cols], 1.0, -1.0)
    return np.stack([cols.astype(np.float64), rows.astype(np.float64), sx, sy], axis=1)


class VisibilityGraph:
    """Exact any-angle shortest paths in the continuous free space of one occupancy grid.

    Shortest paths bend only at convex corners of the blocked union: lattice points with exactly
    one blocked cell among the four around them (cells outside the map count as blocked, so the
    border and squeeze points never qualify). A query runs A* (Euclidean heuristic) over the
    visibility graph of start, goal and these corners, generating edges lazily and keeping only
    edges that can lie on a taut path:

    - tangent ends: the line of an edge must not enter the corner's blocked quadrant;
    - taut turns: at a corner the path must wrap around that corner's blocked quadrant;
    - bound: start-to-goal through the edge must not exceed the A* + shortcut length.
    """

    def __init__(self, occ: np.ndarray) -> None:
        self.occ = np.ascontiguousarray(occ, dtype=bool)
        table = convex_corners(self.occ)
        self.corners = table[:, :2]
        # Direction (sx, sy) from each corner towards its single blocked cell.
        self.quadrants = table[:, 2:]

    def shortest_path(
        self, start: Sequence[float], goal: Sequence[float]
    ) -> tuple[float, np.ndarray]:
        """Exact shortest (length, (N, 2) path); (inf, empty (0, 2) array) when unreachable."""
        start_pt = np.asarray(start, dtype=np.float64)
        goal_pt = np.asarray(goal, dtype=np.float64)
        upper = astar_any_angle(self.occ, start_pt, goal_pt)
        if upper is None:
            return math.inf, np.empty((0, 2), dtype=np.float64)
        bound = _polyline_length(upper)
        if len(upper) == 2:
            return bound, upper
        return self._search(start_pt, goal_pt, bound)

    def _search(
        self, start: np.ndarray, goal: np.ndarray, bound: float
    ) -> tuple[float, np.ndarray]:
        """Lazy A* over the pruned visibility graph; ``bound`` is the length of a known path."""
        tol = 1e-9 * (1.0 + bound)
        to_goal = np.hypot(*(self.corners - goal).T)
        subset = np.flatnonzero(np.hypot(*(self.corners - start).T) + to_goal <= bound + tol)
        n_corners = subset.size
        start_id, goal_id = n_corners, n_corners + 1
        xs = np.concatenate([self.corners[subset, 0], [start[0], goal[0]]])
        ys = np.concatenate([self.corners[subset, 1], [start[1], goal[1]]])
        # Start and goal get a zero quadrant, which makes every tangency test pass for them.
        quadrants = np.concatenate([self.quadrants[subset], np.zeros((2, 2))])
        quadrant_sign = quadrants[:, 0] * quadrants[:, 1]
        heuristic = np.concatenate([to_goal[subset], [np.hypot(*(start - goal)), 0.0]])

        cost = np.full(n_corners + 2, np.inf)
        parent = np.full(n_corners + 2, -1, dtype=np.int64)
        closed = np.zeros(n_corners + 2, dtype=bool)
        cost[start_id] = 0.0
        heap: list[tuple[float, int]] = [(heuristic[start_id], start_id)]
        while heap:
            _, node = heapq.heappop(heap)
            if closed[node]:
                continue
            closed[node] = True
            if node == goal_id:
                break
            dx, dy = xs - xs[node], ys - ys[node]
            lengths = np.hypot(dx, dy)
            ids = np.flatnonzero((cost[node] + lengths + heuristic <= bound + tol) & ~closed)
            dx, dy, slope = dx[ids], dy[ids], dx[ids] * dy[ids]
            # Tangent at the far end: the edge line stays out of that corner's blocked quadrant.
            keep = slope * quadrant_sign[ids] <= 0
            if node != start_id:
                incoming = np.array([xs[node] - xs[parent[node]], ys[node] - ys[parent[node]]])
                keep &= slope * quadrant_sign[node] <= 0
                keep &= _wraps_corner(incoming, dx, dy, quadrants[node])
            ids = ids[keep]
            here = np.array([xs[node], ys[node]])
            ends = np.stack([xs[ids], ys[ids]], axis=1)
            ids = ids[segments_are_free(self.occ, np.broadcast_to(here, ends.shape), ends)]
            new_cost = cost[node] + lengths[ids]
            better = new_cost < cost[ids]
            for target, value in zip(ids[better].tolist(), new_cost[better].tolist(), strict=True):
                cost[target] = value
                parent[target] = node
                heapq.heappush(heap, (value + heuristic[target], target))
            bound = min(bound, cost[goal_id])
        if not closed[goal_id]:
            raise RuntimeError("visibility search found no path although A* did")
        order = [goal_id]
        while order[-1] != start_id:
            order.append(int(parent[order[-1]]))
        order.reverse()
        return float(cost[goal_id]), np.stack([xs[order], ys[order]], axis=1)


def _wraps_corner(
    incoming: np.ndarray, dx: np.ndarray, dy: np.ndarray, quadrant: np.ndarray
) -> np.ndarray:
    """Outgoing directions (dx, dy) that keep a path entering a corner along ``incoming`` taut.

    The path must turn around the corner's blocked quadrant (direction ``quadrant``): it lies on
    the inner side of both the incoming and the outgoing line. Going straight on is allowed too.
    """
    turn = incoming[0] * dy - incoming[1] * dx
    quadrant_side_in = incoming[0] * quadrant[1] - incoming[1] * quadrant[0]
    quadrant_side_out = dx * quadrant[1] - dy * quadrant[0]
    straight = (turn == 0) & (dx * incoming[0] + dy * incoming[1] > 0)
    return straight | ((turn * quadrant_side_in > 0) & (turn * quadrant_side_out > 0))


def _polyline_length(path: np.ndarray) -> float:
    return float(np.sum(np.hypot(*np.diff(path, axis=0).T)))


def visibility_graph_optimum(
    occ: np.ndarray, start: Sequence[float], goal: Sequence[float]
) -> tuple[float, np.ndarray]:
    """Exact any-angle shortest path length and path; (inf, empty path) when unreachable."""
    return VisibilityGraph(occ).shortest_path(start, goal)


_GRAPH_CACHE: OrderedDict[bytes, VisibilityGraph] = OrderedDict()
_GRAPH_CACHE_SIZE = 8


def any_angle_reference(
    occ: np.ndarray, start: Sequence[float], goal: Sequence[float]
) -> tuple[float, np.ndarray]:
    """:func:`visibility_graph_optimum` reusing the corner analysis of recently seen maps."""
    grid = np.ascontiguousarray(occ, dtype=bool)
    digest = hashlib.blake2b(grid.tobytes() + str(grid.shape).encode(), digest_size=16).digest()
    graph = _GRAPH_CACHE.get(digest)
    if graph is None:
        graph = VisibilityGraph(grid)
        _GRAPH_CACHE[digest] = graph
        if len(_GRAPH_CACHE) > _GRAPH_CACHE_SIZE:
            _GRAPH_CACHE.popitem(last=False)
    else:
        _GRAPH_CACHE.move_to_end(digest)
    return graph.shortest_path(start, goal)
