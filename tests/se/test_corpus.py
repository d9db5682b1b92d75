"""The mixed corpus: sources, reserved packages, splitting, segmentation and a tiny build."""

from __future__ import annotations

import argparse
import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentdiff.commands import CommandTable
from latentdiff.core.config import from_dict
from latentdiff.se import commands_data
from latentdiff.se.corpus.build import (
    SPLITS,
    CorpusConfig,
    CorpusError,
    assign_splits,
    build_corpus,
    check_disjoint,
    segment_speaker,
)
from latentdiff.se.corpus.sources import (
    ReservedSourceError,
    SourceMissingError,
    check_allowed,
    decode,
    discover_noise,
    discover_speech,
    trim_silence,
)
from latentdiff.se.datadir import read_datadir, validate

SR = 16000
TINY = {
    "speech_sources": [],
    "noise_sources": [],
    "tts": {
        "espeak_voices": 9,
        "flite_voices": [],
        "festival_voices": [],
        "utterances_per_voice": 4,
    },
    "utterances": {"train": 24, "dev": 8, "test": 12},
    "noise_tracks": {"train": 2, "dev": 2, "test": 2},
    "dev_fraction": 0.2,
    "test_fraction": 0.2,
    "noise_types": {"babble": 1.0, "colored": 1.0, "nonstationary": 1.0},
    "track_seconds": 8.0,
}
needs_espeak = pytest.mark.skipif(shutil.which("espeak-ng") is None, reason="needs espeak-ng")


def _tiny(seed: int = 0) -> CorpusConfig:
    return from_dict(CorpusConfig, {**TINY, "seed": seed})


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if shutil.which("espeak-ng") is None:
        pytest.skip("needs espeak-ng")
    out = tmp_path_factory.mktemp("corpus")
    build_corpus(_tiny(), out, progress=False, log=lambda _: None)
    return out


def _read_map(path: Path) -> dict[str, str]:
    pairs = (line.split(maxsplit=1) for line in path.read_text().splitlines())
    return {key: value for key, value in pairs}


# --- sources -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/usr/share/asterisk/sounds/en/hello-world.gsm",
        "/usr/share/asterisk/moh/macroform-robot_dity.wav",
        "/usr/share/pocketsphinx/test/data/goforward.raw",
        "/usr/share/games/ufoai/base/sound/voice.ogg",
        "/home/x/node_modules/supersonic-scsynth-samples/samples/bd.flac",
    ],
)
def test_reserved_package_paths_are_refused(path: str) -> None:
    with pytest.raises(ReservedSourceError, match="must not be used"):
        check_allowed(path)
    with pytest.raises(ReservedSourceError):
        decode(path, SR)


def test_discovery_refuses_a_share_dir_inside_a_reserved_package(tmp_path: Path) -> None:
    share = tmp_path / "asterisk-moh-opsound"
    (share / "buckle" / "wav").mkdir(parents=True)
    sf.write(share / "buckle" / "wav" / "01-0.wav", np.zeros(100), SR)
    with pytest.raises(ReservedSourceError):
        discover_noise(["bucklespring"], share)


def test_allowed_paths_pass() -> None:
    path = "/usr/share/games/fillets-ng/sound/kitchen/nl/kuch-m-1.ogg"
    assert check_allowed(path) == Path(path)


def test_missing_package_names_the_package_and_the_install_command(tmp_path: Path) -> None:
    with pytest.raises(SourceMissingError, match=r"fillets-ng-data-nl.*apt-get install"):
        discover_speech(["fillets-ng-nl"], tmp_path)
    with pytest.raises(ValueError, match="unknown speech source"):
        discover_speech(["no-such-source"], tmp_path)


