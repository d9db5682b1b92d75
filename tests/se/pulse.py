"""A private PulseAudio server for device tests: a null sink ``virtual_speaker`` whose monitor
``virtual_speaker.monitor`` is the default source, i.e. a virtual microphone that hears what is
played into the speaker. PortAudio reaches it through ALSA's ``pulse`` device (libasound2-plugins).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

SINK = "virtual_speaker"
SOURCE = f"{SINK}.monitor"
RATE = 16000


class PulseUnavailable(RuntimeError):
    """No PulseAudio server can run here; the message says why."""


@dataclass
class PulseServer:
    """A running server: ``env`` points clients (pactl, pacat, PortAudio) at it."""

    env: dict[str, str]
    runtime: Path

    def pactl(self, *args: str) -> str:
        done = subprocess.run(
            ["pactl", *args], env=self.env, capture_output=True, text=True, timeout=10
        )
        if done.returncode != 0:
            raise RuntimeError(f"pactl {' '.join(args)}: {done.stderr.strip()}")
        return done.stdout

    def play(self, raw: Path, *, sink: str = SINK) -> subprocess.Popen[bytes]:
        """Play ``raw`` (mono s16le at 16 kHz) into ``sink`` with a low-latency stream."""
        with raw.open("rb") as source:
            return self._pacat("--playback", f"--device={sink}", stdin=source)

    def record(self, raw: Path, *, source: str) -> subprocess.Popen[bytes]:
        """Record ``source`` as mono s16le at 16 kHz into ``raw`` until terminated."""
        with raw.open("wb") as target:
            return self._pacat("--record", f"--device={source}", stdout=target)

    def _pacat(
        self, *args: str, stdin: IO[bytes] | None = None, stdout: IO[bytes] | None = None
    ) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                "pacat",
                *args,
                "--raw",
                "--latency-msec=20",
                f"--rate={RATE}",
                "--channels=1",
                "--format=s16le",
            ],
            env=self.env,
            stdin=stdin or subprocess.DEVNULL,
            stdout=stdout or subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )


def _server_env(runtime: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PULSE_", "PIPEWIRE_"))}
    env.update(
        HOME=str(runtime),
        XDG_RUNTIME_DIR=str(runtime),
        XDG_CONFIG_HOME=str(runtime / "config"),
        PULSE_RUNTIME_PATH=str(runtime / "pulse"),
        PULSE_STATE_PATH=str(runtime / "state"),
        PULSE_SERVER=f"unix:{runtime / 'native'}",
    )
    return env


@contextlib.contextmanager
def pulse_server(runtime: Path) -> Iterator[PulseServer]:
    """Start a PulseAudio daemon with its state under ``runtime``; stop it on exit.

    A silent low-latency playback stream keeps the null sink rendering in small blocks, so that a
    recording stream gets its first samples at once (an idle null sink renders 2 s blocks).
    Raises PulseUnavailable when the programs are missing or the daemon does not come up.
    """
    missing = [p for p in ("pulseaudio", "pactl", "pacat") if shutil.which(p) is None]
    if missing:
        raise PulseUnavailable(f"not installed: {', '.join(missing)} (tools/install.sh)")
    runtime.mkdir(mode=0o700, parents=True, exist_ok=True)
    env = _server_env(runtime)
    log = runtime / "pulseaudio.log"
    command = [
        "pulseaudio",
        "--daemonize=no",
        "-n",
        "--exit-idle-time=-1",
        "--use-pid-file=false",
        "--log-target=stderr",
        "-L",
        f"module-native-protocol-unix socket={runtime / 'native'} auth-anonymous=1",
        "-L",
        f"module-null-sink sink_name={SINK} rate={RATE} channels=1 format=s16le",
    ]
    with log.open("wb") as log_file:
        daemon = subprocess.Popen(command, env=env, stdout=log_file, stderr=log_file)
    server = PulseServer(env, runtime)
    keep_alive: subprocess.Popen[bytes] | None = None
    try:
        _wait_until_ready(server, daemon, log)
        server.pactl("set-default-source", SOURCE)
        keep_alive = server.play(Path("/dev/zero"))
        yield server
    finally:
        for process in (keep_alive, daemon):
            if process is not None:
                process.terminate()
                try:
                    process.wait(timeout=5)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()


def _wait_until_ready(server: PulseServer, daemon: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 15.0
    while time.monotonic() < deadline:
        if daemon.poll() is not None:
            raise PulseUnavailable(f"pulseaudio exited ({daemon.returncode}): {log.read_text()}")
        with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
            server.pactl("info")
            return
        time.sleep(0.1)
    raise PulseUnavailable(f"pulseaudio did not answer within 15 s: {log.read_text()}")
