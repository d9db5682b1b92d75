"""Training studies: finding runs, summarising metrics over seeds, plotting curves."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest

from latentdiff.core.study import (
    find_runs,
    plot_curves,
    plot_spread,
    spread_comparison,
    spread_section,
    summarise,
    time_to_loss,
)


def fake_run(
    root: Path, variant: str, seed: int, losses: list[float], finished: bool = True
) -> None:
    run = root / variant / f"seed{seed}"
    run.mkdir(parents=True)
    lines = ["step,loss,lr,time,rollback"]
    lines += [f"{10 * (i + 1)},{loss},0.1,{i + 1.5},{int(i == 1)}" for i, loss in enumerate(losses)]
    (run / "train_log.csv").write_text("\n".join(lines) + "\n")
    if finished:
        (run / "final.pt").write_bytes(b"")


def test_runs_are_found_sorted_and_unfinished_ones_skipped(tmp_path: Path) -> None:
    fake_run(tmp_path, "plain", 2, [1.0, 0.5])
    fake_run(tmp_path, "default", 1, [1.0, 0.4, 0.3])
    fake_run(tmp_path, "plain", 1, [1.0, 0.6])
    fake_run(tmp_path, "plain", 3, [1.0], finished=False)
    runs = find_runs(tmp_path)
    assert [(r.variant, r.seed) for r in runs] == [("default", 1), ("plain", 1), ("plain", 2)]
    assert runs[0].steps.tolist() == [10, 20, 30] and runs[0].loss[-1] == pytest.approx(0.3)
    assert runs[0].train_seconds == pytest.approx(3.5) and runs[0].rollbacks == 1


def test_an_empty_study_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="seed"):
        find_runs(tmp_path)


def test_summary_gives_mean_std_and_range_per_variant(tmp_path: Path) -> None:
    for seed, loss in ((1, 0.2), (2, 0.4), (3, 0.9)):
        fake_run(tmp_path, "plain", seed, [1.0, loss])
    fake_run(tmp_path, "default", 1, [1.0, 0.3])
    runs = find_runs(tmp_path)
    metrics = [{"loss": float(run.loss[-1])} for run in runs]
    rows = summarise(runs, metrics, order=["plain"])
    assert [row["variant"] for row in rows] == ["plain", "default"]
    plain, default = rows
    assert plain["seeds"] == 3 and plain["loss_mean"] == pytest.approx(0.5)
    assert plain["loss_std"] == pytest.approx(np.std([0.2, 0.4, 0.9], ddof=1))
    assert plain["loss_range"] == pytest.approx(0.7)
    assert default["seeds"] == 1 and math.isnan(default["loss_std"])


def test_plots_are_written(tmp_path: Path) -> None:
    fake_run(tmp_path, "a", 1, [1.0, 0.5, 0.4])
    fake_run(tmp_path, "b", 1, [1.0, 0.7, 0.6])
    runs = find_runs(tmp_path)
    plot_curves(runs, tmp_path / "plots" / "curves.png", "title")
    plot_spread(runs, [0.4, 0.6], tmp_path / "plots" / "spread.png", "loss")
    for name in ("curves.png", "spread.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"


def test_time_to_a_target_loss_uses_the_running_mean(tmp_path: Path) -> None:
    fake_run(tmp_path, "a", 1, [1.0, 0.5, 0.3, 0.2])  # logged at 1.5, 2.5, 3.5, 4.5 s
    (run,) = find_runs(tmp_path)
    assert time_to_loss(run, 0.5, window=1) == pytest.approx(2.5)
    assert time_to_loss(run, 0.4, window=2) == pytest.approx(3.5)  # means 0.75, 0.4, 0.25
    assert math.isnan(time_to_loss(run, 0.1, window=1))


def test_seed_spread_comparison_tests_the_variance_ratio(tmp_path: Path) -> None:
    stabilised = [0.50, 0.51, 0.49, 0.50, 0.51, 0.49]
    plain = [0.40, 0.60, 0.45, 0.55, 0.35, 0.65]
    for seed, (a, b) in enumerate(zip(stabilised, plain, strict=True), start=1):
        fake_run(tmp_path, "default", seed, [1.0, a])
        fake_run(tmp_path, "plain", seed, [1.0, b])
    runs = find_runs(tmp_path)
    metrics = [{"loss": float(run.loss[-1]), "constant": 1.0} for run in runs]
    loss, constant = spread_comparison(runs, metrics, "default", "plain", ["loss", "constant"])
    ratio = np.std(plain, ddof=1) / np.std(stabilised, ddof=1)
    assert loss["std_ratio"] == pytest.approx(ratio) and loss["seeds"] == "6 / 6"
    assert loss["f_test_p"] < 1e-3  # ratio 12: the stabilised variant clearly spreads less
    assert constant["std_ratio"] == 1.0 and constant["f_test_p"] == 1.0
    # Swapping the roles gives the inverse ratio and the same two-sided p-value.
    (swapped,) = spread_comparison(runs, metrics, "plain", "default", ["loss"])
    assert swapped["std_ratio"] == pytest.approx(1 / ratio)
    assert swapped["f_test_p"] == pytest.approx(loss["f_test_p"])
    assert "## Seed spread: default against plain" in spread_section(
        runs, metrics, "default", "plain", ["loss"]
    )
    # One seed of a variant: no spread to compare.
    assert spread_comparison(runs[:7], metrics[:7], "default", "plain", ["loss"]) == []
