"""Baseline planners: grid A*, A* + shortcutting and the optional OMPL planners."""

from __future__ import annotations

import numpy as np
import pytest

from latentdiff.path.geometry import path_is_free, points_are_free
from latentdiff.path.metrics import path_length
from latentdiff.path.peers import (
    OMPL_PLANNERS,
    OPT_IN_PEERS,
    AStarPeer,
    AStarShortcutPeer,
    OmplPeer,
    make_peers,
    ompl_unavailable_reason,
    peer_names,
)
from latentdiff.path.search import any_angle_reference

OMPL_MISSING = ompl_unavailable_reason()
START, GOAL = (2.5, 10.5), (21.5, 10.5)


def wall_map(gap: bool) -> np.ndarray:
    """24x24 map with a vertical wall at column 12, open at rows 2..3 when ``gap``."""
    occ = np.zeros((24, 24), dtype=bool)
    occ[:, 12] = True
    if gap:
        occ[2:4, 12] = False
    return occ


@pytest.mark.parametrize("peer", [AStarPeer(), AStarShortcutPeer()], ids=lambda p: p.name)
def test_grid_peers_return_exactly_valid_paths(peer: AStarPeer | AStarShortcutPeer) -> None:
    occ = wall_map(gap=True)
    result = peer.plan(occ, START, GOAL, time_budget_s=1.0)
    assert result.path is not None and result.seconds >= 0.0
    np.testing.assert_array_equal(result.path[0], START)
    np.testing.assert_array_equal(result.path[-1], GOAL)
    assert path_is_free(occ, result.path)
    assert path_length(result.path) >= any_angle_reference(occ, START, GOAL)[0] - 1e-9


def test_shortcut_never_longer_than_grid_astar() -> None:
    occ = wall_map(gap=True)
    grid = AStarPeer().plan(occ, START, GOAL, 1.0).path
    shortcut = AStarShortcutPeer().plan(occ, START, GOAL, 1.0).path
    assert grid is not None and shortcut is not None
    assert len(shortcut) < len(grid)
    assert path_length(shortcut) < path_length(grid) - 1.0


@pytest.mark.parametrize("peer", [AStarPeer(), AStarShortcutPeer()], ids=lambda p: p.name)
def test_grid_peers_report_unreachable_and_blocked_ends(
    peer: AStarPeer | AStarShortcutPeer,
) -> None:
    occ = wall_map(gap=False)
    assert peer.plan(occ, START, GOAL, 1.0).path is None
    assert peer.plan(occ, (12.5, 5.5), GOAL, 1.0).path is None  # start inside the wall


def test_make_peers_names_and_unknown() -> None:
    peers, skipped = make_peers(["astar", "astar+shortcut"])
    assert [p.name for p in peers] == ["astar", "astar+shortcut"] and skipped == {}
    assert set(peer_names()) == {"astar", "astar+shortcut", *OMPL_PLANNERS}
    default, opt_in = make_peers()
    assert "ompl-aorrtc" not in [p.name for p in default] and "ompl-aorrtc" in opt_in
    assert {"astar", "astar+shortcut"} <= {p.name for p in default}
    with pytest.raises(ValueError, match="unknown peer"):
        make_peers(["dijkstra"])


def test_missing_ompl_is_skipped_with_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "latentdiff.path.peers.ompl_unavailable_reason", lambda: "OMPL Python bindings missing"
    )
    peers, skipped = make_peers(["astar", "ompl-rrtconnect"])
    assert [p.name for p in peers] == ["astar"]
    assert skipped == {"ompl-rrtconnect": "OMPL Python bindings missing"}


@pytest.mark.skipif(OMPL_MISSING is not None, reason=f"OMPL unavailable: {OMPL_MISSING}")
@pytest.mark.parametrize("name", [n for n in OMPL_PLANNERS if n not in OPT_IN_PEERS])
def test_ompl_peers_find_paths_of_free_points(name: str) -> None:
    occ = wall_map(gap=True)
    peer = OmplPeer(name)
    result = peer.plan(occ, START, GOAL, time_budget_s=0.3)
    assert result.path is not None, f"{name} found no path in 0.3 s"
    np.testing.assert_allclose(result.path[0], START, atol=1e-9)
    np.testing.assert_allclose(result.path[-1], GOAL, atol=1e-9)
    # OMPL checks states (points), so every vertex is free; edges are only checked by sampling.
    assert points_are_free(occ, result.path).all()
    # Sampled motion checks may clip the gap's corners a little, never skip the detour.
    assert path_length(result.path) >= any_angle_reference(occ, START, GOAL)[0] - 0.5
    assert result.seconds < 0.3 + 1.0


@pytest.mark.skipif(OMPL_MISSING is not None, reason=f"OMPL unavailable: {OMPL_MISSING}")
def test_ompl_peer_unreachable_returns_none_within_budget() -> None:
    result = OmplPeer("ompl-rrtconnect").plan(wall_map(gap=False), START, GOAL, 0.1)
    assert result.path is None
    assert 0.05 <= result.seconds < 1.0
    blocked = OmplPeer("ompl-rrtconnect").plan(wall_map(gap=True), (12.5, 8.5), GOAL, 0.1)
    assert blocked.path is None and blocked.seconds < 0.05
