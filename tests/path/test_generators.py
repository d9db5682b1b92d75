"""Seeded world generators and free-pair sampling of latentdiff.path.generators."""

from __future__ import annotations

import numpy as np
import pytest

from latentdiff.path.generators import (
    WORLD_KINDS,
    connected_components,
    generate_bug_traps,
    generate_maze,
    generate_narrow_passages,
    generate_random,
    generate_rooms,
    generate_world,
    sample_free_pair,
)
from latentdiff.path.geometry import point_is_free

SHAPES = [(48, 48), (40, 90)]


def largest_component_share(occ: np.ndarray) -> float:
    sizes = np.bincount(connected_components(occ).ravel())[1:]
    return float(sizes.max() / sizes.sum())


def test_world_kinds() -> None:
    assert WORLD_KINDS == ("random", "maze", "rooms", "corridors", "bug_traps", "narrow_passages")
    with pytest.raises(ValueError, match="unknown world kind 'lava'"):
        generate_world("lava", 32, 32, 0)


@pytest.mark.parametrize("kind", WORLD_KINDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_kinds_are_deterministic_and_connected(kind: str, shape: tuple[int, int]) -> None:
    first = generate_world(kind, *shape, seed=7)
    assert first.shape == shape and first.dtype == np.bool_
    np.testing.assert_array_equal(first, generate_world(kind, *shape, seed=7))
    others = [generate_world(kind, *shape, seed=s) for s in (8, 9)]
    assert any((other != first).any() for other in others)
    for occ in [first, *others]:
        free = 1.0 - occ.mean()
        assert 0.25 <= free <= 0.99
        # Only random shapes may wall off small pockets; every other kind is one component.
        assert largest_component_share(occ) >= (0.97 if kind == "random" else 1.0)


@pytest.mark.parametrize("density", [0.1, 0.3])
def test_random_density_near_target(density: float) -> None:
    for seed in range(3):
        occ = generate_random(64, 96, seed, density=density)
        assert occ.mean() == pytest.approx(density, abs=0.02)
    assert not generate_random(16, 16, 0, density=0.0).any()


def test_maze_corridors_and_walls() -> None:
    occ = generate_maze(31, 31, seed=1, corridor_width=2, wall_width=1)
    assert occ[0].all() and occ[-1].all() and occ[:, 0].all() and occ[:, -1].all()
    assert not occ[1:3, 1:3].any()  # the first coarse cell is a 2x2 corridor
    # A perfect maze is a tree: free cells = coarse cells + one opening per tree edge.
    cells = 10 * 10
    assert (~occ).sum() == cells * 4 + (cells - 1) * 2
    braided = generate_maze(31, 31, seed=1, braid=0.5)
    assert (~braided).sum() > (~occ).sum()
    with pytest.raises(ValueError, match="too small"):
        generate_maze(4, 40, seed=0, corridor_width=3)


def test_rooms_stay_connected_with_all_optional_doors_closed() -> None:
    occ = generate_rooms(64, 64, seed=3, room_size=16, closed_door_fraction=1.0)
    assert largest_component_share(occ) == 1.0
    # 4x4 rooms: walls on rows/cols 16, 32, 48 with exactly one door per spanning-tree edge.
    openings = sum((~occ[b, :]).sum() for b in (16, 32, 48))
    openings += sum((~occ[:, b]).sum() for b in (16, 32, 48))
    assert openings == 15 * 2
    all_open = generate_rooms(64, 64, seed=3, room_size=16, closed_door_fraction=0.0)
    assert (~all_open).sum() == (~occ).sum() + (24 - 15) * 2


def test_bug_trap_mouths_face_the_start() -> None:
    start = (3.0, 25.0)
    for seed in range(6):
        occ = generate_bug_traps(40, 40, seed, n_traps=1, trap_size=9, start=start)
        rows, cols = np.nonzero(occ)
        box = occ[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]
        dx = start[0] - (cols.min() + cols.max() + 1) / 2
        dy = start[1] - (rows.min() + rows.max() + 1) / 2
        # Rotate the box so that the side facing the start is its left column.
        if abs(dx) >= abs(dy):
            box = box if dx < 0 else box[:, ::-1]
        else:
            box = box.T if dy < 0 else box[::-1].T
        assert not box[1:-1, 0].any()  # open mouth towards the start
        assert box[:, -1].all() and box[0].all() and box[-1].all()  # back and both arms
    with pytest.raises(ValueError, match="start"):
        generate_bug_traps(40, 40, 0, start=(50.0, 1.0))


def test_narrow_passages_have_small_gaps() -> None:
    occ = generate_narrow_passages(48, 64, seed=5, n_walls=3, vertical=True)
    walls = np.flatnonzero(occ.sum(axis=0) > 0)
    assert len(walls) == 3
    for column in walls:
        gap_cells = (~occ[:, column]).sum()
        assert 1 <= gap_cells <= 4
    assert largest_component_share(occ) == 1.0
    horizontal = generate_narrow_passages(48, 64, seed=5, n_walls=2, vertical=False)
    assert len(np.flatnonzero(horizontal.sum(axis=1) > 0)) == 2


@pytest.mark.parametrize(("height", "width"), [(1, 10), (10, 4097)])
def test_sizes_are_validated(height: int, width: int) -> None:
    with pytest.raises(ValueError, match="must be in"):
        generate_world("random", height, width, 0)


def test_sample_free_pair_connected_and_far() -> None:
    occ = np.zeros((20, 30), dtype=bool)
    occ[:, 10] = True  # a small left room and a larger right one
    labels = connected_components(occ)
    assert labels.max() == 2 and (labels[occ] == 0).all()
    rng = np.random.default_rng(0)
    for _ in range(50):
        start, goal = sample_free_pair(occ, rng, min_distance=8.0)
        assert point_is_free(occ, start) and point_is_free(occ, goal)
        assert np.hypot(*(goal - start)) >= 8.0
        assert ((start - 0.5) % 1 == 0).all() and ((goal - 0.5) % 1 == 0).all()
        s_cell, g_cell = (int(start[1]), int(start[0])), (int(goal[1]), int(goal[0]))
        assert labels[s_cell] == labels[g_cell]
    a = sample_free_pair(occ, np.random.default_rng(5), 4.0)
    b = sample_free_pair(occ, np.random.default_rng(5), 4.0)
    np.testing.assert_array_equal(np.stack(a), np.stack(b))


def test_sample_free_pair_squeeze_is_not_a_connection() -> None:
    occ = np.ones((4, 4), dtype=bool)
    occ[1, 1] = occ[2, 2] = False  # free cells touching only at a squeezed corner
    assert connected_components(occ).max() == 2
    with pytest.raises(ValueError, match="no connected pair"):
        sample_free_pair(occ, np.random.default_rng(0), min_distance=1.0)
    with pytest.raises(ValueError, match="no free cell"):
        sample_free_pair(np.ones((4, 4), dtype=bool), np.random.default_rng(0), 0.0)
