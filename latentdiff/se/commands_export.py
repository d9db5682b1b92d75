"""``latentdiff export --onnx OUT.onnx``: the streaming enhancer as a per-block ONNX graph, at
fp32 or at reduced precision (``--precision int8`` or ``fp16``)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from latentdiff.commands import CommandTable
from latentdiff.core.quantize import ONNX_PRECISIONS


def _export(args: argparse.Namespace) -> int:
    from latentdiff.se.enhancer import Enhancer
    from latentdiff.se.onnx_export import export_onnx, read_metadata

    try:
        model = Enhancer.from_pretrained(args.model).model
        path = export_onnx(model, args.onnx, steps=args.steps, precision=args.precision)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    meta = read_metadata(path)
    print(
        f"wrote {path} ({path.stat().st_size / 1e6:.1f} MB): {meta['block_samples']} samples per "
        f"call at {meta['sample_rate']} Hz, steps {meta['steps']}, output delayed by "
        f"{meta['delay_samples']} samples, latency {float(meta['latency_ms']):.1f} ms, "
        f"precision {meta['precision']}"
    )
    runner = Path(__file__).with_name("onnx_runner.py")
    print(f"run it without latentdiff: python {runner} {path} in.wav out.wav")
    return 0


def add_commands(table: CommandTable) -> None:
    """``export``."""
    export = table.verb("export", "export the speech enhancer for deployment")
    export.add_argument(
        "--onnx",
        type=Path,
        required=True,
        metavar="OUT.onnx",
        help="stateful per-block ONNX model to write (parent directories are created)",
    )
    export.add_argument("--model", type=Path, help="checkpoint or exp dir (default: bundled)")
    export.add_argument(
        "--steps", type=int, help="sampler steps (default: the model's; 0: predictive only)"
    )
    export.add_argument(
        "--precision",
        choices=ONNX_PRECISIONS,
        default="fp32",
        help="int8: dynamically quantized matrix products; fp16: float16 graph (default fp32)",
    )
    export.set_defaults(run=_export)
