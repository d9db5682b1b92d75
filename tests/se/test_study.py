"""``evaluate se-study``: tiny trained runs scored, summarised by variant, plotted and reported."""

from __future__ import annotations

import argparse
import math
import shutil
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentdiff.commands import CommandTable
from latentdiff.core.models import load_model
from latentdiff.core.study import StudyRun
from latentdiff.se.commands_model import add_commands
from latentdiff.se.model import LatentSE, StagedTCN
from latentdiff.se.study import (
    TARGET_FACTOR,
    add_time_to_target,
    heldout_x0_error,
    write_study_report,
)
from latentdiff.se.train import train_se_autoencoder, train_se_model

from .test_model import _clip_datadir

torch.set_num_threads(1)
CONF = Path(__file__).resolve().parents[2] / "egs" / "speech" / "se1" / "conf"
CLIPS = Path(__file__).resolve().parent / "data" / "clips"
TRAINER = {
    "steps": 3,
    "batch_size": 2,
    "warmup_steps": 1,
    "log_every": 1,
    "ckpt_every": 3,
    "tensorboard": False,
    "progress": False,
}
SIZES = {  # variant -> (encoder and backbone channels, backbone depth)
    "base": (16, 3),
    "tiny": (8, 2),
}
SWITCHES = {  # variant -> overrides of the base size, as in the recipe's stage 11
    "two_stage": ["model.stages=2"],
    "flat": ["model.backbone.dilation_cycle=1"],
}


def _config(path: Path, base: str, updates: dict[str, dict]) -> Path:
    data = yaml.safe_load((CONF / base).read_text())
    for section, values in updates.items():
        data[section].update(values)
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _clip_datadir(tmp_path_factory.mktemp("data"))


@pytest.fixture(scope="module")
def study(tmp_path_factory: pytest.TempPathFactory, data_dir: Path) -> Path:
    """base: seeds 1 and 2, tiny: seed 1 finished and seed 2 without final.pt."""
    root = tmp_path_factory.mktemp("study")
    segment = {"segment_seconds": 0.5}
    ae_config = _config(
        root / "ae.yaml",
        "autoencoder.yaml",
        {"trainer": TRAINER, "data": segment, "autoencoder": {"channels": 8, "latent_channels": 4}},
    )
    train_se_autoencoder(ae_config, data_dir, root / "ae")
    for variant, (channels, depth) in SIZES.items():
        model = {
            "cond_encoder": {"channels": channels, "out_channels": channels, "res_blocks": 1},
            "backbone": {"name": "tcn", "channels": channels, "depth": depth, "embed_dim": 8},
        }
        config = _config(
            root / f"{variant}.yaml",
            "latent_se.yaml",
            {"trainer": TRAINER, "data": segment, "model": model},
        )
        for seed in (1, 2):
            exp_dir = root / "runs" / variant / f"seed{seed}"
            train_se_model(
                config, data_dir, exp_dir, root / "ae" / "final.pt", [f"trainer.seed={seed}"]
            )
    (root / "runs" / "tiny" / "seed2" / "final.pt").unlink()
    return root / "runs"


@pytest.fixture(scope="module")
def switches(study: Path, data_dir: Path) -> Path:
    """two_stage and flat at the base size: seed 1 each, trained through their overrides."""
    root = study.parent
    for variant, overrides in SWITCHES.items():
        exp_dir = root / "switches" / variant / "seed1"
        train_se_model(root / "base.yaml", data_dir, exp_dir, root / "ae" / "final.pt", overrides)
    return root / "switches"


def test_report_has_one_row_per_variant_and_the_plots(
    study: Path, data_dir: Path, tmp_path: Path
) -> None:
    results = tmp_path / "RESULTS_studies.md"
    command = "latentdiff evaluate se-study --max-utts 1"
    summary = write_study_report(study, data_dir, 1, results, command, progress=False)
    assert [(row["variant"], row["seeds"]) for row in summary] == [("base", 2), ("tiny", 1)]
    base, tiny = summary
    assert float(tiny["mmacs_per_s_mean"]) < float(base["mmacs_per_s_mean"])  # type: ignore[arg-type]
    assert float(tiny["params_mean"]) < float(base["params_mean"])  # type: ignore[arg-type]
    assert not math.isnan(base["pesq_std"]) and math.isnan(tiny["pesq_std"])  # type: ignore[arg-type]
    text = results.read_text()
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| variant"))
    rows = [line for line in lines if line.startswith(("| base", "| tiny"))]
    assert [row.split("|")[1:3] for row in rows] == [[" base ", " 2 "], [" tiny ", " 1 "]]
    assert command in text and "±" in rows[0] and "±" not in rows[1]  # std needs two seeds
    columns = header.split(" | ")
    table = [line.split(" | ") for line in rows]
    for row, cells in zip(summary, table, strict=True):
        seeds = int(row["seeds"])  # type: ignore[call-overload]
        reached = round(float(row["reached_target_mean"]) * seeds)  # type: ignore[arg-type]
        for name, key in (("s", "s_to_target_loss"), ("steps", "steps_to_target_loss")):
            cell = cells[columns.index(f"{name} to target loss")]
            mean = float(row[f"{key}_mean"])  # type: ignore[arg-type]
            expected = f"{mean:.0f}" if reached == seeds else f"{reached}/{seeds} seeds"
            assert cell.split(" ±")[0] == expected
    assert f"{TARGET_FACTOR} x the base variant's mean final loss" in text
    for name in ("pareto", "pesq", "curves"):
        assert (tmp_path / "plots" / f"results_studies_{name}.png").stat().st_size > 0


