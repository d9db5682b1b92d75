"""Command-line tasks that build the learned planner: data, trajectory autoencoder, diffusion."""

from __future__ import annotations

import argparse
from pathlib import Path

from latentdiff.commands import CommandTable, add_config_options


def _prepare_path(args: argparse.Namespace) -> int:
    from latentdiff.core.config import from_dict, load_yaml
    from latentdiff.path.data import PathDataConfig, prepare

    cfg = from_dict(PathDataConfig, load_yaml(args.config) if args.config else {})
    if args.workers is not None:
        cfg.workers = args.workers
    counts = prepare(args.out_dir, cfg)
    print(f"path data written to {args.out_dir}: {counts}")
    return 0


def _train_path_autoencoder(args: argparse.Namespace) -> int:
    from latentdiff.path.train import train_path_autoencoder

    stats = train_path_autoencoder(args.config, args.data_dir, args.exp_dir, args.set)
    print(f"trajectory autoencoder trained: {stats}")
    return 0


def _train_path_diffusion(args: argparse.Namespace) -> int:
    from latentdiff.path.train import train_path_diffusion

    stats = train_path_diffusion(
        args.config, args.data_dir, args.exp_dir, args.autoencoder, args.set
    )
    print(f"path diffusion trained: {stats}")
    return 0


def _train_path_distill(args: argparse.Namespace) -> int:
    from latentdiff.path.train import train_path_distill

    stats = train_path_distill(args.config, args.teacher, args.data_dir, args.exp_dir, args.set)
    print(f"few-step student trained: {stats}")
    return 0


def add_commands(table: CommandTable) -> None:
    """``prepare path``, ``train path-autoencoder``, ``train path-diffusion``, ``path-distill``."""
    prep = table.task("prepare", "path", "planner windows with guide and optimal paths")
    prep.add_argument("--out-dir", type=Path, required=True)
    prep.add_argument("--config", type=Path, help="YAML with PathDataConfig fields")
    prep.add_argument("--workers", type=int, help="processes (overrides the config)")
    prep.set_defaults(run=_prepare_path)

    ae = table.task("train", "path-autoencoder", "trajectory autoencoder on planner paths")
    diff = table.task("train", "path-diffusion", "(latent) path diffusion with its map encoder")
    distill = table.task("train", "path-distill", "few-step (DDIM) student of a path model")
    for sub in (ae, diff, distill):
        add_config_options(sub)
        sub.add_argument("--data-dir", type=Path, required=True)
        sub.add_argument("--exp-dir", type=Path, required=True)
    ae.set_defaults(run=_train_path_autoencoder)
    diff.add_argument(
        "--autoencoder", type=Path, help="trajectory autoencoder checkpoint (latent models)"
    )
    diff.set_defaults(run=_train_path_diffusion)
    distill.add_argument("--teacher", type=Path, required=True, help="teacher final.pt")
    distill.set_defaults(run=_train_path_distill)
