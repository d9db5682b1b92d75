"""Exact collision checks and distance fields of latentdiff.path.geometry."""

from __future__ import annotations

import math
from itertools import pairwise

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from latentdiff.path.geometry import (
    clearance_map,
    first_collision,
    path_clearance,
    path_is_free,
    point_is_free,
    points_are_free,
    segment_is_free,
    segment_is_free_reference,
    segments_are_free,
    signed_distance_field,
)


def grid(*blocked: tuple[int, int], shape: tuple[int, int] = (6, 6)) -> np.ndarray:
    """Occupancy with the given (row, col) cells blocked."""
    occ = np.zeros(shape, dtype=bool)
    for r, c in blocked:
        occ[r, c] = True
    return occ


def check(occ: np.ndarray, p0: tuple[float, float], p1: tuple[float, float]) -> bool:
    """Fast checker, asserted to agree with the rational reference (both directions)."""
    fast = segment_is_free(occ, p0, p1)
    assert fast == segment_is_free(occ, p1, p0)
    assert fast == segment_is_free_reference(occ, p0, p1)
    return fast


# -- points -------------------------------------------------------------------------------------


def test_point_rules() -> None:
    occ = grid((2, 2))
    assert point_is_free(occ, (0.5, 0.5))
    assert not point_is_free(occ, (2.5, 2.5))  # blocked interior
    assert point_is_free(occ, (2.5, 2.0))  # edge of a single blocked cell
    assert point_is_free(occ, (2.0, 2.0))  # single blocked corner
    assert not point_is_free(occ, (-0.01, 1.0))
    assert not point_is_free(occ, (1.0, 6.01))
    assert not point_is_free(occ, (math.nan, 1.0))
    assert point_is_free(occ, (6.0, 3.5))  # on the border next to a free cell
    assert not point_is_free(occ, (0.0, 0.0))  # map corners are squeezed by the outside
    two = grid((2, 2), (2, 3))
    assert not point_is_free(two, (3.0, 2.5))  # edge shared by two blocked cells
    assert not point_is_free(grid((1, 1), (2, 2)), (2.0, 2.0))  # NW & SE squeeze
    assert not point_is_free(grid((1, 2), (2, 1)), (2.0, 2.0))  # NE & SW squeeze
    assert not point_is_free(grid((0, 3)), (3.0, 0.0))  # border vertex next to a blocked cell
    points = np.array([[0.5, 0.5], [2.5, 2.5], [2.0, 2.0], [7.0, 1.0]])
    np.testing.assert_array_equal(points_are_free(occ, points), [True, False, True, False])


# -- hand-made segments ------------------------------------------------------------------------


def test_segment_through_blocked_interior() -> None:
    occ = grid((2, 2))
    assert not check(occ, (0.5, 2.5), (5.5, 2.5))
    assert not check(occ, (0.5, 0.5), (4.5, 4.5))
    assert not check(occ, (2.1, 2.9), (2.2, 2.8))  # entirely inside
    assert check(occ, (0.5, 1.5), (5.5, 1.5))


def test_grazing_edges_and_edges_between_blocked_cells() -> None:
    occ = grid((2, 2))
    assert check(occ, (0.5, 2.0), (5.5, 2.0))  # along the top edge
    assert check(occ, (3.0, 0.5), (3.0, 5.5))  # along the right edge
    assert check(occ, (2.0, 3.0), (3.0, 3.0))  # exactly the bottom edge
    pair = grid((2, 2), (2, 3))
    assert not check(pair, (3.0, 0.5), (3.0, 5.5))  # along the shared edge
    assert not check(pair, (3.0, 2.2), (3.0, 2.8))  # inside the shared edge only
    assert check(pair, (0.5, 2.0), (5.5, 2.0))  # grazing both tops
    stacked = grid((2, 2), (3, 2))
    assert not check(stacked, (0.5, 3.0), (5.5, 3.0))
    assert check(stacked, (2.0, 0.5), (2.0, 5.5))


