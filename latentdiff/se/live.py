"""Audio I/O of ``latentdiff stream``: raw PCM pipes and sound devices around a stream session.

A source yields blocks of input frames: :class:`PipeInput` reads whole PCM frames from a binary
stream, :class:`DeviceInput` takes them from a PortAudio input stream (``sounddevice``).
:func:`stream_blocks` enhances the blocks with a :class:`~latentdiff.se.streaming.StreamSession`
and hands input and output to :class:`Outputs` (recordings, and stdout or a playback device).

The PortAudio callbacks never block: the input callback puts each block in a bounded queue and
drops it (counting it in ``dropped``) when the queue is full; the playback callback plays what is
queued and silence when nothing is. Recordings are written to a temporary file that replaces the
target only when streaming ends without an exception.
"""

from __future__ import annotations

import contextlib
import queue
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import IO, Any

import numpy as np
import soundfile as sf

from latentdiff.se.audio import atomic_output
from latentdiff.se.streaming import PASS_THROUGH, StreamSession, StreamStats

PCM_DTYPES = {"s16le": np.dtype("<i2"), "f32le": np.dtype("<f4")}
RECORD_FORMATS = {".wav": "WAV", ".flac": "FLAC", ".ogg": "OGG"}
QUEUE_BLOCKS = 50  # blocks buffered between a PortAudio callback and the processing loop
IDLE_TIMEOUT_S = 5.0  # an input device silent (no callbacks) this long ends the stream


class DeviceError(Exception):
    """A sound device that is missing, ambiguous or cannot run with the needed settings."""


@dataclass(frozen=True)
class PcmFormat:
    """Interleaved raw PCM: ``encoding`` s16le or f32le, ``channels`` samples per frame."""

    encoding: str = "s16le"
    channels: int = 1

    @property
    def dtype(self) -> np.dtype:
        return PCM_DTYPES[self.encoding]

    @property
    def frame_bytes(self) -> int:
        return self.dtype.itemsize * self.channels

    def decode(self, data: bytes) -> np.ndarray:
        """Whole frames -> (frames, channels) samples in the format's dtype."""
        return np.frombuffer(data, dtype=self.dtype).reshape(-1, self.channels)

    def encode(self, mono: np.ndarray) -> bytes:
        """Float mono samples -> frames, the signal on every channel (s16le: rounded, clipped)."""
        if self.encoding == "s16le":
            mono = np.clip(np.rint(mono * 32768.0), -32768, 32767)
        frames = np.repeat(mono.astype(self.dtype)[:, None], self.channels, axis=1)
        return frames.tobytes()


def as_float(block: np.ndarray) -> np.ndarray:
    """Samples as float32 in [-1, 1] (int16 scaled by 1/32768)."""
    if block.dtype == np.int16:
        return block.astype(np.float32) / 32768.0
    return block.astype(np.float32, copy=False)


@contextlib.contextmanager
def recording(path: Path, sample_rate: int, channels: int = 1) -> Iterator[sf.SoundFile]:
    """A sound file (.wav/.flac/.ogg, 16-bit where the format has a bit depth) written block by
    block; it appears at ``path`` only if the ``with`` block ends without an exception."""
    file_format = RECORD_FORMATS[path.suffix.lower()]
    with (
        atomic_output(path) as tmp,
        sf.SoundFile(tmp, "w", sample_rate, channels, format=file_format) as file,
    ):
        yield file


class Outputs:
    """Where streamed audio goes: recordings of the input and of the enhanced signal, and a sink
    (stdout or a playback device) that takes enhanced mono blocks."""

    def __init__(
        self,
        enhanced_file: sf.SoundFile | None = None,
        input_file: sf.SoundFile | None = None,
        sink: Callable[[np.ndarray], None] | None = None,
    ) -> None:
        self.enhanced_file = enhanced_file
        self.input_file = input_file
        self.sink = sink
        self.closed = False  # the sink's reader went away (closed pipe)

    def take_input(self, block: np.ndarray) -> None:
        if self.input_file is not None:
            self.input_file.write(block if block.dtype == np.int16 else np.clip(block, -1, 1))

    def take_enhanced(self, samples: np.ndarray) -> None:
        if self.enhanced_file is not None:
            self.enhanced_file.write(np.clip(samples, -1.0, 1.0))
        if self.sink is not None and not self.closed and samples.size:
            try:
                self.sink(samples)
            except BrokenPipeError:
                self.closed = True


