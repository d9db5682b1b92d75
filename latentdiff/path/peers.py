"""Baseline planners compared against the learned planner, behind one interface.

Every peer answers ``plan(occ, start, goal, time_budget_s) -> PeerResult``: the (N, 2) path or
None, and the wall time spent. Grid peers are exact on cells; the OMPL peers (optional, from the
``ompl`` package) plan in R^2 with a point validity checker on the grid and OMPL's default
discrete motion validation, so their paths may clip corners the exact checker rejects.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from latentdiff.path.geometry import point_is_free
from latentdiff.path.search import astar_any_angle, cell_centre, free_cell_of, grid_astar

__all__ = [
    "OMPL_PLANNERS",
    "OPT_IN_PEERS",
    "AStarPeer",
    "AStarShortcutPeer",
    "OmplPeer",
    "Peer",
    "PeerResult",
    "make_peers",
    "ompl_unavailable_reason",
    "peer_names",
]

OMPL_PLANNERS: dict[str, tuple[str, bool]] = {
    # peer name: (class in ompl.geometric, whether the planner optimises path length)
    "ompl-rrtconnect": ("RRTConnect", False),
    "ompl-bitstar": ("BITstar", True),
    "ompl-aorrtc": ("AORRTC", True),
}
GRID_PEERS = ("astar", "astar+shortcut")
# Left out unless named explicitly: observed to segfault or to hang past its time budget inside
# solve() (ompl 2.0.1 wheels, Python validity checker) on 128x128 and 256x256 worlds.
OPT_IN_PEERS = {
    "ompl-aorrtc": "opt-in only (--peers ompl-aorrtc): AORRTC in the ompl 2.0.1 Python "
    "bindings segfaults or hangs past its time budget on 128x128+ worlds",
}
OMPL_SEED = 1


@dataclass(frozen=True)
class PeerResult:
    """A peer's answer: the path (None when it found none) and wall seconds spent."""

    path: np.ndarray | None
    seconds: float


class Peer(Protocol):
    """A baseline planner."""

    name: str

    def plan(
        self, occ: np.ndarray, start: Sequence[float], goal: Sequence[float], time_budget_s: float
    ) -> PeerResult: ...


def _timed(solve: Callable[[], np.ndarray | None]) -> PeerResult:
    begin = time.perf_counter()
    path = solve()
    return PeerResult(path, time.perf_counter() - begin)


def grid_astar_path(
    occ: np.ndarray, start: Sequence[float], goal: Sequence[float]
) -> np.ndarray | None:
    """8-connected A* through cell centres, the exact start and goal replacing the end centres."""
    if not (point_is_free(occ, start) and point_is_free(occ, goal)):
        return None
    start_cell, goal_cell = free_cell_of(occ, start), free_cell_of(occ, goal)
    if start_cell is None or goal_cell is None:
        return None
    cells = grid_astar(occ, start_cell, goal_cell)
    if cells is None:
        return None
    inner = [cell_centre(r, c) for r, c in cells[1:-1]]
    return np.array([tuple(start), *inner, tuple(goal)], dtype=np.float64)


class AStarPeer:
    """Grid A* (nano-astar, octile costs, no corner cutting) through cell centres."""

    name = "astar"

    def plan(
        self, occ: np.ndarray, start: Sequence[float], goal: Sequence[float], time_budget_s: float
    ) -> PeerResult:
        """Plan; the time budget is not needed (A* is complete and fast)."""
        return _timed(lambda: grid_astar_path(occ, start, goal))


class AStarShortcutPeer:
    """Grid A* followed by greedy line-of-sight shortcutting (exact collision checks)."""

    name = "astar+shortcut"

    def plan(
        self, occ: np.ndarray, start: Sequence[float], goal: Sequence[float], time_budget_s: float
    ) -> PeerResult:
        """Plan; the time budget is not needed."""
        return _timed(lambda: astar_any_angle(occ, start, goal))


def ompl_unavailable_reason() -> str | None:
    """None when the OMPL Python bindings import, else why they cannot be used."""
    try:
        from ompl import base, geometric, util  # noqa: F401
    except ImportError as err:
        return f"OMPL Python bindings not importable ({err}); pip install ompl"
    return None


_OMPL_SEEDED = False