def test_single_corner_versus_diagonal_squeeze() -> None:
    single = grid((2, 2))
    assert check(single, (1.0, 3.0), (3.0, 1.0))  # anti-diagonal through the corner (2, 2)
    assert check(single, (0.5, 3.5), (3.5, 0.5))
    squeeze_nw_se = grid((1, 1), (2, 2))
    squeeze_ne_sw = grid((1, 2), (2, 1))
    assert not check(squeeze_nw_se, (1.0, 3.0), (3.0, 1.0))
    assert not check(squeeze_ne_sw, (0.5, 0.5), (3.5, 3.5))
    for occ in (squeeze_nw_se, squeeze_ne_sw):
        assert not check(occ, (0.5, 2.0), (4.5, 2.0))  # horizontal grid line through the vertex
        assert not check(occ, (2.0, 0.5), (2.0, 4.5))  # vertical grid line through the vertex
        assert not check(occ, (2.0, 2.0), (2.0, 2.0))  # zero-length on the vertex
        assert not check(occ, (4.5, 0.5), (2.0, 2.0))  # ending on the vertex
        assert check(occ, (2.0, 4.5), (2.0, 3.0))  # stopping one cell short
        assert check(occ, (4.5, 3.5), (3.5, 4.5))


def test_map_border() -> None:
    free = grid()
    assert check(free, (0.5, 0.0), (5.5, 0.0))
    assert check(free, (6.0, 0.5), (6.0, 5.5))
    assert not check(free, (0.0, 0.0), (3.0, 0.0))  # touches the squeezed map corner
    assert not check(free, (0.5, 0.5), (-0.5, 3.0))
    assert not check(free, (5.5, 0.5), (6.000001, 0.5))
    assert not check(free, (0.5, 0.5), (math.inf, 0.5))
    blocked_border = grid((0, 3))
    assert not check(blocked_border, (0.5, 0.0), (5.5, 0.0))
    assert not check(blocked_border, (0.5, 0.0), (3.0, 0.0))  # ends on a squeezed vertex
    assert check(blocked_border, (0.5, 0.0), (2.9, 0.0))
    assert check(blocked_border, (0.5, 6.0), (5.5, 6.0))


def test_zero_length_and_lattice_endpoints() -> None:
    occ = grid((3, 3))
    assert check(occ, (1.5, 1.5), (1.5, 1.5))
    assert not check(occ, (3.5, 3.5), (3.5, 3.5))
    assert check(occ, (3.0, 3.0), (3.0, 3.0))  # lone corner
    assert check(occ, (1.0, 1.0), (3.0, 3.0))  # ends on the blocked cell's corner
    assert not check(occ, (1.0, 1.0), (4.0, 4.0))  # continues across the cell
    assert check(occ, (3.0, 3.0), (5.0, 1.0))  # leaves the corner away from the cell


def test_slope_one_through_vertices() -> None:
    # 0.1 and 2.9 are not dyadic, yet x == y holds exactly on the whole segment.
    assert check(grid((1, 2)), (0.1, 0.1), (2.9, 2.9))  # lone corner at (2, 2)
    assert not check(grid((1, 2), (2, 1)), (0.1, 0.1), (2.9, 2.9))  # squeezed (2, 2)
    assert check(grid((1, 2), (2, 1)), (0.1, 0.1), (1.9, 1.9))  # stops before it
    above, below = (0.1, 0.1 - 1e-12), (0.1, 0.1 + 1e-12)
    assert not check(grid((1, 2)), above, (2.9, 2.9 - 1e-12))
    assert check(grid((1, 2)), below, (2.9, 2.9 + 1e-12))


@pytest.mark.parametrize("offset", [1e-12, 2.0**-52, 0.0])
def test_non_dyadic_slope_near_a_vertex(offset: float) -> None:
    """Slope 1/3 from (0, 1) to (6, 3) meets vertex (3, 2) exactly; y offsets move it off."""
    lone = grid((1, 3))  # the NE cell of vertex (3, 2)
    squeeze = grid((1, 3), (2, 2))  # NE & SW
    touch = ((0.0, 1.0), (6.0, 3.0))
    below = ((0.0, 1.0 + offset), (6.0, 3.0 + offset))
    above = ((0.0, 1.0 - offset / 2), (6.0, 3.0 - offset / 2))
    assert check(lone, *touch)
    assert not check(squeeze, *touch)
    assert check(lone, *below) is True
    assert check(lone, *above) is (offset == 0.0)
    assert not check(squeeze, *below)


