"""Per-block ONNX export: parity with the offline model, metadata, standalone runner, errors."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf
import torch

from latentdiff.cli import main as cli_main
from latentdiff.core.autoencoder import Autoencoder1D, AutoencoderConfig
from latentdiff.core.nets import BackboneConfig
from latentdiff.se import onnx_export, onnx_runner
from latentdiff.se.enhancer import Enhancer
from latentdiff.se.model import CondEncoderConfig, SEModel, SEModelConfig, build_se_model
from latentdiff.se.model import frame_noise as torch_frame_noise
from latentdiff.se.onnx_export import export_onnx, read_metadata
from latentdiff.se.onnx_runner import OnnxStream

CLIP = Path(__file__).resolve().parent / "data" / "clips" / "syn913_00000_noisy.wav"
SEED = 7
TOLERANCE = 1e-4
DELAY = 80  # win - hop of the bundled model's STFT


def tiny_model(kind: str = "latent_se", target: str = "complex", sampler: str = "heun") -> SEModel:
    """A small untrained model with random weights."""
    torch.manual_seed(0)
    cfg = SEModelConfig(
        kind=kind,
        target=target,
        cond_encoder=CondEncoderConfig(channels=16, out_channels=8, res_blocks=1),
        backbone=BackboneConfig(channels=16, depth=3, embed_dim=16),
    )
    cfg.diffusion = replace(cfg.diffusion, sampler=sampler)
    ae = None
    if kind == "latent_se":
        channels = 162 if target == "complex" else 81
        ae = Autoencoder1D(
            AutoencoderConfig(in_channels=channels, latent_channels=4, channels=16, strides=(2,))
        )
    return build_se_model(cfg, ae).eval()


@pytest.fixture(scope="module")
def model() -> SEModel:
    return Enhancer.from_pretrained().model


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    wave, rate = sf.read(str(CLIP), dtype="float32")
    assert rate == 16000
    return wave[:24000]  # 1.5 s


@pytest.fixture(scope="module")
def exported(
    model: SEModel, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[int | None], Path]:
    """Export of the bundled model per steps value, made once per module."""
    root = tmp_path_factory.mktemp("onnx")
    paths: dict[int | None, Path] = {}

    def get(steps: int | None) -> Path:
        if steps not in paths:
            paths[steps] = export_onnx(model, root / f"steps{steps}" / "model.onnx", steps=steps)
        return paths[steps]

    return get


def noise_of(model: SEModel, seed: int) -> Callable[[int], np.ndarray]:
    """The offline model's sampling noise of one latent frame."""
    return lambda frame: torch_frame_noise([seed], frame, 1, model.channels).numpy()


def offline(model: SEModel, wave: np.ndarray, steps: int | None, seed: int = SEED) -> np.ndarray:
    return model.enhance(torch.from_numpy(wave)[None], [seed], steps)[0].numpy()


