"""``evaluate path-windows`` and ``path-study``: the planner on a split's held-out windows."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from latentdiff.commands import CommandTable
from latentdiff.core.models import save_final
from latentdiff.path import commands_run, study
from latentdiff.path.data import PathDataConfig, build_split, save_split
from latentdiff.path.model import path_model_spec
from latentdiff.path.planner import Planner, PlannerConfig
from latentdiff.path.study import write_study_report
from latentdiff.path.window_eval import hard_samples, run_windows, window_rows

from .test_planner import tiny_model

DATA_CFG = PathDataConfig(n_dev_maps=8, min_size=24, max_size=64, kinds=("random", "bug_traps"))


@pytest.fixture(scope="module")
def dev():
    return build_split(DATA_CFG, "dev", progress=False)


def test_rows_split_hard_queries_and_report_the_returned_lengths(dev) -> None:
    torch.set_num_threads(1)
    planner = Planner(tiny_model(), PlannerConfig(candidates=2, steps=1))
    outcome = run_windows(planner, dev, progress=False)
    assert outcome.success.all()
    # Where the guide was returned, its length is the tautened guide stored with the data.
    guide = ~outcome.from_model
    assert not (outcome.repaired & guide).any()
    ratio = dev.taut_length / dev.optimum_length
    np.testing.assert_allclose(outcome.length_ratio[guide], ratio[guide], rtol=1e-5)
    assert np.all(outcome.length_ratio >= 1.0 - 1e-5)
    # Distances are in cells: the guide's is computed here directly from the stored waypoints.
    guide_cells = np.linalg.norm(dev.guide - dev.target, axis=2).mean(axis=1)
    np.testing.assert_allclose(outcome.guide_cells, guide_cells, rtol=1e-4, atol=1e-4)
    assert np.all(np.isfinite(outcome.sample_cells)) and np.all(outcome.sample_cells > 0)
    rows = window_rows("tiny", outcome, dev)
    assert [row["queries"] for row in rows] == ["all", "hard", "other"]
    hard = hard_samples(dev)
    assert [row["n"] for row in rows] == [len(dev), hard.sum(), (~hard).sum()]
    assert rows[0]["network_ran"] == pytest.approx(outcome.network_ran.mean())
    assert rows[0]["taut_guide_len_mean"] == pytest.approx(ratio.mean())


def test_cli_writes_the_report_with_its_command(dev, tmp_path: Path, monkeypatch) -> None:
    save_split(dev, tmp_path / "dev.npz")
    model = tiny_model()
    save_final(tmp_path / "tiny", model, path_model_spec(model))
    parser = argparse.ArgumentParser()
    commands_run.add_commands(CommandTable(parser.add_subparsers(dest="verb", required=True)))
    results = tmp_path / "windows.md"
    argv = ["evaluate", "path-windows", "--model", f"tiny={tmp_path / 'tiny'}", "--steps", "1"]
    argv += ["--model", f"two={tmp_path / 'tiny'}", "--model-steps", "two=2"]
    argv += ["--candidates", "3", "--data-dir", str(tmp_path), "--results", str(results)]
    monkeypatch.setattr(sys, "argv", ["latentdiff", *argv])
    args = parser.parse_args(argv)
    assert args.run(args) == commands_run.EXIT_OK
    text = results.read_text()
    assert "latentdiff evaluate path-windows" in text
    assert f"| tiny | all | {len(dev)} | 1 |" in text and "| tiny | hard |" in text
    # --steps 1 overrides the model's own 4 steps, --model-steps sets one model's, and
    # --candidates the samples per window: their MACs.
    for name, steps in (("tiny", 1), ("two", 2)):
        row = next(line for line in text.splitlines() if line.startswith(f"| {name} | all |"))
        assert row.endswith(f"| {model.macs_per_plan(3, steps)['total']:.4g} |")


def test_study_report_scores_every_run(dev, tmp_path: Path) -> None:
    torch.set_num_threads(1)
    study = tmp_path / "study"
    for variant, local_dim in (("default", 0), ("multiscale", 4)):
        for seed in (1, 2):
            run = study / variant / f"seed{seed}"
            model = tiny_model(seed=seed, local_dim=local_dim)
            save_final(run, model, path_model_spec(model))
            (run / "train_log.csv").write_text("step,loss,time\n10,0.5,1.0\n20,0.4,2.0\n")
    results = tmp_path / "RESULTS_studies.md"
    summary = write_study_report(study, dev, "dev", results, "latentdiff evaluate path-study")
    assert [row["variant"] for row in summary] == ["default", "multiscale"]
    assert all(row["seeds"] == 2 and row["success_mean"] == 1.0 for row in summary)
    # Different initialisations give different held-out losses; the spread is reported.
    assert all(row["heldout_x0_mse_std"] > 0 for row in summary)
    assert summary[1]["mmacs_per_window_mean"] > summary[0]["mmacs_per_window_mean"]
    text = results.read_text()
    assert "| multiscale | 2 |" in text and "latentdiff evaluate path-study" in text
    for plot in ("curves", "heldout_x0_mse", "pareto"):
        assert (tmp_path / "plots" / f"results_studies_{plot}.png").is_file()


def test_study_plot_names_every_variant_even_at_equal_macs(tmp_path: Path, monkeypatch) -> None:
    figures = []
    monkeypatch.setattr(study, "save_figure", lambda fig, path: figures.append(fig))
    rows = [
        {
            "variant": name,
            "mmacs_per_window_mean": 15.0,
            "valid_raw_ran_mean": 0.87,
            "ms_p50_ran_mean": 3.5,
        }
        for name in ("default", "plain", "two_stage", "uniform_weighting")
    ]
    study.plot_pareto(rows, tmp_path / "pareto.png")
    (legend,) = figures[0].legends
    assert [text.get_text() for text in legend.get_texts()] == [r["variant"] for r in rows]
    plt.close(figures[0])
