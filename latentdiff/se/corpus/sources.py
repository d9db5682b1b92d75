"""Speech and noise sources installed by Debian packages: discovery, voice ids, decoding, trimming.

Each source name maps to a package, a folder under ``share_dir`` (``/usr/share`` by default) and
a rule that gives every file a voice (speaker) id, so that corpora can be split by voice. Paths
from reserved packages are refused everywhere a source file is opened.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from pathlib import Path

import numpy as np

from latentdiff.se.audio import load_audio

RESERVED_PACKAGES = (
    "asterisk-core-sounds-*",
    "asterisk-moh-*",
    "pocketsphinx-testdata",
    "ufoai-sound",
    "supersonic-scsynth-samples (npm)",
)
_RESERVED_MARKERS = ("asterisk", "pocketsphinx", "ufoai", "supersonic-scsynth", "scsynth-samples")
_AUDIO_SUFFIXES = (".ogg", ".wav", ".flac")
_FRAME_S = 0.02


class ReservedSourceError(ValueError):
    """A path that belongs to a package reserved for other uses."""


class SourceMissingError(FileNotFoundError):
    """A source whose package is not installed; the message says how to install it."""


@dataclasses.dataclass(frozen=True)
class SpeechFile:
    """One speech recording and the voice that speaks it."""

    path: Path
    speaker: str
    group: str


@dataclasses.dataclass(frozen=True)
class NoiseFile:
    """One noise recording; ``events`` clips are short sounds scattered into longer tracks."""

    path: Path
    noise_id: str
    noise_type: str
    group: str
    events: bool = False


def check_allowed(path: str | Path) -> Path:
    """Return ``path`` as a Path; raise ReservedSourceError if it lies in a reserved package."""
    path = Path(path)
    lowered = str(path).lower()
    for marker in _RESERVED_MARKERS:
        if marker in lowered:
            raise ReservedSourceError(
                f"{path}: files of {', '.join(RESERVED_PACKAGES)} must not be used "
                f"(path contains {marker!r})"
            )
    return path


def slug(text: str) -> str:
    """Lower-case id made of [a-z0-9] runs joined by '-' (safe as a Kaldi id)."""
    parts = re.findall(r"[a-z0-9]+", text.lower())
    if not parts:
        raise ValueError(f"cannot make an id from {text!r}")
    return "-".join(parts)


@dataclasses.dataclass(frozen=True)
class _Source:
    package: str
    folder: str
    pattern: str
    label: Callable[[Path, Path], str]


def _fillets_voice(lang: str) -> Callable[[Path, Path], str]:
    """Fillets dialogue: '<level>-m-*' is the small fish, '<level>-v-*' the big fish; other
    characters are grouped per level."""

    def label(path: Path, root: Path) -> str:
        tokens = path.stem.split("-")
        fish = {"m": "small-fish", "v": "big-fish"}
        if len(tokens) > 1 and tokens[1] in fish:
            return f"fillets-{lang}-{fish[tokens[1]]}"
        level = path.relative_to(root).parts[0]
        if level == "share":
            level = path.relative_to(root).parts[1]
        return f"fillets-{lang}-{slug(level)}-others"

    return label


def _by_folder(prefix: str, depth: int = 0) -> Callable[[Path, Path], str]:
    def label(path: Path, root: Path) -> str:
        return f"{prefix}-{slug(path.relative_to(root).parts[depth])}"

    return label


def _by_file(prefix: str) -> Callable[[Path, Path], str]:
    def label(path: Path, root: Path) -> str:
        relative = path.relative_to(root)
        return f"{prefix}-{slug(str(relative.with_suffix('')))}-{slug(relative.suffix)}"

    return label


SPEECH_SOURCES: dict[str, _Source] = {
    "fillets-ng-nl": _Source(
        "fillets-ng-data-nl", "games/fillets-ng/sound", "**/nl/*.ogg", _fillets_voice("nl")
    ),
    "fillets-ng-cs": _Source(
        "fillets-ng-data-cs", "games/fillets-ng/sound", "**/cs/*.ogg", _fillets_voice("cs")
    ),
    "ktuberling": _Source("ktuberling-data", "ktuberling/sounds", "*/*.ogg", _by_folder("ktub")),
    "klettres": _Source("klettres-data", "klettres", "*/*/*.ogg", _by_folder("klettres")),
    "hedgewars-voices": _Source(
        "hedgewars-data", "games/hedgewars/Data/Sounds/voices", "*/*.ogg", _by_folder("hw")
    ),
}

# name -> (source, noise type, whether the files are short event clips)
NOISE_SOURCES: dict[str, tuple[_Source, str, bool]] = {
    "bucklespring": (
        _Source("bucklespring-data", "buckle/wav", "*.wav", _by_file("buckle")),
        "keyboard",
        True,
    ),
    "supertux-music": (
        _Source("supertux-data", "games/supertux2/music", "**/*.ogg", _by_file("stux-music")),
        "music",
        False,
    ),
    "hedgewars-music": (
        _Source("hedgewars-data", "games/hedgewars/Data/Music", "**/*.ogg", _by_file("hw-music")),
        "music",
        False,
    ),
    "hedgewars-sounds": (
        _Source("hedgewars-data", "games/hedgewars/Data/Sounds", "*.ogg", _by_file("hw-sfx")),
        "effects",
        True,
    ),
    "supertux-sounds": (
        _Source("supertux-data", "games/supertux2/sounds", "*.*", _by_file("stux-sfx")),
        "effects",
        True,
    ),
}


def source_packages(speech: list[str], noise: list[str]) -> list[str]:
    """Debian packages that provide the named speech and noise sources (sorted, unique)."""
    packages = {_speech_source(name).package for name in speech}
    packages |= {_noise_source(name)[0].package for name in noise}
    return sorted(packages)


def _speech_source(name: str) -> _Source:
    if name not in SPEECH_SOURCES:
        raise ValueError(f"unknown speech source {name!r}; choose from {sorted(SPEECH_SOURCES)}")
    return SPEECH_SOURCES[name]


def _noise_source(name: str) -> tuple[_Source, str, bool]:
    if name not in NOISE_SOURCES:
        raise ValueError(f"unknown noise source {name!r}; choose from {sorted(NOISE_SOURCES)}")
    return NOISE_SOURCES[name]


def _files(name: str, source: _Source, share_dir: Path) -> tuple[Path, list[Path]]:
    root = check_allowed(share_dir / source.folder)
    if not root.is_dir():
        raise SourceMissingError(
            f"source {name!r} needs the Debian package {source.package} ({root} not found); "
            f"install it with `sudo apt-get install {source.package}` or remove {name!r} "
            "from the corpus config"
        )
    files = sorted(
        p for p in root.glob(source.pattern) if p.suffix.lower() in _AUDIO_SUFFIXES and p.is_file()
    )
    if not files:
        raise SourceMissingError(
            f"source {name!r}: no audio files match {root}/{source.pattern}; reinstall "
            f"{source.package}"
        )
    return root, [check_allowed(p) for p in files]


def discover_speech(names: list[str], share_dir: str | Path = "/usr/share") -> list[SpeechFile]:
    """Every speech file of the named sources with its voice id, in a stable order."""
    found = []
    for name in names:
        source = _speech_source(name)
        root, files = _files(name, source, Path(share_dir))
        found += [SpeechFile(p, source.label(p, root), name) for p in files]
    return found


def discover_noise(names: list[str], share_dir: str | Path = "/usr/share") -> list[NoiseFile]:
    """Every noise file of the named sources, with a unique id and its noise type."""
    found = []
    for name in names:
        source, noise_type, events = _noise_source(name)
        root, files = _files(name, source, Path(share_dir))
        found += [NoiseFile(p, source.label(p, root), noise_type, name, events) for p in files]
    ids = [f.noise_id for f in found]
    if len(set(ids)) != len(ids):
        raise ValueError("noise sources overlap: the same file is listed by two sources")
    return found


def decode(path: str | Path, sample_rate: int) -> np.ndarray:
    """Mono float32 samples of an allowed file at ``sample_rate``."""
    return load_audio(check_allowed(path), sample_rate)


def frame_levels_db(x: np.ndarray, sample_rate: int) -> np.ndarray:
    """RMS level in dB of consecutive 20 ms frames (the last partial frame included)."""
    hop = max(int(sample_rate * _FRAME_S), 1)
    n_frames = -(-x.size // hop)
    padded = np.zeros(n_frames * hop, dtype=np.float64)
    padded[: x.size] = x
    power = np.mean(padded.reshape(n_frames, hop) ** 2, axis=1)
    return 10.0 * np.log10(power + 1e-12)


def trim_silence(
    x: np.ndarray,
    sample_rate: int,
    top_db: float = 40.0,
    floor_db: float = -65.0,
    margin_s: float = 0.05,
) -> np.ndarray:
    """Drop leading and trailing frames quieter than max(peak frame - top_db, floor_db).

    Keeps ``margin_s`` around the active region; returns an empty array when nothing is active.
    """
    levels = frame_levels_db(x, sample_rate)
    threshold = max(float(levels.max()) - top_db, floor_db)
    active = np.flatnonzero(levels > threshold)
    if active.size == 0:
        return x[:0]
    hop = max(int(sample_rate * _FRAME_S), 1)
    margin = int(margin_s * sample_rate)
    start = max(int(active[0]) * hop - margin, 0)
    stop = min((int(active[-1]) + 1) * hop + margin, x.size)
    return x[start:stop]
