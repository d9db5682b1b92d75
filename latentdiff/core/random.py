"""Per-sample reproducible randomness.

Every sample carries an integer seed; its random numbers come from its own ``torch.Generator``, so
a sample gets the same numbers whatever batch (or process) it is drawn in. Values are always drawn
in float32 on the CPU and then moved, so they also agree across devices and dtypes.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

_MASK64 = (1 << 64) - 1
_GOLDEN_GAMMA = 0x9E3779B97F4A7C15

SeedsLike = Tensor | Sequence[int]


def _splitmix64(state: int) -> int:
    """One splitmix64 output for a 64-bit ``state`` (Steele et al. 2014)."""
    z = (state + _GOLDEN_GAMMA) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return z ^ (z >> 31)


def mix_seed(*values: int) -> int:
    """Stable 63-bit hash of a sequence of ints, e.g. ``mix_seed(run_seed, step, index)``.

    Order matters, negative ints are taken modulo 2**64, and the result fits a non-negative int64.
    """
    state = 0
    for value in values:
        state = _splitmix64(state ^ (int(value) & _MASK64))
    return state >> 1


def _seed_list(seeds: SeedsLike) -> list[int]:
    if isinstance(seeds, Tensor):
        if seeds.dim() != 1:
            raise ValueError(f"seeds must be 1-D (batch,), got shape {tuple(seeds.shape)}")
        return [int(s) for s in seeds.tolist()]
    return [int(s) for s in seeds]


def mix_seeds(seeds: SeedsLike, *values: int) -> Tensor:
    """Derive a new per-sample seed stream: ``mix_seed(seed_i, *values)`` for every seed (int64)."""
    return torch.tensor([mix_seed(s, *values) for s in _seed_list(seeds)], dtype=torch.int64)


def randn_seeded(
    seeds: SeedsLike,
    shape: Sequence[int],
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Standard normal tensor of shape ``(B, *shape)``; row ``i`` depends only on ``seeds[i]``."""
    generator = torch.Generator(device="cpu")
    rows = [
        torch.randn(tuple(shape), generator=generator.manual_seed(s & _MASK64))
        for s in _seed_list(seeds)
    ]
    out = torch.stack(rows) if rows else torch.empty((0, *shape))
    return out.to(device=device, dtype=dtype)


randn_like_seeded = randn_seeded


def rand_seeded(
    seeds: SeedsLike,
    n: int,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> Tensor:
    """Uniform [0, 1) tensor of shape ``(B, n)``; row ``i`` depends only on ``seeds[i]``."""
    generator = torch.Generator(device="cpu")
    rows = [torch.rand(n, generator=generator.manual_seed(s & _MASK64)) for s in _seed_list(seeds)]
    out = torch.stack(rows) if rows else torch.empty((0, n))
    return out.to(device=device, dtype=dtype)
