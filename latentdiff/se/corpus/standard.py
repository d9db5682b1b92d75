"""Kaldi data dirs for standard corpora: VoiceBank-DEMAND and the DNS Challenge (2020).

Both work on a local copy laid out like the official release:

VoiceBank-DEMAND (Edinburgh DataShare, 48 kHz, ids ``pXXX_YYY``)::

    <root>/clean_trainset_28spk_wav/  <root>/noisy_trainset_28spk_wav/
    <root>/clean_testset_wav/         <root>/noisy_testset_wav/
    <root>/logfiles/log_{trainset_28spk,testset}.txt   (optional: '<utt> <noise> <snr>')

DNS Challenge, Interspeech 2020 (``interspeech2020/master`` branch of microsoft/DNS-Challenge)::

    <root>/datasets/clean/book_*_chp_*_reader_<id>_<n>.wav
    <root>/datasets/noise/*.wav
    <root>/datasets/test_set/synthetic/no_reverb/clean/clean_fileid_<n>.wav
    <root>/datasets/test_set/synthetic/no_reverb/noisy/*_snr<snr>_*_fileid_<n>.wav
"""

from __future__ import annotations

import dataclasses
import re
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import yaml
from tqdm import tqdm

from latentdiff.se.audio import atomic_output, load_audio, save_audio
from latentdiff.se.corpus.build import NoiseRecording, mix_utterance
from latentdiff.se.datadir import DataDir, validate, write_datadir

VOICEBANK_SETS = {
    "train": ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav", "log_trainset_28spk.txt"),
    "test": ("clean_testset_wav", "noisy_testset_wav", "log_testset.txt"),
}
_VOICEBANK_ID = re.compile(r"^(p\d{3})_(\d{3})$")
_DNS_READER = re.compile(r"reader_(\d+)")
_DNS_FILEID = re.compile(r"fileid_(\d+)$")
_DNS_SNR = re.compile(r"_snr(-?\d+(?:\.\d+)?)_")
_MAX_LISTED = 10


class StandardCorpusError(ValueError):
    """A local copy of a standard corpus that is incomplete or not laid out as released."""


def _listing(ids: set[str]) -> str:
    shown = sorted(ids)[:_MAX_LISTED]
    more = f" and {len(ids) - len(shown)} more" if len(ids) > len(shown) else ""
    return ", ".join(shown) + more


def _wav_files(folder: Path, hint: str) -> dict[str, Path]:
    if not folder.is_dir():
        raise StandardCorpusError(f"{folder} not found ({hint})")
    files = {p.stem: p for p in sorted(folder.glob("*.wav"))}
    if not files:
        raise StandardCorpusError(f"{folder} holds no .wav files ({hint})")
    return files


def _at_rate(source: Path, target: Path, sample_rate: int) -> str:
    """Path of a 16-bit mono copy of ``source`` at ``sample_rate`` (``source`` if it is one)."""
    info = sf.info(str(source))
    if info.samplerate == sample_rate and info.channels == 1 and info.subtype == "PCM_16":
        return str(source)
    save_audio(target, load_audio(source, sample_rate), sample_rate)
    return str(target)


