"""The mixed speech-enhancement corpus: split by voice and noise file, segment, mix, write.

``build_corpus`` discovers the configured speech and noise sources (plus synthetic voices),
assigns every voice and every noise file to exactly one of train/dev/test, cuts each voice's
speech into 2-6 s utterances, mixes them with noise at a drawn SNR and writes Kaldi data dirs
``<out>/{train,dev,test}`` (wav.scp = noisy, spk1.scp = clean, noise.scp, utt2spk, utt2snr,
utt2noise_type, utt2noise_id, noise2sources) with 16-bit wav files under ``<out>/wav``.
Everything is drawn from generators seeded by ``seed`` and the item's name, so a build is
reproducible and a speaker's utterances do not depend on the other speakers.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
import shutil
import time
import warnings
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from tqdm import tqdm

from latentdiff.core.config import save_config
from latentdiff.se.audio import AudioError, atomic_output, save_audio
from latentdiff.se.corpus.sources import (
    NoiseFile,
    SpeechFile,
    decode,
    discover_noise,
    discover_speech,
    frame_levels_db,
    source_packages,
    trim_silence,
)
from latentdiff.se.corpus.tts import TtsConfig, synthesize_voices, tts_packages
from latentdiff.se.datadir import DataDir, write_datadir
from latentdiff.se.mixing import babble, colored_noise, mix_at_snr, nonstationary_noise

SPLITS = ("train", "dev", "test")
NOISE_TYPES = ("keyboard", "music", "effects", "babble", "colored", "nonstationary")
_SYNTHETIC_TYPES = ("babble", "colored", "nonstationary")
_PEAK = 0.99
_FLOOR_DB = -50.0


class CorpusError(ValueError):
    """A corpus that cannot be built as configured, or a split that leaks across sets."""


@dataclasses.dataclass
class SplitCounts:
    """One number per split."""

    train: int = 3000
    dev: int = 200
    test: int = 300

    def get(self, split: str) -> int:
        return int(getattr(self, split))


@dataclasses.dataclass
class CorpusConfig:
    """Sources, sizes and mixing settings of the corpus (defaults: the 'full' corpus)."""

    seed: int = 0
    sample_rate: int = 16000
    share_dir: str = "/usr/share"
    speech_sources: list[str] = dataclasses.field(
        default_factory=lambda: ["fillets-ng-nl", "fillets-ng-cs", "ktuberling", "hedgewars-voices"]
    )
    noise_sources: list[str] = dataclasses.field(
        default_factory=lambda: [
            "bucklespring",
            "supertux-music",
            "hedgewars-music",
            "hedgewars-sounds",
            "supertux-sounds",
        ]
    )
    tts: TtsConfig = dataclasses.field(default_factory=TtsConfig)
    utterances: SplitCounts = dataclasses.field(default_factory=SplitCounts)
    noise_tracks: SplitCounts = dataclasses.field(
        default_factory=lambda: SplitCounts(train=24, dev=6, test=8)
    )
    dev_fraction: float = 0.1
    test_fraction: float = 0.15
    min_seconds: float = 2.0
    max_seconds: float = 6.0
    gap_seconds: tuple[float, float] = (0.1, 0.4)
    trim_top_db: float = 40.0
    max_files_per_speaker: int = 0
    snr_db: tuple[float, float] = (-5.0, 20.0)
    test_snr_grid: list[float] = dataclasses.field(
        default_factory=lambda: [-5.0, 0.0, 5.0, 10.0, 15.0, 20.0]
    )
    level_db: tuple[float, float] = (-35.0, -15.0)
    noise_types: dict[str, float] = dataclasses.field(
        default_factory=lambda: dict.fromkeys(NOISE_TYPES, 1.0)
    )
    track_seconds: float = 30.0
    music_max_seconds: float = 120.0
    babble_talkers: tuple[int, int] = (3, 6)


@dataclasses.dataclass
class Inventory:
    """Discovered speech and noise files with their durations in seconds."""

    speech: list[SpeechFile]
    noise: list[NoiseFile]
    durations: dict[Path, float]


@dataclasses.dataclass(frozen=True)
class NoiseRecording:
    """A noise signal used for mixing, and the source files or voices it is made of."""

    noise_id: str
    noise_type: str
    signal: np.ndarray
    sources: tuple[str, ...]


def _stable_int(*parts: object) -> int:
    return int(hashlib.sha1("|".join(map(str, parts)).encode()).hexdigest()[:12], 16)


def _rng(seed: int, *names: object) -> np.random.Generator:
    return np.random.default_rng([seed, _stable_int(*names)])


def _rms(x: np.ndarray) -> float:
    return float(np.sqrt(np.mean(np.square(x, dtype=np.float64))))


def required_packages(cfg: CorpusConfig) -> list[str]:
    """Debian packages the configuration needs (sources and synthetic voices)."""
    return sorted(
        set(source_packages(cfg.speech_sources, cfg.noise_sources)) | set(tts_packages(cfg.tts))
    )


def _validate(cfg: CorpusConfig) -> None:
    problems = []
    if not 0 < cfg.min_seconds < cfg.max_seconds:
        problems.append(f"need 0 < min_seconds < max_seconds, got {cfg.min_seconds}")
    if min(cfg.dev_fraction, cfg.test_fraction) <= 0 or cfg.dev_fraction + cfg.test_fraction >= 1:
        problems.append("dev_fraction and test_fraction must be positive with a sum below 1")
    if cfg.snr_db[0] > cfg.snr_db[1] or cfg.level_db[0] > cfg.level_db[1]:
        problems.append("snr_db and level_db must be (low, high) ranges")
    unknown = sorted(set(cfg.noise_types) - set(NOISE_TYPES))
    if unknown:
        problems.append(f"unknown noise types {unknown}; choose from {list(NOISE_TYPES)}")
    if not any(w > 0 for w in cfg.noise_types.values()):
        problems.append("noise_types needs at least one positive weight")
    if not cfg.test_snr_grid:
        problems.append("test_snr_grid must not be empty")
    if problems:
        raise CorpusError("invalid corpus config:\n  " + "\n  ".join(problems))


def prepare_sources(cfg: CorpusConfig, out_dir: str | Path, progress: bool = True) -> Inventory:
    """Discover sources, synthesise the TTS voices (cached in ``<out>/local/tts``) and write
    ``<out>/local/sources.tsv`` (kind, id, group, seconds, path)."""
    _validate(cfg)
    local = Path(out_dir) / "local"
    speech = discover_speech(cfg.speech_sources, cfg.share_dir)
    speech += synthesize_voices(cfg.tts, local / "tts", cfg.seed, progress)
    noise = discover_noise(cfg.noise_sources, cfg.share_dir)
    if not speech:
        raise CorpusError("no speech: configure speech_sources or tts voices")
    durations = {f.path: _duration(f.path) for f in [*speech, *noise]}
    empty = sorted(str(p) for p, d in durations.items() if d <= 0.0)
    if empty:
        warnings.warn(f"skipping {len(empty)} empty or unreadable files: {empty[:5]}", stacklevel=2)
        speech = [f for f in speech if durations[f.path] > 0.0]
        noise = [f for f in noise if durations[f.path] > 0.0]
    rows = [f"speech\t{f.speaker}\t{f.group}\t{durations[f.path]:.3f}\t{f.path}" for f in speech]
    rows += [f"noise\t{f.noise_id}\t{f.group}\t{durations[f.path]:.3f}\t{f.path}" for f in noise]
    _write_text(local / "sources.tsv", rows)
    return Inventory(speech, noise, durations)


def _duration(path: Path) -> float:
    try:
        return float(sf.info(str(path)).duration)
    except (sf.SoundFileError, RuntimeError):
        return 0.0


def _decode_or_empty(path: Path, sample_rate: int) -> np.ndarray:
    """Decoded samples, or an empty array (with a warning) for a file that cannot be decoded."""
    try:
        return decode(path, sample_rate)
    except AudioError as err:
        warnings.warn(f"skipping {err}", stacklevel=2)
        return np.zeros(0, dtype=np.float32)


def _write_text(path: Path, lines: Iterable[str]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def assign_splits(
    weights: dict[str, float],
    groups: dict[str, str],
    fractions: dict[str, float],
    rng: np.random.Generator,
) -> dict[str, str]:
    """Assign each item (voice or noise file) to one split, separately within each group.

    Items are visited in random order and each goes to the split furthest below its target
    share (``fractions``) of the group's total weight, so large items tend to land in train.
    """
    result: dict[str, str] = {}
    for group in sorted(set(groups.values())):
        items = sorted(k for k in weights if groups[k] == group)
        total = sum(weights[k] for k in items)
        deficit = {s: fractions[s] * total for s in SPLITS}
        for index in rng.permutation(len(items)):
            item = items[int(index)]
            split = max(SPLITS, key=lambda s: deficit[s])
            result[item] = split
            deficit[split] -= weights[item]
    return result


def check_disjoint(label: str, by_split: dict[str, set[str]]) -> None:
    """Raise CorpusError if any id appears in more than one split."""
    for i, first in enumerate(SPLITS):
        for second in SPLITS[i + 1 :]:
            shared = by_split.get(first, set()) & by_split.get(second, set())
            if shared:
                raise CorpusError(f"{label} shared by {first} and {second}: {sorted(shared)[:10]}")


def _split_long(
    x: np.ndarray, target: int, min_n: int, sample_rate: int
) -> tuple[np.ndarray, np.ndarray]:
    """Cut ``x`` at its quietest 20 ms frame between max(min_n, target - 1 s) and ``target``."""
    hop = sample_rate // 50
    levels = frame_levels_db(x[:target], sample_rate)
    first, last = max(min_n, target - sample_rate) // hop, target // hop
    cut = (first + int(np.argmin(levels[first:last]))) * hop if last > first else target
    cut = min(max(cut, min_n), target)
    return x[:cut], x[cut:]


def segment_speaker(
    pieces: Sequence[np.ndarray],
    rng: np.random.Generator,
    sample_rate: int,
    min_seconds: float,
    max_seconds: float,
    gap_seconds: tuple[float, float],
) -> list[np.ndarray]:
    """Cut long pieces and join short ones (with a pause) into utterances of min..max seconds.

    Each utterance aims at a length drawn uniformly from [min, max]; pieces longer than max are
    cut at a quiet frame; a short utterance that the next piece would push past max is dropped.
    """
    min_n, max_n = int(min_seconds * sample_rate), int(max_seconds * sample_rate)
    out: list[np.ndarray] = []
    current: list[np.ndarray] = []
    length = 0
    target = int(rng.uniform(min_n, max_n))
    for piece in pieces:
        rest = np.asarray(piece, dtype=np.float32)
        while rest.size:
            if length == 0:
                if rest.size > max_n:
                    chunk, rest = _split_long(rest, target, min_n, sample_rate)
                else:
                    chunk, rest = rest, rest[:0]
                current, length = [chunk], chunk.size
            else:
                gap = int(rng.uniform(*gap_seconds) * sample_rate)
                if length + gap + rest.size > max_n:
                    if length >= min_n:
                        out.append(np.concatenate(current))
                    current, length, target = [], 0, int(rng.uniform(min_n, max_n))
                    continue
                current += [np.zeros(gap, np.float32), rest]
                length += gap + rest.size
                rest = rest[:0]
            if length >= target:
                out.append(np.concatenate(current))
                current, length, target = [], 0, int(rng.uniform(min_n, max_n))
    if length >= min_n:
        out.append(np.concatenate(current))
    return out


def _speaker_segments(files: list[SpeechFile], cfg: CorpusConfig, speaker: str) -> list[np.ndarray]:
    rng = _rng(cfg.seed, "segments", speaker)
    order = [files[int(i)] for i in rng.permutation(len(files))]
    if cfg.max_files_per_speaker > 0:
        order = order[: cfg.max_files_per_speaker]
    pieces = []
    for item in order:
        audio = _decode_or_empty(item.path, cfg.sample_rate)
        piece = trim_silence(audio, cfg.sample_rate, cfg.trim_top_db) if audio.size else audio
        if piece.size and _rms(piece) > 0:
            pieces.append(piece / max(float(np.max(np.abs(piece))), 1e-9) * 0.9)
    segments = segment_speaker(
        pieces, rng, cfg.sample_rate, cfg.min_seconds, cfg.max_seconds, cfg.gap_seconds
    )
    return [s for s in segments if _rms(s) > 1e-4]


def event_track(
    clips: Sequence[np.ndarray], n: int, sample_rate: int, rng: np.random.Generator, typing: bool
) -> np.ndarray:
    """Unit-RMS track of ``n`` samples: clips at typing rhythm (bursts of ~8 keys/s with word
    and thinking pauses) or at random (Poisson, ~1/s), each at -8..0 dB, over a -50 dB floor."""
    track = np.zeros(n)
    position = float(rng.uniform(0.0, 0.5) * sample_rate)
    while position < n:
        clip = clips[int(rng.integers(len(clips)))]
        start = int(position)
        stop = min(n, start + clip.size)
        track[start:stop] += 10.0 ** (rng.uniform(-8.0, 0.0) / 20.0) * clip[: stop - start]
        if typing:
            step = float(rng.lognormal(math.log(0.12), 0.35))
            if rng.random() < 0.15:
                step += float(rng.uniform(0.3, 0.8))
            if rng.random() < 0.02:
                step += float(rng.uniform(1.0, 3.0))
        else:
            step = float(rng.exponential(1.0)) + 0.05
        position += step * sample_rate
    level = max(_rms(track), 1e-6)
    track += colored_noise(n, 1.0, rng) * level * 10.0 ** (_FLOOR_DB / 20.0)
    return (track / _rms(track)).astype(np.float32)


def _talker_stream(segments: list[np.ndarray], n: int, rng: np.random.Generator) -> np.ndarray:
    parts, total = [], 0
    while total < n:
        part = segments[int(rng.integers(len(segments)))]
        parts.append(part)
        total += part.size
    return np.concatenate(parts)[:n]


def build_noise_bank(
    split: str,
    cfg: CorpusConfig,
    files: list[NoiseFile],
    speech: dict[str, list[np.ndarray]],
) -> list[NoiseRecording]:
    """Noise recordings of one split: its music files, tracks composed from its event clips,
    babble from its own voices, and coloured / non-stationary synthetic noise."""
    sr = cfg.sample_rate
    n_track = int(cfg.track_seconds * sr)
    n_tracks = cfg.noise_tracks.get(split)
    wanted = {t for t, w in cfg.noise_types.items() if w > 0}
    bank: list[NoiseRecording] = []
    by_type: dict[str, list[NoiseFile]] = {}
    for item in files:
        by_type.setdefault(item.noise_type, []).append(item)
    for noise_type in sorted(set(by_type) & wanted):
        items = by_type[noise_type]
        rng = _rng(cfg.seed, "noise", split, noise_type)
        if items[0].events:
            decoded = [_decode_or_empty(f.path, sr) for f in items]
            clips = [trim_silence(c, sr) for c in decoded if c.size]
            clips = [c for c in clips if c.size and _rms(c) > 0]
            if not clips:
                continue
            sources = tuple(f.noise_id for f in items)
            for k in range(n_tracks):
                signal = event_track(clips, n_track, sr, rng, typing=noise_type == "keyboard")
                bank.append(
                    NoiseRecording(f"{noise_type}-{split}-{k:03d}", noise_type, signal, sources)
                )
            continue
        for item in items:
            signal = _decode_or_empty(item.path, sr)
            signal = trim_silence(signal, sr) if signal.size else signal
            limit = int(cfg.music_max_seconds * sr)
            if signal.size > limit:
                start = int(rng.integers(0, signal.size - limit + 1))
                signal = signal[start : start + limit]
            if signal.size >= sr and _rms(signal) > 1e-4:
                bank.append(NoiseRecording(item.noise_id, noise_type, signal, (item.noise_id,)))
    bank += _synthetic_noise(split, cfg, wanted, speech, n_track, n_tracks)
    return bank


def _synthetic_noise(
    split: str,
    cfg: CorpusConfig,
    wanted: set[str],
    speech: dict[str, list[np.ndarray]],
    n: int,
    count: int,
) -> list[NoiseRecording]:
    bank = []
    for noise_type in _SYNTHETIC_TYPES:
        if noise_type not in wanted:
            continue
        rng = _rng(cfg.seed, "noise", split, noise_type)
        for k in range(count):
            noise_id = f"{noise_type}-{split}-{k:03d}"
            if noise_type == "colored":
                beta = float(rng.uniform(0.0, 2.0))
                signal, sources = colored_noise(n, beta, rng), (f"{noise_id}-beta{beta:.2f}",)
            elif noise_type == "nonstationary":
                signal, sources = nonstationary_noise(n, cfg.sample_rate, rng), (noise_id,)
            else:
                speakers = sorted(speech)
                low, high = cfg.babble_talkers
                n_talkers = min(int(rng.integers(low, high + 1)), len(speakers))
                chosen = [speakers[int(i)] for i in rng.choice(len(speakers), n_talkers, False)]
                streams = [_talker_stream(speech[s], n, rng) for s in chosen]
                signal = babble(streams, n, len(streams), rng)
                sources = tuple(f"voice:{s}" for s in sorted(chosen))
            bank.append(NoiseRecording(noise_id, noise_type, signal, sources))
    return bank


def mix_utterance(
    clean: np.ndarray,
    noise: NoiseRecording,
    snr: float,
    level_db: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(noisy, clean, noise) at ``snr`` with the noisy RMS at ``level_db`` dBFS, peak <= 0.99."""
    for _ in range(10):
        try:
            noisy, scaled = mix_at_snr(clean, noise.signal, snr, rng)
            break
        except ValueError:
            continue
    else:
        raise CorpusError(f"noise {noise.noise_id} gave only silent segments")
    gain = 10.0 ** (level_db / 20.0) / _rms(noisy)
    peak = gain * max(float(np.max(np.abs(a))) for a in (noisy, clean, scaled))
    if peak > _PEAK:
        gain *= _PEAK / peak
    return noisy * gain, clean * gain, scaled * gain


