"""Training engine: deterministic data order and noise, EMA, bf16 AMP, DDP and exact resume.

A run is a pure function of its config: the global batch at step ``s`` is a fixed slice of a
per-epoch permutation seeded by ``mix_seed(seed, epoch)``, and sample ``i`` of that batch gets the
noise seed ``mix_seed(seed, s, i)``. Under DDP each rank takes a contiguous slice of the global
batch, so a sample sees the same data and noise however the batch is split. Because nothing depends
on iterator state, a resumed run jumps straight to its step and continues the same trajectory.

Divergence guard (``divergence_guard``): a step whose loss or gradient norm is not finite, or whose
loss exceeds ``spike_factor`` times the largest of the last ``spike_window`` accepted losses, is not
applied. The run reloads the last good state (its newest checkpoint, or the state it started from),
multiplies the learning rate by ``lr_backoff``, rewrites that checkpoint (so a restart keeps the
lower rate), logs a warning and a ``rollback=1`` CSV row, and replays the steps after it: same
batches and noise seeds, lower learning rate (so a batch that diverges at any rate ends the run).
After ``max_rollbacks`` rollbacks, the next divergence raises :class:`DivergenceError`. A run that
never diverges is bit-identical with the guard off.
"""

from __future__ import annotations

import copy
import csv
import gc
import io
import logging
import math
import os
import random
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from time import perf_counter
from typing import IO, Any, Protocol

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import DataLoader, Dataset, Sampler
from tqdm import tqdm

import latentdiff
from latentdiff.core.checkpoint import (
    LAST_NAME,
    copy_checkpoint,
    latest_checkpoint,
    load_checkpoint,
    prune_checkpoints,
    save_checkpoint,
    stale_temporaries,
    step_checkpoint_name,
    step_checkpoints,
)
from latentdiff.core.config import save_config, to_dict
from latentdiff.core.random import mix_seed

logger = logging.getLogger(__name__)

LossFn = Callable[[nn.Module, Any, Tensor], tuple[Tensor, dict[str, float]]]
"""``loss_fn(model, batch, seeds) -> (scalar loss, floats to log)``."""

_LOG_COLUMNS = ("step", "loss", "lr", "grad_norm", "time")


