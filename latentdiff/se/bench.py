"""Peer benchmark: score every system on the same utterances and write RESULTS.md and plots.

Scores are PESQ-WB, ESTOI and SI-SDR (DNSMOS optionally) of each system's delay-compensated output
against spk1.scp, reported overall, per input SNR (utt2snr) and per noise type (utt2noise_type),
with each system's real-time factor (processing seconds per second of audio). The plots are
PESQ-WB against input SNR, and spectrograms of the noisy input, the first system's output and the
clean speech for the first few utterances.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from latentdiff.reporting import markdown_table, plot_path, save_figure
from latentdiff.se.audio import load_audio
from latentdiff.se.datadir import read_datadir
from latentdiff.se.metrics import score_pair
from latentdiff.se.peers import RATE, IdentityPeer, Peer, estimate_delay

BASE_METRICS = ("pesq", "estoi", "si_sdr")
CALIBRATION_UTTS = 3
PLOT_NAME = "pesq_vs_snr.png"
SPECTROGRAM_NAME = "spectrograms.png"
SPECTROGRAM_UTTS = 3


@dataclass
class BenchResult:
    """Per-utterance scores per system, with the data dir's SNR and noise-type labels."""

    scores: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    delays: dict[str, int] = field(default_factory=dict)
    audio_seconds: float = 0.0
    utt2snr: dict[str, float] = field(default_factory=dict)
    utt2noise_type: dict[str, str] = field(default_factory=dict)
    examples: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)  # utt -> row -> wave

    def mean(self, system: str, metric: str, utts: Sequence[str] | None = None) -> float:
        """Mean of ``metric`` over ``utts`` (default: all), ignoring NaN."""
        rows = self.scores[system]
        values = [rows[u][metric] for u in (rows if utts is None else utts)]
        return float(np.nanmean(values)) if values else float("nan")

    def rtf(self, system: str) -> float:
        """Processing seconds per second of audio."""
        return self.seconds[system] / self.audio_seconds


def run_bench(
    systems: Sequence[Peer],
    data_dir: str | Path,
    *,
    max_utts: int = 0,
    dnsmos: bool = False,
) -> BenchResult:
    """Score ``systems`` (plus the noisy input) on the first ``max_utts`` utterances (0: all).

    Each system's delay is estimated on the first utterances before scoring.
    """
    data = read_datadir(data_dir)
    if data.segments or not data.spk1_scp:
        raise ValueError(f"{data_dir}: needs spk1.scp and no segments file")
    utts = sorted(data.wav)[: max_utts or None]
    noisy = {u: load_audio(data.wav[u], RATE) for u in utts}
    clean = {u: load_audio(data.spk1_scp[u], RATE) for u in utts}
    metrics = (*BASE_METRICS, "dnsmos") if dnsmos else BASE_METRICS
    result = BenchResult(
        audio_seconds=sum(x.size for x in noisy.values()) / RATE,
        utt2snr={u: data.utt2snr[u] for u in utts if u in data.utt2snr},
        utt2noise_type={u: data.utt2noise_type[u] for u in utts if u in data.utt2noise_type},
    )
    calibration = utts[:CALIBRATION_UTTS]
    for system in (IdentityPeer(), *systems):
        system.delay = estimate_delay(
            system, [noisy[u] for u in calibration], [clean[u] for u in calibration]
        )
        result.delays[system.name] = system.delay
        outputs: dict[str, np.ndarray] = {}
        start = time.perf_counter()
        for utt in utts:
            outputs[utt] = system.enhance(noisy[utt])
        result.seconds[system.name] = time.perf_counter() - start
        result.scores[system.name] = {
            u: score_pair(outputs[u], clean[u], RATE, metrics) for u in utts
        }
        if len(result.scores) <= 2:  # the noisy input and the first system
            for utt in utts[:SPECTROGRAM_UTTS]:
                result.examples.setdefault(utt, {})[system.name] = outputs[utt]
    for utt in result.examples:
        result.examples[utt]["clean"] = clean[utt]
    return result


