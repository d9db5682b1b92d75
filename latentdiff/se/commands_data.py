"""Command-line tasks that prepare speech-enhancement data."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentdiff.commands import CommandTable


def _se_corpus(args: argparse.Namespace) -> int:
    from latentdiff.core.config import from_dict, load_yaml
    from latentdiff.se.corpus.build import (
        CorpusConfig,
        build_corpus,
        prepare_sources,
        required_packages,
    )

    cfg = from_dict(CorpusConfig, load_yaml(args.config) if args.config else {})
    if args.seed is not None:
        cfg.seed = args.seed
    if args.list_packages:
        print(" ".join(required_packages(cfg)))
        return 0
    if args.sources_only:
        inventory = prepare_sources(cfg, args.out_dir, progress=not args.no_progress)
        hours = sum(inventory.durations[f.path] for f in inventory.speech) / 3600
        speakers = len({f.speaker for f in inventory.speech})
        print(
            f"{len(inventory.speech)} speech files ({hours:.2f} h, {speakers} voices), "
            f"{len(inventory.noise)} noise files; list in {args.out_dir}/local/sources.tsv"
        )
        return 0
    build_corpus(cfg, args.out_dir, progress=not args.no_progress)
    print(f"corpus written to {args.out_dir}; summary in {args.out_dir}/corpus_summary.yaml")
    return 0


def _voicebank_demand(args: argparse.Namespace) -> int:
    from latentdiff.se.corpus.standard import prepare_voicebank_demand

    counts = prepare_voicebank_demand(
        args.corpus_dir, args.out_dir, dev_speakers=tuple(args.dev_speakers)
    )
    print(f"VoiceBank-DEMAND data dirs in {args.out_dir}: {counts}")
    return 0


def _dns(args: argparse.Namespace) -> int:
    from latentdiff.se.corpus.standard import DnsOptions, prepare_dns

    options = DnsOptions(
        snr_db=(args.snr_low, args.snr_high),
        dev_speakers=args.dev_speakers,
        dev_utterances=args.dev_utterances,
        seed=args.seed,
    )
    counts = prepare_dns(args.corpus_dir, args.out_dir, options)
    print(f"DNS Challenge data dirs in {args.out_dir}: {counts}")
    return 0


def add_commands(table: CommandTable) -> None:
    """``prepare se-corpus``, ``prepare voicebank-demand``, ``prepare dns``."""
    corpus = table.task(
        "prepare", "se-corpus", "mixed speech-enhancement corpus from Debian speech/noise + TTS"
    )
    corpus.add_argument("--config", type=Path, help="YAML with CorpusConfig fields")
    corpus.add_argument("--out-dir", type=Path, required=True)
    corpus.add_argument("--seed", type=int, help="overrides the config's seed")
    corpus.add_argument(
        "--sources-only", action="store_true", help="only check sources and synthesise voices"
    )
    corpus.add_argument(
        "--list-packages", action="store_true", help="print the Debian packages needed and exit"
    )
    corpus.add_argument("--no-progress", action="store_true")
    corpus.set_defaults(run=_se_corpus)

    vbd = table.task("prepare", "voicebank-demand", "VoiceBank-DEMAND (28 speakers) data dirs")
    vbd.add_argument("--corpus-dir", type=Path, required=True, help="folder with the unzipped sets")
    vbd.add_argument("--out-dir", type=Path, required=True)
    vbd.add_argument("--dev-speakers", nargs="+", default=["p226", "p287"])
    vbd.set_defaults(run=_voicebank_demand)

    dns = table.task("prepare", "dns", "DNS Challenge (Interspeech 2020) data dirs")
    dns.add_argument(
        "--corpus-dir", type=Path, required=True, help="DNS-Challenge checkout (holds datasets/)"
    )
    dns.add_argument("--out-dir", type=Path, required=True)
    dns.add_argument("--snr-low", type=float, default=-5.0)
    dns.add_argument("--snr-high", type=float, default=20.0)
    dns.add_argument("--dev-speakers", type=int, default=20, help="readers held out for dev")
    dns.add_argument("--dev-utterances", type=int, default=200, help="pre-mixed dev mixtures")
    dns.add_argument("--seed", type=int, default=0)
    dns.set_defaults(run=_dns)
