"""Reduced precision: torch int8 / autocast and ONNX int8 / fp16 stay close to fp32."""

from __future__ import annotations

import io
import warnings

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch
from torch import nn
from torch.ao.nn.quantized import dynamic as quantized_dynamic

from latentdiff.core.nets import CausalTCN
from latentdiff.core.quantize import (
    ONNX_PRECISIONS,
    PRECISIONS,
    autocast,
    check_precision,
    quantize_module,
    quantize_onnx,
)

torch.set_num_threads(1)


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = np.sum((np.asarray(estimate, np.float64) - reference) ** 2)
    return float(10 * np.log10(np.sum(np.asarray(reference, np.float64) ** 2) / error))


def tiny_tcn() -> CausalTCN:
    torch.manual_seed(0)
    return CausalTCN(8, 8, cond_channels=4, channels=16, depth=3, embed_dim=16).eval()


def tcn_inputs() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(1)
    x = torch.randn(2, 8, 50, generator=generator)
    cond = torch.randn(2, 4, 50, generator=generator)
    return x, torch.tensor([0.3, -0.5]), cond


def test_unknown_precision_lists_the_choices() -> None:
    with pytest.raises(ValueError, match=r"\('fp32', 'int8', 'bf16', 'fp16'\), got 'int4'"):
        check_precision("int4")
    with pytest.raises(ValueError, match="precision must be one of"):
        quantize_module(nn.Linear(2, 2), "fp64")
    with pytest.raises(ValueError, match=r"\('fp32', 'int8', 'fp16'\), got 'bf16'"):
        quantize_onnx(b"", "bf16")
    assert set(ONNX_PRECISIONS) < set(PRECISIONS)


def test_int8_copy_quantizes_linear_layers_outside_noise_embeddings() -> None:
    net = tiny_tcn()
    x, c_noise, cond = tcn_inputs()
    with torch.no_grad():
        expected = net(x, c_noise, cond).numpy()
        copy = quantize_module(net, "int8")
        got = copy(x, c_noise, cond).numpy()
    assert all(isinstance(b.film.proj, quantized_dynamic.Linear) for b in copy.blocks)
    assert type(copy.embedding.noise.mlp[0]) is nn.Linear  # reads its weight dtype: kept float
    assert type(net.blocks[0].film.proj) is nn.Linear  # the original is left alone
    assert not any(p.requires_grad for p in copy.parameters())
    assert any(p.requires_grad for p in net.parameters())
    # measured: 72 dB (only the FiLM projections are int8: per-tensor weights and activations)
    assert 40 < snr_db(expected, got) < 200


@pytest.mark.parametrize(("precision", "min_snr"), [("bf16", 30), ("fp16", 45)])
def test_autocast_runs_convolutions_in_reduced_precision(precision: str, min_snr: float) -> None:
    net = quantize_module(tiny_tcn(), precision)
    x, c_noise, cond = tcn_inputs()
    with torch.no_grad():
        expected = net(x, c_noise, cond)
        with autocast(precision):
            got = net(x, c_noise, cond)
        with autocast("int8"):  # int8 is no autocast precision
            assert torch.equal(net(x, c_noise, cond), expected)
    # measured: 46 dB for bf16 (8 significand bits), 64 dB for fp16 (11)
    assert got.dtype in (torch.bfloat16, torch.float16)
    assert min_snr < snr_db(expected.numpy(), got.float().numpy()) < 200


class Projection(nn.Module):
    """Two linear layers and a fixed basis, as in the exported graphs (weights and DFT)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.first = nn.Linear(32, 64)
        self.second = nn.Linear(64, 16)
        self.register_buffer("basis", torch.randn(16, 24))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.second(torch.relu(self.first(x)))) @ self.basis


def projection_onnx() -> tuple[bytes, Projection]:
    module = Projection().eval()
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(
            module,
            (torch.zeros(4, 32),),
            buffer,
            dynamo=False,
            input_names=["x"],
            output_names=["y"],
        )
    graph = onnx.load_from_string(buffer.getvalue())
    onnx.helper.set_model_props(graph, {"block_samples": "160"})
    return graph.SerializeToString(), module


def run(model: bytes, x: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(model, providers=["CPUExecutionProvider"])
    assert [i.type for i in session.get_inputs()] == ["tensor(float)"]
    return session.run(None, {"x": x})[0]


def test_onnx_int8_quantizes_weights_but_keeps_the_listed_ones_float() -> None:
    model, module = projection_onnx()
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    expected = run(model, x)
    quantized = quantize_onnx(model, "int8", keep_float=[module.basis.numpy()])
    graph = onnx.load_from_string(quantized)
    ops = [node.op_type for node in graph.graph.node]
    assert ops.count("MatMulInteger") == 2 and ops.count("MatMul") == 1
    weights = {t.name: onnx.numpy_helper.to_array(t) for t in graph.graph.initializer}
    float_matmul = next(node for node in graph.graph.node if node.op_type == "MatMul")
    assert any(np.array_equal(weights.get(n), module.basis.numpy()) for n in float_matmul.input)
    assert {p.key: p.value for p in graph.metadata_props} == {"block_samples": "160"}
    # measured: 42 dB (dynamic uint8 activations, per-channel int8 weights)
    assert 30 < snr_db(expected, run(quantized, x)) < 200
    everything = onnx.load_from_string(quantize_onnx(model, "int8"))
    assert [node.op_type for node in everything.graph.node].count("MatMulInteger") == 3


def test_onnx_fp16_keeps_float32_inputs_and_outputs() -> None:
    model, _ = projection_onnx()
    x = np.random.default_rng(0).standard_normal((4, 32)).astype(np.float32)
    half = quantize_onnx(model, "fp16")
    graph = onnx.load_from_string(half)
    assert any(t.data_type == onnx.TensorProto.FLOAT16 for t in graph.graph.initializer)
    out = run(half, x)
    assert out.dtype == np.float32
    # measured: 68 dB
    assert 50 < snr_db(run(model, x), out) < 200
    assert quantize_onnx(model, "fp32") is model
