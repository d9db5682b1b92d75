"""Reduced-precision speech enhancement: kernels, eager enhancement, ONNX export, command line."""

from __future__ import annotations

import argparse
import io
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest
import soundfile as sf

from latentdiff.bench_quant import audio_path, combinations, take_turns
from latentdiff.commands import CommandTable
from latentdiff.se.commands_stream import add_commands
from latentdiff.se.enhancer import Enhancer
from latentdiff.se.model import SEModel, frame_noise
from latentdiff.se.onnx_export import export_onnx, read_metadata
from latentdiff.se.onnx_runner import OnnxStream
from latentdiff.se.stream_kernels import block_kernel

from .test_onnx_export import tiny_model

CLIP = Path(__file__).resolve().parent / "data" / "clips" / "syn913_00000_noisy.wav"


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    error = np.sum((estimate.astype(np.float64) - reference) ** 2)
    return float(10 * np.log10(np.sum(reference.astype(np.float64) ** 2) / error))


@pytest.fixture(scope="module")
def enhancer() -> Enhancer:
    return Enhancer.from_pretrained()


@pytest.fixture(scope="module")
def clip() -> np.ndarray:
    wave, rate = sf.read(str(CLIP), dtype="float32")
    assert rate == 16000
    return wave[:24000]  # 1.5 s


def streamed(enhancer: Enhancer, wave: np.ndarray, backend: str, precision: str) -> np.ndarray:
    """``wave`` through a stream, one block per call (the kernel's path)."""
    session = enhancer.stream(backend=backend, precision=precision)
    block = session.block_samples
    parts = [session.process(wave[i : i + block]) for i in range(0, wave.size, block)]
    return np.concatenate([*parts, session.flush()])


@pytest.mark.parametrize(
    ("backend", "precision", "min_snr"),
    # measured SNR against fp32: 41, 55, 62 and 43 dB
    [
        ("onnxruntime", "int8", 30),
        ("onnxruntime", "fp16", 45),
        ("torchscript", "int8", 50),
        ("torchscript", "bf16", 30),
    ],
)
def test_reduced_precision_kernels_stay_close_to_fp32(
    enhancer: Enhancer, clip: np.ndarray, backend: str, precision: str, min_snr: float
) -> None:
    reference = streamed(enhancer, clip, backend, "fp32")
    out = streamed(enhancer, clip, backend, precision)
    assert out.shape == clip.shape
    assert min_snr < snr_db(reference, out) < 200


@pytest.mark.parametrize(("precision", "min_snr"), [("int8", 50), ("bf16", 35), ("fp16", 50)])
def test_enhance_runs_the_eager_model_at_the_precision(
    enhancer: Enhancer, clip: np.ndarray, precision: str, min_snr: float
) -> None:
    reduced = Enhancer(enhancer.model, precision=precision)
    out = reduced.enhance(clip, 16000)
    # measured: 62 dB (int8 FiLM projections only), 43 dB (bf16), 60 dB (fp16)
    assert out.dtype == np.float32 and out.shape == clip.shape
    assert min_snr < snr_db(enhancer.enhance(clip, 16000), out) < 200
    assert reduced.model is enhancer.model  # streaming kernels start from the float32 model


def test_kernels_are_cached_per_precision() -> None:
    model = tiny_model().requires_grad_(False)
    kernel = block_kernel(model, 0, "onnxruntime", "int8")
    assert block_kernel(model, 0, "onnxruntime", "int8") is kernel
    assert block_kernel(model, 0, "onnxruntime") is not kernel


def test_precisions_must_suit_the_backend(enhancer: Enhancer) -> None:
    with pytest.raises(ValueError, match=r"one of \('fp32', 'int8', 'bf16', 'fp16'\)"):
        Enhancer(enhancer.model, precision="int4")
    with pytest.raises(ValueError, match=r"onnxruntime backend runs .*'fp16'\), got 'bf16'"):
        enhancer.stream(precision="bf16")
    with pytest.raises(ValueError, match="eager backend runs fp32 only"):
        enhancer.stream(backend="eager", precision="int8")
    with pytest.raises(ValueError, match="torchscript backend runs"):
        block_kernel(enhancer.model, 1, "torchscript", "int4")
    assert Enhancer(enhancer.model, precision="bf16").stream(backend="torchscript").precision == (
        "bf16"
    )