def _weights(cfg: CorpusConfig, types: set[str]) -> tuple[list[str], np.ndarray]:
    names = sorted(t for t in types if cfg.noise_types.get(t, 0.0) > 0)
    if not names:
        raise CorpusError("no noise recordings of the configured noise_types in this split")
    weights = np.array([cfg.noise_types[t] for t in names], dtype=np.float64)
    return names, weights / weights.sum()


def build_split(
    split: str,
    cfg: CorpusConfig,
    out_dir: Path,
    segments: list[tuple[str, np.ndarray]],
    bank: list[NoiseRecording],
    progress: bool = True,
) -> DataDir:
    """Mix ``utterances.<split>`` utterances and write their audio (replacing ``wav/<split>``)
    and the data dir."""
    n_utts = cfg.utterances.get(split)
    if not segments:
        raise CorpusError(f"{split}: no speech segments; add voices or speech sources")
    rng = _rng(cfg.seed, "select", split)
    order = list(rng.permutation(len(segments)))
    while len(order) < n_utts:
        order += list(rng.permutation(len(segments)))
    types, probabilities = _weights(cfg, {r.noise_type for r in bank})
    by_type = {t: [r for r in bank if r.noise_type == t] for t in types}
    data = DataDir()
    noise_ids: dict[str, str] = {}
    audio_dir = out_dir / "wav" / split
    shutil.rmtree(audio_dir, ignore_errors=True)
    for k in tqdm(range(n_utts), desc=f"mixing {split}", disable=not progress, mininterval=5):
        speaker, clean = segments[int(order[k])]
        utt_rng = _rng(cfg.seed, "mix", split, k)
        noise_type = types[int(utt_rng.choice(len(types), p=probabilities))]
        recording = by_type[noise_type][int(utt_rng.integers(len(by_type[noise_type])))]
        if split == "test":
            snr = float(cfg.test_snr_grid[k % len(cfg.test_snr_grid)])
        else:
            snr = round(float(utt_rng.uniform(*cfg.snr_db)), 2)
        level = float(utt_rng.uniform(*cfg.level_db))
        signals = mix_utterance(clean, recording, snr, level, utt_rng)
        utt = f"{speaker}-{split}{k:05d}"
        paths = []
        for kind, signal in zip(("noisy", "clean", "noise"), signals, strict=True):
            path = audio_dir / kind / f"{utt}.wav"
            save_audio(path, signal, cfg.sample_rate)
            paths.append(str(path))
        data.wav[utt], data.spk1_scp[utt], data.noise_scp[utt] = paths
        data.utt2spk[utt] = speaker
        data.utt2snr[utt] = snr
        data.utt2noise_type[utt] = noise_type
        noise_ids[utt] = recording.noise_id
    target = out_dir / split
    write_datadir(data, target)
    _write_text(target / "utt2noise_id", (f"{u} {noise_ids[u]}" for u in sorted(noise_ids)))
    used = {r.noise_id: r for r in bank if r.noise_id in set(noise_ids.values())}
    _write_text(
        target / "noise2sources",
        (f"{i} {','.join(used[i].sources)}" for i in sorted(used)),
    )
    return data


