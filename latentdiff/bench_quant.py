"""``latentdiff bench quant``: speed and quality of reduced-precision inference on both tracks.

Everything runs in one process on one thread, so the precisions share the machine's state:

- Speech, per-block time: one streaming session per (backend, precision) takes the same signal
  block by block (``latentdiff bench stream``'s seeded noise bursts); the sessions take turns on
  every block, in a rotating order, so load changes of a shared machine hit all of them alike.
- Speech, quality: the first utterances of a Kaldi data dir (wav.scp, spk1.scp), streamed block by
  block at each (backend, precision) and enhanced offline by ``Enhancer.enhance`` (eager PyTorch)
  at each precision (streams and offline runs take turns per utterance, in two groups); PESQ-WB,
  ESTOI, SI-SDR against the clean speech, the change against the same path at fp32, and the SNR
  of the output against that fp32 output.
- Path planning: the planner at each ONNX precision on the problems of a ``.npz`` split
  (``latentdiff prepare path``), taking turns per problem: success, length / optimum, plan and
  network time, and how many paths equal the fp32 planner's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import torch

from latentdiff.core.quantize import ONNX_PRECISIONS, PRECISIONS
from latentdiff.reporting import markdown_table
from latentdiff.se.audio import atomic_output, load_audio
from latentdiff.se.bench import machine_description
from latentdiff.se.bench_stream import test_signal
from latentdiff.se.datadir import read_datadir
from latentdiff.se.enhancer import Enhancer
from latentdiff.se.metrics import score_pair
from latentdiff.se.stream_kernels import KERNEL_PRECISIONS
from latentdiff.se.streaming import StreamSession

if TYPE_CHECKING:
    from latentdiff.path.planner import Planner, PlanResult

METRICS = ("pesq", "estoi", "si_sdr")
OFFLINE = "offline (eager)"
REFERENCE = "fp32"
K = TypeVar("K", bound=Hashable)


@dataclass
class SpeechResult:
    """Block times per (backend, precision); scores per (system, precision) and utterance."""

    block_ms: float
    times_ms: dict[tuple[str, str], np.ndarray]
    scores: dict[tuple[str, str], list[dict[str, float]]]
    noisy: list[dict[str, float]]
    audio_seconds: float
    offline_seconds: dict[str, float]


@dataclass
class PathResult:
    """Per precision and problem: success, length / optimum, plan ms, the path; per problem where
    the network ran: its time and whether a raw sample passed the collision check."""

    success: dict[str, list[bool]]
    ratio: dict[str, list[float]]
    plan_ms: dict[str, list[float]]
    network_ms: dict[str, list[float]]
    raw_valid: dict[str, list[bool]]
    paths: dict[str, list[np.ndarray]]


def combinations(backends: Sequence[str], precisions: Sequence[str]) -> list[tuple[str, str]]:
    """(backend, precision) pairs the backends run, fp32 first for each backend."""
    ordered = [REFERENCE, *(p for p in precisions if p != REFERENCE)]
    return [(b, p) for b in backends for p in ordered if p in KERNEL_PRECISIONS[b]]


def take_turns(
    runners: Mapping[K, Callable[[Any], Any]], items: Sequence[Any], first: int = 0
) -> tuple[dict[K, list[float]], dict[K, list[Any]]]:
    """Seconds and results of every runner on every item; on item ``i`` the runners start with
    the ``(first + i) % n``-th."""
    keys = list(runners)
    seconds: dict[K, list[float]] = {key: [] for key in keys}
    results: dict[K, list[Any]] = {key: [] for key in keys}
    for index, item in enumerate(items, start=first):
        shift = index % len(keys)
        for key in keys[shift:] + keys[:shift]:
            begin = time.perf_counter()
            results[key].append(runners[key](item))
            seconds[key].append(time.perf_counter() - begin)
    return seconds, results


def audio_path(entry: str, data_dir: Path) -> Path:
    """A wav.scp entry: relative entries resolve against the current directory, else against
    the first parent of ``data_dir`` that holds them (the recipe directory, as in Kaldi)."""
    path = Path(entry)
    if path.is_absolute() or path.exists():
        return path
    bases = data_dir.resolve().parents
    return next((base / path for base in bases if (base / path).exists()), path)


def stream_utterance(session: StreamSession, noisy: np.ndarray) -> np.ndarray:
    """``noisy`` through a fresh stream, one block per call; as long as ``noisy``."""
    session.reset()
    block = session.block_samples
    parts = [session.process(noisy[i : i + block]) for i in range(0, noisy.size, block)]
    return np.concatenate([*parts, session.flush()])


def run_speech(
    *,
    backends: Sequence[str],
    precisions: Sequence[str],
    data_dir: Path,
    utterances: int,
    seconds: float,
    model: Path | None = None,
    warmup: int = 100,
) -> SpeechResult:
    """Block times and quality of the streaming enhancer and of ``Enhancer.enhance``."""
    enhancer = Enhancer.from_pretrained(model)
    pairs = combinations(backends, precisions)
    sessions = {pair: enhancer.stream(backend=pair[0], precision=pair[1]) for pair in pairs}
    for session in sessions.values():
        session.warm_up()
    block = enhancer.model.downsample * enhancer.model.cfg.stft.hop
    signal = test_signal(seconds, None)
    chunks = [signal[i : i + block] for i in range(0, signal.size - block + 1, block)]
    seconds_per_block, _ = take_turns({p: s.process for p, s in sessions.items()}, chunks)
    times_ms = {p: 1e3 * np.asarray(t[warmup:]) for p, t in seconds_per_block.items()}

    data = read_datadir(data_dir)
    if not data.spk1_scp:
        raise ValueError(f"{data_dir}: needs spk1.scp (the clean speech)")
    rate = enhancer.sample_rate
    utts = sorted(data.wav)[:utterances]
    offline_precisions = [REFERENCE, *(p for p in precisions if p != REFERENCE)]
    streams: dict[tuple[str, str], Callable[[np.ndarray], np.ndarray]] = {
        (f"stream {b}", p): partial(stream_utterance, session)
        for (b, p), session in sessions.items()
    }
    offline = {
        (OFFLINE, p): partial(Enhancer(enhancer.model, precision=p).enhance, sample_rate=rate)
        for p in offline_precisions
    }
    scores: dict[tuple[str, str], list[dict[str, float]]] = {}
    noisy_scores, offline_seconds = [], dict.fromkeys(offline_precisions, 0.0)
    audio_seconds = 0.0
    for index, utt in enumerate(utts):
        noisy = load_audio(audio_path(data.wav[utt], data_dir), rate)
        clean = load_audio(audio_path(data.spk1_scp[utt], data_dir), rate)
        audio_seconds += noisy.size / rate
        noisy_scores.append(score_pair(noisy, clean, rate, METRICS))
        outputs = take_turns(streams, [noisy], first=index)[1]
        seconds_per_run, outputs_offline = take_turns(offline, [noisy], first=index)
        outputs.update(outputs_offline)
        for (system, precision), (enhanced,) in outputs.items():
            row = score_pair(enhanced, clean, rate, METRICS)
            row["snr_vs_fp32"] = snr_db(outputs[(system, REFERENCE)][0], enhanced)
            scores.setdefault((system, precision), []).append(row)
            if system == OFFLINE:
                offline_seconds[precision] += seconds_per_run[(system, precision)][0]
    return SpeechResult(
        block_ms=1e3 * block / rate,
        times_ms=times_ms,
        scores=scores,
        noisy=noisy_scores,
        audio_seconds=audio_seconds,
        offline_seconds=offline_seconds,
    )


def snr_db(reference: np.ndarray, estimate: np.ndarray) -> float:
    """SNR of ``estimate`` against ``reference`` in dB (inf when equal)."""
    error = float(np.sum((estimate.astype(np.float64) - reference) ** 2))
    power = float(np.sum(reference.astype(np.float64) ** 2))
    return math.inf if error == 0.0 else 10.0 * math.log10(power / error)


def run_path(*, precisions: Sequence[str], data_dir: Path, problems: int) -> PathResult:
    """The planner at each ONNX precision on the first ``problems`` of ``data_dir``'s dev split."""
    from latentdiff.path.data import load_split
    from latentdiff.path.metrics import path_length
    from latentdiff.path.planner import Planner, PlannerConfig

    data = load_split(data_dir, "dev")
    chosen = [REFERENCE, *(p for p in precisions if p != REFERENCE and p in ONNX_PRECISIONS)]
    base = Planner.from_pretrained()
    planners = {p: Planner(base.model, PlannerConfig(precision=p)) for p in chosen}
    queries = [
        (data.occupancy[i], data.start[i].astype(float), data.goal[i].astype(float))
        for i in range(min(problems, len(data)) if problems > 0 else len(data))
    ]
    for planner in planners.values():
        planner.plan(*queries[0])
    seconds, results = take_turns({p: partial(_plan, planners[p]) for p in chosen}, queries)
    optimum = data.optimum_length.astype(float)
    return PathResult(
        success={p: [r.success for r in results[p]] for p in chosen},
        ratio={
            p: [path_length(r.path) / optimum[i] for i, r in enumerate(results[p])] for p in chosen
        },
        plan_ms={p: [1e3 * s for s in seconds[p]] for p in chosen},
        network_ms={
            p: [r.info["timings_ms"]["network"] for r in results[p] if _networked(r)]
            for p in chosen
        },
        raw_valid={
            p: [r.info["n_valid_raw"] > 0 for r in results[p] if _networked(r)] for p in chosen
        },
        paths={p: [np.asarray(r.path) for r in results[p]] for p in chosen},
    )