@dataclass
class TrainerConfig:
    """Optimisation, logging and checkpointing settings of a training run."""

    steps: int = 1000
    batch_size: int = 16  # global batch size, summed over all processes
    lr: float = 2e-4
    weight_decay: float = 0.0
    betas: tuple[float, float] = (0.9, 0.99)
    warmup_steps: int = 100
    lr_schedule: str = "constant"  # "constant" | "cosine" (after the linear warm-up)
    grad_clip: float = 1.0  # max global grad norm; 0 disables clipping
    ema_decay: float = 0.999  # 0 disables the EMA copy
    ema_warmup: bool = True  # decay min(ema_decay, (1 + step) / (10 + step))
    amp: str = "none"  # "none" | "bf16"
    seed: int = 0
    log_every: int = 50
    ckpt_every: int = 500
    keep_checkpoints: int = 2
    num_workers: int = 0
    tensorboard: bool = True
    progress: bool = True
    device: str = "auto"  # "auto" (cuda if available, else cpu) | "cpu" | "cuda"
    divergence_guard: bool = True  # roll back non-finite or spiking steps (module docstring)
    spike_factor: float = 10.0  # loss / largest recent loss that counts as a spike; 0: off
    spike_window: int = 50  # recent losses compared with; spikes are judged once it is full
    lr_backoff: float = 0.5  # learning-rate multiplier applied at each rollback
    max_rollbacks: int = 3  # the next divergence raises DivergenceError

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(
                f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}"
            )
        if self.amp not in ("none", "bf16"):
            raise ValueError(f"amp must be 'none' or 'bf16', got {self.amp!r}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if self.spike_factor != 0 and not self.spike_factor > 1:
            raise ValueError(f"spike_factor must be 0 (off) or > 1, got {self.spike_factor}")
        if not 0.0 < self.lr_backoff <= 1.0:
            raise ValueError(f"lr_backoff must be in (0, 1], got {self.lr_backoff}")
        for name in ("steps", "warmup_steps", "keep_checkpoints", "num_workers", "max_rollbacks"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0, got {getattr(self, name)}")
        for name in ("batch_size", "log_every", "ckpt_every", "spike_window"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")


# ----------------------------------------------------------------------------- processes and RNG


def distributed_context() -> tuple[int, int]:
    """``(rank, world_size)`` of this process: from torch.distributed, else torchrun's env."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return int(os.environ.get("RANK", "0")), int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """True on rank 0 (and in single-process runs)."""
    return distributed_context()[0] == 0


def resolve_device(name: str) -> torch.device:
    """``"auto"`` -> this process's CUDA device (``LOCAL_RANK``) if available, else the CPU."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", "0")))
    return device


def seed_everything(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def capture_rng_state() -> dict[str, Any]:
    """Global RNG states as tensors and plain containers (loadable with ``weights_only``)."""
    _, keys, pos, has_gauss, cached_gaussian = np.random.get_state()
    state: dict[str, Any] = {
        "python": random.getstate(),
        "numpy": {
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached_gaussian),
        },
        "torch": torch.get_rng_state(),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: Mapping[str, Any]) -> None:
    """Inverse of :func:`capture_rng_state`."""
    random.setstate(state["python"])
    numpy_state = state["numpy"]
    np.random.set_state(
        (
            "MT19937",
            numpy_state["keys"].numpy().astype(np.uint32),
            numpy_state["pos"],
            numpy_state["has_gauss"],
            numpy_state["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


# ----------------------------------------------------------------------------- data order and seeds


def epoch_order(num_samples: int, seed: int, epoch: int) -> Tensor:
    """Permutation of the dataset indices used in ``epoch``."""
    generator = torch.Generator().manual_seed(mix_seed(seed, epoch))
    return torch.randperm(num_samples, generator=generator)


def sample_seeds(seed: int, step: int, positions: Sequence[int]) -> Tensor:
    """Noise seeds (int64, CPU) of the samples at ``positions`` of the global batch of ``step``."""
    return torch.tensor([mix_seed(seed, step, pos) for pos in positions], dtype=torch.int64)


def check_batch_split(num_samples: int, global_batch_size: int, world_size: int) -> None:
    """Raise ValueError unless the global batch splits evenly and fits the dataset."""
    if global_batch_size % world_size:
        raise ValueError(
            f"global batch size {global_batch_size} is not divisible by the world size {world_size}"
        )
    if num_samples < global_batch_size:
        raise ValueError(
            f"dataset has {num_samples} samples, fewer than one global batch ({global_batch_size})"
        )


class StepBatchSampler(Sampler[list[int]]):
    """This rank's dataset indices for each step in ``[start_step, stop_step)``.

    The global batch at step ``s`` is slice ``s % steps_per_epoch`` of the order of epoch
    ``s // steps_per_epoch`` (incomplete final batches are dropped); rank ``r`` takes the ``r``-th
    contiguous piece of it.
    """

    def __init__(
        self,
        num_samples: int,
        global_batch_size: int,
        seed: int,
        start_step: int,
        stop_step: int,
        rank: int = 0,
        world_size: int = 1,
    ) -> None:
        check_batch_split(num_samples, global_batch_size, world_size)
        self.num_samples = num_samples
        self.global_batch_size = global_batch_size
        self.seed = seed
        self.start_step = start_step
        self.stop_step = stop_step
        self.local_batch_size = global_batch_size // world_size
        self.offset = rank * self.local_batch_size
        self.steps_per_epoch = num_samples // global_batch_size

    def __len__(self) -> int:
        return max(self.stop_step - self.start_step, 0)

    def __iter__(self) -> Iterator[list[int]]:
        cached_epoch, order = -1, torch.empty(0, dtype=torch.int64)
        for step in range(self.start_step, self.stop_step):
            epoch, index = divmod(step, self.steps_per_epoch)
            if epoch != cached_epoch:
                cached_epoch, order = epoch, epoch_order(self.num_samples, self.seed, epoch)
            start = index * self.global_batch_size + self.offset
            yield order[start : start + self.local_batch_size].tolist()


def move_to_device(batch: Any, device: torch.device) -> Any:
    """Move the tensors of a (nested) tuple / list / dict batch to ``device``."""
    if isinstance(batch, Tensor):
        return batch.to(device)
    if isinstance(batch, Mapping):
        return {key: move_to_device(value, device) for key, value in batch.items()}
    if isinstance(batch, tuple) and hasattr(batch, "_fields"):
        return type(batch)(*(move_to_device(value, device) for value in batch))
    if isinstance(batch, list | tuple):
        return type(batch)(move_to_device(value, device) for value in batch)
    return batch


# ----------------------------------------------------------------------------- schedules and EMA


def lr_factor(cfg: TrainerConfig) -> Callable[[int], float]:
    """Multiplier of ``cfg.lr`` at (0-based) step: linear warm-up, then constant or cosine."""

    def factor(step: int) -> float:
        if step < cfg.warmup_steps:
            return (step + 1) / cfg.warmup_steps
        if cfg.lr_schedule == "constant":
            return 1.0
        progress = (step - cfg.warmup_steps) / max(cfg.steps - cfg.warmup_steps, 1)
        return 0.5 * (1.0 + math.cos(math.pi * min(progress, 1.0)))

    return factor


def ema_decay_at(cfg: TrainerConfig, step: int) -> float:
    """EMA decay applied after the update of (0-based) ``step``."""
    if cfg.ema_warmup:
        return min(cfg.ema_decay, (1 + step) / (10 + step))
    return cfg.ema_decay


@torch.no_grad()
def update_ema(ema: nn.Module, model: nn.Module, decay: float) -> None:
    """``ema <- decay * ema + (1 - decay) * model`` for parameters; buffers are copied."""
    for ema_param, param in zip(ema.parameters(), model.parameters(), strict=True):
        ema_param.lerp_(param.detach(), 1.0 - decay)
    for ema_buffer, buffer in zip(ema.buffers(), model.buffers(), strict=True):
        ema_buffer.copy_(buffer)


# ----------------------------------------------------------------------------- divergence


class DivergenceError(RuntimeError):
    """Training kept diverging after ``max_rollbacks`` rollbacks."""


class LossSpikeDetector:
    """Flags a loss above ``factor`` times the largest of the last ``window`` accepted losses.

    The largest recent loss, not a typical one, is the reference because per-batch losses can be
    heavy-tailed: ordinary batches of an x0-space diffusion loss reach 14x the running median.
    Nothing is judged before ``window`` losses have been accepted (the fast initial drop of a run),
    nor while that largest loss is not positive; ``factor=0`` turns detection off.
    """

    def __init__(self, factor: float, window: int) -> None:
        self.factor = factor
        self._recent: deque[float] = deque(maxlen=window)

    @property
    def recent_losses(self) -> list[float]:
        """The accepted losses in the window, oldest first."""
        return list(self._recent)

    def reset(self, losses: Iterable[float]) -> None:
        """Replace the window by ``losses`` (only the newest ``window`` of them are kept)."""
        self._recent.clear()
        self._recent.extend(float(loss) for loss in losses)

    def spike(self, loss: float) -> str | None:
        """Why ``loss`` is a spike, or None."""
        if self.factor == 0 or len(self._recent) < (self._recent.maxlen or 0):
            return None
        reference = max(self._recent)
        if reference > 0 and loss > self.factor * reference:
            return (
                f"loss spike {loss:.4g} > {self.factor:g} x {reference:.4g}, the largest loss "
                f"of the last {len(self._recent)} steps"
            )
        return None

    def accept(self, loss: float) -> None:
        """Add the loss of an applied step to the window."""
        self._recent.append(loss)


# ----------------------------------------------------------------------------- logging


class CsvLog:
    """Per-interval CSV rows; opening it drops rows past ``keep_through_step`` (resume)."""

    def __init__(self, path: Path, keep_through_step: int) -> None:
        self.path = path
        self.fields: list[str] | None = None
        self._handle = self._rewrite(keep_through_step)

    def truncate(self, keep_through_step: int) -> None:
        """Drop the rows past ``keep_through_step`` (a rollback)."""
        self._handle.close()
        self._handle = self._rewrite(keep_through_step)

    def _rewrite(self, keep_through_step: int) -> IO[str]:
        """Keep the complete rows through ``keep_through_step``; returns the file open to append."""
        kept: list[dict[str, str]] = []
        if self.path.is_file():
            with self.path.open(newline="") as handle:
                reader = csv.DictReader(handle)
                self.fields = list(reader.fieldnames or [])
                kept = [row for row in reader if _complete_row_through(row, keep_through_step)]
        if not kept:
            self.fields = None
        with self.path.open("w", newline="") as handle:
            if self.fields:
                writer = csv.DictWriter(handle, self.fields)
                writer.writeheader()
                writer.writerows(kept)
        return self.path.open("a", newline="")

    def write(self, row: Mapping[str, float]) -> None:
        """Append one row (columns are fixed by the first row ever written) and flush it."""
        if self.fields is None:
            self.fields = list(row)
            csv.DictWriter(self._handle, self.fields).writeheader()
        csv.DictWriter(self._handle, self.fields, restval="", extrasaction="ignore").writerow(row)
        self._handle.flush()

    def close(self) -> None:
        self._handle.close()


def _complete_row_through(row: Mapping[str, str | None], last_step: int) -> bool:
    """True for a fully written row whose step is at most ``last_step``."""
    if any(value is None for value in row.values()) or None in row:
        return False
    try:
        return int(row["step"] or "") <= last_step
    except ValueError:
        return False


class _ScalarWriter(Protocol):
    def add_scalar(self, tag: str, scalar_value: float, global_step: int) -> None: ...

    def close(self) -> None: ...


class _Window:
    """Running sums of per-step values between two log rows."""

    def __init__(self) -> None:
        self.count = 0
        self.sums: dict[str, float] = {}

    def add(self, values: Mapping[str, float]) -> None:
        self.count += 1
        for key, value in values.items():
            self.sums[key] = self.sums.get(key, 0.0) + value

    def means(self, device: torch.device, world_size: int) -> dict[str, float]:
        """Means over the window (and over ranks); resets the window."""
        keys = sorted(self.sums)
        totals = torch.tensor([self.sums[k] for k in keys], dtype=torch.float64, device=device)
        if world_size > 1:
            dist.all_reduce(totals)
        means = (totals / (self.count * world_size)).tolist()
        self.count, self.sums = 0, {}
        return dict(zip(keys, means, strict=True))


# ----------------------------------------------------------------------------- trainer


class Trainer:
    """Train ``model`` by minimising ``loss_fn`` over ``dataset``; see the module docstring.

    ``loss_fn(model, batch, seeds)`` receives the model to call (wrapped in DDP when distributed,
    so use its forward), the collated batch on the training device, and the CPU int64 noise seeds
    of the batch's samples; it returns a scalar loss (a mean over the batch, so that DDP's gradient
    averaging matches single-process training) and a dict of floats to log.
    ``extra_state`` (plain data and tensors, e.g. the model config) is stored in every checkpoint.
    """

    def __init__(
        self,
        model: nn.Module,
        loss_fn: LossFn,
        dataset: Dataset[Any],
        cfg: TrainerConfig,
        out_dir: Path,
        *,
        extra_state: dict[str, Any] | None = None,
    ) -> None:
        self.cfg = cfg
        self.loss_fn = loss_fn
        self.dataset = dataset
        self.out_dir = Path(out_dir)
        self.checkpoint_dir = self.out_dir / "checkpoints"
        self.extra_state = dict(extra_state or {})
        self.rank, self.world_size = distributed_context()
        self.num_samples = len(dataset)  # type: ignore[arg-type]
        check_batch_split(self.num_samples, cfg.batch_size, self.world_size)
        self.local_batch_size = cfg.batch_size // self.world_size
        self.device = resolve_device(cfg.device)
        self._owns_process_group = False
        if self.world_size > 1 and not dist.is_initialized():
            if self.device.type == "cuda":
                torch.cuda.set_device(self.device)
            dist.init_process_group("nccl" if self.device.type == "cuda" else "gloo")
            self._owns_process_group = True
        self.model = model.to(self.device)
        self._train_model: nn.Module = self.model
        if self.world_size > 1:
            device_ids = [self.device.index] if self.device.type == "cuda" else None
            self._train_model = DistributedDataParallel(self.model, device_ids=device_ids)
        self._ema = self._new_ema() if cfg.ema_decay > 0 else None
        self.optimizer = torch.optim.AdamW(
            self.model.parameters(), lr=cfg.lr, betas=cfg.betas, weight_decay=cfg.weight_decay
        )
        self.lr_scale = 1.0  # product of the rollbacks' lr_backoff factors
        self.rollbacks = 0
        schedule = lr_factor(cfg)
        self.scheduler = LambdaLR(self.optimizer, lambda step: self.lr_scale * schedule(step))
        self.step = 0
        self.elapsed = 0.0
        self._last_lr = cfg.lr * schedule(0)
        self._spikes = LossSpikeDetector(cfg.spike_factor, cfg.spike_window)
        self._start_state: bytes | None = None  # rollback target until this run saves a checkpoint
        self._csv: CsvLog | None = None
        self._tensorboard: _ScalarWriter | None = None
        self._progress: tqdm[Any] | None = None

    @property
    def ema_model(self) -> nn.Module:
        """The EMA copy of the model, or the model itself when EMA is off."""
        return self._ema if self._ema is not None else self.model

    def _new_ema(self) -> nn.Module:
        ema = copy.deepcopy(self.model).eval()
        ema.requires_grad_(False)
        return ema

    # -- checkpoint state

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to continue the run exactly, plus configs and versions."""
        return {
            "step": self.step,
            "elapsed": self.elapsed,
            "model": self.model.state_dict(),
            "ema": self._ema.state_dict() if self._ema is not None else None,
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "rng": capture_rng_state(),
            "lr_scale": self.lr_scale,
            "rollbacks": self.rollbacks,
            "recent_losses": self._spikes.recent_losses,
            "trainer_config": to_dict(self.cfg),
            "extra": self.extra_state,
            "version": latentdiff.__version__,
            "torch_version": str(torch.__version__),
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Restore a :meth:`state_dict` (model, EMA, optimiser, scheduler, RNG, step, guard)."""
        self.model.load_state_dict(state["model"])
        if self._ema is not None:
            if state["ema"] is None:
                self._ema = self._new_ema()
            else:
                self._ema.load_state_dict(state["ema"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        restore_rng_state(state["rng"])
        self.step = int(state["step"])
        self.elapsed = float(state["elapsed"])
        self.lr_scale = float(state.get("lr_scale", 1.0))
        self.rollbacks = int(state.get("rollbacks", 0))
        self._spikes.reset(state.get("recent_losses", ()))

    def _save(self) -> None:
        self._start_state = None
        if self.rank == 0:
            path = self.checkpoint_dir / step_checkpoint_name(self.step)
            save_checkpoint(path, self.state_dict())
            copy_checkpoint(path, self.checkpoint_dir / LAST_NAME)
            prune_checkpoints(self.checkpoint_dir, self.cfg.keep_checkpoints)
        if self.world_size > 1:
            dist.barrier()

    def _prepare_run(self, resume: bool) -> None:
        """Restore the newest checkpoint (or start over) and open this process's logs."""
        seed_everything(self.cfg.seed)
        path = latest_checkpoint(self.checkpoint_dir) if resume else None
        if path is not None:
            self.load_state_dict(load_checkpoint(path))
            if self.rank == 0:
                logger.info("resuming from step %d (%s)", self.step, path)
        if self.rank != 0:
            return
        self.checkpoint_dir.mkdir(parents=True, exist_ok=True)
        for stale in stale_temporaries(self.checkpoint_dir):
            stale.unlink(missing_ok=True)
        if not resume:
            for _, old in step_checkpoints(self.checkpoint_dir):
                old.unlink()
            (self.checkpoint_dir / LAST_NAME).unlink(missing_ok=True)
        save_config(self.cfg, self.out_dir / "config.yaml")
        self._csv = CsvLog(self.out_dir / "train_log.csv", keep_through_step=self.step)
        self._tensorboard = self._open_tensorboard()
        self._progress = tqdm(
            total=self.cfg.steps,
            initial=self.step,
            disable=not self.cfg.progress,
            unit="step",
            mininterval=0.1 if sys.stderr.isatty() else 10.0,  # keep log files short
        )

    def _open_tensorboard(self) -> _ScalarWriter | None:
        """A TensorBoard writer that hides the events logged after the current step."""
        if not self.cfg.tensorboard:
            return None
        from torch.utils.tensorboard import SummaryWriter

        return SummaryWriter(self.out_dir / "tb", purge_step=self.step + 1)

    def close(self) -> None:
        """Close the logs and leave the process group this trainer joined."""
        for resource in (self._csv, self._tensorboard, self._progress):
            if resource is not None:
                resource.close()
        self._csv = self._tensorboard = self._progress = None
        if self._owns_process_group and dist.is_initialized():
            # Free the DDP wrapper (and the process group it holds) now, not at interpreter exit,
            # where tearing down gloo's threads can abort the process.
            self._train_model = self.model
            gc.collect()
            dist.destroy_process_group()
            self._owns_process_group = False

    # -- training

    def fit(self, resume: bool = True) -> dict[str, float]:
        """Train until ``cfg.steps``; returns the means logged for the last interval.

        With ``resume`` the run continues from the newest checkpoint in ``out_dir/checkpoints``;
        without it, it starts over and replaces the checkpoints and logs found there.
        """
        try:
            self._prepare_run(resume)
            return self._train()
        finally:
            self.close()

    def _train(self) -> dict[str, float]:
        cfg = self.cfg
        positions = range(
            self.rank * self.local_batch_size, (self.rank + 1) * self.local_batch_size
        )
        stats: dict[str, float] = {"step": self.step, "time": self.elapsed}
        self._train_model.train()
        if cfg.divergence_guard and cfg.max_rollbacks > 0:
            buffer = io.BytesIO()
            torch.save(self.state_dict(), buffer)
            self._start_state = buffer.getvalue()
        while self.step < cfg.steps:  # once, plus once after each rollback
            window = _Window()
            started, elapsed_before = perf_counter(), self.elapsed
            for batch in self._loader():
                seeds = sample_seeds(cfg.seed, self.step, positions)
                values, divergence = self._train_step(batch, seeds)
                self.elapsed = elapsed_before + perf_counter() - started
                if divergence is not None:
                    self._roll_back(divergence, values)
                    break
                window.add(values)
                self.step += 1
                if self._progress is not None:
                    self._progress.update(1)
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    stats = self._log(window.means(self.device, self.world_size))
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                    self._save()
        return stats

    def _loader(self) -> DataLoader[Any]:
        """This rank's batches for the steps from the current one to the end of the run."""
        cfg = self.cfg
        sampler = StepBatchSampler(
            self.num_samples,
            cfg.batch_size,
            cfg.seed,
            self.step,
            cfg.steps,
            self.rank,
            self.world_size,
        )
        return DataLoader(
            self.dataset,
            batch_sampler=sampler,
            num_workers=cfg.num_workers,
            pin_memory=self.device.type == "cuda",
            generator=torch.Generator().manual_seed(mix_seed(cfg.seed, self.step)),
        )

    def _train_step(self, batch: Any, seeds: Tensor) -> tuple[dict[str, float], str | None]:
        """One optimiser step; returns the values to log and, for a step not applied, why."""
        batch = move_to_device(batch, self.device)
        with torch.autocast(self.device.type, torch.bfloat16, enabled=self.cfg.amp == "bf16"):
            loss, metrics = self.loss_fn(self._train_model, batch, seeds)
        values = {**metrics, "loss": float(loss.detach().float()), "grad_norm": math.nan}
        guard = self.cfg.divergence_guard
        global_loss = self._mean_over_ranks(values["loss"]) if guard else values["loss"]
        if guard and (divergence := self._loss_divergence(global_loss)) is not None:
            return {**values, "loss": global_loss}, divergence
        if not math.isfinite(global_loss):
            raise FloatingPointError(f"non-finite loss {global_loss} at step {self.step}")
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.cfg.grad_clip > 0:
            grad_norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
        else:
            grads = [p.grad for p in self.model.parameters() if p.grad is not None]
            grad_norm = nn.utils.get_total_norm(grads)
        values["grad_norm"] = float(grad_norm)
        if guard and not math.isfinite(values["grad_norm"]):
            return {**values, "loss": global_loss}, f"non-finite gradient norm {grad_norm}"
        self._last_lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if self._ema is not None:
            update_ema(self._ema, self.model, ema_decay_at(self.cfg, self.step))
        if guard:
            self._spikes.accept(global_loss)
        return values, None

    def _mean_over_ranks(self, value: float) -> float:
        """Mean of ``value`` over the processes, so that they all take the same decisions."""
        if self.world_size == 1:
            return value
        total = torch.tensor([value], dtype=torch.float64, device=self.device)
        dist.all_reduce(total)
        return total.item() / self.world_size

    def _loss_divergence(self, loss: float) -> str | None:
        """Why the step of ``loss`` must not be applied, or None."""
        if not math.isfinite(loss):
            return f"non-finite loss {loss}"
        return self._spikes.spike(loss)

    def _roll_back(self, reason: str, values: Mapping[str, float]) -> None:
        """Reload the last good state with a lower learning rate, or raise DivergenceError."""
        failed_step = self.step
        if self.rollbacks >= self.cfg.max_rollbacks:
            raise DivergenceError(
                f"training diverged at step {failed_step} ({reason}) after {self.rollbacks} "
                f"rollbacks (max_rollbacks={self.cfg.max_rollbacks}); last good checkpoint: "
                f"{latest_checkpoint(self.checkpoint_dir) or 'none'}"
            )
        rollbacks, lr_scale = self.rollbacks + 1, self.lr_scale * self.cfg.lr_backoff
        elapsed = self.elapsed
        if self._start_state is not None:
            state = torch.load(io.BytesIO(self._start_state), map_location="cpu", weights_only=True)
        else:
            state = load_checkpoint(self.checkpoint_dir / LAST_NAME)
        self.load_state_dict(state)
        self.rollbacks, self.lr_scale, self.elapsed = rollbacks, lr_scale, elapsed
        for group, base_lr, schedule in zip(
            self.optimizer.param_groups,
            self.scheduler.base_lrs,
            self.scheduler.lr_lambdas,
            strict=True,
        ):
            group["lr"] = base_lr * schedule(self.step)
        self._last_lr = self.optimizer.param_groups[0]["lr"]
        self._save()
        if self.rank != 0:
            return
        logger.warning(
            "step %d: %s; rolled back to step %d, learning rate x%g (rollback %d of %d)",
            failed_step,
            reason,
            self.step,
            self.lr_scale,
            self.rollbacks,
            self.cfg.max_rollbacks,
        )
        if self._csv is not None:
            self._csv.truncate(self.step)
        if self._tensorboard is not None:
            self._tensorboard.close()
            self._tensorboard = self._open_tensorboard()
        if self._progress is not None:
            self._progress.update(self.step - self._progress.n)
        self._write_row(self._row(values, rollback=True))

    def _log(self, means: dict[str, float]) -> dict[str, float]:
        return self._write_row(self._row(means, rollback=False))

    def _row(self, values: Mapping[str, float], rollback: bool) -> dict[str, float]:
        """A log row at the current step from per-step ``values`` (loss, grad_norm, metrics)."""
        metrics = dict(values)
        return {
            "step": self.step,
            "loss": metrics.pop("loss"),
            "lr": self._last_lr,
            "grad_norm": metrics.pop("grad_norm"),
            "time": self.elapsed,
            "rollback": int(rollback),
            **metrics,
        }

    def _write_row(self, row: dict[str, float]) -> dict[str, float]:
        """Write ``row`` to the CSV, TensorBoard and progress bar; returns it."""
        if self._csv is not None:
            self._csv.write(row)
        if self._tensorboard is not None:
            for key, value in row.items():
                if key != "step":
                    self._tensorboard.add_scalar(f"train/{key}", value, self.step)
        if self._progress is not None:
            self._progress.set_postfix(loss=f"{row['loss']:.4g}", lr=f"{row['lr']:.3g}")
        return row


def fit_experiment(
    model: nn.Module,
    loss_fn: LossFn,
    dataset: Dataset[Any],
    experiment: Any,
    exp_dir: Path,
    spec: dict[str, Any],
) -> tuple[dict[str, float], nn.Module]:
    """A training stage: ``experiment`` (a config with a ``trainer`` field) saved as
    ``exp_dir/experiment.yaml``, then ``model`` trained with it (resuming from the newest
    checkpoint, ``spec`` stored in each). Returns the last logged means and the EMA model."""
    exp_dir.mkdir(parents=True, exist_ok=True)
    save_config(experiment, exp_dir / "experiment.yaml")
    trainer = Trainer(
        model, loss_fn, dataset, experiment.trainer, exp_dir, extra_state={"model": spec}
    )
    return trainer.fit(), trainer.ema_model
