"""Tests of the trainer's divergence guard: NaN/Inf and loss-spike rollbacks, backoff, resume, DDP.

Run as a script (under torchrun), this file trains the toy task with a fault on one rank.
"""

from __future__ import annotations

import argparse
import csv
import importlib.util
import logging
import math
import os
import random
import subprocess
import sys
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch
from torch import Tensor, nn

from latentdiff.core import checkpoint as ckpt
from latentdiff.core.config import from_dict, load_config, save_config, to_dict
from latentdiff.core.training import (
    DivergenceError,
    LossSpikeDetector,
    TrainerConfig,
    sample_seeds,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
SUBPROCESS_TIMEOUT = 120.0
FAULT_CALL = 13  # the 14th attempted step: step 13, after the checkpoint of step 10
CHECKPOINT_STEP = 10


def _load_toy() -> ModuleType:
    spec = importlib.util.spec_from_file_location("latentdiff_tests_ddp_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toy = _load_toy()

Fault = Callable[[Tensor, nn.Module], Tensor]


def nan_loss(loss: Tensor, model: nn.Module) -> Tensor:
    return loss * math.nan


def nan_gradient(loss: Tensor, model: nn.Module) -> Tensor:
    """The same (finite) loss, with a NaN gradient: d sqrt(z)/dz is infinite at z = 0."""
    total = sum(p.sum() for p in model.parameters())
    return loss + 0.0 * torch.sqrt(total - total)


def loss_spike(loss: Tensor, model: nn.Module) -> Tensor:
    return loss * 1000.0


class SimulatedCrash(RuntimeError):
    """Stands for the process being killed."""


class FaultyLoss:
    """``toy_loss`` with ``fault`` applied at the given calls (once each) and steps (every time).

    Call ``n`` is the ``n``-th attempted step of this process. Records the noise seeds and inputs
    of each call, and raises SimulatedCrash at ``crash_at_call``.
    """

    def __init__(
        self,
        fault: Fault = nan_loss,
        *,
        calls: Collection[int] = (),
        steps: Collection[int] = (),
        crash_at_call: int | None = None,
    ) -> None:
        self.fault = fault
        self.calls = calls
        cfg = toy.toy_config()
        positions = range(cfg.batch_size)
        self.step_seeds = {s for t in steps for s in sample_seeds(cfg.seed, t, positions).tolist()}
        self.crash_at_call = crash_at_call
        self.seen: list[tuple[Tensor, Tensor]] = []

    def __call__(
        self, model: nn.Module, batch: tuple[Tensor, Tensor], seeds: Tensor
    ) -> tuple[Tensor, dict[str, float]]:
        call = len(self.seen)
        if call == self.crash_at_call:
            raise SimulatedCrash(f"crash at call {call}")
        self.seen.append((seeds.clone(), batch[0].clone()))
        loss, metrics = toy.toy_loss(model, batch, seeds)
        if call in self.calls or int(seeds[0]) in self.step_seeds:
            loss = self.fault(loss, model)
        return loss, metrics


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op thread, as in the worker subprocesses, so float results agree bitwise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _config(**overrides: Any) -> TrainerConfig:
    """20 toy steps, checkpoints every 5, spikes judged from step 5 on."""
    fields: dict[str, Any] = {"steps": 20, "ckpt_every": 5, "spike_window": 5, **overrides}
    return toy.toy_config(**fields)


def _log_rows(out_dir: Path) -> list[dict[str, str]]:
    with (out_dir / "train_log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _step_rows(out_dir: Path) -> dict[int, dict[str, str]]:
    """The ordinary (not rollback) rows of the CSV by step; asserts each step occurs once."""
    rows = [row for row in _log_rows(out_dir) if row["rollback"] == "0"]
    by_step = {int(row["step"]): row for row in rows}
    assert len(by_step) == len(rows)
    return by_step


def _assert_equal_states(a: dict[str, Tensor], b: dict[str, Tensor]) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def _assert_replayed(loss: FaultyLoss, steps: list[int]) -> None:
    """The calls of ``loss`` trained ``steps``, with the same batch and noise for the same step."""
    assert len(loss.seen) == len(steps)
    inputs: dict[int, Tensor] = {}
    for step, (seeds, batch_inputs) in zip(steps, loss.seen, strict=True):
        assert torch.equal(seeds, sample_seeds(0, step, range(len(seeds)))), step
        assert torch.equal(inputs.setdefault(step, batch_inputs), batch_inputs), step


def _rollback_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "rolled back" in r.getMessage()]


# ----------------------------------------------------------------------------- config and detector


def test_config_round_trip_with_guard_fields(tmp_path: Path) -> None:
    defaults = TrainerConfig()
    assert defaults.divergence_guard and defaults.lr_backoff == 0.5 and defaults.max_rollbacks == 3
    cfg = TrainerConfig(
        divergence_guard=False, spike_factor=0.0, spike_window=7, lr_backoff=0.25, max_rollbacks=1
    )
    assert from_dict(TrainerConfig, to_dict(cfg)) == cfg
    save_config(cfg, tmp_path / "config.yaml")
    assert load_config(TrainerConfig, tmp_path / "config.yaml") == cfg
    assert from_dict(TrainerConfig, {"spike_factor": 4, "max_rollbacks": 0}).spike_factor == 4.0
    for bad in (
        {"spike_factor": 1.0},
        {"spike_factor": -2.0},
        {"spike_window": 0},
        {"lr_backoff": 0.0},
        {"lr_backoff": 1.5},
        {"max_rollbacks": -1},
    ):
        with pytest.raises(ValueError, match=next(iter(bad))):
            from_dict(TrainerConfig, bad)


def _x0_losses(rng: random.Random, steps: int) -> list[float]:
    """Batch-of-4 losses of the optimal x0 denoiser of unit Gaussian data, EDM-sampled noise.

    Heavy-tailed: a batch of only small noise levels has a loss near 0, one of large ones near 1.
    """
    sigmas = ([math.exp(rng.gauss(-1.2, 1.2)) for _ in range(4)] for _ in range(steps))
    return [sum(s * s / (1 + s * s) for s in batch) / 4 for batch in sigmas]


def test_spike_detector_ignores_noise_and_flags_spikes() -> None:
    cfg = TrainerConfig()
    rng = random.Random(0)
    decaying = [(0.05 + 2.0 / (1 + s / 100)) * rng.lognormvariate(0.0, 0.8) for s in range(20_000)]
    for losses in (decaying, _x0_losses(rng, 20_000)):
        detector = LossSpikeDetector(cfg.spike_factor, cfg.spike_window)
        for step, loss in enumerate(losses):
            assert detector.spike(loss) is None, step
            detector.accept(loss)
        largest = max(detector.recent_losses)
        reason = detector.spike(10.5 * largest)
        assert reason is not None and reason.startswith("loss spike")
        assert detector.spike(9.5 * largest) is None

    warming_up = LossSpikeDetector(10.0, window=3)
    warming_up.reset([1.0, 1.0])
    assert warming_up.spike(1e6) is None  # window not full yet
    warming_up.accept(0.5)
    assert warming_up.spike(11.0) is not None and warming_up.spike(9.0) is None
    warming_up.reset([3.0, -1.0, -2.0, -0.5])  # keeps the newest 3, all negative: not judged
    assert warming_up.recent_losses == [-1.0, -2.0, -0.5] and warming_up.spike(1e6) is None
    off = LossSpikeDetector(0.0, window=1)
    off.accept(1.0)
    assert off.spike(1e9) is None


# ----------------------------------------------------------------------------- rollbacks


def test_guard_leaves_an_undisturbed_run_bit_identical(tmp_path: Path) -> None:
    guarded = toy.toy_trainer(tmp_path / "on", _config(steps=40, ckpt_every=20, spike_window=3))
    guarded.fit()
    unguarded = toy.toy_trainer(
        tmp_path / "off", _config(steps=40, ckpt_every=20, divergence_guard=False)
    )
    unguarded.fit()
    assert guarded.rollbacks == 0 and guarded.lr_scale == 1.0
    _assert_equal_states(guarded.model.state_dict(), unguarded.model.state_dict())
    _assert_equal_states(guarded.ema_model.state_dict(), unguarded.ema_model.state_dict())
    rows = _log_rows(tmp_path / "on")
    assert [r["rollback"] for r in rows] == ["0"] * 40
    assert [r["loss"] for r in rows] == [r["loss"] for r in _log_rows(tmp_path / "off")]


def test_unguarded_nan_loss_still_raises(tmp_path: Path) -> None:
    loss = FaultyLoss(calls={3})
    trainer = toy.toy_trainer(tmp_path, _config(divergence_guard=False), loss)
    with pytest.raises(FloatingPointError, match="non-finite loss nan at step 3"):
        trainer.fit()


@pytest.mark.parametrize("fault", [nan_loss, nan_gradient, loss_spike])
def test_divergence_rolls_back_once_with_half_the_learning_rate(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, fault: Fault
) -> None:
    reference = toy.toy_trainer(tmp_path / "reference", _config())
    reference.fit()
    loss = FaultyLoss(fault, calls={FAULT_CALL})
    trainer = toy.toy_trainer(tmp_path / "run", _config(), loss)
    with caplog.at_level(logging.WARNING, logger="latentdiff.core.training"):
        stats = trainer.fit()

    assert stats["step"] == 20 and math.isfinite(stats["loss"])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(torch.isfinite(p).all() for p in trainer.ema_model.parameters())
    warnings = _rollback_warnings(caplog)
    assert len(warnings) == 1 and "rolled back to step 10" in warnings[0], warnings
    assert f"step {FAULT_CALL}: " in warnings[0]
    rows = _log_rows(tmp_path / "run")
    events = [row for row in rows if row["rollback"] == "1"]
    assert len(events) == 1 and int(events[0]["step"]) == CHECKPOINT_STEP
    assert rows.index(events[0]) == CHECKPOINT_STEP  # right after the row of step 10
    assert float(events[0]["lr"]) == 0.5 * float(_step_rows(tmp_path / "reference")[11]["lr"])

    ordinary, expected = _step_rows(tmp_path / "run"), _step_rows(tmp_path / "reference")
    assert sorted(ordinary) == list(range(1, 21))
    for step in range(1, 21):
        scale = 1.0 if step <= CHECKPOINT_STEP else 0.5
        assert float(ordinary[step]["lr"]) == scale * float(expected[step]["lr"]), step
    assert ordinary[CHECKPOINT_STEP]["loss"] == expected[CHECKPOINT_STEP]["loss"]

    _assert_replayed(loss, [*range(FAULT_CALL + 1), *range(CHECKPOINT_STEP, 20)])
    last = ckpt.load_checkpoint(tmp_path / "run" / "checkpoints" / ckpt.LAST_NAME)
    assert last["lr_scale"] == 0.5 and last["rollbacks"] == 1 and last["step"] == 20


def test_repeated_divergence_stops_and_keeps_the_last_good_checkpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    loss = FaultyLoss(steps={FAULT_CALL})  # a bad batch: every replay meets it again
    trainer = toy.toy_trainer(tmp_path, _config(max_rollbacks=2), loss)
    with (
        caplog.at_level(logging.WARNING, logger="latentdiff.core.training"),
        pytest.raises(
            DivergenceError, match=r"step 13 \(non-finite loss nan\) after 2 rollbacks"
        ) as error,
    ):
        trainer.fit()
    assert str(tmp_path / "checkpoints" / "step_00000010.pt") in str(error.value)

    assert len(_rollback_warnings(caplog)) == 2
    assert [row["step"] for row in _log_rows(tmp_path) if row["rollback"] == "1"] == ["10", "10"]
    last_good = ckpt.load_checkpoint(tmp_path / "checkpoints" / ckpt.LAST_NAME)
    assert last_good["step"] == CHECKPOINT_STEP
    assert last_good["lr_scale"] == 0.25 and last_good["rollbacks"] == 2
    assert ckpt.latest_checkpoint(tmp_path / "checkpoints") == (
        tmp_path / "checkpoints" / "step_00000010.pt"
    )
    assert all(torch.isfinite(value).all() for value in last_good["model"].values())


def test_divergence_before_the_first_checkpoint_rolls_back_to_the_start(tmp_path: Path) -> None:
    loss = FaultyLoss(calls={3})
    cfg = _config(steps=8, ckpt_every=100, tensorboard=True, progress=True)
    trainer = toy.toy_trainer(tmp_path, cfg, loss)
    trainer.fit()
    assert trainer.rollbacks == 1 and trainer.step == 8
    start = ckpt.load_checkpoint(tmp_path / "checkpoints" / "step_00000000.pt")
    assert start["step"] == 0 and start["lr_scale"] == 0.5
    _assert_equal_states(start["model"], toy.toy_model().state_dict())
    _assert_replayed(loss, [0, 1, 2, 3, *range(8)])


def test_resumed_run_keeps_the_reduced_learning_rate(tmp_path: Path) -> None:
    uninterrupted = toy.toy_trainer(tmp_path / "a", _config(), FaultyLoss(calls={FAULT_CALL}))
    uninterrupted.fit()

    run_dir = tmp_path / "b"  # crashes while replaying step 11, before the next checkpoint
    crashing = FaultyLoss(calls={FAULT_CALL}, crash_at_call=FAULT_CALL + 2)
    with pytest.raises(SimulatedCrash):
        toy.toy_trainer(run_dir, _config(), crashing).fit()
    resumed = toy.toy_trainer(run_dir, _config())
    assert resumed.lr_scale == 1.0
    resumed.fit()

    assert resumed.lr_scale == 0.5 and resumed.rollbacks == 1
    _assert_equal_states(resumed.model.state_dict(), uninterrupted.model.state_dict())
    _assert_equal_states(resumed.ema_model.state_dict(), uninterrupted.ema_model.state_dict())
    rows_a, rows_b = _log_rows(tmp_path / "a"), _log_rows(run_dir)
    columns = ("step", "loss", "lr", "rollback")
    assert [[r[c] for c in columns] for r in rows_b] == [[r[c] for c in columns] for r in rows_a]


# ----------------------------------------------------------------------------- DDP


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


@pytest.mark.slow
def test_ddp_nan_on_one_rank_rolls_back_every_rank(tmp_path: Path) -> None:
    single = toy.toy_trainer(tmp_path / "single", _config(), FaultyLoss(calls={FAULT_CALL}))
    single.fit()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", __file__, "--out", str(tmp_path / "ddp")]
    result = subprocess.run(
        command, env=_subprocess_env(), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and "gloo" in output.lower() and "ProcessGroupGloo" in output:
        pytest.skip(f"gloo cannot initialise on this machine:\n{output[-2000:]}")
    assert result.returncode == 0, output
    state = ckpt.load_checkpoint(tmp_path / "ddp" / "checkpoints" / ckpt.LAST_NAME)
    assert state["step"] == 20 and state["rollbacks"] == 1 and state["lr_scale"] == 0.5
    for key, value in single.model.state_dict().items():
        torch.testing.assert_close(state["model"][key], value, rtol=0.0, atol=1e-5, msg=key)
    assert [r["step"] for r in _log_rows(tmp_path / "ddp") if r["rollback"] == "1"] == ["10"]


def main() -> None:
    """Train the toy task under torchrun, with a NaN loss on rank 1 only at ``FAULT_CALL``."""
    parser = argparse.ArgumentParser(description=main.__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    calls = {FAULT_CALL} if int(os.environ["RANK"]) == 1 else set()
    toy.toy_trainer(args.out, _config(), FaultyLoss(calls=calls)).fit()


if __name__ == "__main__":
    main()