def export_stream(path: Path, model: SEModel, wave: np.ndarray) -> np.ndarray:
    """``wave`` through the standalone runner with the offline model's noise."""

    def noise(frame: int) -> np.ndarray:
        return frame_noise([0], frame, 1, model.channels).numpy()

    stream = OnnxStream(path, noise=noise)
    return np.concatenate([stream.process(wave), stream.flush()])


def test_int8_export_runs_in_the_standalone_runner(clip: np.ndarray, tmp_path: Path) -> None:
    model = tiny_model()
    full = export_onnx(model, tmp_path / "fp32.onnx", steps=0)
    small = export_onnx(model, tmp_path / "int8.onnx", steps=0, precision="int8")
    assert read_metadata(small)["precision"] == "int8"
    assert read_metadata(full)["precision"] == "fp32"
    assert OnnxStream(small).precision == "int8"
    assert small.stat().st_size < full.stat().st_size  # int8 weights
    session = ort.InferenceSession(str(small), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()][:2] == ["audio", "noise"]  # unused at steps=0
    reference, out = export_stream(full, model, clip), export_stream(small, model, clip)
    assert out.shape == clip.shape
    assert 35 < snr_db(reference, out) < 200  # measured: 49 dB (random weights)


def stream_cli(monkeypatch: pytest.MonkeyPatch, stdin: bytes, *argv: str) -> tuple[int, bytes]:
    """``latentdiff stream ARGV`` in this process with ``stdin`` as its standard input."""
    parser = argparse.ArgumentParser(prog="latentdiff")
    add_commands(CommandTable(parser.add_subparsers(dest="verb", required=True)))
    args = parser.parse_args(["stream", *argv])
    stdout = io.BytesIO()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
    monkeypatch.setattr(sys, "stdout", io.TextIOWrapper(stdout, write_through=True))
    return int(args.run(args)), stdout.getvalue()


def test_stream_command_takes_the_precision(
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    enhancer: Enhancer,
    clip: np.ndarray,
) -> None:
    pcm = np.clip(np.rint(clip[:8000] * 32768), -32768, 32767).astype("<i2")
    code, out = stream_cli(monkeypatch, pcm.tobytes(), "--stdin", "--stdout", "--precision", "int8")
    assert code == 0
    enhanced = np.frombuffer(out, dtype="<i2").astype(np.float32) / 32768
    assert enhanced.size == pcm.size
    assert 30 < snr_db(enhancer.enhance(pcm), enhanced) < 200  # measured: 42 dB
    code, _ = stream_cli(monkeypatch, pcm.tobytes(), "--stdin", "--stdout", "--precision", "bf16")
    assert code == 1
    assert "onnxruntime backend runs" in capsys.readouterr().err


def test_bench_pairs_backends_with_their_precisions_and_rotates_turns() -> None:
    pairs = combinations(["onnxruntime", "torchscript"], ["int8", "bf16"])
    assert pairs == [
        ("onnxruntime", "fp32"),
        ("onnxruntime", "int8"),
        ("torchscript", "fp32"),
        ("torchscript", "int8"),
        ("torchscript", "bf16"),
    ]
    calls: list[tuple[int, str]] = []

    def runner(name: str) -> Callable[[int], str]:
        return lambda item: calls.append((item, name)) or name

    seconds, results = take_turns({name: runner(name) for name in "abc"}, [0, 1], first=1)
    assert calls == [(0, "b"), (0, "c"), (0, "a"), (1, "c"), (1, "a"), (1, "b")]
    assert results == {"a": ["a", "a"], "b": ["b", "b"], "c": ["c", "c"]}
    assert all(len(times) == 2 and min(times) >= 0 for times in seconds.values())


def test_bench_finds_audio_relative_to_the_recipe(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    recipe = tmp_path / "recipe"
    (recipe / "data" / "wav").mkdir(parents=True)
    (recipe / "data" / "wav" / "a.wav").touch()
    monkeypatch.chdir(tmp_path)
    data_dir = recipe / "data" / "dev"
    assert audio_path("data/wav/a.wav", data_dir) == recipe.resolve() / "data" / "wav" / "a.wav"
    assert audio_path("recipe/data/wav/a.wav", data_dir) == Path("recipe/data/wav/a.wav")
    assert audio_path("missing.wav", data_dir) == Path("missing.wav")
