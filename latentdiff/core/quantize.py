"""Reduced-precision inference of PyTorch modules and ONNX graphs: int8, bfloat16, float16.

Precisions (``PRECISIONS``):

- ``fp32``: the reference.
- ``int8``: dynamic quantization: int8 weights, activations quantized at every call from their
  observed range.

  - PyTorch (:func:`quantize_module`): ``torch.ao.quantization.quantize_dynamic`` on the
    ``nn.Linear`` layers, the only layer type with an accurate dynamic int8 kernel in torch (its
    dynamic int8 ``Conv1d`` turns the bundled enhancer's output into noise, SNR -5 dB); the
    convolutions stay float32. The linear layers of noise embeddings stay float32 too (their
    module reads its first layer's weight dtype).
  - ONNX (:func:`quantize_onnx`): every MatMul and Gemm with a constant weight (the exported
    streaming graphs run their convolutions as matrix products), per output channel, except those
    whose weight is one of ``keep_float`` (e.g. DFT matrices: an int8 STFT costs far more quality
    than the network's layers). Conv nodes stay float32: onnxruntime's ConvInteger is about twice
    as slow as its float convolution on these small maps.
- ``bf16`` / ``fp16``: PyTorch runs matrix products and convolutions in that precision under
  :func:`autocast` (everything else stays float32, so STFT front ends keep working). ONNX:
  ``fp16`` converts the graph to float16 with float32 inputs and outputs; onnxruntime has no
  bfloat16 CPU kernels, so ``bf16`` is PyTorch only (``ONNX_PRECISIONS``).

numpy, torch and onnxruntime are imported on first use: the command line lists the choices cheaply.
"""

from __future__ import annotations

import contextlib
import copy
import tempfile
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import numpy as np
    import onnx
    from torch import nn

PRECISIONS = ("fp32", "int8", "bf16", "fp16")
ONNX_PRECISIONS = ("fp32", "int8", "fp16")
_QUANTIZED_OPS = ("MatMul", "Gemm")


def check_precision(precision: str, choices: Sequence[str] = PRECISIONS) -> str:
    """``precision`` if it is one of ``choices``; else ValueError listing them."""
    if precision not in choices:
        raise ValueError(f"precision must be one of {tuple(choices)}, got {precision!r}")
    return precision


def quantize_module(module: nn.Module, precision: str) -> nn.Module:
    """A frozen eval-mode copy of ``module`` to run at ``precision`` under :func:`autocast`.

    ``int8`` quantizes the copy's linear layers (see the module docstring); the other precisions
    keep its float32 weights: bf16 and fp16 come from :func:`autocast`.
    """
    check_precision(precision)
    frozen = copy.deepcopy(module).eval().requires_grad_(False)
    if precision != "int8":
        return frozen
    from torch.ao.quantization import quantize_dynamic

    layers = _int8_layer_names(frozen)
    with warnings.catch_warnings():
        # torch.ao.quantization is deprecated in favour of torchao, which is no dependency here.
        warnings.filterwarnings("ignore", ".*deprecated", DeprecationWarning)
        warnings.filterwarnings("ignore", ".*quantized tensor creation.*deprecated", UserWarning)
        return quantize_dynamic(frozen, layers, inplace=True)


def _int8_layer_names(module: nn.Module) -> set[str]:
    """Names of the ``nn.Linear`` layers of ``module`` outside noise embeddings."""
    from torch import nn

    from latentdiff.core.layers import NoiseEmbedding

    embedded = tuple(
        f"{name}." if name else ""
        for name, sub in module.named_modules()
        if isinstance(sub, NoiseEmbedding)
    )
    return {
        name
        for name, sub in module.named_modules()
        if isinstance(sub, nn.Linear) and not name.startswith(embedded)
    }


def autocast(precision: str, device_type: str = "cpu") -> contextlib.AbstractContextManager[object]:
    """``torch.autocast`` to bf16 / fp16; no change for fp32 and int8."""
    check_precision(precision)
    if precision not in ("bf16", "fp16"):
        return contextlib.nullcontext()
    import torch

    dtype = torch.bfloat16 if precision == "bf16" else torch.float16
    return torch.autocast(device_type, dtype=dtype)


def quantize_onnx(model: bytes, precision: str, keep_float: Sequence[np.ndarray] = ()) -> bytes:
    """The serialized ONNX ``model`` at ``precision`` (``ONNX_PRECISIONS``), metadata kept.

    int8 leaves MatMul / Gemm nodes whose constant weight equals one of ``keep_float`` in float32.
    """
    check_precision(precision, ONNX_PRECISIONS)
    if precision == "fp32":
        return model
    import onnx

    graph = onnx.load_from_string(model)
    converted = _float16(graph) if precision == "fp16" else _int8(graph, keep_float)
    del converted.metadata_props[:]
    converted.metadata_props.extend(graph.metadata_props)
    return converted.SerializeToString()


def _float16(graph: onnx.ModelProto) -> onnx.ModelProto:
    """float16 graph with float32 inputs and outputs. Constant subgraphs are folded in float32
    first (onnxruntime has few float16 CPU kernels to fold them with), and the nodes are sorted
    again (the converter appends the input casts at the end)."""
    from onnxruntime.transformers.float16 import convert_float_to_float16
    from onnxruntime.transformers.onnx_model import OnnxModel

    with tempfile.TemporaryDirectory() as tmp:
        folded = _prepared(graph, Path(tmp))
    converted = OnnxModel(convert_float_to_float16(folded, keep_io_types=True))
    converted.topological_sort()
    return converted.model


def _prepared(graph: onnx.ModelProto, tmp: Path) -> onnx.ModelProto:
    """onnxruntime's quantization pre-processing: constants folded into initializers (where the
    quantizer looks for weights), shapes inferred."""
    import onnx
    from onnxruntime.quantization.shape_inference import quant_pre_process

    prepared = tmp / "prepared.onnx"
    quant_pre_process(graph, prepared, skip_symbolic_shape=True)
    return onnx.load(prepared)


def _int8(graph: onnx.ModelProto, keep_float: Sequence[np.ndarray]) -> onnx.ModelProto:
    """Dynamic int8 MatMul / Gemm of the pre-processed graph, per output channel."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory() as tmp:
        prepared = _prepared(graph, Path(tmp))
        quantized = Path(tmp) / "int8.onnx"
        quantize_dynamic(
            prepared,
            quantized,
            op_types_to_quantize=list(_QUANTIZED_OPS),
            per_channel=True,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=_nodes_with_weights(prepared, keep_float),
            extra_options={"MatMulConstBOnly": True},
        )
        return onnx.load(quantized)


def _nodes_with_weights(graph: onnx.ModelProto, weights: Sequence[np.ndarray]) -> list[str]:
    """Names of the MatMul / Gemm nodes that read one of ``weights`` as an initializer."""
    import numpy as np
    from onnx import numpy_helper

    initializers = {t.name: t for t in graph.graph.initializer}

    def listed(name: str) -> bool:
        if name not in initializers:
            return False
        shape = tuple(initializers[name].dims)
        candidates = [w for w in weights if w.shape == shape]
        value = numpy_helper.to_array(initializers[name]) if candidates else None
        return any(np.array_equal(value, w) for w in candidates)

    return [
        node.name
        for node in graph.graph.node
        if node.op_type in _QUANTIZED_OPS and any(listed(name) for name in node.input)
    ]
