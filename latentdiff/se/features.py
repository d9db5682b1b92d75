"""Fixed-length (noisy, clean) waveform segments tiling every utterance of a Kaldi data dir.

The noisy signal comes from wav.scp and the clean target from spk1.scp (with a ``segments`` file,
both are recordings cut by the utterance's times). Each utterance is cut into consecutive segments
of ``segment_seconds``; a remainder longer than a quarter segment becomes one more segment that
ends at the utterance's end, and an utterance shorter than a segment is zero-padded. The segment
list is fixed at construction, so item ``i`` is always the same audio.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import Dataset

from latentdiff.se.datadir import DataDirError, read_datadir, validate


@dataclass
class SegmentConfig:
    """How training segments are cut from a data dir."""

    segment_seconds: float = 2.0
    sample_rate: int = 16000
    max_utterances: int = 0  # 0 = all utterances, else the first N (sorted ids)


@dataclass(frozen=True)
class _Span:
    noisy: str
    clean: str
    start: int  # first sample of the segment in the recording
    stop: int  # one past the last sample to read (may be < start + segment length)


def _utterance_spans(data_dir: str | Path, cfg: SegmentConfig) -> list[tuple[str, str, int, int]]:
    """(noisy path, clean path, first sample, end sample) of every utterance, sorted by id."""
    data = read_datadir(data_dir)
    if not data.spk1_scp:
        raise DataDirError(f"{data_dir}: no spk1.scp (clean references are needed for training)")
    validate(data, check_files=True, sample_rate=cfg.sample_rate)
    spans = []
    for utt in sorted(data.utt_ids):
        if data.segments:
            rec, begin_s, end_s = data.segments[utt]
            frames = sf.info(data.wav[rec]).frames
            begin = round(begin_s * cfg.sample_rate)
            end = frames if end_s == -1 else min(round(end_s * cfg.sample_rate), frames)
        else:
            rec, begin, end = utt, 0, sf.info(data.wav[utt]).frames
        clean_frames = sf.info(data.spk1_scp[rec]).frames
        if clean_frames < end:
            raise DataDirError(
                f"{data.where('spk1_scp', rec)}: clean audio has {clean_frames} samples, "
                f"the noisy utterance {utt!r} needs {end}"
            )
        spans.append((data.wav[rec], data.spk1_scp[rec], begin, end))
    if cfg.max_utterances > 0:
        spans = spans[: cfg.max_utterances]
    return spans


class SegmentDataset(Dataset[tuple[Tensor, Tensor]]):
    """``(noisy, clean)`` float32 tensors of ``segment_seconds * sample_rate`` samples each."""

    def __init__(self, data_dir: str | Path, cfg: SegmentConfig | None = None) -> None:
        self.cfg = cfg or SegmentConfig()
        self.length = round(self.cfg.segment_seconds * self.cfg.sample_rate)
        if self.length <= 0:
            raise ValueError(f"segment_seconds must be positive, got {self.cfg.segment_seconds}")
        self.spans: list[_Span] = []
        for noisy, clean, begin, end in _utterance_spans(data_dir, self.cfg):
            self.spans += [
                _Span(noisy, clean, s, min(s + self.length, end)) for s in self._starts(begin, end)
            ]
        if not self.spans:
            raise DataDirError(f"{data_dir}: no audio to cut segments from")

    def _starts(self, begin: int, end: int) -> list[int]:
        n = end - begin
        if n <= 0:
            return []
        starts = list(range(begin, begin + max(n - self.length, 0) + 1, self.length))
        remainder = end - (starts[-1] + self.length)
        if remainder > self.length // 4:
            starts.append(end - self.length)
        return starts

    def __len__(self) -> int:
        return len(self.spans)

    def _read(self, path: str, span: _Span) -> np.ndarray:
        audio, _ = sf.read(path, start=span.start, stop=span.stop, dtype="float32", always_2d=True)
        mono = audio.mean(axis=1)
        out = np.zeros(self.length, dtype=np.float32)
        out[: mono.size] = mono
        return out

    def __getitem__(self, index: int) -> tuple[Tensor, Tensor]:
        span = self.spans[index]
        noisy = torch.from_numpy(self._read(span.noisy, span))
        clean = torch.from_numpy(self._read(span.clean, span))
        return noisy, clean

    @property
    def seconds(self) -> float:
        """Total duration of audio the segments were cut from (padding excluded)."""
        return sum(s.stop - s.start for s in self.spans) / self.cfg.sample_rate