def test_voice_ids_follow_the_package_layout(tmp_path: Path) -> None:
    sound = tmp_path / "games" / "fillets-ng" / "sound"
    names = [
        "kitchen/nl/kuch-m-1.ogg",
        "kitchen/nl/kuch-v-hlad.ogg",
        "electromagnet/nl/init-0.ogg",
        "share/borejokes/nl/smrt-m-0.ogg",
        "kitchen/cs/kuch-m-1.ogg",
    ]
    for name in names:
        (sound / name).parent.mkdir(parents=True, exist_ok=True)
        (sound / name).write_bytes(b"")
    voices = tmp_path / "games/hedgewars/Data/Sounds/voices/Pirate"
    voices.mkdir(parents=True)
    (voices / "Ahoy.ogg").write_bytes(b"")
    found = {
        f.path.relative_to(tmp_path).as_posix(): f.speaker
        for f in discover_speech(["fillets-ng-nl", "hedgewars-voices"], tmp_path)
    }
    prefix = "games/fillets-ng/sound/"
    assert found == {
        prefix + "kitchen/nl/kuch-m-1.ogg": "fillets-nl-small-fish",
        prefix + "kitchen/nl/kuch-v-hlad.ogg": "fillets-nl-big-fish",
        prefix + "electromagnet/nl/init-0.ogg": "fillets-nl-electromagnet-others",
        prefix + "share/borejokes/nl/smrt-m-0.ogg": "fillets-nl-small-fish",
        "games/hedgewars/Data/Sounds/voices/Pirate/Ahoy.ogg": "hw-pirate",
    }


