"""Command-line tasks of the toy domain (the core demo)."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentdiff.commands import CommandTable, invoked_command, named_path


def _toy_prepare(args: argparse.Namespace) -> int:
    from latentdiff.core.config import from_dict, load_yaml
    from latentdiff.toy.data import ToyDataConfig
    from latentdiff.toy.tasks import prepare

    cfg = from_dict(ToyDataConfig, load_yaml(args.config) if args.config else {})
    prepare(args.data_dir, cfg)
    print(f"toy data written to {args.data_dir}")
    return 0


def _toy_train_autoencoder(args: argparse.Namespace) -> int:
    from latentdiff.toy.tasks import train_autoencoder

    stats = train_autoencoder(args.config, args.data_dir, args.exp_dir)
    print(f"autoencoder trained: {stats}")
    return 0


def _toy_train_diffusion(args: argparse.Namespace) -> int:
    from latentdiff.toy.tasks import train_diffusion

    stats = train_diffusion(args.config, args.data_dir, args.exp_dir, args.autoencoder)
    print(f"diffusion model trained: {stats}")
    return 0


def _toy_evaluate(args: argparse.Namespace) -> int:
    from latentdiff.toy.results import write_results

    write_results(
        args.data_dir,
        dict(args.model),
        args.results,
        command=invoked_command(),
        steps=tuple(args.steps),
        n_samples=args.n_samples,
    )
    print(f"results written to {args.results}")
    return 0


def add_commands(table: CommandTable) -> None:
    """``prepare toy``, ``train toy-autoencoder|toy-diffusion``, ``evaluate toy``."""
    toy = table.task("prepare", "toy", "synthetic 1-D sequences")
    toy.add_argument("--data-dir", type=Path, required=True)
    toy.add_argument("--config", type=Path, help="YAML with ToyDataConfig fields")
    toy.set_defaults(run=_toy_prepare)

    ae = table.task("train", "toy-autoencoder", "autoencoder on toy sequences")
    diff = table.task("train", "toy-diffusion", "(latent) diffusion on toy sequences")
    for sub in (ae, diff):
        sub.add_argument("--config", type=Path, required=True)
        sub.add_argument("--data-dir", type=Path, required=True)
        sub.add_argument("--exp-dir", type=Path, required=True)
    ae.set_defaults(run=_toy_train_autoencoder)
    diff.add_argument("--autoencoder", type=Path, help="autoencoder checkpoint; omit: data space")
    diff.set_defaults(run=_toy_train_diffusion)

    etoy = table.task("evaluate", "toy", "samplers x steps on toy sequences")
    etoy.add_argument("--data-dir", type=Path, required=True)
    etoy.add_argument(
        "--model", type=named_path, action="append", required=True, metavar="NAME=PATH"
    )
    etoy.add_argument("--results", type=Path, required=True, help="markdown file to write")
    etoy.add_argument("--steps", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    etoy.add_argument("--n-samples", type=int, default=500)
    etoy.set_defaults(run=_toy_evaluate)
