"""Kaldi-style data directories: wav.scp, utt2spk, spk1.scp, noise.scp, segments and score maps.

Every file holds one ``<id> <value>`` entry per line and is written sorted by id (byte order, as
``LC_ALL=C sort``). Audio entries are plain file paths, relative ones resolved against the current
directory as in Kaldi; command pipes are rejected. With a ``segments`` file, wav.scp, spk1.scp and
noise.scp are keyed by recording id and every other file by utterance id; without it, all files are
keyed by utterance id.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TypeVar

import soundfile as sf

from latentdiff.se.audio import atomic_output

Segment = tuple[str, float, float]
V = TypeVar("V")

_AUDIO_FILES = {"wav": "wav.scp", "spk1_scp": "spk1.scp", "noise_scp": "noise.scp"}
_UTT_FILES = {
    "utt2spk": "utt2spk",
    "text": "text",
    "utt2snr": "utt2snr",
    "utt2noise_type": "utt2noise_type",
    "segments": "segments",
}
_FILE_NAMES = {**_AUDIO_FILES, **_UTT_FILES}
_MAX_REPORTED = 20
_SEGMENT_SLACK_S = 0.01


class DataDirError(ValueError):
    """A data directory that cannot be used; the message names the file and line."""


@dataclasses.dataclass
class DataDir:
    """In-memory data directory; empty optional maps are absent files.

    ``lines`` records, per file name, the line each id was read from, so that later checks can
    point at it; it is filled by ``read_datadir`` and ignored in comparisons.
    """

    wav: dict[str, str] = dataclasses.field(default_factory=dict)
    utt2spk: dict[str, str] = dataclasses.field(default_factory=dict)
    spk1_scp: dict[str, str] = dataclasses.field(default_factory=dict)
    noise_scp: dict[str, str] = dataclasses.field(default_factory=dict)
    segments: dict[str, Segment] = dataclasses.field(default_factory=dict)
    text: dict[str, str] = dataclasses.field(default_factory=dict)
    utt2snr: dict[str, float] = dataclasses.field(default_factory=dict)
    utt2noise_type: dict[str, str] = dataclasses.field(default_factory=dict)
    source: Path | None = dataclasses.field(default=None, compare=False)
    lines: dict[str, dict[str, int]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    @property
    def utt_ids(self) -> list[str]:
        """Utterance ids: the keys of segments if present, else of wav.scp."""
        return list(self.segments or self.wav)

    @property
    def spk2utt(self) -> dict[str, list[str]]:
        """Speaker -> sorted utterance ids, derived from utt2spk, speakers sorted."""
        result: dict[str, list[str]] = {}
        for utt in sorted(self.utt2spk):
            result.setdefault(self.utt2spk[utt], []).append(utt)
        return {spk: result[spk] for spk in sorted(result)}

    def where(self, field: str, key: str) -> str:
        """'<file> line N' (or '<file>') for messages about ``key`` in ``field``."""
        name = _FILE_NAMES[field]
        if self.source is not None:
            name = str(self.source / name)
        line = self.lines.get(field, {}).get(key)
        return f"{name} line {line}" if line is not None else name


def _parse_lines(path: Path) -> list[tuple[int, str, str]]:
    """(line number, id, rest) for every non-blank line; a line without a value is an error."""
    entries = []
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not raw.strip():
            continue
        parts = raw.strip().split(maxsplit=1)
        if len(parts) != 2:
            raise DataDirError(f"{path} line {number}: expected '<id> <value>', got {raw!r}")
        entries.append((number, parts[0], parts[1].strip()))
    return entries


def _read_map(
    path: Path, parse: Callable[[str], object], lines: dict[str, int]
) -> dict[str, object]:
    result: dict[str, object] = {}
    for number, key, value in _parse_lines(path):
        if key in result:
            raise DataDirError(
                f"{path} line {number}: duplicate id {key!r} (first on line {lines[key]})"
            )
        try:
            result[key] = parse(value)
        except ValueError as err:
            raise DataDirError(f"{path} line {number}: {err}") from err
        lines[key] = number
    return result


def _audio_path(value: str) -> str:
    if value.endswith("|") or value.startswith("|"):
        raise ValueError(f"command pipes are not supported, give a plain audio path: {value!r}")
    return value


def _segment(value: str) -> Segment:
    parts = value.split()
    if len(parts) != 3:
        raise ValueError(f"expected '<recording> <start> <end>', got {value!r}")
    return parts[0], float(parts[1]), float(parts[2])


def _snr(value: str) -> float:
    snr = float(value)
    if not math.isfinite(snr):
        raise ValueError(f"SNR must be finite, got {value!r}")
    return snr


_PARSERS: dict[str, Callable[[str], object]] = {
    "wav": _audio_path,
    "spk1_scp": _audio_path,
    "noise_scp": _audio_path,
    "utt2spk": str,
    "text": str,
    "utt2snr": _snr,
    "utt2noise_type": str,
    "segments": _segment,
}


def read_datadir(path: str | Path) -> DataDir:
    """Read a data directory; wav.scp is required, the other files are optional.

    A missing utt2spk is derived from spk2utt if present, else each utterance is its own speaker.
    A spk2utt that disagrees with utt2spk is an error. Cross-file consistency is left to
    ``validate``.
    """
    root = Path(path)
    if not (root / "wav.scp").is_file():
        raise DataDirError(f"{root}: not a data directory (no wav.scp)")
    data = DataDir(source=root)
    for field, name in _FILE_NAMES.items():
        file = root / name
        if file.is_file():
            lines = data.lines.setdefault(field, {})
            setattr(data, field, _read_map(file, _PARSERS[field], lines))
    spk2utt_file = root / "spk2utt"
    if spk2utt_file.is_file():
        from_spk2utt = _read_spk2utt(spk2utt_file)
        if not data.utt2spk:
            data.utt2spk = from_spk2utt
        elif from_spk2utt != data.utt2spk:
            raise DataDirError(f"{spk2utt_file}: disagrees with {root / 'utt2spk'}")
    if not data.utt2spk:
        data.utt2spk = {utt: utt for utt in data.utt_ids}
    return data


def _read_spk2utt(path: Path) -> dict[str, str]:
    utt2spk: dict[str, str] = {}
    for number, spk, rest in _parse_lines(path):
        for utt in rest.split():
            if utt in utt2spk:
                raise DataDirError(f"{path} line {number}: utterance {utt!r} listed twice")
            utt2spk[utt] = spk
    return dict(sorted(utt2spk.items()))


def _format(value: object) -> str:
    if isinstance(value, tuple):
        return " ".join(_format(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def _write_lines(path: Path, lines: Iterable[str]) -> None:
    with atomic_output(path) as tmp:
        tmp.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")


def write_datadir(data: DataDir, path: str | Path) -> None:
    """Write every non-empty map (plus derived spk2utt), sorted by id, each file atomically.

    The directory is checked first (without touching audio files), so an invalid one is never
    written.
    """
    validate(data, check_files=False)
    root = Path(path)
    root.mkdir(parents=True, exist_ok=True)
    for field, name in _FILE_NAMES.items():
        mapping: dict[str, object] = getattr(data, field)
        if mapping or field in ("wav", "utt2spk"):
            _write_lines(root / name, (f"{k} {_format(mapping[k])}" for k in sorted(mapping)))
        else:
            (root / name).unlink(missing_ok=True)
    _write_lines(root / "spk2utt", (f"{s} {' '.join(u)}" for s, u in data.spk2utt.items()))


def _check_ids(data: DataDir, problems: list[str]) -> None:
    for field in _FILE_NAMES:
        mapping: dict[str, object] = getattr(data, field)
        for key, value in mapping.items():
            if not key or any(c.isspace() for c in key):
                problems.append(f"{data.where(field, key)}: id {key!r} is empty or has whitespace")
            if isinstance(value, str) and (not value or "\n" in value):
                problems.append(f"{data.where(field, key)}: empty or multi-line value for {key!r}")
    for utt, spk in data.utt2spk.items():
        if not spk or any(c.isspace() for c in spk):
            problems.append(f"{data.where('utt2spk', utt)}: speaker id {spk!r} has whitespace")
    for field in _AUDIO_FILES:
        for key, value in getattr(data, field).items():
            try:
                _audio_path(value)
            except ValueError as err:
                problems.append(f"{data.where(field, key)}: {err}")


def _check_keys(
    data: DataDir, field: str, expected: list[str], against: str, problems: list[str]
) -> None:
    mapping: dict[str, object] = getattr(data, field)
    wanted = set(expected)
    for key in expected:
        if key not in mapping:
            problems.append(
                f"{_FILE_NAMES[field]}: id {key!r} ({data.where(against, key)}) has no entry"
            )
    for key in mapping:
        if key not in wanted:
            problems.append(
                f"{data.where(field, key)}: id {key!r} is not in {_FILE_NAMES[against]}"
            )


def _check_segments(data: DataDir, problems: list[str]) -> None:
    for utt, (rec, start, end) in data.segments.items():
        if rec not in data.wav:
            problems.append(f"{data.where('segments', utt)}: recording {rec!r} not in wav.scp")
        if start < 0 or not (end > start or end == -1):
            problems.append(
                f"{data.where('segments', utt)}: bad times start={start} end={end} "
                "(need 0 <= start < end, or end = -1 for the end of the recording)"
            )


def _check_audio(data: DataDir, sample_rate: int | None, problems: list[str]) -> None:
    durations: dict[str, float] = {}
    for field in _AUDIO_FILES:
        for key, value in getattr(data, field).items():
            if not Path(value).is_file():
                problems.append(f"{data.where(field, key)}: audio file not found: {value}")
                continue
            try:
                info = sf.info(value)
            except (sf.SoundFileError, RuntimeError) as err:
                problems.append(f"{data.where(field, key)}: unreadable audio {value} ({err})")
                continue
            if sample_rate is not None and info.samplerate != sample_rate:
                problems.append(
                    f"{data.where(field, key)}: {value} is at {info.samplerate} Hz, "
                    f"expected {sample_rate} Hz"
                )
            if field == "wav":
                durations[key] = info.frames / info.samplerate
    for utt, (rec, _, end) in data.segments.items():
        if rec in durations and end > durations[rec] + _SEGMENT_SLACK_S:
            problems.append(
                f"{data.where('segments', utt)}: end {end} s is past the end of recording "
                f"{rec!r} ({durations[rec]:.3f} s)"
            )


def validate(data: DataDir, check_files: bool = True, sample_rate: int | None = None) -> None:
    """Raise DataDirError listing every problem found (file and line where known).

    Checks ids (non-empty, no whitespace), that every utterance appears in utt2spk and in each
    non-empty optional utterance file (and nothing else does), that spk1.scp / noise.scp cover
    exactly the wav.scp ids, and segment references. With ``check_files``, every audio path must
    exist and be readable by soundfile (header only), at ``sample_rate`` if given.
    """
    problems: list[str] = []
    _check_ids(data, problems)
    utts = data.utt_ids
    anchor = "segments" if data.segments else "wav"
    _check_keys(data, "utt2spk", utts, anchor, problems)
    for field in ("text", "utt2snr", "utt2noise_type"):
        if getattr(data, field):
            _check_keys(data, field, utts, anchor, problems)
    for field in ("spk1_scp", "noise_scp"):
        if getattr(data, field):
            _check_keys(data, field, list(data.wav), "wav", problems)
    _check_segments(data, problems)
    if check_files:
        _check_audio(data, sample_rate, problems)
    if problems:
        where = f" {data.source}" if data.source is not None else ""
        shown = problems[:_MAX_REPORTED]
        more = len(problems) - len(shown)
        tail = f"\n  ... and {more} more" if more else ""
        raise DataDirError(f"invalid data dir{where}:\n  " + "\n  ".join(shown) + tail)


def _pick(mapping: dict[str, V], keys: set[str]) -> dict[str, V]:
    return {k: v for k, v in mapping.items() if k in keys}


def subset(data: DataDir, utt_ids: Iterable[str]) -> DataDir:
    """The given utterances (in ``data``'s order) and, with segments, the recordings they use."""
    keep = set(utt_ids)
    unknown = sorted(keep - set(data.utt_ids))
    if unknown:
        raise DataDirError(f"subset: unknown utterance ids {unknown[:10]}")

    recordings = {data.segments[u][0] for u in keep} if data.segments else keep
    return dataclasses.replace(
        data,
        wav=_pick(data.wav, recordings),
        spk1_scp=_pick(data.spk1_scp, recordings),
        noise_scp=_pick(data.noise_scp, recordings),
        utt2spk=_pick(data.utt2spk, keep),
        segments=_pick(data.segments, keep),
        text=_pick(data.text, keep),
        utt2snr=_pick(data.utt2snr, keep),
        utt2noise_type=_pick(data.utt2noise_type, keep),
        lines={f: dict(v) for f, v in data.lines.items()},
    )