def _write_yaml(path: Path, data: dict[str, object]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")


def voicebank_pairs(root: str | Path, subset: str) -> dict[str, tuple[Path, Path]]:
    """utt id -> (clean, noisy) of the 'train' or 'test' set; checks names and pairing."""
    clean_name, noisy_name, _ = VOICEBANK_SETS[subset]
    hint = "unzip {0}.zip from https://datashare.ed.ac.uk/handle/10283/2791 here"
    clean = _wav_files(Path(root) / clean_name, hint.format(clean_name))
    noisy = _wav_files(Path(root) / noisy_name, hint.format(noisy_name))
    problems = []
    bad = {u for u in [*clean, *noisy] if not _VOICEBANK_ID.match(u)}
    if bad:
        problems.append(f"names not of the form pXXX_YYY.wav: {_listing(bad)}")
    if set(noisy) - set(clean):
        problems.append(f"noisy files without clean: {_listing(set(noisy) - set(clean))}")
    if set(clean) - set(noisy):
        problems.append(f"clean files without noisy: {_listing(set(clean) - set(noisy))}")
    if problems:
        raise StandardCorpusError(
            f"VoiceBank-DEMAND {subset} set in {root}: " + "; ".join(problems)
        )
    return {u: (clean[u], noisy[u]) for u in sorted(clean)}


def _voicebank_log(root: Path, subset: str, utts: list[str]) -> dict[str, tuple[str, float]]:
    path = root / "logfiles" / VOICEBANK_SETS[subset][2]
    if not path.is_file():
        return {}
    entries = {}
    for line in path.read_text().splitlines():
        fields = line.split()
        if len(fields) == 3:
            try:
                entries[fields[0]] = (fields[1], float(fields[2]))
            except ValueError:
                continue
    missing = set(utts) - set(entries)
    if missing:
        warnings.warn(f"{path}: no noise/SNR for {_listing(missing)}; not used", stacklevel=3)
        return {}
    return entries


def prepare_voicebank_demand(
    root: str | Path,
    out_dir: str | Path,
    dev_speakers: tuple[str, ...] = ("p226", "p287"),
    sample_rate: int = 16000,
    progress: bool = True,
) -> dict[str, int]:
    """Write ``<out>/{train,dev,test}`` (wav.scp noisy, spk1.scp clean, utt2spk) at 16 kHz.

    ``dev_speakers`` are held out of the 28 training speakers; the two test speakers stay in
    test. Clean and noisy files are paired by id and must have the same length. Returns the
    number of utterances per split.
    """
    root, out = Path(root), Path(out_dir)
    train, test = voicebank_pairs(root, "train"), voicebank_pairs(root, "test")
    train_speakers = {u.split("_")[0] for u in train}
    unknown = set(dev_speakers) - train_speakers
    if unknown:
        raise StandardCorpusError(
            f"dev speakers {sorted(unknown)} are not training speakers ({sorted(train_speakers)})"
        )
    splits = {
        "train": ("train", {u: p for u, p in train.items() if u.split("_")[0] not in dev_speakers}),
        "dev": ("train", {u: p for u, p in train.items() if u.split("_")[0] in dev_speakers}),
        "test": ("test", test),
    }
    counts = {}
    for split, (subset, pairs) in splits.items():
        if not pairs:
            raise StandardCorpusError(f"VoiceBank-DEMAND: {split} would be empty")
        data = DataDir()
        for utt, (clean, noisy) in tqdm(pairs.items(), desc=split, disable=not progress):
            if sf.info(str(clean)).frames != sf.info(str(noisy)).frames:
                raise StandardCorpusError(f"{clean} and {noisy} differ in length: mis-paired")
            folder = out / "wav" / split
            data.spk1_scp[utt] = _at_rate(clean, folder / "clean" / f"{utt}.wav", sample_rate)
            data.wav[utt] = _at_rate(noisy, folder / "noisy" / f"{utt}.wav", sample_rate)
            data.utt2spk[utt] = utt.split("_")[0]
        log = _voicebank_log(root, subset, list(pairs))
        if log:
            data.utt2noise_type = {u: log[u][0] for u in pairs}
            data.utt2snr = {u: log[u][1] for u in pairs}
        validate(data, check_files=True, sample_rate=sample_rate)
        write_datadir(data, out / split)
        counts[split] = len(pairs)
    return counts


@dataclasses.dataclass
class DnsOptions:
    """How the DNS training lists are split and mixed."""

    snr_db: tuple[float, float] = (-5.0, 20.0)
    dev_speakers: int = 20
    dev_noise_fraction: float = 0.05
    dev_utterances: int = 200
    dev_seconds: float = 6.0
    level_db: tuple[float, float] = (-35.0, -15.0)
    seed: int = 0
    sample_rate: int = 16000


def dns_reader(stem: str) -> str:
    """Speaker id of a DNS clean clip: 'reader_<id>' from its name, else the name itself."""
    match = _DNS_READER.search(stem)
    return f"reader_{match.group(1)}" if match else stem


def dns_test_pairs(root: str | Path) -> dict[str, tuple[Path, Path]]:
    """'fileid_<n>' -> (clean, noisy) of the synthetic no-reverb test set, matched by fileid."""
    base = Path(root) / "datasets" / "test_set" / "synthetic" / "no_reverb"
    hint = "clone the interspeech2020/master branch of microsoft/DNS-Challenge with git-lfs"
    by_id: dict[str, dict[str, Path]] = {"clean": {}, "noisy": {}}
    for kind in by_id:
        for stem, path in _wav_files(base / kind, hint).items():
            match = _DNS_FILEID.search(stem)
            if match is None:
                raise StandardCorpusError(f"{path}: name does not end in _fileid_<n>")
            key = f"fileid_{match.group(1)}"
            if key in by_id[kind]:
                raise StandardCorpusError(f"{path} and {by_id[kind][key]} share {key}")
            by_id[kind][key] = path
    clean, noisy = by_id["clean"], by_id["noisy"]
    if set(clean) != set(noisy):
        raise StandardCorpusError(
            f"DNS test set in {base} is mis-paired: noisy without clean: "
            f"{_listing(set(noisy) - set(clean)) or 'none'}; clean without noisy: "
            f"{_listing(set(clean) - set(noisy)) or 'none'}"
        )
    return {k: (clean[k], noisy[k]) for k in sorted(clean, key=lambda k: int(k.split("_")[1]))}


def _dns_lists(root: Path) -> tuple[dict[str, Path], dict[str, Path]]:
    hint = "clone the interspeech2020/master branch of microsoft/DNS-Challenge with git-lfs"
    clean = _wav_files(root / "datasets" / "clean", hint)
    noise = _wav_files(root / "datasets" / "noise", hint)
    return clean, noise


def _check_rates(files: dict[str, Path], sample_rate: int) -> None:
    wrong = {k for k, p in files.items() if sf.info(str(p)).samplerate != sample_rate}
    if wrong:
        raise StandardCorpusError(
            f"{len(wrong)} files are not at {sample_rate} Hz (e.g. {_listing(wrong)}); "
            "the DNS 2020 release is 16 kHz"
        )


def prepare_dns(
    root: str | Path, out_dir: str | Path, options: DnsOptions | None = None
) -> dict[str, int]:
    """Data dirs for on-the-fly training mixtures, a fixed dev set and the synthetic test set.

    ``train_clean`` (clean clips, utt2spk = reader) and ``train_noise`` list the files a loader
    mixes at SNRs drawn from ``snr_db`` (recorded in ``train_mixing.yaml``); ``dev`` holds
    ``dev_utterances`` pre-mixed utterances from held-out readers and noise files; ``test``
    pairs the synthetic no-reverb clips by fileid, with utt2snr from the noisy names.
    """
    opts = options or DnsOptions()
    root, out = Path(root), Path(out_dir)
    clean, noise = _dns_lists(root)
    _check_rates(clean, opts.sample_rate)
    _check_rates(noise, opts.sample_rate)
    rng = np.random.default_rng(opts.seed)
    readers = sorted({dns_reader(s) for s in clean})
    n_dev = min(opts.dev_speakers, len(readers) - 1)
    dev_readers = {readers[int(i)] for i in rng.choice(len(readers), n_dev, replace=False)}
    noise_ids = sorted(noise)
    n_dev_noise = min(max(1, round(opts.dev_noise_fraction * len(noise_ids))), len(noise_ids) - 1)
    if n_dev < 1 or n_dev_noise < 1:
        raise StandardCorpusError("DNS: need at least 2 readers and 2 noise files")
    dev_noise = {noise_ids[int(i)] for i in rng.choice(len(noise_ids), n_dev_noise, False)}

    train_clean = DataDir()
    for stem, path in clean.items():
        if dns_reader(stem) not in dev_readers:
            train_clean.wav[stem], train_clean.utt2spk[stem] = str(path), dns_reader(stem)
    train_noise = DataDir()
    for stem, path in noise.items():
        if stem not in dev_noise:
            train_noise.wav[stem], train_noise.utt2spk[stem] = str(path), stem
    write_datadir(train_clean, out / "train_clean")
    write_datadir(train_noise, out / "train_noise")
    _write_yaml(
        out / "train_mixing.yaml",
        {
            "clean": "train_clean",
            "noise": "train_noise",
            "snr_db": list(opts.snr_db),
            "sample_rate": opts.sample_rate,
        },
    )

    dev = _dns_dev(clean, noise, dev_readers, dev_noise, opts, out)
    test = DataDir()
    for key, (clean_path, noisy_path) in dns_test_pairs(root).items():
        folder = out / "wav" / "test"
        test.wav[key] = _at_rate(noisy_path, folder / f"{key}_noisy.wav", opts.sample_rate)
        test.spk1_scp[key] = _at_rate(clean_path, folder / f"{key}_clean.wav", opts.sample_rate)
        test.utt2spk[key] = key
        snr = _DNS_SNR.search(noisy_path.stem)
        if snr is not None:
            test.utt2snr[key] = float(snr.group(1))
    if test.utt2snr and len(test.utt2snr) != len(test.wav):
        test.utt2snr = {}
    validate(test, check_files=True, sample_rate=opts.sample_rate)
    write_datadir(test, out / "test")
    return {
        "train_clean": len(train_clean.wav),
        "train_noise": len(train_noise.wav),
        "dev": len(dev.wav),
        "test": len(test.wav),
    }


def _dns_dev(
    clean: dict[str, Path],
    noise: dict[str, Path],
    readers: set[str],
    noise_ids: set[str],
    opts: DnsOptions,
    out: Path,
) -> DataDir:
    """Pre-mixed dev utterances: random excerpts of held-out clips and noises."""
    sr = opts.sample_rate
    clips = sorted(s for s in clean if dns_reader(s) in readers)
    noises = sorted(noise_ids)
    data = DataDir()
    for k in range(opts.dev_utterances):
        rng = np.random.default_rng([opts.seed, 1, k])
        stem = clips[int(rng.integers(len(clips)))]
        speech = load_audio(clean[stem], sr)
        n = min(speech.size, int(opts.dev_seconds * sr))
        start = int(rng.integers(0, speech.size - n + 1))
        excerpt = speech[start : start + n]
        noise_id = noises[int(rng.integers(len(noises)))]
        recording = NoiseRecording(noise_id, "dns", load_audio(noise[noise_id], sr), (noise_id,))
        snr = round(float(rng.uniform(*opts.snr_db)), 2)
        try:
            signals = mix_utterance(
                excerpt, recording, snr, float(rng.uniform(*opts.level_db)), rng
            )
        except ValueError:
            continue
        utt = f"{dns_reader(stem)}-dev{k:05d}"
        paths = []
        for kind, signal in zip(("noisy", "clean", "noise"), signals, strict=True):
            path = out / "wav" / "dev" / kind / f"{utt}.wav"
            save_audio(path, signal, sr)
            paths.append(str(path))
        data.wav[utt], data.spk1_scp[utt], data.noise_scp[utt] = paths
        data.utt2spk[utt], data.utt2snr[utt] = dns_reader(stem), snr
    if not data.wav:
        raise StandardCorpusError("DNS dev set is empty: held-out clips or noises are silent")
    write_datadir(data, out / "dev")
    return data