def _grouped(labels: dict[str, str] | dict[str, float]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for utt, label in sorted(labels.items(), key=lambda item: (item[1], item[0])):
        groups.setdefault(f"{label:g}" if isinstance(label, float) else label, []).append(utt)
    return groups


def _group_table(result: BenchResult, groups: dict[str, list[str]], metric: str) -> str:
    rows = [
        {"system": s, **{g: result.mean(s, metric, utts) for g, utts in groups.items()}}
        for s in result.scores
    ]
    return markdown_table(rows, ["system", *groups])


def overall_table(result: BenchResult) -> str:
    """Mean scores, delay and real-time factor per system."""
    metrics = list(next(iter(next(iter(result.scores.values())).values())))
    rows = [
        {
            "system": s,
            **{m: result.mean(s, m) for m in metrics},
            "delay (samples)": result.delays[s],
            "RTF": result.rtf(s),
        }
        for s in result.scores
    ]
    return markdown_table(rows, ["system", *metrics, "delay (samples)", "RTF"])


def plot_pesq_vs_snr(result: BenchResult, path: str | Path) -> Path:
    """PESQ-WB against input SNR, one line per system (PNG)."""
    import matplotlib.pyplot as plt

    groups = {float(k): v for k, v in _grouped(result.utt2snr).items()}
    snrs = sorted(groups)
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for system in result.scores:
        ax.plot(
            snrs, [result.mean(system, "pesq", groups[s]) for s in snrs], marker="o", label=system
        )
    ax.set_xlabel("input SNR (dB)")
    ax.set_ylabel("PESQ-WB")
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    save_figure(fig, path, dpi=120)
    return Path(path)


def plot_spectrograms(result: BenchResult, path: str | Path) -> Path:
    """Log-power spectrograms (PNG): one column per example utterance, rows noisy input, the
    first system's output and clean speech."""
    import matplotlib.pyplot as plt
    from scipy.signal import spectrogram

    utts = list(result.examples)
    rows = list(result.examples[utts[0]])
    fig, axes = plt.subplots(
        len(rows), len(utts), figsize=(4.2 * len(utts), 2.3 * len(rows)), squeeze=False
    )
    for col, utt in enumerate(utts):
        spectra = {
            name: spectrogram(result.examples[utt][name], RATE, nperseg=512, noverlap=384)
            for name in rows
        }
        db = {name: 10.0 * np.log10(power + 1e-12) for name, (_, _, power) in spectra.items()}
        top = max(float(d.max()) for d in db.values())  # one colour scale per utterance
        for row, name in enumerate(rows):
            ax = axes[row][col]
            freqs, times, _ = spectra[name]
            ax.pcolormesh(
                times, freqs, db[name], cmap="magma", vmin=top - 80, vmax=top, shading="auto"
            )
            ax.set_title(f"{name}: {utt}", fontsize=8)
            ax.set_ylabel("Hz" if col == 0 else "")
            ax.set_xlabel("s" if row == len(rows) - 1 else "")
            ax.tick_params(labelsize=7)
    fig.tight_layout()
    save_figure(fig, path, dpi=110)
    return Path(path)


def machine_description() -> str:
    """CPU, core count, torch threads and Python version of this machine."""
    cpu = platform.processor() or platform.machine()
    return (
        f"{platform.system()} {cpu}, {os.cpu_count()} cores, torch threads "
        f"{torch.get_num_threads()}, Python {platform.python_version()}"
    )


def write_results(
    result: BenchResult, path: str | Path, command: str, skipped: dict[str, str]
) -> Path:
    """Write the markdown report and the plot (``plots/`` next to it); returns the report path."""
    path = Path(path)
    plot = plot_pesq_vs_snr(result, plot_path(path, PLOT_NAME))
    spectrograms = (
        plot_spectrograms(result, plot_path(path, SPECTROGRAM_NAME)) if result.examples else None
    )
    n_utts = len(next(iter(result.scores.values())))
    lines = [
        "# Speech enhancement: peer benchmark",
        "",
        f"Command: `{command}`",
        "",
        f"Machine: {machine_description()}",
        "",
        f"{n_utts} utterances, {result.audio_seconds:.1f} s of 16 kHz audio. Each system's output "
        "is shifted by its delay (estimated against the clean speech on the first "
        f"{CALIBRATION_UTTS} utterances) before scoring. RTF: processing seconds per second of "
        "audio, one thread.",
        "",
        "## Overall",
        "",
        overall_table(result),
        "",
    ]
    if result.utt2snr:
        lines += [
            "## PESQ-WB per input SNR (dB)",
            "",
            _group_table(result, _grouped(result.utt2snr), "pesq"),
            "",
            "## SI-SDR (dB) per input SNR (dB)",
            "",
            _group_table(result, _grouped(result.utt2snr), "si_sdr"),
            "",
            f"![PESQ-WB vs input SNR]({plot.relative_to(path.parent).as_posix()})",
            "",
        ]
    if result.utt2noise_type:
        lines += [
            "## PESQ-WB per noise type",
            "",
            _group_table(result, _grouped(result.utt2noise_type), "pesq"),
            "",
        ]
    if spectrograms is not None:
        lines += [
            "## Spectrograms",
            "",
            "Noisy input, the first system's output and the clean speech (delay-compensated).",
            "",
            f"![spectrograms]({spectrograms.relative_to(path.parent).as_posix()})",
            "",
        ]
    if skipped:
        lines += ["## Skipped systems", ""]
        lines += [f"- {name}: {reason}" for name, reason in sorted(skipped.items())] + [""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))
    return path