def _plan(planner: Planner, query: tuple[Any, ...]) -> PlanResult:
    return planner.plan(*query)


def _networked(result: PlanResult) -> bool:
    return "network" in result.info.get("timings_ms", {})


def block_table(result: SpeechResult) -> str:
    """Per-block streaming times and the speed-up over fp32 on the same backend."""
    rows = []
    for (backend, precision), times in result.times_ms.items():
        reference = np.median(result.times_ms[(backend, REFERENCE)])
        rows.append(
            {
                "backend": backend,
                "precision": precision,
                "median (ms)": f"{np.median(times):.3f}",
                "p99 (ms)": f"{np.percentile(times, 99):.3f}",
                "p99 / block": f"{np.percentile(times, 99) / result.block_ms:.3f}",
                "speed-up vs fp32 (median)": f"{reference / np.median(times):.2f}x",
            }
        )
    return markdown_table(rows, list(rows[0]))


def quality_table(result: SpeechResult) -> str:
    """Mean scores per system and precision, their change against fp32, SNR against fp32."""

    def mean(rows: list[dict[str, float]], key: str) -> float:
        return float(np.nanmean([row[key] for row in rows]))

    snr_column = "SNR vs fp32 (dB, median)"
    noisy = {m: mean(result.noisy, m) for m in METRICS}
    lines = [{"system": "noisy input", "precision": "-", **_metric_cells(noisy, None)}]
    lines[0][snr_column] = "-"
    for (system, precision), rows in result.scores.items():
        scores = {m: mean(rows, m) for m in METRICS}
        reference = {m: mean(result.scores[(system, REFERENCE)], m) for m in METRICS}
        snr = float(np.median([row["snr_vs_fp32"] for row in rows]))
        row = {"system": system, "precision": precision, **_metric_cells(scores, reference)}
        row[snr_column] = "-" if precision == REFERENCE else f"{snr:.1f}"
        if system == OFFLINE:
            row["system"] += f", RTF {result.offline_seconds[precision] / result.audio_seconds:.4f}"
        lines.append(row)
    return markdown_table(lines, list(lines[0]))


