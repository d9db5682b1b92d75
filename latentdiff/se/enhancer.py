"""Enhance waveforms with a trained model: the ``Enhancer`` API and model export.

``Enhancer.enhance`` takes a 1-D (or multi-channel, see below) numpy waveform at any sample rate
and returns the enhanced float32 mono waveform at the same rate and length:

- int16 input is scaled by 1/32768; float input is used as is.
- A 2-D array is (T, C) or (C, T) with at most 8 channels (the smaller dimension); the channels
  are averaged to mono before enhancement (``latentdiff.se.audio.validate_waveform``, policy
  "mean"), so the output is mono with T samples.
- Other rates are resampled to the model rate (soxr HQ) and the result back to the input rate,
  then cropped or zero-padded to the input length.
- NaN/Inf samples, empty arrays, non-arrays, other dtypes, more than 2 dimensions, a
  non-positive sample rate or negative ``steps`` raise ValueError saying what is wrong.

Long signals are processed in bounded memory by overlapping chunks: each chunk of
``chunk_seconds`` is enhanced together with ``model.history_samples()`` samples of past context
and a little future context, and only its own span is kept. Chunks start at latent-frame
boundaries and the model draws its sampling noise per absolute frame index, so the result equals
processing the whole signal at once (up to float rounding) for the causal models here.

``precision`` (``latentdiff.core.quantize``) sets how the model runs: ``int8`` quantizes its linear
layers dynamically (convolutions stay float32), ``bf16`` / ``fp16`` run matrix products and
convolutions under autocast. Streaming sessions take it for their compiled kernels (see
``Enhancer.stream``).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch

from latentdiff.core.checkpoint import load_checkpoint, save_checkpoint
from latentdiff.core.models import load_model, resolve_checkpoint
from latentdiff.core.quantize import autocast, check_precision, quantize_module
from latentdiff.se.audio import resample, validate_waveform
from latentdiff.se.model import SEModel
from latentdiff.se.streaming import RealtimePolicy, StreamSession

BUNDLED_MODEL = Path(__file__).resolve().parents[1] / "pretrained" / "se" / "enhancer.pt"
FINAL_NAME = "final.pt"


def _model_path(path: str | Path) -> Path:
    """A checkpoint file, or an experiment dir's final.pt (else its newest checkpoint)."""
    path = Path(path)
    if path.is_dir() and (path / FINAL_NAME).is_file():
        return path / FINAL_NAME
    return resolve_checkpoint(path)


def _check_rate(sample_rate: Any) -> int:
    if isinstance(sample_rate, bool) or not isinstance(sample_rate, int | np.integer):
        raise ValueError(f"sample_rate must be an int, got {sample_rate!r}")
    if sample_rate <= 0:
        raise ValueError(f"sample_rate must be positive, got {sample_rate}")
    return int(sample_rate)


