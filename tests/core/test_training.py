"""Tests of the training engine: data order, schedules, EMA, checkpoints, resume, DDP, AMP."""

from __future__ import annotations

import csv
import importlib.util
import itertools
import logging
import math
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import torch

from latentdiff.core import checkpoint as ckpt
from latentdiff.core.config import from_dict, load_config, to_dict
from latentdiff.core.training import (
    StepBatchSampler,
    TrainerConfig,
    ema_decay_at,
    lr_factor,
    sample_seeds,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKER = Path(__file__).with_name("ddp_worker.py")
SUBPROCESS_TIMEOUT = 120.0


def _load_worker() -> ModuleType:
    spec = importlib.util.spec_from_file_location("latentdiff_tests_ddp_worker", WORKER)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


toy = _load_worker()


@pytest.fixture(autouse=True)
def single_thread() -> Iterator[None]:
    """One intra-op thread, as in the worker subprocesses, so float results agree bitwise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _subprocess_env() -> dict[str, str]:
    env = dict(os.environ, OMP_NUM_THREADS="1", MASTER_ADDR="127.0.0.1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO_ROOT), env.get("PYTHONPATH")]))
    return env


def _log_rows(out_dir: Path) -> list[dict[str, str]]:
    with (out_dir / "train_log.csv").open(newline="") as handle:
        return list(csv.DictReader(handle))


def _assert_states_close(a: dict[str, Any], b: dict[str, Any], atol: float) -> None:
    assert a.keys() == b.keys()
    for key in a:
        torch.testing.assert_close(a[key], b[key], rtol=0.0, atol=atol, msg=key)


def _assert_optimizer_states_close(a: dict[str, Any], b: dict[str, Any], atol: float) -> None:
    assert a["param_groups"] == b["param_groups"]
    assert a["state"].keys() == b["state"].keys()
    for index, state in a["state"].items():
        for name, value in state.items():
            torch.testing.assert_close(value, b["state"][index][name], rtol=0.0, atol=atol)


# ----------------------------------------------------------------------------- config and schedules


def test_config_round_trip_and_validation() -> None:
    cfg = TrainerConfig(steps=7, betas=(0.8, 0.95), lr_schedule="cosine", amp="bf16", seed=3)
    data = to_dict(cfg)
    assert data["betas"] == [0.8, 0.95]
    assert from_dict(TrainerConfig, data) == cfg
    with pytest.raises(ValueError, match="amp"):
        TrainerConfig(amp="fp16")
    with pytest.raises(ValueError, match="lr_schedule"):
        from_dict(TrainerConfig, {"lr_schedule": "linear"})
    with pytest.raises(ValueError):
        from_dict(TrainerConfig, {"no_such_field": 1})


def test_lr_warmup_then_constant_or_cosine() -> None:
    constant = lr_factor(TrainerConfig(steps=100, warmup_steps=4))
    assert [constant(s) for s in range(6)] == [0.25, 0.5, 0.75, 1.0, 1.0, 1.0]
    cosine = lr_factor(TrainerConfig(steps=104, warmup_steps=4, lr_schedule="cosine"))
    assert cosine(3) == 1.0 and cosine(4) == 1.0
    assert cosine(54) == pytest.approx(0.5, abs=1e-12)
    assert cosine(103) == pytest.approx(0.0, abs=1e-3)
    values = [cosine(s) for s in range(4, 104)]
    assert all(b < a for a, b in itertools.pairwise(values))


def test_ema_decay_warmup() -> None:
    cfg = TrainerConfig(ema_decay=0.999)
    assert ema_decay_at(cfg, 0) == pytest.approx(0.1)
    assert ema_decay_at(cfg, 90) == pytest.approx(0.91)
    assert ema_decay_at(cfg, 10**6) == 0.999
    assert ema_decay_at(TrainerConfig(ema_decay=0.999, ema_warmup=False), 0) == 0.999


# ----------------------------------------------------------------------------- data order and seeds


def test_rank_slices_reassemble_the_global_batch() -> None:
    num_samples, batch, steps = 21, 6, 9  # 3 steps per epoch, 3 samples dropped per epoch
    single = list(StepBatchSampler(num_samples, batch, 5, 0, steps))
    assert len(single) == steps and all(len(b) == batch for b in single)
    ranks = [list(StepBatchSampler(num_samples, batch, 5, 0, steps, r, 3)) for r in range(3)]
    for step in range(steps):
        assert list(itertools.chain(*(ranks[r][step] for r in range(3)))) == single[step]
    for epoch in range(3):
        seen = list(itertools.chain(*single[3 * epoch : 3 * epoch + 3]))
        assert len(set(seen)) == 18 and set(seen) <= set(range(num_samples))
    assert single[0:3] != single[3:6]  # a new permutation every epoch
    assert list(StepBatchSampler(num_samples, batch, 5, 4, steps)) == single[4:]
    assert list(StepBatchSampler(num_samples, batch, 6, 0, steps)) != single
    with pytest.raises(ValueError, match="divisible"):
        StepBatchSampler(num_samples, batch, 5, 0, steps, 0, 4)
    with pytest.raises(ValueError, match="fewer than one global batch"):
        StepBatchSampler(5, batch, 5, 0, steps)


def test_sample_seeds_depend_on_global_position_only() -> None:
    whole = sample_seeds(0, 7, range(8))
    halves = torch.cat([sample_seeds(0, 7, range(0, 4)), sample_seeds(0, 7, range(4, 8))])
    assert whole.dtype == torch.int64 and torch.equal(whole, halves)
    assert len(set(whole.tolist())) == 8
    assert not torch.equal(whole, sample_seeds(0, 8, range(8)))
    assert not torch.equal(whole, sample_seeds(1, 7, range(8)))


def test_trainer_rejects_batch_not_divisible_by_world_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WORLD_SIZE", "3")
    monkeypatch.setenv("RANK", "0")
    with pytest.raises(ValueError, match="divisible"):
        toy.toy_trainer(tmp_path, toy.toy_config(batch_size=8))


# ----------------------------------------------------------------------------- checkpoint files


def test_checkpoint_round_trip_and_lookup(tmp_path: Path) -> None:
    assert ckpt.latest_checkpoint(tmp_path / "missing") is None
    state = {"step": 3, "weights": torch.arange(4.0), "nested": {"name": "x"}}
    for step in (5, 20, 10):
        ckpt.save_checkpoint(tmp_path / ckpt.step_checkpoint_name(step), state)
    loaded = ckpt.load_checkpoint(tmp_path / "step_00000020.pt")
    assert loaded["nested"] == {"name": "x"} and torch.equal(loaded["weights"], state["weights"])
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / "step_00000020.pt"
    assert ckpt.prune_checkpoints(tmp_path, keep=2) == [tmp_path / "step_00000005.pt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_00000010.pt", "step_00000020.pt"]
    ckpt.prune_checkpoints(tmp_path, keep=0)
    ckpt.save_checkpoint(tmp_path / ckpt.LAST_NAME, state)
    assert ckpt.latest_checkpoint(tmp_path) == tmp_path / ckpt.LAST_NAME


def test_load_checkpoint_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="checkpoint not found"):
        ckpt.load_checkpoint(tmp_path / "nope.pt")
    good = tmp_path / "good.pt"
    ckpt.save_checkpoint(good, {"w": torch.ones(1000)})
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:300])
    with pytest.raises(ckpt.CheckpointError, match=r"truncated\.pt"):
        ckpt.load_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(ckpt.CheckpointError):
        ckpt.load_checkpoint(garbage)


def _crash_in_torch_save(monkeypatch: pytest.MonkeyPatch) -> None:
    def partial_save(obj: object, handle: Any) -> None:
        handle.write(b"PK\x03\x04 half a checkpoint")
        raise RuntimeError("simulated crash while saving")

    monkeypatch.setattr(torch, "save", partial_save)


def _crash_in_replace(monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_replace(src: object, dst: object) -> None:
        raise OSError("simulated crash before rename")

    monkeypatch.setattr(os, "replace", failing_replace)


@pytest.mark.parametrize("crash", [_crash_in_torch_save, _crash_in_replace])
def test_crash_during_save_keeps_previous_checkpoint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, crash: Any
) -> None:
    path = tmp_path / "last.pt"
    ckpt.save_checkpoint(path, {"step": 1, "w": torch.zeros(3)})
    before = path.read_bytes()
    crash(monkeypatch)
    with pytest.raises((RuntimeError, OSError), match="simulated crash"):
        ckpt.save_checkpoint(path, {"step": 2, "w": torch.ones(3)})
    monkeypatch.undo()
    assert path.read_bytes() == before
    assert ckpt.load_checkpoint(path)["step"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]  # no temporary left behind


# ----------------------------------------------------------------------------- training runs


def test_loss_decreases_and_ema_smooths(tmp_path: Path) -> None:
    trainer = toy.toy_trainer(tmp_path, toy.toy_config(steps=60, ckpt_every=100))
    initial = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    stats = trainer.fit()
    rows = _log_rows(tmp_path)
    assert [int(r["step"]) for r in rows] == list(range(1, 61))
    losses = [float(r["loss"]) for r in rows]
    assert sum(losses[-5:]) / 5 < 0.25 * sum(losses[:5]) / 5
    assert stats["step"] == 60 and stats["loss"] == pytest.approx(losses[-1])
    assert 0.9 < stats["noise_rms"] < 1.1  # the seeded noise reaches the loss
    raw, ema = trainer.model.state_dict(), trainer.ema_model.state_dict()
    for key, value in raw.items():
        gap = (ema[key] - value).abs().max().item()
        travelled = (initial[key] - value).abs().max().item()
        assert 1e-6 < gap < 0.5 * travelled, key  # differs from, but trails, the raw weights
    assert not any(p.requires_grad for p in trainer.ema_model.parameters())


def test_ema_follows_its_recurrence(tmp_path: Path) -> None:
    cfg = toy.toy_config(steps=4, ckpt_every=1, keep_checkpoints=10)
    toy.toy_trainer(tmp_path, cfg).fit()
    states = [ckpt.load_checkpoint(p) for _, p in ckpt.step_checkpoints(tmp_path / "checkpoints")]
    assert [s["step"] for s in states] == [1, 2, 3, 4]
    ema = toy.toy_model().state_dict()
    for step, state in enumerate(states):
        decay = min(0.9, (1 + step) / (10 + step))
        ema = {k: decay * ema[k] + (1 - decay) * state["model"][k] for k in ema}
        _assert_states_close(ema, state["ema"], atol=1e-6)


def test_ema_off_returns_the_model(tmp_path: Path) -> None:
    trainer = toy.toy_trainer(tmp_path, toy.toy_config(steps=2, ema_decay=0.0))
    trainer.fit()
    assert trainer.ema_model is trainer.model
    assert ckpt.load_checkpoint(tmp_path / "checkpoints" / "last.pt")["ema"] is None


def test_outputs_config_and_tensorboard(tmp_path: Path) -> None:
    cfg = toy.toy_config(steps=3, tensorboard=True, log_every=2)
    toy.toy_trainer(tmp_path, cfg).fit()
    assert load_config(TrainerConfig, tmp_path / "config.yaml") == cfg
    assert [int(r["step"]) for r in _log_rows(tmp_path)] == [2, 3]  # every log_every, and the end
    assert list((tmp_path / "tb").glob("events.out.tfevents.*"))
    state = ckpt.load_checkpoint(tmp_path / "checkpoints" / "last.pt")
    assert state["trainer_config"] == to_dict(cfg)
    assert state["extra"] == {"model": {"channels": 2, "hidden": 16}}
    assert state["version"] == "0.1.0" and state["step"] == 3
    assert set(state["rng"]) >= {"python", "numpy", "torch"}


def test_worker_processes_load_the_same_batches(tmp_path: Path) -> None:
    in_process = toy.toy_trainer(tmp_path / "w0", toy.toy_config(steps=3))
    in_process.fit()
    with_workers = toy.toy_trainer(tmp_path / "w2", toy.toy_config(steps=3, num_workers=2))
    with_workers.fit()
    _assert_states_close(with_workers.model.state_dict(), in_process.model.state_dict(), atol=0.0)


def test_bf16_autocast_stays_finite(tmp_path: Path) -> None:
    trainer = toy.toy_trainer(tmp_path, toy.toy_config(steps=4, amp="bf16"))
    stats = trainer.fit()
    assert math.isfinite(stats["loss"]) and math.isfinite(stats["grad_norm"])
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())


@pytest.mark.parametrize("grad_clip", [1e-3, 0.0])
def test_grad_clipping_bounds_the_applied_gradient(tmp_path: Path, grad_clip: float) -> None:
    trainer = toy.toy_trainer(tmp_path, toy.toy_config(steps=3, grad_clip=grad_clip))
    stats = trainer.fit()
    applied = torch.linalg.vector_norm(
        torch.stack([p.grad.norm() for p in trainer.model.parameters() if p.grad is not None])
    ).item()
    assert stats["grad_norm"] > 0.1  # the logged norm is the pre-clip one
    if grad_clip:
        assert applied == pytest.approx(grad_clip, rel=1e-3)
    else:
        assert applied == pytest.approx(stats["grad_norm"], rel=1e-5)


def test_resume_after_sigkill_matches_uninterrupted_run(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    uninterrupted = toy.toy_trainer(tmp_path / "a", toy.toy_config())
    uninterrupted.fit()

    run_dir, marker = tmp_path / "b", tmp_path / "stalled"
    command = [sys.executable, str(WORKER), "--out", str(run_dir), "--steps", "40"]
    command += ["--stall-at-step", "23", "--marker", str(marker)]
    process = subprocess.Popen(command, env=_subprocess_env(), stderr=subprocess.PIPE)
    deadline = time.monotonic() + SUBPROCESS_TIMEOUT
    while not marker.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)  # a no-op if the run already ended
    _, stderr = process.communicate(timeout=SUBPROCESS_TIMEOUT)
    assert marker.exists(), stderr.decode()
    assert process.returncode == -signal.SIGKILL
    assert [int(r["step"]) for r in _log_rows(run_dir)] == list(range(1, 24))
    assert ckpt.latest_checkpoint(run_dir / "checkpoints") == (
        run_dir / "checkpoints" / "step_00000020.pt"
    )

    resumed = toy.toy_trainer(run_dir, toy.toy_config())
    with caplog.at_level(logging.INFO, logger="latentdiff.core.training"):
        resumed.fit()
    assert "resuming from step 20" in caplog.text
    _assert_states_close(resumed.model.state_dict(), uninterrupted.model.state_dict(), atol=1e-7)
    _assert_states_close(
        resumed.ema_model.state_dict(), uninterrupted.ema_model.state_dict(), atol=1e-7
    )
    _assert_optimizer_states_close(
        resumed.optimizer.state_dict(), uninterrupted.optimizer.state_dict(), atol=1e-7
    )
    rows_a, rows_b = _log_rows(tmp_path / "a"), _log_rows(run_dir)
    assert [int(r["step"]) for r in rows_b] == list(range(1, 41))
    assert [r["loss"] for r in rows_b] == [r["loss"] for r in rows_a]
    assert sorted(p.name for p in (run_dir / "checkpoints").iterdir()) == [
        "last.pt",
        "step_00000030.pt",
        "step_00000040.pt",
    ]


def test_resume_false_starts_over(tmp_path: Path) -> None:
    toy.toy_trainer(tmp_path, toy.toy_config(steps=6, ckpt_every=3)).fit()
    fresh = toy.toy_trainer(tmp_path, toy.toy_config(steps=2, ckpt_every=3))
    fresh.fit(resume=False)
    assert [int(r["step"]) for r in _log_rows(tmp_path)] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == [
        "last.pt",
        "step_00000002.pt",
    ]


def test_ddp_two_processes_match_single_process(tmp_path: Path) -> None:
    single = toy.toy_trainer(tmp_path / "single", toy.toy_config(steps=10))
    single.fit()
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone"]
    command += ["--nproc_per_node=2", str(WORKER), "--out", str(tmp_path / "ddp"), "--steps", "10"]
    result = subprocess.run(
        command, env=_subprocess_env(), capture_output=True, text=True, timeout=SUBPROCESS_TIMEOUT
    )
    output = result.stdout + result.stderr
    if result.returncode != 0 and "gloo" in output.lower() and "ProcessGroupGloo" in output:
        pytest.skip(f"gloo cannot initialise on this machine:\n{output[-2000:]}")
    assert result.returncode == 0, output
    state = ckpt.load_checkpoint(tmp_path / "ddp" / "checkpoints" / "last.pt")
    assert state["step"] == 10
    _assert_states_close(state["model"], single.model.state_dict(), atol=1e-5)
    _assert_states_close(state["ema"], single.ema_model.state_dict(), atol=1e-5)
    assert [int(r["step"]) for r in _log_rows(tmp_path / "ddp")] == list(range(1, 11))