def _ompl_modules() -> tuple[Any, Any, Any]:
    """(ompl.base, ompl.geometric, ompl.util) with logging off and the global seed set once."""
    global _OMPL_SEEDED
    from ompl import base, geometric, util

    if not _OMPL_SEEDED:
        util.setLogLevel(util.LogLevel.LOG_NONE)
        util.RNG.setSeed(OMPL_SEED)
        _OMPL_SEEDED = True
    return base, geometric, util


class OmplPeer:
    """An OMPL geometric planner in R^2 = [0, W] x [0, H] with a point validity checker.

    The non-optimising planner's path is simplified (OMPL's shortcutting and smoothing, inside
    the same time measurement); the optimising ones use the path-length objective and, being
    anytime planners, spend the whole time budget.
    """

    def __init__(self, name: str) -> None:
        if name not in OMPL_PLANNERS:
            raise ValueError(f"unknown OMPL peer {name!r}; choose from {', '.join(OMPL_PLANNERS)}")
        reason = ompl_unavailable_reason()
        if reason is not None:
            raise RuntimeError(reason)
        self.name = name
        self.class_name, self.optimising = OMPL_PLANNERS[name]
        _, geometric, _ = _ompl_modules()
        if not hasattr(geometric, self.class_name):
            raise RuntimeError(f"the installed OMPL has no geometric.{self.class_name}")

    def plan(
        self, occ: np.ndarray, start: Sequence[float], goal: Sequence[float], time_budget_s: float
    ) -> PeerResult:
        """Plan within ``time_budget_s`` seconds of planner time (simplification comes after)."""
        grid = np.ascontiguousarray(occ, dtype=bool)
        point_is_free(grid, start)  # compile the checker before the clock starts
        base, geometric, _ = _ompl_modules()
        setup = self._setup(base, geometric, grid, start, goal)
        begin = time.perf_counter()
        if not (point_is_free(grid, start) and point_is_free(grid, goal)):
            return PeerResult(None, time.perf_counter() - begin)
        setup.solve(float(time_budget_s))
        path = None
        if setup.haveExactSolutionPath():
            if not self.optimising:
                setup.simplifySolution()
            states = setup.getSolutionPath().getStates()
            path = np.array([(s[0], s[1]) for s in states], dtype=np.float64).reshape(-1, 2)
        return PeerResult(path, time.perf_counter() - begin)

    def _setup(
        self,
        base: Any,
        geometric: Any,
        grid: np.ndarray,
        start: Sequence[float],
        goal: Sequence[float],
    ) -> Any:
        height, width = grid.shape
        space = base.RealVectorStateSpace(2)
        bounds = base.RealVectorBounds(2)
        bounds.setLow(0.0)
        bounds.setHigh(0, float(width))
        bounds.setHigh(1, float(height))
        space.setBounds(bounds)
        setup = geometric.SimpleSetup(space)

        def valid(state: Any) -> bool:
            return bool(point_is_free(grid, (state[0], state[1])))

        setup.setStateValidityChecker(valid)
        start_state, goal_state = space.allocState(), space.allocState()
        for state, point in ((start_state, start), (goal_state, goal)):
            state[0], state[1] = float(point[0]), float(point[1])
        setup.setStartAndGoalStates(start_state, goal_state)
        info = setup.getSpaceInformation()
        setup.setPlanner(getattr(geometric, self.class_name)(info))
        if self.optimising:
            setup.setOptimizationObjective(base.PathLengthOptimizationObjective(info))
        return setup


def peer_names() -> tuple[str, ...]:
    """Every peer name, available or not."""
    return (*GRID_PEERS, *OMPL_PLANNERS)


def make_peers(names: Sequence[str] | None = None) -> tuple[list[Peer], dict[str, str]]:
    """Instantiate the named peers (default: all but the opt-in ones, which are then reported as
    skipped); returns (peers, {skipped name: reason})."""
    peers: list[Peer] = []
    skipped: dict[str, str] = dict(OPT_IN_PEERS) if names is None else {}
    chosen = [n for n in peer_names() if n not in OPT_IN_PEERS] if names is None else names
    for name in chosen:
        if name == "astar":
            peers.append(AStarPeer())
        elif name == "astar+shortcut":
            peers.append(AStarShortcutPeer())
        elif name in OMPL_PLANNERS:
            try:
                peers.append(OmplPeer(name))
            except RuntimeError as err:
                skipped[name] = str(err)
        else:
            raise ValueError(f"unknown peer {name!r}; choose from {', '.join(peer_names())}")
    return peers, skipped
