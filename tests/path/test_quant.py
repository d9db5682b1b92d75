"""The planner's network kernel at reduced precision samples what the fp32 kernel samples."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from latentdiff.core.samplers import initial_noise
from latentdiff.path.kernels import proposal_kernel
from latentdiff.path.model import PathDiffusion
from latentdiff.path.planner import PRETRAINED, Planner

from .test_planner import tiny_model
from .test_planner_kernels import network_inputs


@pytest.fixture(scope="module")
def model() -> PathDiffusion:
    torch.set_num_threads(1)
    return Planner.from_pretrained().model if PRETRAINED.is_file() else tiny_model(seed=3)


@pytest.mark.parametrize("precision", ["int8", "fp16"])
def test_reduced_precision_samples_stay_close_to_fp32(model: PathDiffusion, precision: str) -> None:
    reference = proposal_kernel(model, 4, 2, "dpmpp_2m")
    kernel = proposal_kernel(model, 4, 2, "dpmpp_2m", precision)
    assert kernel.precision == precision and kernel.nfe == reference.nfe
    maps, endpoints, guide = (t.numpy() for t in network_inputs(3, seed=5))
    seeds = torch.arange(100, 112)
    noise = initial_noise(seeds, kernel.noise_shape[1:]).reshape(3, *kernel.noise_shape).numpy()
    expected = reference(maps, endpoints, guide, noise)
    got = kernel(maps, endpoints, guide, noise)
    assert got.dtype == np.float32 and got.shape == expected.shape == (12, 2, 32)
    # Window coordinates span [-1, 1] (64 cells); 5e-3 is 0.16 cells. Measured with the bundled
    # model: 4.9e-4 (int8: only the matrix products; the convolutions stay float32), 3.0e-4 (fp16).
    difference = np.abs(got - expected).max()
    assert 0 < difference < 5e-3


def test_kernels_are_cached_per_precision(model: PathDiffusion) -> None:
    kernel = proposal_kernel(model, 2, 1, "ddim", "int8")
    assert proposal_kernel(model, 2, 1, "ddim", "int8") is kernel
    assert proposal_kernel(model, 2, 1, "ddim") is not kernel


def test_onnxruntime_has_no_bf16_kernel(model: PathDiffusion) -> None:
    with pytest.raises(ValueError, match=r"\('fp32', 'int8', 'fp16'\), got 'bf16'"):
        proposal_kernel(model, 2, 1, "ddim", "bf16")