def test_heldout_error_is_deterministic_unweighted_and_tells_models_apart(
    study: Path, data_dir: Path
) -> None:
    base, tiny = (load_model(study / variant / "seed1" / "final.pt") for variant in SIZES)
    assert isinstance(base, LatentSE) and isinstance(tiny, LatentSE)
    error = heldout_x0_error(base, data_dir, 1)
    assert error > 0 and error == heldout_x0_error(base, data_dir, 1)
    assert error != heldout_x0_error(tiny, data_dir, 1)
    base.denoiser.cfg = replace(base.denoiser.cfg, loss_weighting="uniform")
    assert heldout_x0_error(base, data_dir, 1) == error


def test_switch_overrides_reach_the_trained_models(switches: Path) -> None:
    two_stage, flat = (load_model(switches / name / "seed1" / "final.pt") for name in SWITCHES)
    assert isinstance(two_stage, LatentSE) and isinstance(flat, LatentSE)
    assert isinstance(two_stage.denoiser.net, StagedTCN) and len(two_stage.denoiser.net.nets) == 2
    for tcn in (flat.denoiser.net, flat.head):
        assert {block.conv.conv.dilation[0] for block in tcn.blocks} == {1}  # type: ignore[union-attr]


def test_cli_task_parses_and_a_study_without_finished_runs_fails(
    study: Path, data_dir: Path, tmp_path: Path
) -> None:
    parser = argparse.ArgumentParser(prog="latentdiff")
    add_commands(CommandTable(parser.add_subparsers(dest="verb", required=True)))
    partial = tmp_path / "partial"
    shutil.copytree(study / "tiny" / "seed2", partial / "tiny" / "seed2")
    args = parser.parse_args(
        [
            "evaluate",
            "se-study",
            "--study-dir",
            str(partial),
            "--data-dir",
            str(data_dir),
            "--max-utts",
            "2",
            "--results",
            str(tmp_path / "out.md"),
        ]
    )
    assert (args.study_dir, args.max_utts) == (partial, 2)
    with pytest.raises(FileNotFoundError, match="finished runs"):
        args.run(args)
    assert not (tmp_path / "out.md").exists()


def _synthetic_run(variant: str, seed: int, losses: list[float]) -> StudyRun:
    """A run logging ``losses`` every 50 steps, 10 s apart."""
    logged = np.arange(1, len(losses) + 1, dtype=float)
    log = {"step": 50 * logged, "loss": np.array(losses), "time": 10 * logged}
    return StudyRun(variant, seed, Path(variant) / f"seed{seed}", log)


def test_time_to_target_is_measured_against_the_base_final_loss() -> None:
    runs = [
        _synthetic_run("base", 1, [1.0, 0.6, 0.5, 0.45, 0.4, 0.4, 0.4]),
        _synthetic_run("base", 2, [1.0, 0.7, 0.6, 0.5, 0.5, 0.5, 0.5]),
        _synthetic_run("two_stage", 1, [0.9, 0.4, 0.4, 0.4, 0.3, 0.3, 0.3]),
        _synthetic_run("tiny", 1, [1.0, 0.9, 0.8, 0.7, 0.6, 0.6, 0.6]),
    ]
    metrics = [{"final_train_loss": float(np.mean(run.loss[-3:]))} for run in runs]
    target = add_time_to_target(runs, metrics)
    assert target == pytest.approx(TARGET_FACTOR * 0.45)
    # The running mean of 3 logged losses first reaches it at the 5th log for base seed 1 (0.45)
    # and at the 4th for two_stage (0.4); base seed 2 and tiny stay above it.
    seconds = [metric["s_to_target_loss"] for metric in metrics]
    steps = [metric["steps_to_target_loss"] for metric in metrics]
    assert seconds[0] == 50.0 and seconds[2] == 40.0 and (steps[0], steps[2]) == (250.0, 200.0)
    assert all(math.isnan(values[k]) for values in (seconds, steps) for k in (1, 3))
    assert [metric["reached_target"] for metric in metrics] == [1.0, 0.0, 1.0, 0.0]
    no_base = [{"final_train_loss": 0.3} for _ in runs[2:]]
    assert math.isnan(add_time_to_target(runs[2:], no_base))
    assert all(metric["reached_target"] == 0.0 for metric in no_base)
