"""Path planning on 2-D occupancy grids: maps, exact collision geometry, generators and the
learned planner (:class:`Planner`).

``from latentdiff.path import Planner`` loads the planner (and torch) on first use only.
"""

from __future__ import annotations

from typing import Any

__all__ = ["PlanResult", "Planner"]


def __getattr__(name: str) -> Any:
    if name in __all__:
        from latentdiff.path import planner

        return getattr(planner, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
