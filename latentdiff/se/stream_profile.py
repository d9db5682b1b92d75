"""Where a streaming block's time goes: onnxruntime's per-operator profile of the block graph.

The per-block graph (:class:`latentdiff.se.onnx_export.BlockEnhancer`) is run block after block on
seeded noise, one thread, with onnxruntime's profiler on; kernel times are summed per operator
type. The share of the matrix products bounds what any faster arithmetic (int8, fp16) can gain:
with share ``s`` the block can be at most ``1 / (1 - s)`` times faster if the products cost nothing.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from latentdiff.core.onnx import single_thread_session
from latentdiff.reporting import markdown_table, write_text_atomically
from latentdiff.se.model import SEModel
from latentdiff.se.onnx_export import BlockEnhancer, to_onnx

MATRIX_OPS = frozenset(
    {
        "Conv",
        "ConvInteger",
        "DynamicQuantizeMatMul",
        "FusedMatMul",
        "Gemm",
        "MatMul",
        "MatMulInteger",
        "MatMulIntegerToFloat",
        "QLinearConv",
        "QLinearMatMul",
    }
)


@dataclass
class OperatorProfile:
    """Kernel microseconds per block by operator type, for one precision of the block graph."""

    precision: str
    nodes: int  # nodes of the exported graph (before onnxruntime's fusions)
    run_us: float  # median time of one block call, profiler on
    op_us: dict[str, float]

    @property
    def kernel_us(self) -> float:
        """Sum of all kernel times per block (the rest of ``run_us`` is the executor's)."""
        return sum(self.op_us.values())

    @property
    def matrix_share(self) -> float:
        """Share of the kernel time spent in matrix products (:data:`MATRIX_OPS`)."""
        matrix = sum(us for op, us in self.op_us.items() if op in MATRIX_OPS)
        return matrix / self.kernel_us


def profile_block_graph(
    model: SEModel, precision: str, blocks: int = 300, steps: int | None = None, seed: int = 0
) -> OperatorProfile:
    """Run ``blocks`` blocks of seeded noise through the block graph at ``precision``."""
    if blocks < 1:
        raise ValueError(f"blocks must be >= 1, got {blocks}")
    block = BlockEnhancer(model, steps)
    graph = to_onnx(block, precision)
    generator = torch.Generator().manual_seed(seed)
    with tempfile.TemporaryDirectory() as tmp:
        session = single_thread_session(graph.SerializeToString(), str(Path(tmp) / "profile"))
        names = [value.name for value in session.get_inputs()]
        states = [state.numpy() for state in block.initial_states()]
        for _ in range(blocks):
            audio = 0.1 * torch.randn(1, block.block_samples, generator=generator)
            noise = torch.randn(block.noise_shape, generator=generator)
            feed = dict(zip(names, [audio.numpy(), noise.numpy(), *states], strict=True))
            states = session.run(None, feed)[1:]
        events = json.loads(Path(session.end_profiling()).read_text())
    op_us: Counter[str] = Counter()
    runs = []
    for event in events:
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            op_us[event["args"]["op_name"]] += event["dur"] / blocks
        elif event.get("name") == "model_run":
            runs.append(event["dur"])
    return OperatorProfile(precision, len(graph.graph.node), float(np.median(runs)), dict(op_us))


def profile_table(profiles: list[OperatorProfile], top: int = 12) -> str:
    """Markdown: microseconds per block and share of kernel time of the ``top`` operator types
    (ranked by the first profile), one column pair per precision."""
    first = profiles[0]
    ranked = sorted(first.op_us, key=first.op_us.__getitem__, reverse=True)[:top]
    rows = []
    for op in ranked:
        row: dict[str, object] = {"operator": op + (" (matrix)" if op in MATRIX_OPS else "")}
        for profile in profiles:
            us = profile.op_us.get(op, 0.0)
            row[f"{profile.precision} us"] = us
            row[f"{profile.precision} share"] = f"{100 * us / profile.kernel_us:.1f} %"
        rows.append(row)
    return markdown_table(rows, list(rows[0]))


def summary_table(profiles: list[OperatorProfile]) -> str:
    """Markdown: per precision, nodes, block time, kernel time, matrix share and the ceiling."""
    rows = [
        {
            "precision": p.precision,
            "graph nodes": p.nodes,
            "block us (median)": p.run_us,
            "kernel us": p.kernel_us,
            "matrix products": f"{100 * p.matrix_share:.1f} %",
            "speed-up if they were free": f"{1 / (1 - p.matrix_share):.2f}x",
        }
        for p in profiles
    ]
    return markdown_table(rows, list(rows[0]))


def write_profile_report(profiles: list[OperatorProfile], path: Path, command: str) -> Path:
    """Markdown report with both tables and the command that produced it, written atomically."""
    text = (
        "# Streaming block graph: onnxruntime time by operator\n\n"
        f"Produced by:\n\n```sh\n{command}\n```\n\n"
        "One thread, onnxruntime's profiler on (it adds its own overhead, so absolute times are "
        "above `latentdiff bench stream`'s); times are per 10 ms block, averaged over the blocks. "
        "`matrix products` is their share of the kernel time, and `speed-up if they were free` "
        "the bound it puts on any faster arithmetic such as int8.\n\n"
        f"{summary_table(profiles)}\n\n## Operator types\n\n{profile_table(profiles)}\n"
    )
    return write_text_atomically(path, text)
