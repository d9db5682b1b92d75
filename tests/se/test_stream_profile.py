"""Per-operator profile of the streaming block graph (``latentdiff bench stream-ops``)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from latentdiff.cli import main as cli_main
from latentdiff.se.stream_profile import (
    MATRIX_OPS,
    OperatorProfile,
    profile_block_graph,
    write_profile_report,
)

from .test_onnx_export import tiny_model


@pytest.fixture(scope="module")
def profiles() -> list[OperatorProfile]:
    torch.set_num_threads(1)
    model = tiny_model(sampler="dpmpp_2m").requires_grad_(False)
    return [profile_block_graph(model, precision, blocks=4) for precision in ("fp32", "int8")]


def test_kernel_times_are_attributed_to_operator_types(profiles: list[OperatorProfile]) -> None:
    fp32, int8 = profiles
    for profile in profiles:
        assert profile.nodes > 0 and profile.run_us > 0.0
        assert profile.kernel_us == pytest.approx(sum(profile.op_us.values()))
        assert 0.0 < profile.matrix_share < 1.0
    # fp32 multiplies in float kernels, int8 in integer ones: no op type is in both sets.
    assert {"Gemm", "MatMul"} & set(fp32.op_us)
    assert not {"MatMulInteger", "DynamicQuantizeMatMul"} & set(fp32.op_us)
    assert {op for op in int8.op_us if op in MATRIX_OPS} - {"Gemm", "MatMul", "Conv"}


def test_report_states_the_bound_and_the_command(
    profiles: list[OperatorProfile], tmp_path: Path
) -> None:
    path = write_profile_report(profiles, tmp_path / "ops.md", "latentdiff bench stream-ops")
    text = path.read_text()
    assert "latentdiff bench stream-ops" in text and "speed-up if they were free" in text
    bound = 1 / (1 - profiles[0].matrix_share)
    assert f"{bound:.2f}x" in text


def test_at_least_one_block_is_needed() -> None:
    with pytest.raises(ValueError, match="blocks"):
        profile_block_graph(tiny_model(), "fp32", blocks=0)


def test_the_command_profiles_the_bundled_model(tmp_path: Path) -> None:
    out = tmp_path / "ops.md"
    args = ["bench", "stream-ops", "--precisions", "fp32", "--blocks", "2", "--results", str(out)]
    assert cli_main(args) == 0
    text = out.read_text()
    assert "--precisions fp32 --blocks 2" in text and "| fp32 |" in text