def run_blocks(path: Path, wave: np.ndarray, noise: Callable[[int], np.ndarray]) -> np.ndarray:
    """Feed ``wave`` block by block to a bare onnxruntime session, states from the metadata."""
    meta = read_metadata(path)
    block = int(meta["block_samples"])
    shapes = json.loads(meta["states"])
    states = {name: np.zeros(shape, np.float32) for name, shape in shapes.items()}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    outputs = [o.name for o in session.get_outputs()]
    enhanced = []
    for index in range(wave.size // block):
        audio = wave[None, index * block : (index + 1) * block]
        result = session.run(outputs, {"audio": audio, "noise": noise(index), **states})
        enhanced.append(result[0][0])
        new_states = zip(outputs[1:], result[1:], strict=True)
        states = {name.removeprefix("new_"): value for name, value in new_states}
    return np.concatenate(enhanced)


@pytest.mark.parametrize("steps", [None, 0, 1])
def test_blocks_equal_offline_output_delayed(
    model: SEModel, clip: np.ndarray, exported: Callable[[int | None], Path], steps: int | None
) -> None:
    streamed = run_blocks(exported(steps), clip, noise_of(model, SEED))
    reference = offline(model, clip, steps)
    assert streamed.shape == clip.shape
    np.testing.assert_allclose(streamed[DELAY:], reference[:-DELAY], rtol=0, atol=TOLERANCE)
    # The diffusion changes the output, so the comparison above sees the noise input.
    if steps != 0:
        assert np.abs(reference - offline(model, clip, 0)).max() > 100 * TOLERANCE


def test_metadata_describes_every_state(exported: Callable[[int | None], Path]) -> None:
    for steps, parts in [(2, ("denoise1", "encoder", "decoder")), (0, ())]:
        path = exported(steps)
        meta = read_metadata(path)
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
        inputs = {i.name: i.shape for i in session.get_inputs()}
        outputs = {o.name: o.shape for o in session.get_outputs()}
        states = json.loads(meta["states"])
        assert inputs == {"audio": [1, 160], "noise": [1, 48, 1], **states}
        assert outputs == {"enhanced": [1, 160], **{f"new_{k}": v for k, v in states.items()}}
        assert states["state_stft_pending"] == states["state_ola_tail"] == [1, DELAY]
        assert (meta["sample_rate"], meta["block_samples"], meta["delay_samples"]) == (
            "16000",
            "160",
            str(DELAY),
        )
        assert float(meta["latency_ms"]) == 20.0
        assert meta["steps"] == str(steps)
        for part in ("cond", "head", *parts):
            assert any(name.startswith(f"state_{part}_") for name in states), part
        assert all(0 not in shape for shape in states.values())
        if steps == 0:
            diffusion = ("state_encoder", "state_decoder", "state_denoise")
            assert not any(name.startswith(diffusion) for name in states)


def test_state_names_follow_the_feature_path(exported: Callable[[int | None], Path]) -> None:
    states = json.loads(read_metadata(exported(2))["states"])
    # Per part: its non-empty states (kernel-1 convolutions hold none), in path.states() order.
    parts = [("cond", 6), ("head", 7), ("encoder", 6), ("decoder", 7)]
    parts += [("denoise0", 7), ("denoise1", 7)]  # one TCN per dpmpp_2m step
    expected = [f"state_{part}_{index}" for part, count in parts for index in range(count)]
    assert list(states) == ["state_stft_pending", "state_ola_tail", *expected]
    assert states["state_decoder_0"] == [2, 48, 2]  # D(z_pred + r) and D(z_pred) in one batch
    assert states["state_denoise1_6"] == [1, 64, 64]


def test_stream_of_any_cutting_equals_offline(
    model: SEModel, clip: np.ndarray, exported: Callable[[int | None], Path]
) -> None:
    stream = OnnxStream(exported(None), noise=noise_of(model, SEED))
    rng = np.random.default_rng(0)
    cuts = np.cumsum(rng.choice([0, 1, 37, 160, 333, 1000], size=60))
    pieces = [stream.process(part) for part in np.split(clip, cuts[cuts < clip.size])]
    pieces.append(stream.flush())
    np.testing.assert_allclose(
        np.concatenate(pieces), offline(model, clip, None), rtol=0, atol=TOLERANCE
    )
    with pytest.raises(RuntimeError, match="reset"):
        stream.process(clip[:10])
    stream.reset()
    int16 = (clip[:800] * 32768).astype(np.int16)
    assert np.concatenate([stream.process(int16), stream.flush()]).shape == (800,)


def test_seeded_noise_is_reproducible(exported: Callable[[int | None], Path]) -> None:
    wave = sf.read(str(CLIP), dtype="float32")[0][:4000]

    def enhance(seed: int, block: int) -> np.ndarray:
        stream = OnnxStream(exported(None), seed=seed)
        parts = [stream.process(wave[i : i + block]) for i in range(0, wave.size, block)]
        return np.concatenate([*parts, stream.flush()])

    np.testing.assert_allclose(enhance(1, 4000), enhance(1, 123), rtol=0, atol=1e-6)
    assert np.abs(enhance(1, 4000) - enhance(2, 4000)).max() > 10 * TOLERANCE


def test_standalone_runner_needs_no_latentdiff(
    model: SEModel, clip: np.ndarray, exported: Callable[[int | None], Path], tmp_path: Path
) -> None:
    runner = tmp_path / "onnx_runner.py"
    shutil.copy(onnx_runner.__file__, runner)
    noisy, enhanced = tmp_path / "noisy.wav", tmp_path / "enhanced.wav"
    sf.write(str(noisy), clip[:8000], 16000, subtype="FLOAT")
    argv = [str(runner), str(exported(0)), str(noisy), str(enhanced)]
    script = (
        "import runpy, sys\n"
        "sys.modules['latentdiff'] = None  # any import of latentdiff fails\n"
        f"sys.argv = {argv!r}\n"
        "try:\n"
        "    runpy.run_path(sys.argv[0], run_name='__main__')\n"
        "except SystemExit as exit_:\n"
        "    code = exit_.code\n"
        "assert 'torch' not in sys.modules, 'the runner imported torch'\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-I", "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "real-time factor" in done.stdout
    out, rate = sf.read(str(enhanced), dtype="float32")
    assert rate == 16000 and out.shape == (8000,)
    # PCM_16 output: the quantisation step is 3e-5.
    np.testing.assert_allclose(out, offline(model, clip[:8000], 0), rtol=0, atol=TOLERANCE)

    sf.write(str(noisy), clip[:800], 8000)
    wrong_rate = subprocess.run(
        [sys.executable, "-I", str(runner), str(exported(0)), str(noisy), str(enhanced)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert wrong_rate.returncode == 1 and "16000 Hz" in wrong_rate.stderr


def test_other_targets_and_samplers_match_offline(tmp_path: Path) -> None:
    small = tiny_model(target="complex", sampler="heun")  # 2 steps = 3 denoiser calls
    path = export_onnx(small, tmp_path / "tiny.onnx", steps=2)
    states = json.loads(read_metadata(path)["states"])
    assert {f"state_denoise{i}_0" for i in range(3)} <= states.keys()
    wave = sf.read(str(CLIP), dtype="float32")[0][:4800]
    streamed = run_blocks(path, wave, noise_of(small, SEED))
    reference = small.enhance(torch.from_numpy(wave)[None], [SEED], 2)[0].numpy()
    scale = np.abs(reference).max()
    np.testing.assert_allclose(streamed[DELAY:], reference[:-DELAY], rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize(("kind", "steps"), [("predictive", 0), ("stft_diffusion", 2)])
def test_baseline_models_match_offline(kind: str, steps: int, tmp_path: Path) -> None:
    small = tiny_model(kind=kind, target="magnitude", sampler="dpmpp_2m")
    path = export_onnx(small, tmp_path / "tiny.onnx", steps=steps)
    wave = sf.read(str(CLIP), dtype="float32")[0][:4800]
    if kind == "predictive":  # no sampler: the noise input is a placeholder
        streamed = run_blocks(path, wave, lambda frame: np.zeros((1, 1, 1), np.float32))
    else:
        streamed = run_blocks(path, wave, noise_of(small, SEED))
    reference = small.enhance(torch.from_numpy(wave)[None], [SEED], steps)[0].numpy()
    scale = np.abs(reference).max()
    np.testing.assert_allclose(streamed[DELAY:], reference[:-DELAY], rtol=0, atol=1e-5 * scale)


@pytest.mark.parametrize(
    ("small", "steps", "message"),
    [
        (lambda: tiny_model(kind="predictive"), 2, "no diffusion steps"),
        (lambda: tiny_model(sampler="ddpm"), 2, "ddpm"),
        (lambda: tiny_model(), -1, "steps must be >= 0"),
    ],
)
def test_unsupported_models_raise(
    small: Callable[[], SEModel], steps: int | None, message: str, tmp_path: Path
) -> None:
    with pytest.raises(ValueError, match=message):
        export_onnx(small(), tmp_path / "model.onnx", steps=steps)
    assert not any(tmp_path.iterdir())


def test_lookahead_beyond_the_block_raises(tmp_path: Path) -> None:
    small = tiny_model()
    small.cfg.backbone.lookahead = 1
    looking = build_se_model(small.cfg, small.autoencoder)
    with pytest.raises(ValueError, match="looks 1 frames ahead"):
        export_onnx(looking, tmp_path / "model.onnx")


def test_export_leaves_the_model_unchanged(tmp_path: Path) -> None:
    small = tiny_model()
    before = {name: value.clone() for name, value in small.state_dict().items()}
    export_onnx(small, tmp_path / "model.onnx", steps=1)
    after = small.state_dict()
    assert after.keys() == before.keys()
    assert all(torch.equal(after[name], value) for name, value in before.items())
    assert not any("forward" in vars(module) for module in small.modules())


def test_export_writes_atomically(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "new" / "dir" / "model.onnx"
    assert export_onnx(tiny_model(), target, steps=1) == target
    assert read_metadata(target)["steps"] == "1"
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]
    good = target.read_bytes()

    def broken_save(graph: object, path: str) -> None:
        Path(path).write_bytes(b"partial")
        raise OSError("disk full")

    monkeypatch.setattr(onnx_export.onnx, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        export_onnx(tiny_model(), target, steps=0)
    assert target.read_bytes() == good
    assert [p.name for p in target.parent.iterdir()] == ["model.onnx"]


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "enhancer.onnx"
    assert cli_main(["export", "--onnx", str(target), "--steps", "0"]) == 0
    assert read_metadata(target)["steps"] == "0"
    assert "160 samples per call" in capsys.readouterr().out
    assert cli_main(["export", "--onnx", str(target), "--steps", "-1"]) == 1
    assert "steps must be >= 0" in capsys.readouterr().err
    missing = tmp_path / "missing.pt"
    assert cli_main(["export", "--onnx", str(target), "--model", str(missing)]) == 1
    assert "error" in capsys.readouterr().err
