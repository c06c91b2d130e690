"""Fault tolerance: SIGKILL at a random moment, SIGTERM / SIGINT, and a loss that blows up."""

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from cleardiffusion import objective
from cleardiffusion import train as train_module
from cleardiffusion.checkpoint import load_checkpoint
from cleardiffusion.cli import main
from test_train import losses, tiny_config, tiny_flags, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

SRC = Path(__file__).resolve().parents[1] / "src"
ENDLESS = 100_000  # steps no machine finishes during a test: the child runs until it is signalled
# A guard against a hung child, not a speed limit: a suite under `nice` beside full-priority work gets ~1% of
# a core, and a child that needs a few CPU-seconds can then take minutes of wall-clock time.
HANG_GUARD_S = 600.0


@pytest.fixture
def start_training():
    """start_training(flags) -> `python -m cleardiffusion train ...` in a child process, one thread like the
    in-process runs; a child still running when the test ends (a failed test) is killed."""
    children = []

    def start(flags: list[str]) -> subprocess.Popen:
        env = {**os.environ, "PYTHONPATH": str(SRC), "OMP_NUM_THREADS": "1"}
        children.append(subprocess.Popen([sys.executable, "-m", "cleardiffusion", *flags], env=env,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))  # fmt: skip
        return children[-1]

    yield start
    for proc in children:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def wait_for(ready: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    """Poll until ready() while the child lives; a child that died, or the hang guard, fails the test."""
    deadline = time.monotonic() + HANG_GUARD_S
    while not ready():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{what} never came"
        time.sleep(0.02)


@pytest.fixture
def digits(tmp_path: Path) -> Path:
    return write_digits(tmp_path / "digits")


def test_sigkill_at_a_random_moment_then_resume_repeats_the_uninterrupted_losses(digits, tmp_path, start_training):
    # the child never reaches its last step, so the kill lands mid-run on a machine of any speed
    proc = start_training(tiny_flags(digits, tmp_path / "killed", steps=ENDLESS, checkpoint_every=3))
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    wait_for(last.exists, proc, str(last))
    delay = random.uniform(0.0, 0.5)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    state = load_checkpoint(last)  # whatever the moment, last.pt is a whole checkpoint
    assert 3 <= state["step"] < ENDLESS and state["step"] % 3 == 0, (delay, state["step"])
    steps = state["step"] + 6  # --steps may change on resume; the losses do not depend on it
    assert main(tiny_flags(digits, tmp_path / "killed", steps=steps, checkpoint_every=3, resume=True)) == 0
    train_module.train(tiny_config(digits, tmp_path / "full", steps=steps, checkpoint_every=3))
    assert losses(tmp_path / "killed") == losses(tmp_path / "full"), f"killed after {delay:.2f} s"


def test_sigterm_finishes_the_step_checkpoints_and_exits_143(digits, tmp_path, monkeypatch, capsys):
    """A real SIGTERM (a scheduler's stop request), raised in this process during step 4: the command line
    returns 143, the status `python -m cleardiffusion` exits with (the SIGKILL test above runs that entry point
    in a child), after a checkpoint at the step it stopped and a one-line hint to resume."""
    calls = []

    def draw_then_terminate(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGTERM)
        return real_draw(*args, **kwargs)

    real_draw = train_module.draw_batch
    monkeypatch.setattr(train_module, "draw_batch", draw_then_terminate)
    outer = signal.getsignal(signal.SIGTERM)
    out = tmp_path / "run"
    assert main(tiny_flags(digits, out, steps=50, checkpoint_every=50)) == 143
    assert signal.getsignal(signal.SIGTERM) is outer  # the handler is restored
    err = capsys.readouterr().err
    assert "stopped by SIGTERM" in err and "--resume" in err
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 4 == len(losses(out))


def test_sigint_finishes_the_step_checkpoints_and_returns_130(digits, tmp_path, monkeypatch):
    calls = []

    def draw_then_interrupt(*args, **kwargs):
        calls.append(1)
        if len(calls) == 4:
            signal.raise_signal(signal.SIGINT)  # Ctrl-C during step 4
        return real_draw(*args, **kwargs)

    real_draw = train_module.draw_batch
    monkeypatch.setattr(train_module, "draw_batch", draw_then_interrupt)
    # a known handler to restore (under nohup, or some CI runners, SIGINT starts out ignored)
    outer = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        summary = train_module.train(tiny_config(digits, tmp_path / "run", steps=50))
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # handlers restored
    finally:
        signal.signal(signal.SIGINT, outer)
    assert summary["exit_code"] == 130 and summary["interrupted"] == "SIGINT" and summary["step"] == 4
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 4


def test_non_finite_loss_stops_naming_the_step_and_keeps_the_last_good_checkpoint(digits, tmp_path, capsys):
    out = tmp_path / "run"
    assert main(tiny_flags(digits, out, steps=5)) == 0
    last = out / "checkpoints" / "last.pt"
    before = last.read_bytes()
    capsys.readouterr()
    assert main(tiny_flags(digits, out, steps=20, lr=1e30, resume=True)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "non-finite" in err[0] and "--lr" in err[0], err
    bad_step = int(err[0].split("at step ")[1].split(";")[0])
    assert 6 <= bad_step <= 10  # the step is named, and it is after the resume
    assert last.read_bytes() == before  # byte for byte


def test_non_finite_loss_from_the_model_is_caught_at_the_first_sync_point(digits, tmp_path, monkeypatch):
    real_loss = objective.diffusion_loss  # what train.train_step's loss (objective.DiffusionLoss) calls

    def nan_from_step_3(*args, **kwargs):
        loss = real_loss(*args, **kwargs)
        nan_from_step_3.calls += 1
        return loss * float("nan") if nan_from_step_3.calls >= 3 else loss

    nan_from_step_3.calls = 0
    monkeypatch.setattr(objective, "diffusion_loss", nan_from_step_3)
    with pytest.raises(train_module.NonFiniteLossError, match="at step 3;"):
        train_module.train(tiny_config(digits, tmp_path / "run", steps=20, log_every=4, checkpoint_every=2))
    assert load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")["step"] == 2
    assert torch.isfinite(torch.tensor(losses(tmp_path / "run"))).all()
