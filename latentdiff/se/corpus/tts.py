"""Synthetic voices: utterances spoken by espeak-ng, flite and festival.

Every voice has a fixed speaking rate and pitch, so that each one is a distinct speaker; only the
text (and, slightly, the rate) changes between its utterances. Synthesised files are cached by a
hash of engine, voice, settings and text, so a rebuild reuses them.
"""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.resources
import shutil
import subprocess
import tempfile
from pathlib import Path

import numpy as np
from tqdm import tqdm

from latentdiff.se.audio import atomic_output
from latentdiff.se.corpus.sources import SourceMissingError, SpeechFile, slug

_BINARIES = {"espeak-ng": "espeak-ng", "flite": "flite", "festival": "text2wave"}
_PACKAGES = {"espeak-ng": ["espeak-ng"], "flite": ["flite"], "festival": ["festival"]}
_FESTIVAL_VOICE_PACKAGES = {"kal_diphone": "festvox-kallpc16k"}


@dataclasses.dataclass
class TtsConfig:
    """Which synthetic voices to use and how much each says."""

    espeak_voices: int = 40
    espeak_languages: list[str] = dataclasses.field(
        default_factory=lambda: ["en", "en-us", "en-gb-scotland", "de", "nl", "fr", "es", "it"]
    )
    flite_voices: list[str] = dataclasses.field(
        default_factory=lambda: ["kal16", "slt", "awb", "rms"]
    )
    festival_voices: list[str] = dataclasses.field(default_factory=lambda: ["kal_diphone"])
    utterances_per_voice: int = 20
    words_per_utterance: tuple[int, int] = (6, 16)


@dataclasses.dataclass(frozen=True)
class Voice:
    """One synthetic speaker: engine, engine voice name and fixed prosody settings."""

    engine: str
    name: str
    speaker: str
    rate: float
    pitch: int = 50


def tts_packages(cfg: TtsConfig) -> list[str]:
    """Debian packages the configured voices need."""
    packages: set[str] = set()
    if cfg.espeak_voices > 0:
        packages |= set(_PACKAGES["espeak-ng"])
    if cfg.flite_voices:
        packages |= set(_PACKAGES["flite"])
    if cfg.festival_voices:
        packages |= set(_PACKAGES["festival"])
        packages |= {_FESTIVAL_VOICE_PACKAGES.get(v, f"festvox-{v}") for v in cfg.festival_voices}
    return sorted(packages)


def _require(engine: str) -> str:
    binary = shutil.which(_BINARIES[engine])
    if binary is None:
        packages = " ".join(_PACKAGES[engine])
        raise SourceMissingError(
            f"{_BINARIES[engine]} not found: {engine} voices need the Debian package(s) "
            f"{packages}; install with `sudo apt-get install {packages}` or disable them in tts"
        )
    return binary


def espeak_variants() -> list[str]:
    """Voice variants known to espeak-ng (e.g. 'm3', 'Alicia'), sorted."""
    listing = subprocess.run(
        [_require("espeak-ng"), "--voices=variant"], capture_output=True, text=True, check=True
    ).stdout
    variants = []
    for line in listing.splitlines()[1:]:
        fields = line.split()
        if len(fields) >= 5 and fields[4].startswith("!v/"):
            variants.append(fields[4][3:])
    return sorted(set(variants))


def plan_voices(cfg: TtsConfig, rng: np.random.Generator) -> list[Voice]:
    """The configured voices, each with its own rate and pitch drawn from ``rng``."""
    voices = []
    if cfg.espeak_voices > 0:
        variants = espeak_variants()
        if cfg.espeak_voices > len(variants):
            raise ValueError(
                f"espeak_voices={cfg.espeak_voices} but espeak-ng has {len(variants)} variants"
            )
        chosen = sorted(rng.choice(len(variants), size=cfg.espeak_voices, replace=False))
        for index in chosen:
            variant = variants[int(index)]
            rate, pitch = float(rng.uniform(130, 185)), int(rng.integers(25, 75))
            voices.append(Voice("espeak-ng", variant, f"espeak-{slug(variant)}", rate, pitch))
    for name in cfg.flite_voices:
        voices.append(Voice("flite", name, f"flite-{slug(name)}", float(rng.uniform(0.9, 1.15))))
    for name in cfg.festival_voices:
        stretch = float(rng.uniform(0.9, 1.15))
        voices.append(Voice("festival", name, f"festival-{slug(name)}", stretch))
    return voices


