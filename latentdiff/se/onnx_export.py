"""Per-block, stateful ONNX export of the streaming speech enhancer.

One call of the exported graph enhances one block of ``downsample * hop`` new samples (one latent
frame; 160 samples = 10 ms for the bundled model) and returns as many output samples. The graph is
a pure function: every state is an explicit input ``state_*`` with a matching output
``new_state_*`` of the same fixed shape, and the initial states are zeros. The states are the STFT
analysis buffer ``state_stft_pending`` (``win - hop`` past samples), the overlap-add tail
``state_ola_tail``, and the streaming states of the model's feature path
(:class:`~latentdiff.se.stream_path.FeaturePath`), named ``state_<part>_<index>`` after the part
(``cond``, ``head``, ``encoder``, ``decoder``, ``denoise0``, ``denoise1``, ... one per sampler
evaluation) and the state's position in that part's flattened states. Empty states (convolutions
without left context) are not part of the interface.

Inputs: ``audio`` (1, block), ``noise`` (1, latent_channels, 1) — standard normal sampling noise
of this latent frame (``frame_noise([seed], frame_index, 1, channels)`` reproduces the offline
model; unused, but kept for a uniform interface, at ``steps=0``) — and the states. Outputs:
``enhanced`` (1, block) and the new states. Output block ``b`` holds the offline enhanced signal
delayed by ``delay_samples = win - hop`` samples (the first ones belong to the left padding),
exactly like ``StreamingStft.synthesize``.

The FFTs are matmuls with DFT matrices (windows folded in) and complex values travel as real and
imaginary parts, so the graph uses plain opset-17 operators; the feature path (sampler unrolled
with the model's sigmas) is ``FeaturePath.run``. ``metadata_props`` hold the sample rate, block
size, delay, latency, steps, precision, the noise shape and every state's name and shape (JSON),
which is all ``latentdiff/se/onnx_runner.py`` needs.

Precision (:mod:`latentdiff.core.quantize`): ``int8`` quantizes the network's matrix products
dynamically and keeps the DFT matrices of the STFT in float32; ``fp16`` converts the whole graph
to float16. Inputs and outputs stay float32 at every precision, so a runner needs no change.
"""

from __future__ import annotations

import io
import json
import math
import warnings
from pathlib import Path

import onnx
import torch
from torch import Tensor, nn

from latentdiff.core.layers import CausalConv1d
from latentdiff.core.quantize import ONNX_PRECISIONS, check_precision, quantize_onnx
from latentdiff.se.audio import atomic_output
from latentdiff.se.model import SEModel
from latentdiff.se.stream_path import FeaturePath, flatten_states

OPSET = 17
AUDIO_INPUT = "audio"
NOISE_INPUT = "noise"
AUDIO_OUTPUT = "enhanced"
STATE_PREFIX = "state_"
NEW_STATE_PREFIX = "new_"
STFT_STATE = f"{STATE_PREFIX}stft_pending"
OLA_STATE = f"{STATE_PREFIX}ola_tail"
_MAGNITUDE_FLOOR = 1e-6  # as in Stft.to_features / from_features
_PHASE_FLOOR = 1e-12  # as in synthesis_spectrum


def _check_exportable(model: SEModel, steps: int) -> None:
    """Raise ValueError unless ``model`` runs block by block with fixed-size states."""
    if steps < 0:
        raise ValueError(f"steps must be >= 0, got {steps}")
    if steps > 0 and model.nfe(steps) == 0:
        raise ValueError(f"the {model.cfg.kind} model has no diffusion steps to set")
    if steps > 0 and model.cfg.diffusion.sampler == "ddpm":
        raise ValueError("the ddpm sampler draws fresh noise per utterance; export another sampler")
    for name, conv in model.named_modules():
        if isinstance(conv, CausalConv1d) and conv.lookahead != conv.stride - 1:
            raise ValueError(
                f"{name} looks {conv.lookahead} frames ahead; a per-block export needs every "
                "convolution to see no further than the end of its block (lookahead = stride - 1)"
            )


def _float32() -> torch.autocast:
    """Autocast off: the STFT runs in float32 when the block is traced under autocast."""
    return torch.autocast("cpu", enabled=False)


def _model_state_names(path: FeaturePath) -> list[str]:
    """``state_<part>_<index>`` for every tensor of ``path.states()``, in that order."""
    labelled = [
        ("cond", path.cond),
        ("head", path.head),
        ("encoder", path.encoder),
        ("decoder", path.decoder),
        *((f"denoise{k}", sampler) for k, sampler in enumerate(path.samplers)),
    ]
    parts = [(label, part) for label, part in labelled if part is not None]
    assert [part for _, part in parts] == path.parts(), "a part of the feature path is unnamed"
    return [
        f"{STATE_PREFIX}{label}_{index}"
        for label, part in parts
        for index in range(len(flatten_states(part.states)))
    ]


