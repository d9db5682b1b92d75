"""Build a synthetic (noisy, clean) Kaldi data dir from espeak-ng speech and synthetic noises.

Speech: random English sentences spoken by espeak-ng with random voice, speed and pitch,
resampled to 16 kHz. Noise: coloured, non-stationary or babble (other espeak utterances) from
``latentdiff.se.mixing``, mixed at a random SNR, then both signals peak-normalised together.
Everything follows from ``--seed``. Writes ``<out>/audio/*.wav`` and ``<out>/{wav.scp, spk1.scp,
utt2spk, utt2snr, utt2noise_type}`` (paths relative to ``--root`` when given).

    python tests/se/data/make_synthetic.py --out tests/se/data/clips --n-utts 3 --seed 7 \
        --max-seconds 1.6 --root tests/se/data/clips
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from latentdiff.se.audio import load_audio, save_audio
from latentdiff.se.datadir import DataDir, write_datadir
from latentdiff.se.mixing import (
    babble,
    colored_noise,
    mix_at_snr,
    nonstationary_noise,
    peak_normalize,
)

SAMPLE_RATE = 16000
VOICES = ("en+f3", "en+m3", "en-us+f2", "en-us+m1", "en+f4", "en-gb-x-rp+m2", "en+f1", "en+m7")
WORDS = (
    "the",
    "a",
    "one",
    "two",
    "red",
    "blue",
    "green",
    "small",
    "large",
    "quick",
    "slow",
    "bright",
    "dark",
    "river",
    "mountain",
    "city",
    "road",
    "house",
    "garden",
    "window",
    "table",
    "chair",
    "paper",
    "music",
    "voice",
    "morning",
    "evening",
    "winter",
    "summer",
    "people",
    "children",
    "teacher",
    "doctor",
    "walks",
    "runs",
    "speaks",
    "reads",
    "writes",
    "builds",
    "opens",
    "closes",
    "carries",
    "finds",
    "near",
    "under",
    "over",
    "behind",
    "between",
    "after",
    "before",
    "during",
    "with",
    "without",
    "quietly",
    "loudly",
    "today",
    "yesterday",
    "tomorrow",
    "always",
    "never",
    "often",
    "seven",
    "eight",
    "nine",
    "ten",
    "hundred",
    "thousand",
    "coffee",
    "water",
    "bread",
    "station",
    "train",
    "airport",
    "weather",
    "report",
    "signal",
    "number",
    "letter",
    "question",
    "answer",
)
NOISE_TYPES = ("white", "pink", "brown", "nonstationary", "babble")


def sentence(rng: np.random.Generator) -> str:
    return " ".join(rng.choice(WORDS, size=int(rng.integers(5, 14))))


def speak(text: str, rng: np.random.Generator, workdir: Path) -> np.ndarray:
    """espeak-ng speech as float32 at 16 kHz."""
    path = workdir / "speech.wav"
    voice = str(rng.choice(VOICES))
    speed, pitch = int(rng.integers(130, 200)), int(rng.integers(25, 75))
    subprocess.run(
        ["espeak-ng", "-w", str(path), "-v", voice, "-s", str(speed), "-p", str(pitch), text],
        check=True,
        capture_output=True,
    )
    return load_audio(path, SAMPLE_RATE)


def noise_for(kind: str, n: int, rng: np.random.Generator, talkers: list[np.ndarray]) -> np.ndarray:
    if kind == "babble":
        return babble(talkers, n, int(rng.integers(3, 7)), rng)
    if kind == "nonstationary":
        return nonstationary_noise(n, SAMPLE_RATE, rng)
    return colored_noise(n, {"white": 0.0, "pink": 1.0, "brown": 2.0}[kind], rng)


def build(
    out: Path,
    n_utts: int,
    seed: int,
    max_seconds: float,
    snr_range: tuple[float, float],
    root: Path | None,
) -> DataDir:
    rng = np.random.default_rng(seed)
    audio_dir = out / "audio"
    audio_dir.mkdir(parents=True, exist_ok=True)
    data = DataDir()
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        talkers = [speak(sentence(rng), rng, workdir) for _ in range(12)]
        for index in range(n_utts):
            utt = f"syn{seed:03d}_{index:05d}"
            clean = speak(sentence(rng), rng, workdir)[: int(max_seconds * SAMPLE_RATE)]
            kind = str(rng.choice(NOISE_TYPES))
            snr = float(np.round(rng.uniform(*snr_range), 2))
            noisy, _ = mix_at_snr(clean, noise_for(kind, clean.size, rng, talkers), snr, rng)
            (noisy, clean), _ = peak_normalize([noisy, clean], peak=float(rng.uniform(0.3, 0.9)))
            paths = {}
            for name, signal in (("noisy", noisy), ("clean", clean)):
                path = audio_dir / f"{utt}_{name}.wav"
                save_audio(path, signal, SAMPLE_RATE)
                paths[name] = str(path.relative_to(root) if root is not None else path)
            data.wav[utt], data.spk1_scp[utt] = paths["noisy"], paths["clean"]
            data.utt2spk[utt] = utt
            data.utt2snr[utt] = snr
            data.utt2noise_type[utt] = kind
    write_datadir(data, out)
    return data


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--n-utts", type=int, required=True)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--max-seconds", type=float, default=8.0)
    parser.add_argument("--snr", type=float, nargs=2, default=(-5.0, 15.0))
    parser.add_argument("--root", type=Path, help="write scp paths relative to this directory")
    args = parser.parse_args()
    data = build(args.out, args.n_utts, args.seed, args.max_seconds, tuple(args.snr), args.root)
    seconds = sum(sf.info(str(args.out / "audio" / f"{u}_clean.wav")).duration for u in data.wav)
    print(f"{len(data.wav)} utterances, {seconds / 3600:.2f} h written to {args.out}")


if __name__ == "__main__":
    main()
