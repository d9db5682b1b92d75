"""VoiceBank-DEMAND and DNS Challenge preparation on tiny fake copies laid out like the releases."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentdiff.se.audio import resample
from latentdiff.se.corpus.standard import (
    DnsOptions,
    StandardCorpusError,
    dns_test_pairs,
    prepare_dns,
    prepare_voicebank_demand,
)
from latentdiff.se.datadir import read_datadir, validate

TRAIN_SPEAKERS = ("p226", "p230", "p287", "p239")
TEST_SPEAKERS = ("p232", "p257")


def _tone(rng: np.random.Generator, seconds: float, sr: int) -> np.ndarray:
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * rng.uniform(150, 400) * t)).astype(np.float32)


def _voicebank(root: Path, utts_per_speaker: int = 2) -> Path:
    rng = np.random.default_rng(0)
    sets = {
        ("clean_trainset_28spk_wav", "noisy_trainset_28spk_wav"): TRAIN_SPEAKERS,
        ("clean_testset_wav", "noisy_testset_wav"): TEST_SPEAKERS,
    }
    log_lines = []
    for (clean_dir, noisy_dir), speakers in sets.items():
        (root / clean_dir).mkdir(parents=True)
        (root / noisy_dir).mkdir(parents=True)
        for speaker in speakers:
            for n in range(1, utts_per_speaker + 1):
                utt = f"{speaker}_{n:03d}"
                clean = _tone(rng, 0.5, 48000)
                noisy = clean + 0.05 * rng.standard_normal(clean.size).astype(np.float32)
                sf.write(root / clean_dir / f"{utt}.wav", clean, 48000, subtype="PCM_16")
                sf.write(root / noisy_dir / f"{utt}.wav", noisy, 48000, subtype="PCM_16")
                if "train" in clean_dir:
                    log_lines.append(f"{utt} cafe {n * 5.0}")
    (root / "logfiles").mkdir()
    (root / "logfiles" / "log_trainset_28spk.txt").write_text("\n".join(log_lines) + "\n")
    return root


def test_voicebank_splits_by_speaker_and_resamples_to_16_khz(tmp_path: Path) -> None:
    root = _voicebank(tmp_path / "vbd")
    counts = prepare_voicebank_demand(root, tmp_path / "data", progress=False)
    assert counts == {"train": 4, "dev": 4, "test": 4}
    speakers = {}
    for split in ("train", "dev", "test"):
        data = read_datadir(tmp_path / "data" / split)
        validate(data, check_files=True, sample_rate=16000)
        speakers[split] = set(data.utt2spk.values())
        assert all(utt.startswith(data.utt2spk[utt] + "_") for utt in data.wav)
        for utt in data.wav:
            assert sf.info(data.wav[utt]).frames == sf.info(data.spk1_scp[utt]).frames == 8000
    assert speakers == {
        "train": {"p230", "p239"},
        "dev": {"p226", "p287"},
        "test": set(TEST_SPEAKERS),
    }
    dev = read_datadir(tmp_path / "data" / "dev")
    assert dev.utt2snr == {"p226_001": 5.0, "p226_002": 10.0, "p287_001": 5.0, "p287_002": 10.0}
    assert not read_datadir(tmp_path / "data" / "test").utt2snr


def test_voicebank_keeps_clean_and_noisy_paired(tmp_path: Path) -> None:
    root = _voicebank(tmp_path / "vbd")
    prepare_voicebank_demand(root, tmp_path / "data", progress=False)
    test = read_datadir(tmp_path / "data" / "test")
    for utt in test.wav:
        original, _ = sf.read(root / "clean_testset_wav" / f"{utt}.wav", dtype="float32")
        written, rate = sf.read(test.spk1_scp[utt], dtype="float32")
        assert rate == 16000
        expected = resample(original, 48000, 16000)
        assert np.max(np.abs(written - expected)) < 2e-3


def test_voicebank_reports_unpaired_and_misnamed_files(tmp_path: Path) -> None:
    root = _voicebank(tmp_path / "vbd")
    (root / "clean_testset_wav" / "p232_001.wav").unlink()
    with pytest.raises(StandardCorpusError, match=r"test set.*noisy files without clean: p232_001"):
        prepare_voicebank_demand(root, tmp_path / "data", progress=False)
    (root / "noisy_trainset_28spk_wav" / "extra.wav").write_bytes(b"")
    with pytest.raises(StandardCorpusError, match=r"not of the form pXXX_YYY\.wav: extra"):
        prepare_voicebank_demand(root, tmp_path / "data", progress=False)


def test_voicebank_rejects_missing_folders_length_mismatch_and_unknown_dev(tmp_path: Path) -> None:
    with pytest.raises(StandardCorpusError, match=r"clean_trainset_28spk_wav not found.*datashare"):
        prepare_voicebank_demand(tmp_path / "empty", tmp_path / "data", progress=False)
    root = _voicebank(tmp_path / "vbd")
    with pytest.raises(StandardCorpusError, match="p999"):
        prepare_voicebank_demand(root, tmp_path / "data", ("p999",), progress=False)
    sf.write(root / "noisy_testset_wav" / "p257_002.wav", np.zeros(100), 48000)
    with pytest.raises(StandardCorpusError, match="mis-paired"):
        prepare_voicebank_demand(root, tmp_path / "data", progress=False)


def _dns(root: Path) -> Path:
    rng = np.random.default_rng(1)
    datasets = root / "datasets"
    (datasets / "clean").mkdir(parents=True)
    (datasets / "noise").mkdir()
    for book, reader in enumerate(("06709", "11980", "01326", "04069")):
        for n in range(2):
            name = f"book_{book:05d}_chp_0009_reader_{reader}_{n}.wav"
            sf.write(datasets / "clean" / name, _tone(rng, 1.0, 16000), 16000, subtype="PCM_16")
    for name in ("AirConditioner_1", "Babble_2", "Typing_3", "Traffic_4"):
        noise = 0.1 * rng.standard_normal(16000 * 2)
        sf.write(datasets / "noise" / f"{name}.wav", noise, 16000, subtype="PCM_16")
    test = datasets / "test_set" / "synthetic" / "no_reverb"
    (test / "clean").mkdir(parents=True)
    (test / "noisy").mkdir()
    for fileid, noisy_name in (
        (0, "clnsp126_3Wjw0nadnM4_snr15_tl-22"),
        (7, "clnsp1_bus_1_snr-3_tl-21"),
    ):
        clean = _tone(rng, 1.0, 16000)
        sf.write(test / "clean" / f"clean_fileid_{fileid}.wav", clean, 16000, subtype="PCM_16")
        noisy = clean + 0.05 * rng.standard_normal(clean.size)
        sf.write(
            test / "noisy" / f"{noisy_name}_fileid_{fileid}.wav", noisy, 16000, subtype="PCM_16"
        )
    return root


def test_dns_lists_hold_out_readers_and_noises_and_match_test_by_fileid(tmp_path: Path) -> None:
    root = _dns(tmp_path / "DNS-Challenge")
    out = tmp_path / "data"
    options = DnsOptions(dev_speakers=1, dev_utterances=3, dev_noise_fraction=0.25, dev_seconds=0.5)
    counts = prepare_dns(root, out, options)
    assert counts == {"train_clean": 6, "train_noise": 3, "dev": 3, "test": 2}
    train, noise = read_datadir(out / "train_clean"), read_datadir(out / "train_noise")
    dev = read_datadir(out / "dev")
    validate(dev, check_files=True, sample_rate=16000)
    assert len(set(dev.utt2spk.values())) == 1
    assert set(dev.utt2spk.values()).isdisjoint(train.utt2spk.values())
    assert all(spk.startswith("reader_") for spk in train.utt2spk.values())
    for utt, snr in dev.utt2snr.items():
        noisy, _ = sf.read(dev.wav[utt], dtype="float64")
        clean, _ = sf.read(dev.spk1_scp[utt], dtype="float64")
        measured = 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))
        assert measured == pytest.approx(snr, abs=0.1)
        assert -5.0 <= snr <= 20.0
    assert len(noise.wav) == 3
    test = read_datadir(out / "test")
    validate(test, check_files=True, sample_rate=16000)
    assert test.utt2snr == {"fileid_0": 15.0, "fileid_7": -3.0}
    assert test.wav["fileid_7"].endswith("clnsp1_bus_1_snr-3_tl-21_fileid_7.wav")
    assert test.spk1_scp["fileid_7"].endswith("clean_fileid_7.wav")
    assert "snr_db" in (out / "train_mixing.yaml").read_text()


def test_dns_test_pairs_report_unmatched_fileids(tmp_path: Path) -> None:
    root = _dns(tmp_path / "DNS-Challenge")
    clean_dir = root / "datasets" / "test_set" / "synthetic" / "no_reverb" / "clean"
    (clean_dir / "clean_fileid_7.wav").rename(clean_dir / "clean_fileid_8.wav")
    with pytest.raises(StandardCorpusError, match=r"noisy without clean: fileid_7.*fileid_8"):
        dns_test_pairs(root)


def test_dns_rejects_a_missing_layout_and_wrong_rates(tmp_path: Path) -> None:
    with pytest.raises(StandardCorpusError, match="interspeech2020/master"):
        prepare_dns(tmp_path / "nothing", tmp_path / "data")
    root = _dns(tmp_path / "DNS-Challenge")
    sf.write(root / "datasets" / "noise" / "Loud_5.wav", np.zeros(4800), 48000)
    with pytest.raises(StandardCorpusError, match="not at 16000 Hz"):
        prepare_dns(root, tmp_path / "data")
