"""``latentdiff stream``: live enhancement of a microphone (``--mic``) or of raw PCM on stdin.

Pipe mode reads interleaved PCM frames (``--format``, ``--rate``, ``--channels``) from stdin in
blocks of ``--block-ms``, averages the channels to mono, and writes the enhanced signal in the same
format to stdout, copied to every channel, flushed after each block; the output has as many frames
as the input. A trailing incomplete frame is dropped with a warning. Pipe mode runs at full quality
whatever the speed (no real-time policy), so its output equals ``latentdiff enhance`` on the same
samples. Device mode runs with a real-time policy (fewer sampler steps, then pass-through, when
blocks overrun). Exit status: 0 when the input ends, ``--duration`` is reached, the first Ctrl-C
(SIGINT or SIGTERM) stops the stream, or the reader of stdout goes away (closed pipe); 1 for a model
or runtime error; 2 for bad options or devices; 130 for a second Ctrl-C (recordings discarded).
"""

from __future__ import annotations

import argparse
import contextlib
import os
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from latentdiff.commands import CommandTable
from latentdiff.core.quantize import PRECISIONS
from latentdiff.se import STREAM_BACKENDS

if TYPE_CHECKING:
    import numpy as np
    import soundfile as sf

    from latentdiff.se.enhancer import Enhancer
    from latentdiff.se.live import Outputs, StatusLine
    from latentdiff.se.streaming import RealtimePolicy, StreamSession

PCM_FORMATS = ("s16le", "f32le")


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError as err:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from err
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _record_path(text: str) -> Path:
    from latentdiff.se.live import RECORD_FORMATS

    path = Path(text)
    if path.suffix.lower() not in RECORD_FORMATS:
        raise argparse.ArgumentTypeError(
            f"{text}: the suffix must be one of {', '.join(RECORD_FORMATS)}"
        )
    return path


