"""The demo's speech-enhancement stages (recipes/se_demo.sh) run end to end with tiny settings."""

from __future__ import annotations

import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "recipes" / "se_demo.sh"
DEMO_CONF = ROOT / "egs" / "demo" / "v1" / "conf"
TOY_REPORT = "# Results: toy latent diffusion\n\n| model | steps |\n|---|---|\n| latent | 2 |\n"


def _edit(path: Path, **changes: dict[str, object]) -> None:
    """Update the YAML mapping under each key of ``changes``."""
    config = yaml.safe_load(path.read_text())
    for key, values in changes.items():
        config[key].update(values)
    path.write_text(yaml.safe_dump(config))


def _shrink(conf: Path) -> None:
    """The demo configs with a few voices and utterances and a few training steps."""
    corpus = yaml.safe_load((conf / "se_corpus.yaml").read_text())
    corpus["tts"].update(espeak_voices=5, utterances_per_voice=3)
    corpus["utterances"] = {"train": 8, "dev": 2, "test": 3}
    corpus["noise_tracks"] = {"train": 1, "dev": 1, "test": 1}
    corpus.update(track_seconds=4.0, max_seconds=3.0)
    (conf / "se_corpus.yaml").write_text(yaml.safe_dump(corpus))
    trainer = {"steps": 4, "batch_size": 2, "warmup_steps": 1, "log_every": 2, "ckpt_every": 4}
    for name in ("se_autoencoder.yaml", "se_model.yaml"):
        _edit(conf / name, trainer=trainer, data={"segment_seconds": 0.5})


def _run(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    utils = str(ROOT / "recipes" / "utils")
    env["PATH"] = os.pathsep.join([utils, str(Path(sys.executable).parent), env["PATH"]])
    cmd = [str(SCRIPT), "--append-to", "RESULTS.md", *args]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


def _table_rows(report: str) -> dict[str, dict[str, str]]:
    """Rows of the report's score table by "system steps"."""
    lines = [line for line in report.splitlines() if line.startswith("| ")]
    header = [cell.strip() for cell in lines[0].strip("|").split("|")]
    rows = [
        dict(zip(header, (c.strip() for c in line.strip("|").split("|")), strict=True))
        for line in lines[1:]
    ]
    return {f"{row['system']} {row['steps']}": row for row in rows}


def test_se_stages_score_the_demo_model_and_extend_the_report(tmp_path: Path) -> None:
    shutil.copytree(DEMO_CONF, tmp_path / "conf")
    _shrink(tmp_path / "conf")
    (tmp_path / "RESULTS.md").write_text(TOY_REPORT)

    run = _run(tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert all(f"Stage {n}" in run.stderr for n in range(6, 11))

    report = (tmp_path / "RESULTS_se.md").read_text()
    rows = _table_rows(report)
    assert set(rows) == {"noisy -", "LatentSE 0", "LatentSE 2"}
    assert rows["LatentSE 2"]["nfe"] == "2" and rows["LatentSE 0"]["nfe"] == "0"
    for row in rows.values():
        assert 1.0 <= float(row["pesq"]) <= 4.5
        assert 0.0 <= float(row["estoi"]) <= 1.0
        assert math.isfinite(float(row["si_sdr"]))
    check = json.loads((tmp_path / "exp" / "se_model" / "stream_check.json").read_text())
    assert check["max_abs_diff"] <= 1e-4 and check["blocks"] > 0
    assert "## Streaming" in report

    combined = (tmp_path / "RESULTS.md").read_text()
    assert combined.startswith(TOY_REPORT)
    assert combined.count("## Speech enhancement") == 1
    assert "### Test set" in combined and rows["LatentSE 2"]["pesq"] in combined


def test_report_section_is_replaced_not_repeated(tmp_path: Path) -> None:
    (tmp_path / "RESULTS_se.md").write_text("# Speech enhancement\n\nfirst\n")
    (tmp_path / "RESULTS.md").write_text(TOY_REPORT)
    for _ in range(2):
        assert _run(tmp_path, "--stage", "11").returncode == 0
    (tmp_path / "RESULTS_se.md").write_text("# Speech enhancement\n\nsecond\n")
    assert _run(tmp_path, "--stage", "11").returncode == 0
    combined = (tmp_path / "RESULTS.md").read_text()
    assert combined.startswith(TOY_REPORT)
    assert combined.count("## Speech enhancement") == 1
    assert "second" in combined and "first" not in combined

    # A toy re-evaluation rewrites RESULTS.md without the section; the next run restores it.
    (tmp_path / "RESULTS.md").write_text(TOY_REPORT)
    assert _run(tmp_path, "--stage", "11").returncode == 0
    assert (tmp_path / "RESULTS.md").read_text().count("## Speech enhancement") == 1