def pipe_writer(stream: IO[bytes], fmt: PcmFormat) -> Callable[[np.ndarray], None]:
    """A sink writing enhanced blocks as PCM to ``stream``, flushed after each block."""

    def write(samples: np.ndarray) -> None:
        stream.write(fmt.encode(samples))
        stream.flush()

    return write


def level_dbfs(sum_squares: float, count: int) -> float:
    """RMS level in dB relative to full scale (1.0); -inf for silence."""
    if count == 0 or sum_squares <= 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(sum_squares / count))


def describe_level(stats: StreamStats) -> str:
    """The session's quality level, e.g. "level 0 (2 steps)" or "level 3 (pass-through)"."""
    if stats.steps == PASS_THROUGH:
        what = "pass-through"
    else:
        what = f"{stats.steps} step" + ("" if stats.steps == 1 else "s")
    return f"level {stats.level} ({what})"


class StatusLine:
    """A one-line live status (input level, real-time factor, overruns, drops, quality level),
    rewritten in place on a text stream at most every ``interval`` seconds."""

    def __init__(
        self,
        stream: IO[str],
        interval: float = 0.25,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.interval = interval
        self.clock = clock
        self._sum_squares = 0.0
        self._count = 0
        self._last_shown = float("-inf")
        self._width = 0

    def observe(self, block: np.ndarray) -> None:
        samples = as_float(block)
        self._sum_squares += float(np.square(samples, dtype=np.float64).sum())
        self._count += samples.size

    def show(self, stats: StreamStats, dropped: int) -> None:
        now = self.clock()
        if now - self._last_shown < self.interval:
            return
        self._last_shown = now
        level = level_dbfs(self._sum_squares, self._count)
        self._sum_squares, self._count = 0.0, 0
        line = (
            f"in {level:6.1f} dBFS | RTF {stats.rtf:.2f} | overruns {stats.overruns} | "
            f"dropped {dropped} | {describe_level(stats)}"
        )
        self.stream.write("\r" + line.ljust(self._width))
        self.stream.flush()
        self._width = len(line)

    def close(self) -> None:
        """End the line (if one was shown) so that later output starts on a fresh line."""
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def stream_blocks(
    session: StreamSession,
    blocks: Iterator[np.ndarray],
    outputs: Outputs,
    *,
    max_frames: int | None = None,
    status: StatusLine | None = None,
    dropped: Callable[[], int] = lambda: 0,
) -> int:
    """Enhance ``blocks`` until they end, ``max_frames`` frames were taken or the sink closed;
    then flush the session. Returns the number of input frames streamed."""
    frames = 0
    for whole_block in blocks:
        block = whole_block if max_frames is None else whole_block[: max_frames - frames]
        frames += block.shape[0]
        outputs.take_input(block)
        outputs.take_enhanced(session.process(block))
        if status is not None:
            status.observe(block)
            status.show(session.stats, dropped())
        if outputs.closed or (max_frames is not None and frames >= max_frames):
            break
    outputs.take_enhanced(session.flush())
    return frames


class PipeInput:
    """Whole PCM frames read from a binary stream, ``block_frames`` frames at a time, until the
    stream ends or ``stop`` is set; ``partial_bytes`` counts trailing bytes of an incomplete frame.
    """

    def __init__(
        self, stream: IO[bytes], fmt: PcmFormat, block_frames: int, stop: threading.Event
    ) -> None:
        self.stream = stream
        self.fmt = fmt
        self.block_frames = block_frames
        self.stop = stop
        self.partial_bytes = 0

    def blocks(self) -> Iterator[np.ndarray]:
        frame_bytes = self.fmt.frame_bytes
        rest = b""
        while not self.stop.is_set():
            data = self.stream.read(self.block_frames * frame_bytes)
            if not data:
                break
            data = rest + data
            whole = len(data) - len(data) % frame_bytes
            rest = data[whole:]
            if whole:
                yield self.fmt.decode(data[:whole])
        self.partial_bytes = len(rest)


def sounddevice() -> ModuleType:
    """The ``sounddevice`` module; DeviceError when it or the PortAudio library is missing."""
    try:
        import sounddevice as sd
    except (ImportError, OSError) as err:
        raise DeviceError(f"sound devices need sounddevice and PortAudio: {err}") from err
    return sd


def device_listing() -> str:
    """The sound devices PortAudio sees (> default input, < default output), one per line."""
    devices = sounddevice().query_devices()
    if len(devices) == 0:
        return "  (none: no sound card or sound server was found)"
    return str(devices)


def parse_device(text: str | None) -> int | str | None:
    """A --input-device/--output-device value: an index, or a (part of a) device name."""
    if text is None:
        return None
    return int(text) if text.strip().isdigit() else text


@dataclass(frozen=True)
class DeviceSettings:
    """Devices (PortAudio indices) and the stream parameters they accept."""

    input_device: int
    input_channels: int
    sample_rate: int
    output_device: int | None = None
    output_channels: int = 1


def _find_device(device: int | str | None, kind: str) -> dict[str, Any]:
    sd = sounddevice()
    which = "default" if device is None else repr(device)
    try:
        info = sd.query_devices(device, kind=kind)
    except (ValueError, sd.PortAudioError) as err:
        if len(sd.query_devices()) == 0:
            raise DeviceError("no sound devices found") from err
        if device is None:
            raise DeviceError(f"there is no default {kind} device") from err
        raise DeviceError(f"{kind} device {which}: {err}") from err
    if info[f"max_{kind}_channels"] < 1:
        raise DeviceError(f"device {which} ({info['name']}) has no {kind} channels")
    return info


def _channels_for(info: dict[str, Any], kind: str, rate: int) -> int | None:
    """1 (or else 2) channels if the device accepts them at ``rate``; None if neither."""
    sd = sounddevice()
    check = sd.check_input_settings if kind == "input" else sd.check_output_settings
    for channels in (1, 2):
        if channels > info[f"max_{kind}_channels"]:
            break
        try:
            check(info["index"], samplerate=rate, channels=channels, dtype="float32")
        except (ValueError, sd.PortAudioError):
            continue
        return channels
    return None


def choose_devices(
    input_device: int | str | None,
    output_device: int | str | None,
    *,
    playback: bool,
    rates: list[int],
) -> DeviceSettings:
    """Resolve the devices and take the first of ``rates`` that both accept (the input device's
    default rate is tried last); raises DeviceError saying what is wrong."""
    source = _find_device(input_device, "input")
    sink = _find_device(output_device, "output") if playback else None
    candidates = list(dict.fromkeys([*rates, int(source["default_samplerate"])]))
    for rate in candidates:
        in_channels = _channels_for(source, "input", rate)
        out_channels = 1 if sink is None else _channels_for(sink, "output", rate)
        if in_channels is not None and out_channels is not None:
            return DeviceSettings(
                source["index"],
                in_channels,
                rate,
                None if sink is None else sink["index"],
                out_channels,
            )
    names = source["name"] if sink is None else f"{source['name']} and {sink['name']}"
    raise DeviceError(f"{names}: no usable mono or stereo float32 stream at {candidates} Hz")


class BlockQueue:
    """A bounded hand-off between an audio callback and the processing loop: ``put`` never
    blocks; a block that finds the queue full is dropped and counted in ``dropped``."""

    def __init__(self, max_blocks: int = QUEUE_BLOCKS) -> None:
        self._queue: queue.Queue[np.ndarray] = queue.Queue(maxsize=max_blocks)
        self.dropped = 0

    def put(self, block: np.ndarray) -> None:
        try:
            self._queue.put_nowait(block)
        except queue.Full:
            self.dropped += 1

    def get(self, timeout: float | None = None) -> np.ndarray | None:
        """The oldest block; None if none comes within ``timeout`` seconds (None: do not wait)."""
        try:
            return self._queue.get(timeout=timeout) if timeout else self._queue.get_nowait()
        except queue.Empty:
            return None

    def empty(self) -> bool:
        return self._queue.empty()


class PlaybackBuffer:
    """Mono blocks queued for an output callback, which takes them frame-exactly with ``fill``."""

    def __init__(self, max_blocks: int = QUEUE_BLOCKS) -> None:
        self.blocks = BlockQueue(max_blocks)
        self._rest = np.zeros(0, dtype=np.float32)

    def put(self, samples: np.ndarray) -> None:
        self.blocks.put(samples)

    def fill(self, outdata: np.ndarray) -> None:
        """Write the next queued samples to every channel of ``outdata`` (frames, channels);
        silence for what is not queued yet."""
        frames = outdata.shape[0]
        pieces = [self._rest]
        have = self._rest.size
        while have < frames and (piece := self.blocks.get()) is not None:
            pieces.append(piece)
            have += piece.size
        data = np.concatenate(pieces) if len(pieces) > 1 else self._rest
        n = min(frames, data.size)
        outdata[:n] = data[:n, None]
        outdata[n:] = 0.0
        self._rest = data[n:]

    def pending(self) -> bool:
        return self._rest.size > 0 or not self.blocks.empty()


class DeviceInput:
    """Blocks from a PortAudio input stream through a :class:`BlockQueue`.

    ``blocks()`` ends when ``stop`` is set or, setting ``error``, when no audio came for
    ``idle_timeout`` seconds. ``dropped`` counts blocks lost to a full queue or a device overflow.
    """

    def __init__(
        self,
        settings: DeviceSettings,
        block_frames: int,
        stop: threading.Event,
        *,
        idle_timeout: float = IDLE_TIMEOUT_S,
    ) -> None:
        self.stop = stop
        self.idle_timeout = idle_timeout
        self.error: str | None = None
        self._queue = BlockQueue()
        self._overflows = 0
        self._stream = sounddevice().InputStream(
            device=settings.input_device,
            samplerate=settings.sample_rate,
            channels=settings.input_channels,
            blocksize=block_frames,
            dtype="float32",
            latency="low",
            callback=self._callback,
        )

    @property
    def dropped(self) -> int:
        return self._queue.dropped + self._overflows

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        if status.input_overflow:
            self._overflows += 1
        self._queue.put(indata.copy())

    def __enter__(self) -> DeviceInput:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stream.close(ignore_errors=True)

    def blocks(self) -> Iterator[np.ndarray]:
        poll = 0.05
        idle = 0.0
        while not self.stop.is_set():
            block = self._queue.get(timeout=poll)
            if block is None:
                idle += poll
                if idle >= self.idle_timeout:
                    self.error = f"no audio from the input device for {self.idle_timeout:g} s"
                    return
                continue
            idle = 0.0
            yield block


class DevicePlayback:
    """Enhanced mono audio to a PortAudio output stream through a :class:`PlaybackBuffer`.

    ``put`` never blocks (``dropped`` counts blocks lost to a full queue); leaving the ``with``
    block plays what is still queued, for at most ``drain_timeout`` seconds.
    """

    def __init__(
        self, settings: DeviceSettings, block_frames: int, *, drain_timeout: float = 2.0
    ) -> None:
        self.drain_timeout = drain_timeout
        self._buffer = PlaybackBuffer()
        self._stream = sounddevice().OutputStream(
            device=settings.output_device,
            samplerate=settings.sample_rate,
            channels=settings.output_channels,
            blocksize=block_frames,
            dtype="float32",
            latency="low",
            callback=lambda outdata, frames, time_info, status: self._buffer.fill(outdata),
        )

    @property
    def dropped(self) -> int:
        return self._buffer.blocks.dropped

    def put(self, samples: np.ndarray) -> None:
        self._buffer.put(samples)

    def __enter__(self) -> DevicePlayback:
        self._stream.start()
        return self

    def __exit__(self, *exc: object) -> None:
        deadline = time.monotonic() + self.drain_timeout
        while self._buffer.pending() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._stream.close(ignore_errors=True)


@contextlib.contextmanager
def stop_on_signals() -> Iterator[threading.Event]:
    """An event set by the first SIGINT or SIGTERM, so that streaming ends cleanly; a second
    signal raises KeyboardInterrupt. Handlers are only installed in the main thread."""
    stop = threading.Event()
    if threading.current_thread() is not threading.main_thread():
        yield stop
        return

    def handle(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt
        stop.set()

    signals = (signal.SIGINT, signal.SIGTERM)
    previous = {number: signal.signal(number, handle) for number in signals}
    try:
        yield stop
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
