"""Speech-enhancement models: shapes, latency, causality, cost accounting, configs, training."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.config import from_dict, load_yaml
from latentdiff.core.models import load_model
from latentdiff.core.nets import BackboneConfig
from latentdiff.se.datadir import DataDir, write_datadir
from latentdiff.se.features import SegmentConfig, SegmentDataset
from latentdiff.se.model import (
    HEADS,
    MODEL_KINDS,
    TARGETS,
    CondEncoderConfig,
    LatentSE,
    SEModel,
    SEModelConfig,
    build_se_model,
    frame_noise,
)
from latentdiff.se.train import (
    SEAutoencoderExperiment,
    SEModelExperiment,
    train_se_autoencoder,
    train_se_model,
)

torch.set_num_threads(1)
REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "egs" / "speech" / "se1" / "conf"
CLIPS = Path(__file__).resolve().parent / "data" / "clips"
SR = 16000


def tiny_model(kind: str, target: str = "complex", head: str = "mask") -> SEModel:
    """An untrained small model of ``kind`` with random (not zero) weights."""
    torch.manual_seed(0)
    cfg = SEModelConfig(
        kind=kind,
        target=target,
        head=head,
        cond_encoder=CondEncoderConfig(channels=16, out_channels=8, res_blocks=1),
        backbone=BackboneConfig(channels=16, depth=3, embed_dim=16),
    )
    ae = None
    if kind == "latent_se":
        ae = Autoencoder1D(
            AutoencoderConfig(
                in_channels=162 if target == "complex" else 81,
                latent_channels=4,
                channels=16,
                strides=(2,),
            )
        )
    return build_se_model(cfg, ae).eval()


@pytest.mark.parametrize("kind", MODEL_KINDS)
def test_enhance_shapes_and_cost(kind: str) -> None:
    model = tiny_model(kind)
    noisy = torch.randn(2, 4001) * 0.1
    out = model.enhance(noisy, seeds=[1, 2])
    assert out.shape == noisy.shape and torch.isfinite(out).all()
    macs = model.macs_per_second()
    assert macs["total"] == pytest.approx(sum(v for k, v in macs.items() if k != "total"))
    assert macs["cond_encoder"] > 0
    counts = model.parameter_counts()
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    if kind == "predictive":
        assert model.nfe() == 0
    else:
        assert model.nfe() == model.cfg.diffusion.steps == 2
        assert macs["denoiser"] > 0
        assert model.macs_per_second(4)["denoiser"] == pytest.approx(2 * macs["denoiser"])


def test_latency_is_traced_from_the_parts() -> None:
    latent = tiny_model("latent_se")
    # 160-sample window + 80-sample hop = 15 ms, plus one frame (5 ms) for the stride-2 blocks.
    assert latent.lookahead_frames() == 1
    assert latent.latency_ms() == pytest.approx(20.0)
    assert tiny_model("predictive").latency_ms() == pytest.approx(15.0)
    cfg = SEModelConfig(backbone=BackboneConfig(channels=8, depth=2, embed_dim=8, lookahead=2))
    ae = Autoencoder1D(
        AutoencoderConfig(in_channels=162, latent_channels=4, channels=8, strides=(2,))
    )
    # Every NFE and the predictive head add 2 latent frames = 4 STFT frames each.
    ahead = build_se_model(cfg, ae)
    assert ahead.lookahead_frames(steps=1) == 1 + 2 * (2 + 2)
    assert ahead.lookahead_frames(steps=3) == 1 + 2 * (2 + 6)


@pytest.mark.parametrize("kind", MODEL_KINDS)
@pytest.mark.parametrize("target", TARGETS)
@pytest.mark.parametrize("head", HEADS)
def test_changing_future_input_does_not_change_earlier_output(
    kind: str, target: str, head: str
) -> None:
    model = tiny_model(kind, target, head)
    gen = torch.Generator().manual_seed(3)
    noisy = torch.randn(1, 6400, generator=gen) * 0.2
    cut = 3200  # a multiple of the hop
    changed = noisy.clone()
    changed[:, cut:] = torch.randn(1, 6400 - cut, generator=gen)
    before, after = model.enhance(noisy, [5]), model.enhance(changed, [5])
    # Output sample m may use input up to m + win + lookahead hops (the DNS latency minus the hop).
    reach = round(model.latency_ms() * SR / 1000) - model.cfg.stft.hop
    safe = cut - reach
    assert torch.allclose(before[:, :safe], after[:, :safe], atol=1e-6)
    assert not torch.allclose(before[:, safe:cut], after[:, safe:cut], atol=1e-4)


def test_frame_noise_is_the_same_for_any_chunking() -> None:
    whole = frame_noise([7, 8], 0, 30, 4)
    assert whole.shape == (2, 4, 30)
    parts = torch.cat([frame_noise([7, 8], 0, 11, 4), frame_noise([7, 8], 11, 19, 4)], dim=-1)
    assert torch.equal(whole, parts)
    assert not torch.equal(whole[0], whole[1])


@pytest.mark.parametrize("head", HEADS)
def test_steps_zero_is_the_predictive_head_and_seeds_matter(head: str) -> None:
    model = tiny_model("latent_se", head=head)
    noisy = torch.randn(1, 3200) * 0.1
    assert torch.equal(model.enhance(noisy, [1], steps=2), model.enhance(noisy, [1], steps=2))
    assert not torch.allclose(model.enhance(noisy, [1]), model.enhance(noisy, [2]))
    assert torch.equal(model.enhance(noisy, [1], steps=0), model.enhance(noisy, [9], steps=0))
    assert model.nfe(0) == 0


def test_invalid_configs_are_rejected() -> None:
    with pytest.raises(ValueError, match="kind must be one of"):
        SEModelConfig(kind="wiener")
    with pytest.raises(ValueError, match="tcn"):
        SEModelConfig(backbone=BackboneConfig(name="unet"))
    with pytest.raises(ValueError, match="needs"):
        build_se_model(SEModelConfig(kind="latent_se"), None)
    bad_ae = Autoencoder1D(AutoencoderConfig(in_channels=10, latent_channels=2, strides=(2,)))
    with pytest.raises(ValueError, match="in_channels=162"):
        LatentSE(SEModelConfig(), bad_ae)


def test_recipe_configs_build_causal_20ms_models() -> None:
    ae_exp = from_dict(SEAutoencoderExperiment, load_yaml(CONF / "autoencoder.yaml"))
    ae = Autoencoder1D(ae_exp.autoencoder)
    latency = {}
    for name in MODEL_KINDS:
        exp = from_dict(SEModelExperiment, load_yaml(CONF / f"{name}.yaml"))
        assert exp.model.kind == name
        model = build_se_model(exp.model, ae if name == "latent_se" else None)
        latency[name] = model.latency_ms()
        assert model.nfe() <= 4
    assert latency == {"latent_se": 20.0, "predictive": 15.0, "stft_diffusion": 15.0}


def _clip_datadir(tmp_path: Path) -> Path:
    data = DataDir()
    for clean in sorted(CLIPS.glob("*_clean.wav")):
        utt = clean.name.removesuffix("_clean.wav")
        data.wav[utt] = str(CLIPS / f"{utt}_noisy.wav")
        data.spk1_scp[utt] = str(clean)
        data.utt2spk[utt] = utt
    write_datadir(data, tmp_path / "data")
    return tmp_path / "data"


def test_segment_dataset_tiles_utterances(tmp_path: Path) -> None:
    data_dir = _clip_datadir(tmp_path)
    dataset = SegmentDataset(data_dir, SegmentConfig(segment_seconds=0.5))
    noisy, clean = dataset[0]
    assert noisy.shape == clean.shape == (8000,)
    # Each 2 s clip gives four 0.5 s segments.
    assert len(dataset) == 12 and dataset.seconds == pytest.approx(6.0)
    assert not torch.equal(noisy, clean)


def _write_config(path: Path, base: Path, updates: dict[str, dict]) -> Path:
    """``base`` YAML with each top-level section updated from ``updates``."""
    data = yaml.safe_load(base.read_text())
    for section, values in updates.items():
        data[section].update(values)
    path.write_text(yaml.safe_dump(data))
    return path


def _losses(exp_dir: Path, column: str) -> list[float]:
    with (exp_dir / "train_log.csv").open() as handle:
        return [float(row[column]) for row in csv.DictReader(handle)]


def test_tiny_training_run_reduces_the_loss(tmp_path: Path) -> None:
    data_dir = _clip_datadir(tmp_path)
    trainer = {
        "steps": 60,
        "batch_size": 4,
        "lr": 3e-3,
        "warmup_steps": 5,
        "log_every": 10,
        "ckpt_every": 60,
        "ema_decay": 0.9,
        "tensorboard": False,
        "progress": False,
    }
    data = {"segment_seconds": 0.5}
    ae_cfg = _write_config(
        tmp_path / "ae.yaml",
        CONF / "autoencoder.yaml",
        {
            "trainer": trainer,
            "data": data,
            "autoencoder": {"channels": 16, "latent_channels": 8},
        },
    )
    train_se_autoencoder(ae_cfg, data_dir, tmp_path / "ae")
    ae_losses = _losses(tmp_path / "ae", "loss")
    assert ae_losses[-1] < 0.7 * ae_losses[0]

    small = {
        "cond_encoder": {"channels": 16, "out_channels": 8, "res_blocks": 1},
        "backbone": {"name": "tcn", "channels": 16, "depth": 3, "embed_dim": 16},
    }
    model_cfg = _write_config(
        tmp_path / "lse.yaml",
        CONF / "latent_se.yaml",
        {
            "trainer": trainer,
            "data": data,
            "model": small,
        },
    )
    train_se_model(model_cfg, data_dir, tmp_path / "lse", tmp_path / "ae" / "final.pt")
    pred = _losses(tmp_path / "lse", "pred_mse")
    assert pred[-1] < 0.8 * pred[0]
    model = load_model(tmp_path / "lse" / "final.pt")
    assert isinstance(model, LatentSE)
    noisy = torch.from_numpy(np.random.default_rng(0).standard_normal((1, 1600))).float() * 0.1
    assert model.enhance(noisy, [0]).shape == (1, 1600)
