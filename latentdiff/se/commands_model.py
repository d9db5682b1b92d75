"""Command-line tasks of the speech-enhancement models: training and ``latentdiff enhance``."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from latentdiff.commands import CommandTable, add_config_options, invoked_command

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


def _train_autoencoder(args: argparse.Namespace) -> int:
    from latentdiff.se.train import train_se_autoencoder

    stats = train_se_autoencoder(args.config, args.data_dir, args.exp_dir, args.set)
    print(f"autoencoder trained: {stats}")
    return 0


def _train_model(args: argparse.Namespace) -> int:
    from latentdiff.core.models import load_model
    from latentdiff.se.train import model_report, train_se_model

    stats = train_se_model(args.config, args.data_dir, args.exp_dir, args.autoencoder, args.set)
    report = model_report(load_model(args.exp_dir / "final.pt"))  # type: ignore[arg-type]
    (args.exp_dir / "model_report.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"model trained: {stats}")
    print(
        f"latency {report['latency_ms']:.1f} ms, NFE {report['nfe']}, "
        f"{report['macs_per_second']['total'] / 1e6:.1f} MMAC/s, "
        f"{report['parameters']['total']} parameters"
    )
    return 0


def _train_adversarial(args: argparse.Namespace) -> int:
    from latentdiff.se.adversarial import train_se_adversarial

    stats = train_se_adversarial(args.config, args.enhancer, args.data_dir, args.exp_dir, args.set)
    print(f"adversarially fine-tuned: {stats}")
    return 0


def _train_distill(args: argparse.Namespace) -> int:
    from latentdiff.se.distill import train_se_distill

    stats = train_se_distill(args.config, args.teacher, args.data_dir, args.exp_dir, args.set)
    print(f"distilled: {stats}")
    return 0


def audio_jobs(source: Path, target: Path) -> list[tuple[Path, Path]]:
    """(input, output) pairs: a file maps to ``target`` (or into it, if it is a directory);
    a directory maps every wav/flac/ogg file below it to the same relative path under ``target``.
    """
    if source.is_dir():
        files = sorted(
            p for p in source.rglob("*") if p.is_file() and p.suffix.lower() in AUDIO_SUFFIXES
        )
        return [(p, target / p.relative_to(source)) for p in files]
    if not source.exists():
        raise FileNotFoundError(f"{source}: no such file or directory")
    return [(source, target / source.name if target.is_dir() else target)]


def _enhance(args: argparse.Namespace) -> int:
    import soundfile as sf

    from latentdiff.se.audio import load_audio, save_audio
    from latentdiff.se.enhancer import Enhancer

    try:
        jobs = audio_jobs(args.input, args.output)
    except FileNotFoundError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    if not jobs:
        print(f"error: no {'/'.join(AUDIO_SUFFIXES)} files under {args.input}", file=sys.stderr)
        return 1
    try:
        enhancer = Enhancer.from_pretrained(args.model, steps=args.steps, seed=args.seed)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: cannot load the model: {err}", file=sys.stderr)
        return 1
    failed = 0
    for source, target in jobs:
        try:
            rate = sf.info(str(source)).samplerate
            wave = load_audio(source, rate)
            save_audio(target, enhancer.enhance(wave, rate), rate)
        except (ValueError, RuntimeError, sf.SoundFileError) as err:
            failed += 1
            print(f"error: {source}: {err}", file=sys.stderr)
            continue
        print(f"{source} -> {target}")
    print(
        f"enhanced {len(jobs) - failed} of {len(jobs)} files; latency "
        f"{enhancer.latency_ms:.1f} ms, NFE {enhancer.nfe}"
    )
    return 1 if failed else 0


def _evaluate(args: argparse.Namespace) -> int:
    from latentdiff.se.enhancer import Enhancer, evaluate_datadir

    enhancer = Enhancer.from_pretrained(args.model, steps=args.steps, seed=args.seed)
    result = evaluate_datadir(enhancer, args.data_dir, max_utterances=args.max_utts)
    result["model"] = str(args.model or "bundled")
    result["nfe"], result["latency_ms"] = enhancer.nfe, enhancer.latency_ms
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(result, indent=2) + "\n")
    for which in ("noisy", "enhanced", "improvement"):
        scores = ", ".join(f"{k} {v:.3f}" for k, v in result[which].items())
        print(f"{which:>11}: {scores}")
    return 0


def _study(args: argparse.Namespace) -> int:
    import torch

    from latentdiff.se.study import write_study_report

    torch.set_num_threads(1)
    summary = write_study_report(
        args.study_dir, args.data_dir, args.max_utts, args.results, invoked_command()
    )
    for row in summary:
        print(
            f"{row['variant']}: PESQ-WB {row['pesq_mean']:.3f} (std {row['pesq_std']:.3f} over "
            f"{row['seeds']} seeds), {row['mmacs_per_s_mean']:.1f} MMAC/s"
        )
    print(f"results written to {args.results}")
    return 0


def add_commands(table: CommandTable) -> None:
    """``train se-autoencoder``, ``train se-model``, ``train se-adversarial``, ``train
    se-distill``, ``evaluate se-model``, ``evaluate se-study`` and ``enhance``."""
    ae = table.task("train", "se-autoencoder", "causal autoencoder of clean STFT features")
    model = table.task("train", "se-model", "speech-enhancement model (latent_se or baseline)")
    for sub in (ae, model):
        add_config_options(sub)
        sub.add_argument("--data-dir", type=Path, required=True, help="Kaldi data dir")
        sub.add_argument("--exp-dir", type=Path, required=True)
    ae.set_defaults(run=_train_autoencoder)
    model.add_argument("--autoencoder", type=Path, help="autoencoder final.pt (latent_se only)")
    model.set_defaults(run=_train_model)
    for task, about, source, run in (
        (
            "se-adversarial",
            "adversarial fine-tuning of a diffusion enhancer (GAN hybrid)",
            "--enhancer",
            _train_adversarial,
        ),
        (
            "se-distill",
            "few-step DDIM student of a diffusion enhancer's correction",
            "--teacher",
            _train_distill,
        ),
    ):
        stage = table.task("train", task, about)
        add_config_options(stage)
        stage.add_argument(source, type=Path, required=True, help="trained enhancer final.pt")
        stage.add_argument("--data-dir", type=Path, required=True, help="Kaldi data dir")
        stage.add_argument("--exp-dir", type=Path, required=True)
        stage.set_defaults(run=run)

    score = table.task("evaluate", "se-model", "PESQ / ESTOI / SI-SDR on a data dir (spk1.scp)")
    score.add_argument("--data-dir", type=Path, required=True)
    score.add_argument("--model", type=Path, help="checkpoint or exp dir (default: bundled)")
    score.add_argument("--output", type=Path, required=True, help="JSON file to write")
    score.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    score.add_argument("--seed", type=int, default=0)
    score.add_argument("--max-utts", type=int, default=0, help="first N utterances (0: all)")
    score.set_defaults(run=_evaluate)

    study = table.task(
        "evaluate", "se-study", "training studies: variants x seeds scored on a data dir"
    )
    study.add_argument(
        "--study-dir", type=Path, required=True, help="holds <variant>/seed<k>/ runs"
    )
    study.add_argument("--data-dir", type=Path, required=True, help="Kaldi data dir (spk1.scp)")
    study.add_argument("--max-utts", type=int, default=0, help="first N utterances (0: all)")
    study.add_argument("--results", type=Path, required=True, help="markdown file to write")
    study.set_defaults(run=_study)

    enhance = table.verb("enhance", "enhance a speech file or every audio file in a directory")
    enhance.add_argument("input", type=Path, metavar="IN", help="audio file or directory")
    enhance.add_argument("output", type=Path, metavar="OUT", help="output file or directory")
    enhance.add_argument("--model", type=Path, help="checkpoint or exp dir (default: bundled)")
    enhance.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    enhance.add_argument("--seed", type=int, default=0, help="sampling seed")
    enhance.set_defaults(run=_enhance)
