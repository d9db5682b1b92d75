"""Path planning on 2-D occupancy grids: maps, exact collision geometry, generators and the
learned planner (:class:`Planner`)."""

from latentdiff.path.planner import Planner, PlanResult

__all__ = ["PlanResult", "Planner"]