class Enhancer:
    """A speech-enhancement model ready to run on numpy waveforms (see the module docstring)."""

    def __init__(
        self,
        model: SEModel,
        *,
        steps: int | None = None,
        seed: int = 0,
        chunk_seconds: float = 30.0,
        device: str | torch.device = "cpu",
        precision: str = "fp32",
    ) -> None:
        if chunk_seconds <= 0:
            raise ValueError(f"chunk_seconds must be positive, got {chunk_seconds}")
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)
        self.precision = check_precision(precision)
        if precision == "int8" and self.device.type != "cpu":
            raise ValueError(f"int8 runs on the CPU only, not on {self.device}")
        # the model as ``enhance`` runs it; streaming kernels start from the float32 model
        self._runner = quantize_module(self.model, "int8") if precision == "int8" else self.model
        self.steps = self._check_steps(steps)
        self.seed = seed
        self.chunk_seconds = chunk_seconds

    @classmethod
    def from_pretrained(cls, path: str | Path | None = None, **kwargs: Any) -> Enhancer:
        """Load the bundled model (``path=None``), an experiment dir or a checkpoint file.

        Keyword arguments go to the constructor (``steps``, ``seed``, ``chunk_seconds``,
        ``device``, ``precision``).
        """
        if path is None:
            if not BUNDLED_MODEL.is_file():
                raise FileNotFoundError(f"no bundled model at {BUNDLED_MODEL}")
            path = BUNDLED_MODEL
        model = load_model(_model_path(path))
        if not isinstance(model, SEModel):
            raise ValueError(f"{path} holds a {type(model).__name__}, not an enhancement model")
        return cls(model, **kwargs)

    @property
    def sample_rate(self) -> int:
        """The model's own sample rate."""
        return self.model.sample_rate

    @property
    def latency_ms(self) -> float:
        """Algorithmic latency of the streaming mode (STFT window + hop + network lookahead)."""
        return self.model.latency_ms(self.steps)

    @property
    def latency_ms_window_convention(self) -> float:
        """Latency counted as window + lookahead (the DNS rule adds one hop)."""
        hop_ms = 1000.0 * self.model.cfg.stft.hop / self.sample_rate
        return self.latency_ms - hop_ms

    @property
    def nfe(self) -> int:
        """Denoiser evaluations per enhancement at the configured number of steps."""
        return self.model.nfe(self.steps)

    def stream(
        self,
        sample_rate: int | None = None,
        *,
        steps: int | None = None,
        seed: int | None = None,
        realtime: RealtimePolicy | None = None,
        backend: str = "onnxruntime",
        precision: str | None = None,
    ) -> StreamSession:
        """A streaming session (``latentdiff.se.streaming``) at ``sample_rate`` (default: the
        model's rate; other rates are resampled in and out with soxr's streaming resampler, which
        adds its delay and makes the output differ slightly from ``enhance``). ``backend`` runs
        single blocks with onnxruntime, torchscript or eager PyTorch (same output at fp32), at
        ``precision`` (default: the enhancer's; onnxruntime runs fp32, int8 and fp16, torchscript
        also bf16, eager fp32 only)."""
        rate = self.sample_rate if sample_rate is None else _check_rate(sample_rate)
        steps = self._check_steps(steps) if steps is not None else self.steps
        return StreamSession(
            self.model,
            steps=self.model.default_steps if steps is None else steps,
            seed=self.seed if seed is None else seed,
            sample_rate=rate,
            realtime=realtime,
            backend=backend,
            precision=self.precision if precision is None else precision,
        )

    def _check_steps(self, steps: int | None) -> int | None:
        if steps is None:
            return None
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise ValueError(f"steps must be an int >= 0, got {steps!r}")
        if steps > 0 and self.model.nfe(steps) == 0:
            raise ValueError(f"the {self.model.cfg.kind} model has no diffusion steps to set")
        return steps

    def enhance(
        self,
        x: np.ndarray,
        sample_rate: int = 16000,
        *,
        steps: int | None = None,
        seed: int | None = None,
    ) -> np.ndarray:
        """Enhanced float32 mono waveform with the length and rate of ``x``."""
        rate = _check_rate(sample_rate)
        wave = validate_waveform(x, name="input")
        steps = self._check_steps(steps) if steps is not None else self.steps
        model_wave = resample(wave, rate, self.sample_rate)
        if model_wave.size == 0:
            model_wave = np.zeros(1, dtype=np.float32)
        enhanced = self._enhance_model_rate(model_wave, steps, self.seed if seed is None else seed)
        out = resample(enhanced, self.sample_rate, rate)[: wave.size]
        return np.pad(out, (0, wave.size - out.size)).astype(np.float32)

    def _enhance_model_rate(self, wave: np.ndarray, steps: int | None, seed: int) -> np.ndarray:
        model = self._runner
        block = model.downsample * model.cfg.stft.hop
        body = max(block, round(self.chunk_seconds * self.sample_rate) // block * block)
        history = -(-model.history_samples(steps) // block) * block
        future = model.cfg.stft.win + 2 * block
        signal = torch.from_numpy(wave).to(self.device)[None]
        n = signal.shape[-1]
        out = np.empty(n, dtype=np.float32)
        for start in range(0, n, body):
            stop = min(start + body, n)
            first = max(start - history, 0)
            last = min(stop + future, n)
            with autocast(self.precision, self.device.type):
                chunk = model.enhance(
                    signal[:, first:last], [seed], steps, first_frame=first // block
                )
            out[start:stop] = chunk[0, start - first : stop - first].float().cpu().numpy()
        return out


def export_model(
    source: str | Path, destination: str | Path, *, half: bool = True, steps: int | None = None
) -> Path:
    """Write a compact inference checkpoint: EMA weights (matrices in fp16 if ``half``) + spec.

    ``source`` is a checkpoint or an experiment dir; loading casts the weights back to float32.
    ``steps`` sets the default number of sampler steps of the exported model.
    """
    path = _model_path(source)
    state = load_checkpoint(path)
    if steps is not None:
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
            raise ValueError(f"steps must be an int >= 1, got {steps!r}")
        config = state["extra"]["model"]["config"]
        if config.get("kind") == "predictive":
            raise ValueError("the predictive model has no sampler steps")
        config["diffusion"]["steps"] = steps
    weights = state["ema"] if state.get("ema") is not None else state["model"]
    if half:
        weights = {
            name: w.half() if w.is_floating_point() and w.dim() > 1 else w
            for name, w in weights.items()
        }
    save_checkpoint(destination, {"model": weights, "ema": None, "extra": state["extra"]})
    return Path(destination)


def evaluate_datadir(
    enhancer: Enhancer, data_dir: str | Path, *, max_utterances: int = 0, steps: int | None = None
) -> dict[str, Any]:
    """PESQ-WB, ESTOI and SI-SDR of the noisy input and of the enhanced output against spk1.scp.

    Returns the means over utterances (``"noisy"``, ``"enhanced"``, ``"improvement"``), the
    number of utterances, and per-utterance scores. ``max_utterances`` > 0 takes the first N ids.
    """
    from latentdiff.se.audio import load_audio
    from latentdiff.se.datadir import read_datadir
    from latentdiff.se.metrics import score_pair

    data = read_datadir(data_dir)
    if data.segments or not data.spk1_scp:
        raise ValueError(f"{data_dir}: needs spk1.scp and no segments file")
    utts = sorted(data.wav)[: max_utterances or None]
    metrics = ("pesq", "estoi", "si_sdr")
    rows: dict[str, dict[str, dict[str, float]]] = {}
    for utt in utts:
        rate = enhancer.sample_rate
        noisy = load_audio(data.wav[utt], rate)
        clean = load_audio(data.spk1_scp[utt], rate)
        enhanced = enhancer.enhance(noisy, rate, steps=steps)
        rows[utt] = {
            "noisy": score_pair(noisy, clean, rate, metrics),
            "enhanced": score_pair(enhanced, clean, rate, metrics),
        }

    def mean(which: str, metric: str) -> float:
        return float(np.nanmean([row[which][metric] for row in rows.values()]))

    summary = {w: {m: mean(w, m) for m in metrics} for w in ("noisy", "enhanced")}
    summary["improvement"] = {m: summary["enhanced"][m] - summary["noisy"][m] for m in metrics}
    return {**summary, "utterances": len(rows), "per_utterance": rows}