def test_non_dyadic_endpoints_on_a_line_through_vertices() -> None:
    occ = grid((0, 2), (1, 1))  # NE & SW of vertex (2, 1)
    # Thirds are inexact in binary; the reference decides, the checker must agree.
    for p0, p1 in [((1 / 3, 1 / 6), (11 / 3, 11 / 6)), ((0.3, 0.15), (3.9, 1.95))]:
        check(occ, p0, p1)


def test_tiny_coordinates_use_the_exact_fallback() -> None:
    occ = grid((2, 2))
    assert check(occ, (1e-300, 0.5), (5.5, 1.5))
    assert not check(occ, (1e-300, 1e-300), (4.5, 4.5))
    # x + y = 2 touches vertex (1, 1); a tiny offset pushes the line into its SE cell.
    assert check(grid((1, 1)), (0.0, 2.0), (2.0, 0.0))
    assert not check(grid((1, 1)), (1e-300, 2.0), (2.0, 1e-300))
    assert not check(grid((1, 1)), (5e-324, 2.0), (2.0, 0.0))
    assert check(grid((0, 0)), (1e-300, 2.0), (2.0, 1e-300))
    # From (0, 1.25) to (2, 0.75) the segment touches vertex (1, 1); with x0 = 2**-1074 it passes
    # 2**-1076 inside the SE cell, below what float products (0.75 * 2**-1074) can represent.
    assert check(grid((1, 1)), (0.0, 1.25), (2.0, 0.75))
    assert not check(grid((1, 1)), (2.0**-1074, 1.25), (2.0, 0.75))
    assert check(grid((0, 0)), (2.0**-1074, 1.25), (2.0, 0.75))


# -- paths ----------------------------------------------------------------------------------------


def test_paths_and_first_collision() -> None:
    occ = grid((2, 2))
    path = np.array([[0.5, 0.5], [0.5, 4.5], [4.5, 4.5], [4.5, 0.5]])
    assert path_is_free(occ, path)
    assert first_collision(occ, path) is None
    blocked = np.concatenate([path, [[4.5, 2.5], [0.5, 2.5]]])
    assert not path_is_free(occ, blocked)
    assert first_collision(occ, blocked) == 4
    assert first_collision(occ, [[2.5, 2.5]]) == 0
    assert first_collision(occ, [[1.5, 1.5]]) is None
    tiny = [[1e-300, 0.5], [5.5, 1.5], [5.5, 2.5], [0.5, 2.5]]
    assert first_collision(occ, tiny) == 2
    with pytest.raises(ValueError, match="at least one point"):
        first_collision(occ, np.zeros((0, 2)))


def test_input_validation() -> None:
    with pytest.raises(ValueError, match="bool"):
        segment_is_free(np.zeros((4, 4)), (0.5, 0.5), (1.5, 1.5))
    with pytest.raises(ValueError, match="differ in shape"):
        segments_are_free(grid(), np.zeros((3, 2)), np.zeros((2, 2)))
    with pytest.raises(ValueError, match=r"\(N, 2\)"):
        segments_are_free(grid(), np.zeros((3, 3)), np.zeros((3, 3)))
    origins = np.broadcast_to(np.array([0.5, 0.5]), (3, 2))  # read-only, zero stride
    ends = np.array([[5.5, 0.5], [5.5, 5.5], [0.5, 5.5]])
    np.testing.assert_array_equal(segments_are_free(grid((3, 3)), origins, ends), [1, 0, 1])


# -- property test against the rational reference -----------------------------------------------


def _coordinate(limit: int) -> st.SearchStrategy[float]:
    lattice = st.integers(-1, limit + 1).map(float)
    half = st.integers(-1, 2 * limit + 1).map(lambda k: k / 2)
    thirds = st.integers(0, 3 * limit).map(lambda k: k / 3)
    near = st.tuples(st.integers(0, limit), st.sampled_from([-1, 1]), st.integers(30, 60)).map(
        lambda t: t[0] + t[1] * 2.0 ** -t[2]
    )
    uniform = st.floats(-0.25, limit + 0.25, allow_nan=False)
    return st.one_of(lattice, half, thirds, near, uniform)


