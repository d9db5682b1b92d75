"""``latentdiff bench se``, ``bench stream`` and ``bench stream-ops``: our enhancers against peer
enhancers, and where a streaming block's time goes."""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path

from latentdiff.commands import CommandTable, named_path
from latentdiff.core.quantize import ONNX_PRECISIONS
from latentdiff.se import STREAM_BACKENDS
from latentdiff.se.peers import PEER_PACKAGES, missing_package


def command_line(args: argparse.Namespace) -> str:
    """The ``latentdiff bench se`` command line that reproduces ``args``."""
    words = ["latentdiff", "bench", "se", "--data-dir", str(args.data_dir)]
    words += ["--results", str(args.results), "--max-utts", str(args.max_utts)]
    for name, path in args.model:
        words += ["--model", f"{name}={path}"]
    words += ["--peers", *args.peers]
    if args.dnsmos:
        words.append("--dnsmos")
    return shlex.join(words)


def _bench(args: argparse.Namespace) -> int:
    import torch

    from latentdiff.se.bench import run_bench, write_results
    from latentdiff.se.peers import EnhancerPeer, Peer, make_peer, missing_package

    torch.set_num_threads(1)
    systems: list[Peer] = [EnhancerPeer("ours"), EnhancerPeer("ours (steps=0)", steps=0)]
    systems += [EnhancerPeer(name, path) for name, path in args.model]
    skipped: dict[str, str] = {}
    for name in args.peers:
        reason = missing_package(name)
        if reason is None:
            systems.append(make_peer(name))
        else:
            skipped[name] = reason
            print(f"skipping {name}: {reason}")
    result = run_bench(systems, args.data_dir, max_utts=args.max_utts, dnsmos=args.dnsmos)
    path = write_results(result, args.results, command_line(args), skipped)
    for system in result.scores:
        print(
            f"{system:>16}: PESQ {result.mean(system, 'pesq'):.3f}, "
            f"ESTOI {result.mean(system, 'estoi'):.3f}, "
            f"SI-SDR {result.mean(system, 'si_sdr'):.2f}, RTF {result.rtf(system):.4f}"
        )
    print(f"wrote {path}")
    return 0


def _bench_stream(args: argparse.Namespace) -> int:
    from latentdiff.se.bench_stream import results_table, run_stream_bench, write_stream_results

    missing = {name: missing_package(name) for name in args.peers}
    peers = tuple(name for name, reason in missing.items() if reason is None)
    for name, reason in missing.items():
        if reason is not None:
            print(f"skipping {name}: {reason}")
    results = run_stream_bench(
        seconds=args.seconds,
        steps=tuple(args.steps),
        peers=peers,
        model=args.model,
        backend=args.backend,
        input_path=args.input,
    )
    reference = next((r.name for r in results if r.name.startswith("DeepFilterNet3")), None)
    print(results_table(results, reference))
    if args.results is not None:
        words = ["latentdiff", "bench", "stream", "--seconds", str(args.seconds)]
        words += ["--steps", *map(str, args.steps), "--backend", args.backend]
        words += ["--peers", *args.peers, "--results", str(args.results)]
        if args.model is not None:
            words += ["--model", str(args.model)]
        if args.input is not None:
            words += ["--input", str(args.input)]
        print(f"wrote {write_stream_results(results, args.results, shlex.join(words))}")
    return 0


def _bench_stream_ops(args: argparse.Namespace) -> int:
    import torch

    from latentdiff.se.enhancer import Enhancer
    from latentdiff.se.stream_profile import (
        profile_block_graph,
        profile_table,
        summary_table,
        write_profile_report,
    )

    torch.set_num_threads(1)
    model = Enhancer.from_pretrained(args.model).model
    profiles = [
        profile_block_graph(model, precision, args.blocks, args.steps)
        for precision in args.precisions
    ]
    print(summary_table(profiles))
    print(profile_table(profiles))
    if args.results is not None:
        words = ["latentdiff", "bench", "stream-ops", "--precisions", *args.precisions]
        words += ["--blocks", str(args.blocks), "--results", str(args.results)]
        if args.steps is not None:
            words += ["--steps", str(args.steps)]
        if args.model is not None:
            words += ["--model", str(args.model)]
        print(f"wrote {write_profile_report(profiles, args.results, shlex.join(words))}")
    return 0


def add_commands(table: CommandTable) -> None:
    """``bench se``, ``bench stream`` and ``bench stream-ops``."""
    ops = table.task(
        "bench", "stream-ops", "streaming block graph: onnxruntime time by operator type"
    )
    ops.add_argument("--precisions", nargs="+", choices=ONNX_PRECISIONS, default=["fp32", "int8"])
    ops.add_argument("--blocks", type=int, default=300, help="10 ms blocks to run (default 300)")
    ops.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    ops.add_argument("--model", type=Path, help="checkpoint or exp dir (default: bundled)")
    ops.add_argument("--results", type=Path, help="markdown report to write")
    ops.set_defaults(run=_bench_stream_ops)

    stream = table.task("bench", "stream", "streaming enhancement: per-block time against peers")
    stream.add_argument("--seconds", type=float, default=20.0, help="signal length (default 20)")
    stream.add_argument("--input", type=Path, help="audio file to stream (default: seeded noise)")
    stream.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4], help="sampler steps")
    stream.add_argument("--model", type=Path, help="checkpoint or exp dir (default: bundled)")
    stream.add_argument("--backend", choices=STREAM_BACKENDS, default="onnxruntime")
    stream.add_argument(
        "--peers",
        nargs="*",
        choices=["rnnoise", "deepfilternet3"],
        default=["rnnoise", "deepfilternet3"],
        help="streaming peers (missing packages are skipped)",
    )
    stream.add_argument("--results", type=Path, help="markdown report to write")
    stream.set_defaults(run=_bench_stream)

    bench = table.task("bench", "se", "speech enhancement: our models against peer enhancers")
    bench.add_argument("--data-dir", type=Path, required=True, help="Kaldi data dir with spk1.scp")
    bench.add_argument("--results", type=Path, required=True, help="markdown report to write")
    bench.add_argument("--max-utts", type=int, default=0, help="first N utterances (0: all)")
    bench.add_argument(
        "--model",
        type=named_path,
        action="append",
        default=[],
        metavar="NAME=PATH",
        help="extra model (checkpoint or exp dir); repeatable",
    )
    bench.add_argument(
        "--peers",
        nargs="*",
        choices=sorted(PEER_PACKAGES),
        default=list(PEER_PACKAGES),
        help="peer enhancers (default: all; missing packages are skipped)",
    )
    bench.add_argument("--dnsmos", action="store_true", help="also score DNSMOS P.835 (slow)")
    bench.set_defaults(run=_bench)
