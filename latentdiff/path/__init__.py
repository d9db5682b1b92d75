"""Path planning on 2-D occupancy grids: maps, exact collision geometry and world generators."""
