"""Suite-wide settings: one torch thread (small tensors; faster and steadier on shared CPUs)."""

from __future__ import annotations

import torch

torch.set_num_threads(1)