def _split_summary(
    data: DataDir, bank: list[NoiseRecording], noise_files: int, sample_rate: int
) -> dict[str, object]:
    seconds = sum(sf.info(p).frames for p in data.spk1_scp.values()) / sample_rate
    return {
        "utterances": len(data.wav),
        "hours": round(seconds / 3600.0, 3),
        "speakers": len(set(data.utt2spk.values())),
        "noise_files": noise_files,
        "noise_recordings": len(bank),
        "noise_types": dict(sorted(Counter(data.utt2noise_type.values()).items())),
        "mean_snr_db": round(float(np.mean(list(data.utt2snr.values()))), 2),
    }


def build_corpus(
    cfg: CorpusConfig,
    out_dir: str | Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> dict[str, dict[str, object]]:
    """Build the whole corpus into ``out_dir``; returns (and writes) a per-split summary."""
    started = time.monotonic()
    out = Path(out_dir)
    inventory = prepare_sources(cfg, out, progress)
    fractions = {
        "train": 1.0 - cfg.dev_fraction - cfg.test_fraction,
        "dev": cfg.dev_fraction,
        "test": cfg.test_fraction,
    }
    speaker_seconds: Counter[str] = Counter()
    speaker_group = {}
    for f in inventory.speech:
        speaker_seconds[f.speaker] += inventory.durations[f.path]
        speaker_group[f.speaker] = f.group
    speaker_split = assign_splits(
        dict(speaker_seconds), speaker_group, fractions, _rng(cfg.seed, "speaker-split")
    )
    noise_split = assign_splits(
        {f.noise_id: inventory.durations[f.path] for f in inventory.noise},
        {f.noise_id: f.group for f in inventory.noise},
        fractions,
        _rng(cfg.seed, "noise-split"),
    )
    for split in SPLITS:
        if split not in speaker_split.values():
            raise CorpusError(f"no voice was assigned to {split}: configure more voices")
    for name, mapping in (("speaker2split", speaker_split), ("noise2split", noise_split)):
        _write_text(out / "local" / name, (f"{k} {v}" for k, v in sorted(mapping.items())))
    summary: dict[str, dict[str, object]] = {}
    used_speakers: dict[str, set[str]] = {}
    used_noise: dict[str, set[str]] = {}
    for split in SPLITS:
        speech: dict[str, list[np.ndarray]] = {}
        speakers = sorted(s for s, v in speaker_split.items() if v == split)
        for speaker in tqdm(speakers, desc=f"reading {split} voices", disable=not progress):
            files = [f for f in inventory.speech if f.speaker == speaker]
            segments = _speaker_segments(files, cfg, speaker)
            if segments:
                speech[speaker] = segments
        pool = [(s, seg) for s in sorted(speech) for seg in speech[s]]
        noise_files = [f for f in inventory.noise if noise_split[f.noise_id] == split]
        bank = build_noise_bank(split, cfg, noise_files, speech)
        data = build_split(split, cfg, out, pool, bank, progress)
        used_speakers[split] = set(data.utt2spk.values())
        used_noise[split] = {s for r in bank for s in r.sources}
        check_disjoint("voices", used_speakers)
        check_disjoint("noise files", used_noise)
        summary[split] = _split_summary(data, bank, len(noise_files), cfg.sample_rate)
        summary[split]["speech_segments"] = len(pool)
        log(f"{split}: {summary[split]}")
    summary["build"] = {"seconds": round(time.monotonic() - started, 1), "seed": cfg.seed}
    save_config(cfg, out / "corpus.yaml")
    _write_text(out / "corpus_summary.yaml", yaml.safe_dump(summary, sort_keys=False).splitlines())
    return summary