def _check_options(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    if args.stdin and not (args.stdout or args.record):
        parser.error("--stdin needs --stdout and/or --record FILE")
    if args.stdout and not args.stdin:
        parser.error("--stdout needs --stdin")
    device_options = args.playback or args.input_device or args.output_device
    if device_options and not args.mic:
        parser.error("--input-device, --output-device and --playback need --mic")
    if args.channels > 8:
        parser.error(f"--channels: at most 8, got {args.channels}")


def _list_devices() -> int:
    from latentdiff.se.live import DeviceError, device_listing

    try:
        print(device_listing())
    except DeviceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    return 0


def _load_enhancer(args: argparse.Namespace) -> Enhancer | None:
    from latentdiff.se.enhancer import Enhancer

    try:
        return Enhancer.from_pretrained(args.model, seed=args.seed, precision=args.precision)
    except (ValueError, FileNotFoundError) as err:
        print(f"error: cannot load the model: {err}", file=sys.stderr)
        return None


def _open_session(
    enhancer: Enhancer, args: argparse.Namespace, rate: int, realtime: RealtimePolicy | None
) -> StreamSession | None:
    """A stream session with the command's options, its kernels built; None (error printed) when
    the options do not suit the model."""

    try:
        session = enhancer.stream(rate, steps=args.steps, realtime=realtime, backend=args.backend)
    except ValueError as err:
        print(f"error: {err}", file=sys.stderr)
        return None
    if args.status or sys.stderr.isatty():
        print(
            f"preparing the {args.backend} model path ({args.precision})...",
            file=sys.stderr,
            flush=True,
        )
    session.warm_up()
    return session


def _status_line(args: argparse.Namespace) -> StatusLine | None:
    from latentdiff.se.live import StatusLine

    return StatusLine(sys.stderr) if args.status or sys.stderr.isatty() else None


def _summary(session: StreamSession, frames: int, dropped: int) -> str:
    from latentdiff.se.live import describe_level

    stats = session.stats
    return (
        f"streamed {frames / session.sample_rate:.2f} s at {session.sample_rate} Hz: "
        f"RTF {stats.rtf:.2f}, {stats.overruns} overruns, {dropped} dropped blocks, "
        f"ended at {describe_level(stats)}; latency {session.latency_ms:.1f} ms"
    )


def _max_frames(args: argparse.Namespace, rate: int) -> int | None:
    return None if args.duration is None else max(1, round(args.duration * rate))


def _block_frames(args: argparse.Namespace, rate: int) -> int:
    return max(1, round(args.block_ms * rate / 1000))


def _silence_stdout() -> None:
    """Point stdout at /dev/null so that the exit-time flush does not fail on the closed pipe."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    os.close(devnull)


def _open_recordings(
    stack: contextlib.ExitStack, args: argparse.Namespace, rate: int, input_channels: int
) -> tuple[sf.SoundFile | None, sf.SoundFile | None]:
    """The --record and --record-input files, finalised when ``stack`` closes without error."""
    from latentdiff.se.live import recording

    enhanced = stack.enter_context(recording(args.record, rate)) if args.record else None
    raw = None
    if args.record_input:
        raw = stack.enter_context(recording(args.record_input, rate, input_channels))
    return enhanced, raw


def _stream_blocks(
    session: StreamSession,
    blocks: Iterator[np.ndarray],
    outputs: Outputs,
    args: argparse.Namespace,
    status: StatusLine | None,
    dropped: Callable[[], int] = lambda: 0,
) -> int:
    """:func:`latentdiff.se.live.stream_blocks` with the command's duration and status line."""
    from latentdiff.se.live import stream_blocks

    try:
        return stream_blocks(
            session,
            blocks,
            outputs,
            max_frames=_max_frames(args, session.sample_rate),
            status=status,
            dropped=dropped,
        )
    finally:
        if status is not None:
            status.close()


def _run_pipe(args: argparse.Namespace, enhancer: Enhancer, stop: threading.Event) -> int:
    from latentdiff.se.live import Outputs, PcmFormat, PipeInput, pipe_writer

    rate = args.rate or enhancer.sample_rate
    session = _open_session(enhancer, args, rate, realtime=None)
    if session is None:
        return 1
    status = _status_line(args)
    fmt = PcmFormat(args.format, args.channels)
    source = PipeInput(sys.stdin.buffer, fmt, _block_frames(args, rate), stop)
    sink = pipe_writer(sys.stdout.buffer, fmt) if args.stdout else None
    with contextlib.ExitStack() as stack:
        outputs = Outputs(*_open_recordings(stack, args, rate, fmt.channels), sink)
        frames = _stream_blocks(session, source.blocks(), outputs, args, status)
    if source.partial_bytes:
        print(
            f"warning: the input ended inside a frame; dropped {source.partial_bytes} trailing "
            f"byte(s) (a frame is {fmt.frame_bytes} bytes)",
            file=sys.stderr,
        )
    if status is not None:
        print(_summary(session, frames, 0), file=sys.stderr)
    if outputs.closed:
        _silence_stdout()
    return 0


def _run_mic(args: argparse.Namespace, enhancer: Enhancer, stop: threading.Event) -> int:
    from latentdiff.se.live import (
        DeviceError,
        DeviceInput,
        DevicePlayback,
        Outputs,
        choose_devices,
        device_listing,
        parse_device,
    )
    from latentdiff.se.streaming import RealtimePolicy

    try:
        settings = choose_devices(
            parse_device(args.input_device),
            parse_device(args.output_device),
            playback=args.playback or args.output_device is not None,
            rates=[args.rate or enhancer.sample_rate],
        )
    except DeviceError as err:
        print(f"error: {err}", file=sys.stderr)
        with contextlib.suppress(DeviceError):
            print(f"sound devices:\n{device_listing()}", file=sys.stderr)
        return 2
    rate = settings.sample_rate
    session = _open_session(enhancer, args, rate, realtime=RealtimePolicy())
    if session is None:
        return 1
    status = _status_line(args)
    block_frames = _block_frames(args, rate)
    with contextlib.ExitStack() as stack:
        recordings = _open_recordings(stack, args, rate, settings.input_channels)
        playback = None
        if settings.output_device is not None:
            playback = stack.enter_context(DevicePlayback(settings, block_frames))
        mic = stack.enter_context(DeviceInput(settings, block_frames, stop))
        outputs = Outputs(*recordings, playback.put if playback else None)

        def dropped() -> int:
            return mic.dropped + (playback.dropped if playback else 0)

        frames = _stream_blocks(session, mic.blocks(), outputs, args, status, dropped)
    print(_summary(session, frames, dropped()), file=sys.stderr)
    if mic.error:
        print(f"error: {mic.error}", file=sys.stderr)
        return 1
    return 0


def _stream(parser: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    from latentdiff.se.live import stop_on_signals

    if args.list_devices:
        return _list_devices()
    _check_options(parser, args)
    enhancer = _load_enhancer(args)
    if enhancer is None:
        return 1
    run = _run_mic if args.mic else _run_pipe
    try:
        with stop_on_signals() as stop:
            return run(args, enhancer, stop)
    except KeyboardInterrupt:
        print("\ninterrupted", file=sys.stderr)
        return 130


def add_commands(table: CommandTable) -> None:
    """``stream``."""
    parser = table.verb(
        "stream", "enhance live audio from a microphone (--mic) or raw PCM on stdin (--stdin)"
    )
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = (
        "examples:\n"
        "  latentdiff stream --mic --playback --record enhanced.wav\n"
        "  arecord -f S16_LE -r 16000 -c 1 | latentdiff stream --stdin --stdout | "
        "aplay -f S16_LE -r 16000\n"
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--mic", action="store_true", help="capture from a sound device")
    source.add_argument("--stdin", action="store_true", help="read raw PCM from standard input")
    source.add_argument("--list-devices", action="store_true", help="list sound devices and exit")

    outputs = parser.add_argument_group("outputs")
    outputs.add_argument("--stdout", action="store_true", help="write raw PCM (--stdin only)")
    outputs.add_argument(
        "--record",
        type=_record_path,
        metavar="FILE",
        help="save the enhanced audio (.wav/.flac/.ogg)",
    )
    outputs.add_argument(
        "--record-input", type=_record_path, metavar="FILE", help="save the input as received"
    )
    outputs.add_argument(
        "--playback", action="store_true", help="play the enhanced audio (default output device)"
    )

    devices = parser.add_argument_group("devices (--mic)")
    devices.add_argument(
        "--input-device", metavar="DEV", help="index or name (default: the system's)"
    )
    devices.add_argument("--output-device", metavar="DEV", help="index or name; implies --playback")

    pcm = parser.add_argument_group("raw PCM (--stdin/--stdout)")
    pcm.add_argument("--format", choices=PCM_FORMATS, default="s16le", help="sample format")
    pcm.add_argument(
        "--rate",
        type=_positive(int),
        help="PCM rate in Hz, resampled to and from the model's (default: the model's, 16000); "
        "with --mic the device rate (default: the model's if the device takes it)",
    )
    pcm.add_argument(
        "--channels",
        type=_positive(int),
        default=1,
        help="interleaved channels: averaged to mono in, the enhanced signal copied to each out",
    )

    run = parser.add_argument_group("processing")
    run.add_argument("--model", type=Path, help="checkpoint or exp dir (default: bundled)")
    run.add_argument("--steps", type=int, help="sampler steps (default: the model's)")
    run.add_argument("--seed", type=int, default=0, help="sampling seed")
    run.add_argument(
        "--backend", choices=STREAM_BACKENDS, default="onnxruntime", help="single-block kernel"
    )
    run.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="fp32",
        help="kernel precision: int8 or fp16 with onnxruntime, also bf16 with torchscript; "
        "eager runs fp32 only (default fp32)",
    )
    run.add_argument(
        "--block-ms", type=_positive(float), default=10.0, help="I/O block length (default 10)"
    )
    run.add_argument(
        "--duration", type=_positive(float), metavar="SECONDS", help="stop after this much audio"
    )
    run.add_argument(
        "--status", action="store_true", help="show the live status line even if stderr is no tty"
    )
    parser.set_defaults(run=lambda args: _stream(parser, args))
