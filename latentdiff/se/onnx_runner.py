"""Run a speech enhancer exported by ``latentdiff export --onnx`` with onnxruntime alone.

This file needs only numpy, onnxruntime and soundfile: copy it anywhere and run

    python onnx_runner.py model.onnx noisy.wav enhanced.wav [--seed N]

The input must be at the model's sample rate (16 kHz for the bundled model); several channels are
averaged. :class:`OnnxStream` is the streaming API: ``process`` takes blocks of any length and
returns the enhanced samples that are ready, ``flush`` returns the rest, and the concatenated
output has the input's length and timing (the model's ``delay_samples`` are removed).

Each call of the graph takes ``audio`` (1, block), ``noise`` (1, channels, 1) and the ``state_*``
inputs, and returns ``enhanced`` (1, block) and the ``new_state_*`` outputs; the block size, the
output delay and the states' shapes (zeros at the start) come from the model's metadata. Exports
at reduced precision (``--precision int8`` or ``fp16``) have the same float32 interface; their
metadata names the precision.

Sampling noise is drawn per latent frame from numpy's generator seeded with ``(seed, frame)``, so
any cutting into blocks gives the same output; it is not torch's noise stream, so results differ
from ``latentdiff enhance`` by a different draw of the correction diffusion (``steps=0`` exports
match it). Pass ``noise=`` to supply the noise yourself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import soundfile as sf

NoiseFn = Callable[[int], np.ndarray]


def _as_samples(samples: np.ndarray) -> np.ndarray:
    """A 1-D float or int16 array -> finite float32 samples (int16 scaled by 1/32768)."""
    x = np.asarray(samples)
    if x.ndim != 1:
        raise ValueError(f"expected a 1-D block of samples, got shape {x.shape}")
    if x.dtype == np.int16:
        return x.astype(np.float32) / 32768.0
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"expected float or int16 samples, got dtype {x.dtype}")
    if not np.isfinite(x).all():
        raise ValueError("samples must be finite (no NaN/Inf)")
    return x.astype(np.float32)


class OnnxStream:
    """Block-wise enhancement with an exported model; states live here, between calls."""

    def __init__(
        self,
        model_path: str | Path,
        *,
        seed: int = 0,
        noise: NoiseFn | None = None,
        threads: int = 1,
    ) -> None:
        if seed < 0:
            raise ValueError(f"seed must be >= 0, got {seed}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        self.session = ort.InferenceSession(
            str(model_path), options, providers=["CPUExecutionProvider"]
        )
        meta = self.session.get_modelmeta().custom_metadata_map
        try:
            self.sample_rate = int(meta["sample_rate"])
            self.block_samples = int(meta["block_samples"])
            self.delay_samples = int(meta["delay_samples"])
            self.latency_ms = float(meta["latency_ms"])
            self.steps = int(meta["steps"])
            self.precision = meta.get("precision", "fp32")  # exports before precisions: fp32
            self._noise_shape = tuple(json.loads(meta["noise_shape"]))
            self._state_shapes = {k: tuple(v) for k, v in json.loads(meta["states"]).items()}
        except KeyError as err:
            raise ValueError(f"{model_path}: not a latentdiff streaming export ({err})") from None
        self._seed = seed
        self._noise = noise if noise is not None else self._seeded_noise
        self._outputs = ["enhanced", *(f"new_{name}" for name in self._state_shapes)]
        self.reset()

    def _seeded_noise(self, frame: int) -> np.ndarray:
        rng = np.random.default_rng([self._seed, frame])
        return rng.standard_normal(self._noise_shape, dtype=np.float32)

    def reset(self) -> None:
        """Start a new stream: zero states, nothing buffered."""
        self._states = {k: np.zeros(s, dtype=np.float32) for k, s in self._state_shapes.items()}
        self._pending = np.zeros(0, dtype=np.float32)
        self._blocks = 0
        self._received = 0
        self._emitted = 0
        self._finished = False

    def process(self, samples: np.ndarray) -> np.ndarray:
        """New input samples (any length) -> the enhanced samples now ready (float32, 1-D)."""
        if self._finished:
            raise RuntimeError("the stream was flushed; call reset() to start a new one")
        x = _as_samples(samples)
        self._received += x.size
        self._pending = np.concatenate([self._pending, x])
        ready = self._pending.size // self.block_samples * self.block_samples
        out = self._run(self._pending[:ready])
        self._pending = self._pending[ready:]
        return self._emit(out)

    def flush(self) -> np.ndarray:
        """The remaining output (the stream ends with zeros); then the stream is finished."""
        if self._finished:
            raise RuntimeError("the stream was flushed; call reset() to start a new one")
        missing = self._received + self.delay_samples - self._blocks * self.block_samples
        n_blocks = -(-missing // self.block_samples)
        tail = np.zeros(n_blocks * self.block_samples, dtype=np.float32)
        tail[: self._pending.size] = self._pending
        self._pending = np.zeros(0, dtype=np.float32)
        self._finished = True
        return self._emit(self._run(tail))

    def _run(self, samples: np.ndarray) -> np.ndarray:
        """Whole blocks of input -> as many stream samples (delayed by ``delay_samples``)."""
        outputs = [np.zeros(0, dtype=np.float32)]
        for start in range(0, samples.size, self.block_samples):
            feed = {
                "audio": samples[None, start : start + self.block_samples],
                "noise": np.asarray(self._noise(self._blocks), dtype=np.float32),
                **self._states,
            }
            enhanced, *states = self.session.run(self._outputs, feed)
            self._states = dict(zip(self._state_shapes, states, strict=True))
            outputs.append(enhanced[0])
            self._blocks += 1
        return np.concatenate(outputs)

    def _emit(self, stream: np.ndarray) -> np.ndarray:
        """Drop the leading ``delay_samples`` of the stream and anything past the input's end."""
        first = max(self.delay_samples - (self._blocks * self.block_samples - stream.size), 0)
        out = stream[first:][: self._received - self._emitted]
        self._emitted += out.size
        return out


