"""The Enhancer API: input checks, rates, dtypes, channels, chunking, loading, bundled model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.checkpoint import save_checkpoint
from latentdiff.core.nets import BackboneConfig
from latentdiff.se import Enhancer
from latentdiff.se.audio import load_audio
from latentdiff.se.enhancer import BUNDLED_MODEL, export_model
from latentdiff.se.metrics import estoi, pesq_wb, si_sdr
from latentdiff.se.model import (
    CondEncoderConfig,
    SEModel,
    SEModelConfig,
    build_se_model,
    se_model_spec,
)

torch.set_num_threads(1)
DATA = Path(__file__).resolve().parent / "data"
CLIPS = DATA / "clips"
SR = 16000


def tiny_model(kind: str = "latent_se", target: str = "magnitude") -> SEModel:
    torch.manual_seed(0)
    cfg = SEModelConfig(
        kind=kind,
        target=target,
        cond_encoder=CondEncoderConfig(channels=16, out_channels=8, res_blocks=1),
        backbone=BackboneConfig(channels=16, depth=3, embed_dim=16),
    )
    ae = None
    if kind == "latent_se":
        channels = 81 if target == "magnitude" else 162
        ae = Autoencoder1D(
            AutoencoderConfig(in_channels=channels, latent_channels=4, channels=16, strides=(2,))
        )
    return build_se_model(cfg, ae).eval()


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer(tiny_model())


def speech_like(n: int, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    tone = 0.3 * np.sin(2 * np.pi * 220 * t) * (1 + np.sin(2 * np.pi * 3 * t))
    return (tone + 0.05 * rng.standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (np.array([0.1, np.nan, 0.2], dtype=np.float32), "NaN/Inf"),
        (np.array([0.1, np.inf], dtype=np.float64), "NaN/Inf"),
        (np.zeros(0, dtype=np.float32), "empty"),
        (np.zeros((2, 3, 400), dtype=np.float32), "1-D or 2-D"),
        (np.zeros((400, 300), dtype=np.float32), "channels"),
        (np.zeros(400, dtype=np.int32), "dtype"),
        ([0.0, 0.1, 0.2], "numpy array"),
    ],
)
def test_bad_inputs_raise_value_errors(enhancer: Enhancer, bad: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        enhancer.enhance(bad, sample_rate=SR)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("rate", "message"), [(0, "positive"), (-8000, "positive"), (16000.0, "int"), (True, "int")]
)
def test_bad_sample_rates_raise(enhancer: Enhancer, rate: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        enhancer.enhance(speech_like(800), sample_rate=rate)  # type: ignore[arg-type]


def test_bad_steps_raise(enhancer: Enhancer) -> None:
    with pytest.raises(ValueError, match="steps must be an int >= 0"):
        enhancer.enhance(speech_like(800), SR, steps=-1)
    with pytest.raises(ValueError, match="no diffusion steps"):
        Enhancer(tiny_model("predictive"), steps=2)


@pytest.mark.parametrize(
    ("rate", "length"), [(16000, 4001), (44100, 11025), (8000, 1999), (22050, 7), (48000, 1)]
)
def test_output_keeps_length_and_rate(enhancer: Enhancer, rate: int, length: int) -> None:
    out = enhancer.enhance(speech_like(length), sample_rate=rate)
    assert out.shape == (length,) and out.dtype == np.float32 and np.isfinite(out).all()


def test_resampled_input_matches_native_rate_processing(enhancer: Enhancer) -> None:
    """Enhancing at 48 kHz equals resampling to 16 kHz, enhancing, and resampling back."""
    from latentdiff.se.audio import resample

    x48 = resample(speech_like(16000), SR, 48000)
    direct = enhancer.enhance(x48, 48000)
    manual = resample(enhancer.enhance(resample(x48, 48000, SR), SR), SR, 48000)
    assert np.allclose(direct, manual[: direct.size], atol=1e-5)


def test_int16_and_multichannel_inputs(enhancer: Enhancer) -> None:
    x = speech_like(3200)
    pcm = np.round(x * 32767).astype(np.int16)
    from_int = enhancer.enhance(pcm, SR)
    from_float = enhancer.enhance(pcm.astype(np.float32) / 32768.0, SR)
    assert from_int.dtype == np.float32
    assert np.allclose(from_int, from_float, atol=1e-6)
    stereo = np.stack([x, 0.5 * x], axis=1)  # (T, C)
    mono = enhancer.enhance(stereo.mean(axis=1), SR)
    assert np.allclose(enhancer.enhance(stereo, SR), mono, atol=1e-6)
    assert np.allclose(enhancer.enhance(stereo.T, SR), mono, atol=1e-6)  # (C, T)


@pytest.mark.parametrize("kind", ["latent_se", "predictive", "stft_diffusion"])
def test_chunked_processing_equals_whole_signal(kind: str) -> None:
    model = tiny_model(kind)
    whole = Enhancer(model, chunk_seconds=60.0)
    chunked = Enhancer(model, chunk_seconds=0.13)  # many chunks, each with its own context
    x = speech_like(3 * SR + 123, seed=1)
    assert model.history_samples() < 3 * SR  # the chunks really cut the signal's history
    assert np.abs(whole.enhance(x, SR) - chunked.enhance(x, SR)).max() < 1e-4


def test_steps_and_seed_overrides(enhancer: Enhancer) -> None:
    x = speech_like(4000)
    two = enhancer.enhance(x, SR)
    assert np.array_equal(two, enhancer.enhance(x, SR, steps=2))
    assert not np.allclose(two, enhancer.enhance(x, SR, steps=1), atol=1e-6)
    assert not np.allclose(two, enhancer.enhance(x, SR, seed=3), atol=1e-6)
    assert enhancer.nfe == 2 and enhancer.latency_ms == pytest.approx(20.0)


def test_from_pretrained_exp_dir_and_fp16_export(tmp_path: Path) -> None:
    model = tiny_model()
    exp = tmp_path / "exp"
    weights = model.state_dict()
    save_checkpoint(
        exp / "final.pt",
        {"model": weights, "ema": weights, "extra": {"model": se_model_spec(model)}},
    )
    x = speech_like(4000)
    reference = Enhancer(model).enhance(x, SR)
    assert np.allclose(Enhancer.from_pretrained(exp).enhance(x, SR), reference, atol=1e-6)
    exported = export_model(exp, tmp_path / "small.pt")
    assert exported.stat().st_size < (exp / "final.pt").stat().st_size
    loaded = Enhancer.from_pretrained(exported)
    assert next(loaded.model.parameters()).dtype == torch.float32
    assert np.abs(loaded.enhance(x, SR) - reference).max() < 1e-2 * np.abs(reference).max() + 1e-4
    with pytest.raises(FileNotFoundError):
        Enhancer.from_pretrained(tmp_path / "missing")
    one_step = Enhancer.from_pretrained(export_model(exp, tmp_path / "one.pt", steps=1))
    assert one_step.model.default_steps == 1 and one_step.nfe == 1
    with pytest.raises(ValueError, match="steps"):
        export_model(exp, tmp_path / "none.pt", steps=0)


def _clip(name: str, kind: str) -> np.ndarray:
    return load_audio(CLIPS / f"{name}_{kind}.wav", SR)


@pytest.mark.skipif(not BUNDLED_MODEL.is_file(), reason="no bundled model")
def test_bundled_model_regression() -> None:
    """The bundled model scores on stored espeak-ng + noise clips as it did when released."""
    targets = json.loads((DATA / "regression.json").read_text())
    enhancer = Enhancer.from_pretrained()
    assert enhancer.latency_ms <= 20.0
    for name, expected in targets["clips"].items():
        noisy, clean = _clip(name, "noisy"), _clip(name, "clean")
        out = enhancer.enhance(noisy, SR)
        scores = {
            "pesq": pesq_wb(out, clean, SR),
            "estoi": estoi(out, clean, SR),
            "si_sdr": si_sdr(out, clean),
        }
        for metric, value in scores.items():
            tolerance = targets["tolerance"][metric]
            assert value == pytest.approx(expected["enhanced"][metric], abs=tolerance), (
                name,
                metric,
            )
        # The released model raised SI-SDR by 3.3-5.6 dB on every clip (PESQ: -0.28 to +0.26).
        assert scores["si_sdr"] > expected["noisy"]["si_sdr"] + 2.0, name