def _metric_cells(scores: dict[str, float], reference: dict[str, float] | None) -> dict[str, str]:
    names = {"pesq": "PESQ-WB", "estoi": "ESTOI", "si_sdr": "SI-SDR"}
    cells = {}
    for metric, name in names.items():
        cells[name] = f"{scores[metric]:.3f}"
        delta = "-" if reference is None else f"{scores[metric] - reference[metric]:+.3f}"
        cells[f"Δ {name}"] = delta
    return cells


def path_table(result: PathResult) -> str:
    """Success, length / optimum, times and agreement with fp32 per precision."""
    rows = []
    reference_ms = np.median(result.network_ms[REFERENCE])
    for precision, successes in result.success.items():
        ratios = [r for r, ok in zip(result.ratio[precision], successes, strict=True) if ok]
        same = [
            a.shape == b.shape and np.allclose(a, b, atol=1e-6)
            for a, b in zip(result.paths[precision], result.paths[REFERENCE], strict=True)
        ]
        network = np.median(result.network_ms[precision])
        rows.append(
            {
                "precision": precision,
                "problems": str(len(successes)),
                "success": f"{100 * np.mean(successes):.1f} %",
                "length / optimum, mean": f"{np.mean(ratios):.4f}",
                "p95": f"{np.percentile(ratios, 95):.4f}",
                "plan ms, median": f"{np.median(result.plan_ms[precision]):.2f}",
                "network ms, median": f"{network:.2f}",
                "network speed-up": f"{reference_ms / network:.2f}x",
                "raw sample valid": f"{100 * np.mean(result.raw_valid[precision]):.1f} %",
                "same path as fp32": f"{100 * np.mean(same):.1f} %",
            }
        )
    return markdown_table(rows, list(rows[0]))


