"""``latentdiff bench quant``: int8 / bf16 / fp16 inference against fp32 on both tracks."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from latentdiff.commands import CommandTable
from latentdiff.core.quantize import PRECISIONS
from latentdiff.se import COMPILED_BACKENDS

TRACKS = ("se", "path")


def command_line(args: argparse.Namespace) -> str:
    """The ``latentdiff bench quant`` command line that reproduces ``args``."""
    words = ["latentdiff", "bench", "quant", "--tracks", *args.tracks]
    words += ["--precisions", *args.precisions, "--backends", *args.backends]
    words += ["--data-dir", str(args.data_dir), "--utts", str(args.utts)]
    words += ["--seconds", str(args.seconds), "--path-data", str(args.path_data)]
    words += ["--problems", str(args.problems)]
    if args.model is not None:
        words += ["--model", str(args.model)]
    if args.results is not None:
        words += ["--results", str(args.results)]
    return shlex.join(words)


def _bench_quant(args: argparse.Namespace) -> int:
    from latentdiff.bench_quant import (
        block_table,
        path_table,
        quality_table,
        run_quant_bench,
        write_report,
    )

    speech, planning = run_quant_bench(
        tracks=args.tracks,
        backends=args.backends,
        precisions=args.precisions,
        data_dir=args.data_dir,
        utterances=args.utts,
        seconds=args.seconds,
        path_data=args.path_data,
        problems=args.problems,
        model=args.model,
    )
    if speech is not None:
        print(block_table(speech), quality_table(speech), sep="\n\n", end="\n\n")
    if planning is not None:
        print(path_table(planning))
    if args.results is not None:
        print(f"wrote {write_report(args.results, command_line(args), speech, planning)}")
    return 0


def add_commands(table: CommandTable) -> None:
    """``bench quant``."""
    bench = table.task(
        "bench", "quant", "reduced-precision inference (int8, bf16, fp16): speed and quality"
    )
    bench.add_argument("--tracks", nargs="+", choices=TRACKS, default=list(TRACKS))
    bench.add_argument(
        "--precisions",
        nargs="+",
        choices=PRECISIONS,
        default=list(PRECISIONS),
        help="compared with fp32, where a backend runs them (default: all)",
    )
    bench.add_argument(
        "--backends",
        nargs="+",
        choices=COMPILED_BACKENDS,
        default=list(COMPILED_BACKENDS),
        help="streaming kernels to time (default: both)",
    )
    bench.add_argument(
        "--data-dir",
        type=Path,
        default=Path("egs/speech/se1/data/dev"),
        help="Kaldi data dir with spk1.scp (default: egs/speech/se1/data/dev)",
    )
    bench.add_argument("--utts", type=int, default=16, help="first N utterances (default 16)")
    bench.add_argument(
        "--seconds", type=float, default=10.0, help="signal timed per block (default 10)"
    )
    bench.add_argument("--model", type=Path, help="speech checkpoint or exp dir (default: bundled)")
    bench.add_argument(
        "--path-data",
        type=Path,
        default=Path("egs/worlds/path1/data"),
        help="planner data dir with dev.npz (default: egs/worlds/path1/data)",
    )
    bench.add_argument(
        "--problems", type=int, default=0, help="first N dev problems (default 0: all)"
    )
    bench.add_argument("--results", type=Path, help="markdown report to write")
    bench.set_defaults(run=_bench_quant)
