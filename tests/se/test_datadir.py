"""Kaldi-style data directories: reading, writing, validation and subsets."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from latentdiff.se.datadir import (
    DataDir,
    DataDirError,
    read_datadir,
    subset,
    validate,
    write_datadir,
)


def _wav(path: Path, seconds: float = 0.5, sr: int = 16000) -> str:
    sf.write(path, np.zeros(int(sr * seconds)), sr)
    return str(path)


def _example(tmp_path: Path) -> DataDir:
    audio = tmp_path / "audio"
    audio.mkdir()
    utts = ["spkB-u2", "spkA-u1", "spkA-u0"]
    return DataDir(
        wav={u: _wav(audio / f"{u}_noisy.wav") for u in utts},
        utt2spk={u: u.split("-")[0] for u in utts},
        spk1_scp={u: _wav(audio / f"{u}_clean.wav") for u in utts},
        noise_scp={u: _wav(audio / f"{u}_noise.wav") for u in utts},
        text={u: f"words of {u}" for u in utts},
        utt2snr={u: float(i) - 2.5 for i, u in enumerate(utts)},
        utt2noise_type={u: "babble" for u in utts},
    )


def _write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_write_read_round_trip_sorted(tmp_path: Path) -> None:
    data = _example(tmp_path)
    write_datadir(data, tmp_path / "dir")
    lines = (tmp_path / "dir" / "wav.scp").read_text().splitlines()
    assert [line.split()[0] for line in lines] == ["spkA-u0", "spkA-u1", "spkB-u2"]
    assert (tmp_path / "dir" / "spk2utt").read_text() == "spkA spkA-u0 spkA-u1\nspkB spkB-u2\n"
    assert (tmp_path / "dir" / "utt2snr").read_text().splitlines()[0] == "spkA-u0 -0.5"
    back = read_datadir(tmp_path / "dir")
    assert back == data
    assert back.text["spkA-u1"] == "words of spkA-u1"
    validate(back, sample_rate=16000)
    assert not [p for p in (tmp_path / "dir").iterdir() if p.name.startswith(".")]


def test_missing_utt2spk_defaults_to_identity_or_spk2utt(tmp_path: Path) -> None:
    _write(tmp_path / "d" / "wav.scp", "b /x/b.wav\na /x/a.wav\n")
    assert read_datadir(tmp_path / "d").utt2spk == {"b": "b", "a": "a"}
    _write(tmp_path / "d" / "spk2utt", "s1 a b\n")
    assert read_datadir(tmp_path / "d").utt2spk == {"a": "s1", "b": "s1"}
    _write(tmp_path / "d" / "utt2spk", "a s1\nb s2\n")
    with pytest.raises(DataDirError, match="spk2utt: disagrees"):
        read_datadir(tmp_path / "d")


@pytest.mark.parametrize(
    ("file", "content", "message"),
    [
        ("wav.scp", "a /x/a.wav\nb /x/b.wav\na /x/c.wav\n", r"wav\.scp line 3: duplicate id 'a'"),
        ("wav.scp", "a sox /x/a.wav -t wav - |\n", r"wav\.scp line 1: command pipes"),
        ("wav.scp", "a /x/a.wav\nb\n", r"wav\.scp line 2: expected '<id> <value>'"),
        ("segments", "s1 a 0.0\n", r"segments line 1: expected '<recording> <start> <end>'"),
        ("utt2snr", "a five\n", r"utt2snr line 1: could not convert"),
        ("utt2snr", "a nan\n", r"utt2snr line 1: SNR must be finite"),
    ],
)
def test_read_errors_name_file_and_line(
    tmp_path: Path, file: str, content: str, message: str
) -> None:
    _write(tmp_path / "d" / "wav.scp", "a /x/a.wav\n")
    _write(tmp_path / "d" / file, content)
    with pytest.raises(DataDirError, match=message):
        read_datadir(tmp_path / "d")


def test_not_a_datadir(tmp_path: Path) -> None:
    with pytest.raises(DataDirError, match=r"no wav\.scp"):
        read_datadir(tmp_path)


def test_validate_reports_cross_file_problems_with_lines(tmp_path: Path) -> None:
    root = tmp_path / "d"
    _write(root / "wav.scp", "u1 /nowhere/u1.wav\nu2 /nowhere/u2.wav\n")
    _write(root / "utt2spk", "u1 s\n")
    _write(root / "text", "u1 hello\nu2 hi\nu3 extra\n")
    data = read_datadir(root)
    with pytest.raises(DataDirError) as info:
        validate(data)
    message = str(info.value)
    assert f"utt2spk: id 'u2' ({root / 'wav.scp'} line 2) has no entry" in message
    assert f"{root / 'text'} line 3: id 'u3' is not in wav.scp" in message
    assert f"{root / 'wav.scp'} line 1: audio file not found: /nowhere/u1.wav" in message
    validate(subset(data, ["u1"]), check_files=False)


def test_validate_sample_rate_and_unreadable_audio(tmp_path: Path) -> None:
    data = _example(tmp_path)
    _wav(Path(data.spk1_scp["spkA-u1"]), sr=8000)
    Path(data.noise_scp["spkB-u2"]).write_bytes(b"not audio")
    validate(data, sample_rate=None, check_files=False)
    with pytest.raises(DataDirError) as info:
        validate(data, sample_rate=16000)
    message = str(info.value)
    assert "spk1.scp: " in message and "is at 8000 Hz, expected 16000 Hz" in message
    assert "noise.scp: " in message and "unreadable audio" in message
    assert "wav.scp" not in message


def test_validate_ids_with_whitespace_and_partial_scp(tmp_path: Path) -> None:
    data = _example(tmp_path)
    data.utt2spk["spkA-u0"] = "spk A"
    data.text["bad id"] = "x"
    del data.noise_scp["spkA-u1"]
    with pytest.raises(DataDirError) as info:
        write_datadir(data, tmp_path / "out")
    message = str(info.value)
    assert "speaker id 'spk A' has whitespace" in message
    assert "text: id 'bad id' is empty or has whitespace" in message
    assert "noise.scp: id 'spkA-u1' (wav.scp) has no entry" in message
    assert not (tmp_path / "out").exists()


def test_segments_keyed_by_recording(tmp_path: Path) -> None:
    rec = _wav(tmp_path / "rec.wav", seconds=2.0)
    data = DataDir(
        wav={"rec1": rec, "rec2": rec},
        segments={"u1": ("rec1", 0.0, 1.0), "u2": ("rec1", 1.0, 2.0), "u3": ("rec2", 0.5, -1.0)},
        utt2spk={"u1": "s", "u2": "s", "u3": "t"},
        spk1_scp={"rec1": rec, "rec2": rec},
    )
    validate(data, sample_rate=16000)
    write_datadir(data, tmp_path / "d")
    assert (tmp_path / "d" / "segments").read_text().splitlines()[2] == "u3 rec2 0.5 -1.0"
    assert read_datadir(tmp_path / "d") == data
    part = subset(data, ["u2"])
    assert part.wav == {"rec1": rec} and part.spk1_scp == {"rec1": rec}
    assert list(part.segments) == ["u2"] and part.utt_ids == ["u2"]

    data.segments["u4"] = ("rec3", 0.0, 1.0)
    data.segments["u5"] = ("rec1", 1.5, 3.0)
    data.segments["u6"] = ("rec1", 1.0, 0.5)
    data.utt2spk.update({"u4": "s", "u5": "s", "u6": "s"})
    with pytest.raises(DataDirError) as info:
        validate(data)
    message = str(info.value)
    assert "recording 'rec3' not in wav.scp" in message
    assert "end 3.0 s is past the end of recording 'rec1' (2.000 s)" in message
    assert "bad times start=1.0 end=0.5" in message


def test_subset_keeps_order_and_rejects_unknown(tmp_path: Path) -> None:
    data = _example(tmp_path)
    part = subset(data, ["spkA-u0", "spkB-u2"])
    assert part.utt_ids == ["spkB-u2", "spkA-u0"]
    assert set(part.utt2snr) == set(part.noise_scp) == {"spkB-u2", "spkA-u0"}
    assert part.spk2utt == {"spkA": ["spkA-u0"], "spkB": ["spkB-u2"]}
    assert len(data.wav) == 3
    with pytest.raises(DataDirError, match=r"unknown utterance ids \['nope'\]"):
        subset(data, ["nope"])


def test_rewrite_drops_stale_optional_files(tmp_path: Path) -> None:
    data = _example(tmp_path)
    write_datadir(data, tmp_path / "d")
    data.text = {}
    write_datadir(data, tmp_path / "d")
    assert not (tmp_path / "d" / "text").exists()
    assert read_datadir(tmp_path / "d").text == {}