def write_report(
    path: Path, command: str, speech: SpeechResult | None, planning: PathResult | None
) -> Path:
    """The markdown report, with the command that produced it at the top."""
    lines = [
        "# Reduced-precision inference: speed and quality",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}. One process; the precisions take turns on every "
        "block (speech) and problem (planner), so they share the machine's load.",
        "",
    ]
    if speech is not None:
        utts = len(speech.noisy)
        lines += [
            "## Speech enhancement: streaming time per block",
            "",
            f"{speech.block_ms:.0f} ms blocks of seeded noise bursts, one block per call, "
            "after a warm-up.",
            "",
            block_table(speech),
            "",
            "## Speech enhancement: quality",
            "",
            f"{utts} utterances ({speech.audio_seconds:.1f} s), means; Δ: change against fp32 on "
            "the same path. Streams run one block per call (the last frames run eagerly in "
            "float32).",
            "",
            quality_table(speech),
            "",
        ]
    if planning is not None:
        lines += [
            "## Path planning (onnxruntime network kernel)",
            "",
            "Network time and raw sample valid (>= 1 of the candidates passed the collision "
            "check before tautening): over the problems where the network ran.",
            "",
            path_table(planning),
            "",
        ]
    with atomic_output(path) as tmp:
        Path(tmp).write_text("\n".join(lines))
    return path


def run_quant_bench(
    *,
    tracks: Sequence[str],
    backends: Sequence[str],
    precisions: Sequence[str],
    data_dir: Path,
    utterances: int,
    seconds: float,
    path_data: Path,
    problems: int,
    model: Path | None = None,
) -> tuple[SpeechResult | None, PathResult | None]:
    """The speech and/or path parts on one torch thread."""
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise ValueError(f"unknown precisions {unknown}; choose from {PRECISIONS}")
    torch.set_num_threads(1)
    speech = planning = None
    if "se" in tracks:
        speech = run_speech(
            backends=backends,
            precisions=precisions,
            data_dir=data_dir,
            utterances=utterances,
            seconds=seconds,
            model=model,
        )
    if "path" in tracks:
        planning = run_path(precisions=precisions, data_dir=path_data, problems=problems)
    return speech, planning
