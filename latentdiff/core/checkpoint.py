"""Crash-safe checkpoint files: atomic writes, clear load errors, newest-checkpoint lookup."""

from __future__ import annotations

import contextlib
import os
import pickle
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

import torch

LAST_NAME = "last.pt"
_STEP_PATTERN = re.compile(r"^step_(\d+)\.pt$")
_TEMP_SUFFIX = ".tmp"


class CheckpointError(RuntimeError):
    """A checkpoint file exists but cannot be read (truncated, corrupt or not a checkpoint)."""


def step_checkpoint_name(step: int) -> str:
    """File name of the checkpoint taken after ``step`` optimiser steps."""
    return f"step_{step:08d}.pt"


def _write_atomically(path: Path, write: Callable[[IO[bytes]], None]) -> None:
    """Write ``path`` through a synced temporary file in the same directory, then rename it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, temp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=_TEMP_SUFFIX)
    temp_path = Path(temp_name)
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temp_path, path)
    except BaseException:
        temp_path.unlink(missing_ok=True)
        raise
    _sync_directory(path.parent)


def _sync_directory(directory: Path) -> None:
    """Persist a rename on POSIX file systems (a no-op where directories cannot be opened)."""
    with contextlib.suppress(OSError):
        fd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def save_checkpoint(path: str | Path, state: dict[str, Any]) -> None:
    """Save ``state`` with ``torch.save``; the final name only ever holds a complete file."""
    _write_atomically(Path(path), lambda handle: torch.save(state, handle))


def copy_checkpoint(source: str | Path, destination: str | Path) -> None:
    """Atomically replace ``destination`` with a copy of ``source``."""
    with Path(source).open("rb") as src:
        _write_atomically(Path(destination), lambda handle: shutil.copyfileobj(src, handle))


def load_checkpoint(path: str | Path, *, weights_only: bool = True) -> dict[str, Any]:
    """Load a checkpoint dict onto the CPU.

    ``weights_only=True`` (the default) only unpickles tensors and plain containers, which is all
    the trainer writes; pass ``False`` for trusted files holding arbitrary Python objects.
    Raises FileNotFoundError for a missing file and CheckpointError for an unreadable one.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=weights_only)
    except (RuntimeError, EOFError, ValueError, pickle.UnpicklingError, zipfile.BadZipFile) as err:
        raise CheckpointError(f"cannot read checkpoint {path}: {err}") from err
    if not isinstance(state, dict):
        raise CheckpointError(f"{path} holds a {type(state).__name__}, expected a dict")
    return state


def step_checkpoints(directory: str | Path) -> list[tuple[int, Path]]:
    """``(step, path)`` of every ``step_*.pt`` file in ``directory``, oldest first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    found = []
    for path in directory.iterdir():
        match = _STEP_PATTERN.match(path.name)
        if match and path.is_file():
            found.append((int(match.group(1)), path))
    return sorted(found)


def latest_checkpoint(directory: str | Path) -> Path | None:
    """Newest checkpoint in ``directory``: the highest-step ``step_*.pt``, else ``last.pt``.

    Step files are preferred because a crash between writing a step file and refreshing
    ``last.pt`` leaves the step file newer. Returns None when there is no checkpoint.
    """
    steps = step_checkpoints(directory)
    if steps:
        return steps[-1][1]
    last = Path(directory) / LAST_NAME
    return last if last.is_file() else None


def prune_checkpoints(directory: str | Path, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest step checkpoints; returns the deleted paths."""
    steps = step_checkpoints(directory)
    doomed = [path for _, path in steps[: max(len(steps) - max(keep, 0), 0)]]
    for path in doomed:
        path.unlink(missing_ok=True)
    return doomed


def stale_temporaries(directory: str | Path) -> Iterator[Path]:
    """Temporary files left in ``directory`` by writes that were interrupted by a crash."""
    directory = Path(directory)
    if directory.is_dir():
        yield from (p for p in directory.glob(f".*{_TEMP_SUFFIX}") if p.is_file())