@st.composite
def scenes(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    height, width = draw(st.integers(2, 6)), draw(st.integers(2, 6))
    cells = draw(st.lists(st.booleans(), min_size=height * width, max_size=height * width))
    occ = np.array(cells, dtype=bool).reshape(height, width)
    point = st.tuples(_coordinate(width), _coordinate(height))
    starts = draw(st.lists(point, min_size=12, max_size=12))
    # Half of the ends are reflections through a lattice vertex, so segments pass (or nearly
    # pass) exactly through vertices with arbitrary float endpoints.
    vertex = st.tuples(st.integers(0, width), st.integers(0, height))
    scale = st.sampled_from([0.5, 1.0, 1.5, 2.0, 1 / 3])
    ends = []
    for x0, y0 in starts:
        if draw(st.booleans()):
            (vx, vy), s = draw(vertex), draw(scale)
            ends.append((vx + s * (vx - x0), vy + s * (vy - y0)))
        else:
            ends.append(draw(point))
    return occ, np.array(starts), np.array(ends)


@settings(
    max_examples=250, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
@given(scenes())
def test_checker_matches_rational_reference(scene: tuple[np.ndarray, ...]) -> None:
    occ, starts, ends = scene
    fast = segments_are_free(occ, starts, ends)
    exact = [segment_is_free_reference(occ, a, b) for a, b in zip(starts, ends, strict=True)]
    np.testing.assert_array_equal(fast, exact)
    np.testing.assert_array_equal(
        points_are_free(occ, starts), [point_is_free(occ, p) for p in starts]
    )


# -- distance fields ---------------------------------------------------------------------------


def _box_distance(x: float, y: float, r: int, c: int) -> float:
    return math.hypot(max(c - x, 0.0, x - c - 1), max(r - y, 0.0, y - r - 1))


def _brute_distance(cells: np.ndarray, x: float, y: float) -> float:
    return min(
        (_box_distance(x, y, r, c) for r, c in zip(*np.nonzero(cells), strict=True)),
        default=math.inf,
    )


def test_clearance_and_signed_distance_match_brute_force() -> None:
    rng = np.random.default_rng(3)
    occ = rng.random((9, 7)) < 0.25
    clearance = clearance_map(occ, outside_blocked=False)
    sdf = signed_distance_field(occ, outside_blocked=False)
    bordered = clearance_map(occ)
    for r in range(9):
        for c in range(7):
            x, y = c + 0.5, r + 0.5
            to_blocked = _brute_distance(occ, x, y)
            to_border = min(x, 7 - x, y, 9 - y)
            assert clearance[r, c] == pytest.approx(to_blocked, abs=1e-12)
            assert bordered[r, c] == pytest.approx(min(to_blocked, to_border), abs=1e-12)
            to_free = min(_brute_distance(~occ, x, y), to_border)  # the outside is free here
            expected = -to_free if occ[r, c] else to_blocked
            assert sdf[r, c] == pytest.approx(expected, abs=1e-12)
    assert (sdf[occ] <= -0.5).all() and (sdf[~occ] >= 0.5).all()


def test_distance_fields_without_obstacles_or_free_cells() -> None:
    empty = np.zeros((3, 4), dtype=bool)
    np.testing.assert_allclose(clearance_map(empty, outside_blocked=False), 5.0)
    np.testing.assert_allclose(signed_distance_field(~empty), -5.0)
    np.testing.assert_allclose(clearance_map(empty)[1], [0.5, 1.5, 1.5, 0.5])


def test_path_clearance() -> None:
    occ = grid((3, 0), (3, 1), (3, 2), (3, 3), (3, 4), (3, 5))
    path = np.array([[0.5, 0.5], [5.5, 0.5]])
    assert path_clearance(occ, path, outside_blocked=False) == pytest.approx(2.5)
    assert path_clearance(occ, path) == pytest.approx(0.5)
    assert path_clearance(occ, [[1.0, 3.0], [4.0, 1.0]], outside_blocked=False) == 0.0
    assert path_clearance(grid(), path, outside_blocked=False) == math.inf
    diagonal = np.array([[0.5, 2.5], [2.5, 0.5], [4.7, 2.9]])
    samples = np.linspace(0, 1, 2001)[:, None]
    dense = np.concatenate([a + samples * (b - a) for a, b in pairwise(diagonal)])
    truth = min(_brute_distance(occ, x, y) for x, y in dense)
    sampled = path_clearance(occ, diagonal, samples_per_cell=4, outside_blocked=False)
    assert truth - 0.01 <= sampled <= truth + 0.125
    with pytest.raises(ValueError, match="samples_per_cell"):
        path_clearance(occ, path, samples_per_cell=0)