def enhance_file(stream: OnnxStream, source: Path, target: Path) -> float:
    """Enhance one file into ``target`` (format from its suffix); returns the seconds taken."""
    wave, rate = sf.read(str(source), dtype="float32", always_2d=True)
    if rate != stream.sample_rate:
        raise ValueError(f"{source}: {rate} Hz; the model runs at {stream.sample_rate} Hz")
    stream.reset()
    start = time.perf_counter()
    enhanced = np.concatenate([stream.process(wave.mean(axis=1)), stream.flush()])
    elapsed = time.perf_counter() - start
    sf.write(str(target), enhanced, rate)
    return elapsed


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: enhance one file; returns the exit code."""
    parser = argparse.ArgumentParser(description="enhance a file with an exported streaming model")
    parser.add_argument("model", type=Path, help="exported .onnx file")
    parser.add_argument("input", type=Path, help="noisy audio file at the model's rate")
    parser.add_argument("output", type=Path, help="enhanced audio file to write")
    parser.add_argument("--seed", type=int, default=0, help="sampling noise seed (>= 0)")
    parser.add_argument("--threads", type=int, default=1, help="onnxruntime threads")
    args = parser.parse_args(argv)
    try:
        stream = OnnxStream(args.model, seed=args.seed, threads=args.threads)
        elapsed = enhance_file(stream, args.input, args.output)
    except (ValueError, RuntimeError, OSError, sf.SoundFileError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    seconds = sf.info(str(args.output)).duration
    print(
        f"{args.input} -> {args.output}: {seconds:.2f} s of audio in {elapsed:.2f} s "
        f"(real-time factor {elapsed / max(seconds, 1e-9):.3f}), "
        f"latency {stream.latency_ms:.1f} ms, precision {stream.precision}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