def _dft_matrices(n_fft: int, window: Tensor) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """Windowed real DFT (win, F) x2 and windowed inverse real DFT (F, win) x2, as float32.

    ``frame @ a_re``, ``frame @ a_im`` equal ``rfft(frame * window, n_fft)``;
    ``re @ s_re + im @ s_im`` equals ``irfft(re + j im, n_fft)[:win] * window``.
    """
    win = window.numel()
    n_freqs = n_fft // 2 + 1
    k = torch.arange(n_freqs, dtype=torch.int64)[:, None]
    n = torch.arange(win, dtype=torch.int64)[None, :]
    angle = (2.0 * math.pi / n_fft) * ((k * n) % n_fft).double()
    w = window.double()[None, :]
    weight = torch.full((n_freqs, 1), 2.0, dtype=torch.float64)
    weight[0] = 1.0
    if n_fft % 2 == 0:
        weight[-1] = 1.0
    cos, sin = torch.cos(angle) * w, torch.sin(angle) * w
    return (
        cos.T.float().contiguous(),
        -sin.T.float().contiguous(),
        (weight / n_fft * cos).float(),
        (-weight / n_fft * sin).float(),
    )


class BlockEnhancer(nn.Module):
    """One block of the streaming enhancer: ``(audio, noise, *states) -> (enhanced, *states)``."""

    analysis_re: Tensor
    analysis_im: Tensor
    synthesis_re: Tensor
    synthesis_im: Tensor
    envelope: Tensor

    def __init__(self, model: SEModel, steps: int | None = None) -> None:
        super().__init__()
        steps = model.default_steps if steps is None else steps
        _check_exportable(model, steps)
        self.model = model.eval()
        self.steps = steps
        self.path = FeaturePath(model, steps, seed=0)
        stft = model.stft.cfg
        self.hop, self.win, self.compress = stft.hop, stft.win, stft.compress
        self.block_samples = model.downsample * stft.hop
        self.delay_samples = stft.win - stft.hop
        self.noise_shape = tuple(self.path.noise(0, 1).shape)
        for name, matrix in zip(
            ("analysis_re", "analysis_im", "synthesis_re", "synthesis_im"),
            _dft_matrices(stft.n_fft, model.stft.window),
            strict=True,
        ):
            self.register_buffer(name, matrix, persistent=False)
        self.register_buffer("envelope", model.stft.envelope.clone(), persistent=False)
        # Empty model states stay inside the graph: an exporter drops inputs it never reads.
        self.model_state_template = self.path.states()
        tail = (1, self.win - self.hop)
        self.state_shapes = {STFT_STATE: tail, OLA_STATE: tail}
        for name, state in zip(
            _model_state_names(self.path), self.model_state_template, strict=True
        ):
            if state.numel():
                self.state_shapes[name] = tuple(state.shape)

    def initial_states(self) -> list[Tensor]:
        """Zero states, in the order of ``state_shapes``."""
        return [torch.zeros(shape) for shape in self.state_shapes.values()]

    def forward(self, audio: Tensor, noise: Tensor, *states: Tensor) -> tuple[Tensor, ...]:
        pending, tail, *model_states = states
        given = iter(model_states)
        self.path.load_states([next(given) if z.numel() else z for z in self.model_state_template])
        with _float32():
            real, imag, pending = self._analyse(pending, audio)
            features = self._compressed(real, imag)
        clean = self.path.run(features, noise).float()
        with _float32():
            out_re, out_im = self._synthesis_spectrum(clean, real, imag)
            spectrum = out_re.transpose(1, 2), out_im.transpose(1, 2)
            frames = spectrum[0] @ self.synthesis_re + spectrum[1] @ self.synthesis_im
            enhanced, tail = self._overlap_add(frames, tail)
        new_states = zip(self.path.states(), self.model_state_template, strict=True)
        return (enhanced, pending, tail, *(new for new, zero in new_states if zero.numel()))

    def _analyse(self, pending: Tensor, audio: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(1, win - hop) buffered + (1, block) new samples -> Re, Im (1, F, frames), buffer."""
        buffer = torch.cat([pending, audio], dim=1)
        starts = range(0, self.block_samples, self.hop)
        frames = torch.stack([buffer[:, k : k + self.win] for k in starts], dim=1)
        real = (frames @ self.analysis_re).transpose(1, 2)
        imag = (frames @ self.analysis_im).transpose(1, 2)
        return real, imag, buffer[:, self.block_samples :]

    def _compressed(self, real: Tensor, imag: Tensor) -> Tensor:
        """``Stft.to_features`` on (Re, Im) pairs."""
        magnitude = torch.sqrt(real.square() + imag.square())
        gain = magnitude.clamp_min(_MAGNITUDE_FLOOR).pow(self.compress - 1.0)
        return torch.cat([real * gain, imag * gain], dim=1)

    def _synthesis_spectrum(
        self, clean: Tensor, real: Tensor, imag: Tensor
    ) -> tuple[Tensor, Tensor]:
        """``synthesis_spectrum`` on (Re, Im) pairs: target features -> output spectrum."""
        c = self.compress
        if self.model.cfg.target == "complex":
            clean_re, clean_im = clean.chunk(2, dim=1)
            magnitude = torch.sqrt(clean_re.square() + clean_im.square())
            gain = magnitude.clamp_min(_MAGNITUDE_FLOOR**c).pow(1.0 / c - 1.0)
            return clean_re * gain, clean_im * gain
        magnitude = clean.clamp_min(0.0).pow(1.0 / c)
        noisy_magnitude = torch.sqrt(real.square() + imag.square())
        safe = noisy_magnitude.clamp_min(_PHASE_FLOOR)
        voiced = noisy_magnitude > 0
        unit_re = torch.where(voiced, real / safe, torch.ones_like(real))
        unit_im = torch.where(voiced, imag / safe, torch.zeros_like(imag))
        return magnitude * unit_re, magnitude * unit_im

    def _overlap_add(self, frames: Tensor, tail: Tensor) -> tuple[Tensor, Tensor]:
        """Synthesis frames (1, frames, win) + tail -> (1, frames * hop) samples, new tail."""
        overlap = self.win - self.hop
        outputs = []
        for k in range(frames.shape[1]):
            frame = frames[:, k]
            segment = torch.cat([frame[:, :overlap] + tail, frame[:, overlap:]], dim=1)
            outputs.append(segment[:, : self.hop] / self.envelope)
            tail = segment[:, self.hop :]
        return torch.cat(outputs, dim=1), tail

    def stft_matrices(self) -> list[Tensor]:
        """The windowed DFT matrices of the analysis and the synthesis."""
        return [self.analysis_re, self.analysis_im, self.synthesis_re, self.synthesis_im]

    def metadata(self) -> dict[str, str]:
        """What a runner needs to build zero states and align the output (all strings)."""
        model = self.model
        return {
            "sample_rate": str(model.sample_rate),
            "block_samples": str(self.block_samples),
            "delay_samples": str(self.delay_samples),
            "latency_ms": str(model.latency_ms(self.steps)),
            "steps": str(self.steps),
            "noise_shape": json.dumps(list(self.noise_shape)),
            "states": json.dumps({name: list(s) for name, s in self.state_shapes.items()}),
        }


def to_onnx(block: BlockEnhancer, precision: str = "fp32") -> onnx.ModelProto:
    """The ONNX graph of ``block`` at ``precision`` (``ONNX_PRECISIONS``), with its metadata,
    checked."""
    check_precision(precision, ONNX_PRECISIONS)
    names = list(block.state_shapes)
    audio, noise = torch.zeros(1, block.block_samples), torch.zeros(block.noise_shape)
    args = (audio, noise, *block.initial_states())
    with torch.no_grad():
        _, *new_states = block(*args)
    for (name, shape), new_state in zip(block.state_shapes.items(), new_states, strict=True):
        if new_state.shape != shape:
            raise ValueError(f"{name}: the state would not keep its shape {shape} across blocks")
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)  # the TorchScript exporter is legacy
        # Shapes and sigmas are constants of the graph on purpose (one fixed-size block).
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        torch.onnx.export(
            block,
            args,
            buffer,
            dynamo=False,
            opset_version=OPSET,
            input_names=[AUDIO_INPUT, NOISE_INPUT, *names],
            output_names=[AUDIO_OUTPUT, *(NEW_STATE_PREFIX + name for name in names)],
            do_constant_folding=True,
        )
    graph = onnx.load_from_string(buffer.getvalue())
    if all(value.name != NOISE_INPUT for value in graph.graph.input):  # dropped when unused
        noise_input = onnx.helper.make_tensor_value_info(
            NOISE_INPUT, onnx.TensorProto.FLOAT, block.noise_shape
        )
        graph.graph.input.insert(1, noise_input)
    onnx.helper.set_model_props(graph, {**block.metadata(), "precision": precision})
    if precision != "fp32":
        float_weights = [matrix.numpy() for matrix in block.stft_matrices()]
        quantized = quantize_onnx(graph.SerializeToString(), precision, keep_float=float_weights)
        graph = onnx.load_from_string(quantized)
    onnx.checker.check_model(graph)
    return graph


def export_onnx(
    model: SEModel, path: str | Path, steps: int | None = None, precision: str = "fp32"
) -> Path:
    """Write the per-block stateful ONNX graph of ``model`` at ``steps`` (default: the model's)
    and ``precision`` (see the module docstring).

    Missing parent directories are created; the file is written to a temporary name and renamed,
    so ``path`` is either the old file or the complete new one. Raises ValueError for models that
    cannot run block by block (see :class:`BlockEnhancer`) and for unknown precisions.
    """
    graph = to_onnx(BlockEnhancer(model, steps), precision)
    path = Path(path)
    with atomic_output(path) as tmp:
        onnx.save(graph, str(tmp))
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    """The ``metadata_props`` of an exported model."""
    return {prop.key: prop.value for prop in onnx.load(str(path)).metadata_props}