def test_trim_silence_drops_quiet_edges() -> None:
    rng = np.random.default_rng(0)
    speech = rng.standard_normal(SR).astype(np.float32) * 0.3
    x = np.concatenate([np.zeros(SR // 2), speech, np.zeros(SR)]).astype(np.float32)
    trimmed = trim_silence(x, SR, margin_s=0.0)
    assert abs(trimmed.size - SR) <= SR // 50
    assert trim_silence(np.zeros(SR, np.float32), SR).size == 0


# --- splitting and segmentation ------------------------------------------------------------------


def test_assign_splits_puts_every_item_in_one_split_near_the_target_shares() -> None:
    weights = {f"spk{i:02d}": 1.0 for i in range(40)} | {"big": 30.0}
    groups = dict.fromkeys(weights, "a") | {"spk00": "b", "spk01": "b", "spk02": "b"}
    fractions = {"train": 0.7, "dev": 0.1, "test": 0.2}
    result = assign_splits(weights, groups, fractions, np.random.default_rng(0))
    assert set(result) == set(weights)
    assert result["big"] == "train"
    share = {s: sum(w for k, w in weights.items() if result[k] == s) / 70.0 for s in SPLITS}
    assert share == pytest.approx(fractions, abs=0.05)
    assert result == assign_splits(weights, groups, fractions, np.random.default_rng(0))


def test_check_disjoint_reports_shared_ids() -> None:
    check_disjoint("voices", {"train": {"a", "b"}, "dev": {"c"}, "test": {"d"}})
    with pytest.raises(CorpusError, match=r"voices shared by train and test: \['b'\]"):
        check_disjoint("voices", {"train": {"a", "b"}, "dev": {"c"}, "test": {"b"}})


def test_segments_are_between_min_and_max_seconds() -> None:
    rng = np.random.default_rng(1)
    lengths = [0.4, 0.7, 1.1, 9.5, 3.0, 0.3, 14.2, 2.2, 5.9, 0.8, 0.6, 4.4]
    pieces = [rng.standard_normal(int(s * SR)).astype(np.float32) for s in lengths]
    segments = segment_speaker(pieces, np.random.default_rng(2), SR, 2.0, 6.0, (0.1, 0.4))
    durations = [s.size / SR for s in segments]
    assert all(2.0 <= d <= 6.0 for d in durations), durations
    assert sum(durations) > 0.8 * sum(lengths)
    again = segment_speaker(pieces, np.random.default_rng(2), SR, 2.0, 6.0, (0.1, 0.4))
    assert all(np.array_equal(a, b) for a, b in zip(segments, again, strict=True))


def test_invalid_config_is_rejected(tmp_path: Path) -> None:
    cfg = _tiny()
    cfg.min_seconds, cfg.max_seconds = 5.0, 3.0
    with pytest.raises(CorpusError, match="min_seconds"):
        build_corpus(cfg, tmp_path, progress=False)


# --- the tiny corpus -----------------------------------------------------------------------------


def test_data_dirs_validate_with_16_khz_audio(corpus: Path) -> None:
    sizes = {"train": 24, "dev": 8, "test": 12}
    for split in SPLITS:
        data = read_datadir(corpus / split)
        validate(data, check_files=True, sample_rate=SR)
        assert len(data.wav) == sizes[split]
        assert set(data.utt2noise_type.values()) <= {"babble", "colored", "nonstationary"}
        for path in data.spk1_scp.values():
            info = sf.info(path)
            assert info.subtype == "PCM_16" and info.channels == 1
            assert 2.0 <= info.duration <= 6.0 + 1e-3


def test_splits_are_disjoint_by_voice_and_noise_file(corpus: Path) -> None:
    voices = {s: set(_read_map(corpus / s / "utt2spk").values()) for s in SPLITS}
    assert all(voices.values())
    check_disjoint("voices", voices)
    noise_sources: dict[str, set[str]] = {}
    for split in SPLITS:
        sources = _read_map(corpus / split / "noise2sources")
        assert set(_read_map(corpus / split / "utt2noise_id").values()) <= set(sources)
        noise_sources[split] = {s for v in sources.values() for s in v.split(",")}
        babble_voices = {s[6:] for s in noise_sources[split] if s.startswith("voice:")}
        assert babble_voices <= voices[split]
    check_disjoint("noise files", noise_sources)


def test_mixtures_have_the_recorded_snr(corpus: Path) -> None:
    for split in SPLITS:
        data = read_datadir(corpus / split)
        for utt, snr in data.utt2snr.items():
            noisy, _ = sf.read(data.wav[utt], dtype="float64")
            clean, _ = sf.read(data.spk1_scp[utt], dtype="float64")
            noise, _ = sf.read(data.noise_scp[utt], dtype="float64")
            measured = 10 * np.log10(np.sum(clean**2) / np.sum((noisy - clean) ** 2))
            assert measured == pytest.approx(snr, abs=0.1), utt
            assert np.max(np.abs(noisy - clean - noise)) <= 2.5 / 32768
            assert np.max(np.abs(noisy)) <= 0.995
            if split == "test":
                assert snr in (-5.0, 0.0, 5.0, 10.0, 15.0, 20.0)
            else:
                assert -5.0 <= snr <= 20.0
    test_snrs = read_datadir(corpus / "test").utt2snr.values()
    assert len(set(test_snrs)) == 6


def _fingerprint(root: Path) -> dict[str, str]:
    result = {}
    for split in SPLITS:
        for kind in ("wav.scp", "spk1.scp", "noise.scp", "utt2snr", "utt2noise_id"):
            result[f"{split}/{kind}"] = (root / split / kind).read_text().replace(str(root), "")
        for path in sorted((root / "wav" / split).rglob("*.wav")):
            result[str(path.relative_to(root))] = hashlib.sha1(path.read_bytes()).hexdigest()
    return result


@needs_espeak
def test_same_seed_gives_an_identical_corpus(corpus: Path, tmp_path: Path) -> None:
    build_corpus(_tiny(), tmp_path / "again", progress=False, log=lambda _: None)
    assert _fingerprint(tmp_path / "again") == _fingerprint(corpus)


def test_command_line_lists_the_required_packages(capsys: pytest.CaptureFixture[str]) -> None:
    parser = argparse.ArgumentParser()
    table = CommandTable(parser.add_subparsers(dest="verb", required=True))
    commands_data.add_commands(table)
    args = parser.parse_args(["prepare", "se-corpus", "--out-dir", "data", "--list-packages"])
    assert args.run(args) == 0
    packages = capsys.readouterr().out.split()
    assert {"fillets-ng-data-nl", "fillets-ng-data-cs", "espeak-ng", "bucklespring-data"} <= set(
        packages
    )
    assert not any("asterisk" in p or "pocketsphinx" in p for p in packages)
