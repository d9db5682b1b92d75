"""``latentdiff enhance IN OUT``: file and directory modes, bad files, atomic outputs."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from latentdiff.commands import CommandTable
from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.checkpoint import save_checkpoint
from latentdiff.core.nets import BackboneConfig
from latentdiff.se.commands_model import add_commands
from latentdiff.se.model import CondEncoderConfig, SEModelConfig, build_se_model, se_model_spec

torch.set_num_threads(1)
SR = 16000


def run_cli(*argv: str | Path) -> int:
    parser = argparse.ArgumentParser(prog="latentdiff")
    add_commands(CommandTable(parser.add_subparsers(dest="verb", required=True)))
    args = parser.parse_args([str(a) for a in argv])
    return int(args.run(args))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    torch.manual_seed(0)
    cfg = SEModelConfig(
        target="magnitude",
        cond_encoder=CondEncoderConfig(channels=16, out_channels=8, res_blocks=1),
        backbone=BackboneConfig(channels=16, depth=2, embed_dim=16),
    )
    ae = Autoencoder1D(
        AutoencoderConfig(in_channels=81, latent_channels=4, channels=16, strides=(2,))
    )
    model = build_se_model(cfg, ae)
    path = tmp_path_factory.mktemp("model") / "final.pt"
    weights = model.state_dict()
    save_checkpoint(
        path, {"model": weights, "ema": weights, "extra": {"model": se_model_spec(model)}}
    )
    return path


def _tone(seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * 300 * t)).astype(np.float32)


def _files(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


def test_directory_with_a_corrupt_file(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    source, target = tmp_path / "in", tmp_path / "out"
    (source / "sub").mkdir(parents=True)
    sf.write(source / "a.wav", _tone(0.5, SR), SR)
    sf.write(source / "sub" / "b.flac", _tone(0.3, 22050), 22050)
    (source / "broken.wav").write_bytes(b"RIFF\x10\x00\x00\x00WAVEjunkjunkjunk")
    (source / "notes.txt").write_text("not audio")

    assert run_cli("enhance", source, target, "--model", checkpoint) == 1
    err = capsys.readouterr().err
    assert "broken.wav" in err and "a.wav" not in err
    assert _files(target) == ["a.wav", "sub/b.flac"]  # no partial or temporary files
    info = sf.info(str(target / "sub" / "b.flac"))
    assert info.samplerate == 22050 and info.frames == int(0.3 * 22050)
    assert sf.info(str(target / "a.wav")).frames == int(0.5 * SR)


def test_single_file_and_steps_override(tmp_path: Path, checkpoint: Path) -> None:
    sf.write(tmp_path / "x.wav", _tone(0.4, SR), SR)
    assert (
        run_cli(
            "enhance", tmp_path / "x.wav", tmp_path / "y.wav", "--model", checkpoint, "--steps", "1"
        )
        == 0
    )
    one = sf.read(tmp_path / "y.wav")[0]
    assert one.shape == (int(0.4 * SR),)
    (tmp_path / "outdir").mkdir()
    assert run_cli("enhance", tmp_path / "x.wav", tmp_path / "outdir", "--model", checkpoint) == 0
    two = sf.read(tmp_path / "outdir" / "x.wav")[0]
    assert not np.allclose(one, two)


def test_bad_arguments_fail_cleanly(
    tmp_path: Path, checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sf.write(tmp_path / "x.wav", _tone(0.2, SR), SR)
    assert (
        run_cli("enhance", tmp_path / "missing.wav", tmp_path / "o.wav", "--model", checkpoint) == 1
    )
    assert "missing.wav" in capsys.readouterr().err
    assert (
        run_cli(
            "enhance",
            tmp_path / "x.wav",
            tmp_path / "o.wav",
            "--model",
            checkpoint,
            "--steps",
            "-2",
        )
        == 1
    )
    assert "steps" in capsys.readouterr().err
    assert (
        run_cli("enhance", tmp_path / "x.wav", tmp_path / "o.wav", "--model", tmp_path / "nomodel")
        == 1
    )
    assert not (tmp_path / "o.wav").exists()
