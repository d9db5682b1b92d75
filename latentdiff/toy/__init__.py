"""A small synthetic 1-D domain that exercises the core end to end in minutes on a CPU."""