def sentences() -> list[str]:
    """The built-in sentence list (package data)."""
    text = importlib.resources.files("latentdiff.se.corpus").joinpath("sentences.txt").read_text()
    return [s.strip() for s in text.splitlines() if s.strip() and not s.startswith("#")]


def make_text(rng: np.random.Generator, words_range: tuple[int, int]) -> str:
    """A built-in sentence, or (half the time) a random word string of the given length range."""
    pool = sentences()
    if rng.random() < 0.5:
        return pool[int(rng.integers(len(pool)))]
    vocabulary = sorted({w.strip(".,").lower() for s in pool for w in s.split()})
    n_words = int(rng.integers(words_range[0], words_range[1] + 1))
    words = [vocabulary[int(i)] for i in rng.integers(len(vocabulary), size=n_words)]
    return " ".join(words).capitalize() + "."


def _command(voice: Voice, text_file: Path, out: Path, rate: float, language: str) -> list[str]:
    if voice.engine == "espeak-ng":
        return [
            _require("espeak-ng"), "-v", f"{language}+{voice.name}", "-s", str(round(rate)),
            "-p", str(voice.pitch), "-f", str(text_file), "-w", str(out),
        ]  # fmt: skip
    if voice.engine == "flite":
        return [
            _require("flite"), "-voice", voice.name, "--setf", f"duration_stretch={rate:.3f}",
            "-f", str(text_file), "-o", str(out),
        ]  # fmt: skip
    return [
        _require("festival"), "-eval", f"(voice_{voice.name})",
        "-eval", f"(Parameter.set 'Duration_Stretch {rate:.3f})", str(text_file), "-o", str(out),
    ]  # fmt: skip


def synthesize(voice: Voice, text: str, out: Path, rate: float, language: str = "en") -> None:
    """Speak ``text`` with ``voice`` into the wav file ``out`` (written atomically)."""
    with tempfile.TemporaryDirectory() as tmp:
        text_file = Path(tmp) / "text.txt"
        text_file.write_text(text + "\n", encoding="utf-8")
        with atomic_output(out) as tmp_out:
            wav = tmp_out.with_suffix(".wav")
            result = subprocess.run(
                _command(voice, text_file, wav, rate, language), capture_output=True, text=True
            )
            if result.returncode != 0 or not wav.is_file() or wav.stat().st_size <= 44:
                wav.unlink(missing_ok=True)
                raise RuntimeError(
                    f"{voice.engine} voice {voice.name} failed on {text!r}: {result.stderr[-500:]}"
                )
            wav.replace(tmp_out)


def synthesize_voices(
    cfg: TtsConfig, cache_dir: str | Path, seed: int, progress: bool = True
) -> list[SpeechFile]:
    """Synthesise ``utterances_per_voice`` utterances for every voice into ``cache_dir``.

    Deterministic given ``seed``; files already in the cache are reused.
    """
    rng = np.random.default_rng([seed, 0x7757])
    voices = plan_voices(cfg, rng)
    jobs = []
    for voice in voices:
        for index in range(cfg.utterances_per_voice):
            text = make_text(rng, cfg.words_per_utterance)
            rate = voice.rate * float(rng.uniform(0.95, 1.05))
            language = cfg.espeak_languages[int(rng.integers(len(cfg.espeak_languages)))]
            jobs.append((voice, index, text, rate, language))
    files = []
    for voice, index, text, rate, language in tqdm(
        jobs, desc="synthesising voices", disable=not progress, mininterval=5
    ):
        key = f"{voice}|{text}|{rate:.4f}|{language}".encode()
        digest = hashlib.sha1(key).hexdigest()[:12]
        out = Path(cache_dir) / voice.speaker / f"{index:04d}-{digest}.wav"
        if not out.is_file():
            synthesize(voice, text, out, rate, language)
        files.append(SpeechFile(out, voice.speaker, f"tts-{voice.engine}"))
    return files
