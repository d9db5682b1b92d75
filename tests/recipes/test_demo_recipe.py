"""The demo recipe's stage script runs end to end with tiny settings and writes a report."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEMO_CONF = ROOT / "egs" / "demo" / "v1" / "conf"


def _shrink(conf: Path) -> None:
    """Same configs as the demo, with a tiny corpus and a few training steps."""
    data = yaml.safe_load((conf / "data.yaml").read_text())
    data.update(n_train=128, n_test=64, length=64)
    (conf / "data.yaml").write_text(yaml.safe_dump(data))
    for name in ("autoencoder.yaml", "latent_diffusion.yaml", "data_diffusion.yaml"):
        cfg = yaml.safe_load((conf / name).read_text())
        cfg["trainer"].update(steps=12, ckpt_every=5, log_every=4, warmup_steps=2, progress=False)
        (conf / name).write_text(yaml.safe_dump(cfg))


def _env() -> dict[str, str]:
    env = dict(os.environ)
    utils = str(ROOT / "recipes" / "utils")
    env["PATH"] = os.pathsep.join([utils, str(Path(sys.executable).parent), env["PATH"]])
    env["OMP_NUM_THREADS"] = "1"
    return env


def test_toy_stages_write_results_and_plots(tmp_path: Path) -> None:
    shutil.copytree(DEMO_CONF, tmp_path / "conf")
    _shrink(tmp_path / "conf")
    cmd = [str(ROOT / "recipes" / "toy.sh"), "--eval-steps", "1 2", "--eval-samples", "32"]
    run = subprocess.run(cmd, cwd=tmp_path, env=_env(), capture_output=True, text=True, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    results = (tmp_path / "RESULTS.md").read_text()
    assert "latentdiff evaluate toy" in results
    assert "| latent | dpmpp_2m | 2 | 2 |" in results
    assert (tmp_path / "plots" / "toy_quality_vs_nfe.png").stat().st_size > 10_000
    assert (tmp_path / "exp" / "latent_diffusion" / "final.pt").is_file()
    # A re-run from the evaluation stage reuses the trained models.
    again = subprocess.run(
        [*cmd, "--stage", "5"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Stage 2" not in again.stderr and "Stage 5" in again.stderr


def test_failed_stage_stops_the_recipe(tmp_path: Path) -> None:
    shutil.copytree(DEMO_CONF, tmp_path / "conf")
    (tmp_path / "conf" / "autoencoder.yaml").write_text("autoencoder: {no_such_field: 1}\n")
    run = subprocess.run(
        [str(ROOT / "recipes" / "toy.sh"), "--stop-stage", "2"],
        cwd=tmp_path,
        env=_env(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert run.returncode != 0
    log = (tmp_path / "exp" / "autoencoder" / "log" / "train.log").read_text()
    assert "no_such_field" in log
