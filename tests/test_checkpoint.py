"""Checkpoints: atomic writes that a failure never damages, safe loading, clear errors, sampling from one."""

import contextlib
import errno
import io
import os
from pathlib import Path

import pytest
import torch

from cleardiffusion.checkpoint import (
    check_same_data,
    load_checkpoint,
    load_for_resume,
    load_for_sampling,
    save_checkpoint,
)
from cleardiffusion.cli import main
from cleardiffusion.denoiser import OneStepAndChain
from cleardiffusion.errors import CheckpointError, WriteError
from cleardiffusion.files import atomic_write
from cleardiffusion.limits import MAX_TIMESTEPS
from test_train import tiny_flags, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    """A finished 6-step tiny run (conditional, so class names and the null label travel too)."""
    root = tmp_path_factory.mktemp("trained")
    digits = write_digits(root / "digits")
    assert main(tiny_flags(digits, root / "run", steps=6, conditional=True)) == 0
    return root


def test_save_then_load_round_trips_tensors_and_plain_values(tmp_path):
    state = {"w": torch.arange(6.0).reshape(2, 3), "config": {"lr": 1e-3, "betas": (0.9, 0.99), "name": "x"}}
    path = save_checkpoint(tmp_path / "c" / "last.pt", state)
    loaded = load_checkpoint(path)
    assert torch.equal(loaded["w"], state["w"]) and loaded["config"] == state["config"]
    assert [p.name for p in path.parent.iterdir()] == ["last.pt"]  # no temporary file left behind


def test_saved_tensors_share_one_storage_per_dtype_and_load_unchanged(tmp_path):
    """save_checkpoint packs the floating-point tensors of each entry into one buffer per dtype
    (checkpoint.one_storage_per_dtype): every tensor comes back with its shape, dtype and values, however it was
    laid out or nested; integer tensors (RNG states) keep storages of their own."""
    weight = torch.randn(4, 5)
    state = {"model": {"w": weight, "w_t": weight.t(), "b": torch.zeros(5)},  # a transposed view: non-contiguous
             "optimizer": {"state": {0: {"step": torch.tensor(7.0), "exp_avg": torch.randn(4, 5)}},
                           "param_groups": [{"lr": 1e-3, "params": [0]}]},
             "rng": {"generator": torch.randint(0, 255, (16,), dtype=torch.uint8)},
             "pair": (torch.arange(3), [torch.ones(2, dtype=torch.float64)]), "step": 3}  # fmt: skip
    loaded = load_checkpoint(save_checkpoint(tmp_path / "last.pt", state))

    def leaves(node):
        if isinstance(node, torch.Tensor):
            return [node]
        values = node.values() if isinstance(node, dict) else node if isinstance(node, (list, tuple)) else []
        return [t for value in values for t in leaves(value)]

    saved, back = leaves(state), leaves(loaded)
    assert len(back) == len(saved) == 8 and isinstance(loaded["pair"], tuple) and loaded["step"] == 3
    for a, b in zip(saved, back, strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape and torch.equal(a, b)
    floats = {t.untyped_storage().data_ptr() for t in back if t.is_floating_point()}
    assert len(floats) == 3  # model's 3 tensors in one buffer, optimizer's 2 in another, pair's float64
    assert len({t.untyped_storage().data_ptr() for t in back}) == 5  # + the uint8 and the int64 tensor


def _write_good(tmp_path: Path) -> tuple[Path, bytes]:
    path = save_checkpoint(tmp_path / "last.pt", {"step": 1, "w": torch.ones(1000)})
    return path, path.read_bytes()


def test_a_save_that_fails_midway_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path, before = _write_good(tmp_path)
    real_save = torch.save

    def half_then_fail(obj, f, *args, **kwargs):
        real_save(obj, f, *args, **kwargs)
        f.truncate(f.tell() // 2)  # half a file is on disk when the "crash" happens
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", half_then_fail)
    with pytest.raises(OSError, match="disk full"):
        save_checkpoint(path, {"step": 2, "w": torch.zeros(1000)})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_a_failing_rename_leaves_the_previous_checkpoint_intact(tmp_path, monkeypatch):
    path, before = _write_good(tmp_path)

    def fail(src, dst):
        raise PermissionError("rename refused")

    monkeypatch.setattr(os, "replace", fail)
    with pytest.raises(PermissionError):
        save_checkpoint(path, {"step": 2})
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["last.pt"]


class Payload:
    """Any class instance: weights_only loading must refuse to rebuild it (it could run code)."""

    def __reduce__(self):
        return (print, ("this would have run",))


@pytest.mark.parametrize("kind", ["missing", "truncated", "garbage", "foreign dict", "code"])
def test_bad_checkpoint_files_raise_checkpoint_error(tmp_path, kind):
    path, good = _write_good(tmp_path)
    if kind == "missing":
        path = tmp_path / "absent.pt"
    elif kind == "truncated":
        path.write_bytes(good[: len(good) // 2])
    elif kind == "garbage":
        path.write_bytes(b"not a checkpoint at all" * 10)
    elif kind == "foreign dict":
        torch.save({"state_dict": {}}, path)
    else:
        torch.save({"format": "cleardiffusion-checkpoint", "x": Payload()}, path)
    with pytest.raises(CheckpointError) as info:
        load_checkpoint(path)
    assert "\n" not in str(info.value) and str(path) in str(info.value)


def test_checkpoint_holds_the_whole_training_state(trained):
    state = load_checkpoint(trained / "run" / "checkpoints" / "last.pt")
    assert state["step"] == 6 and state["format_version"] == 1
    assert state["model_spec"]["kind"] == "unet" and state["model_spec"]["config"]["num_classes"] == 10
    assert state["schedule"] == {"name": "linear", "T": 100}
    assert state["dataset"] == {"name": "mnist", "image_shape": [1, 8, 8], "num_classes": 10,
                                "class_names": [str(d) for d in range(10)]}  # fmt: skip
    assert state["config"]["steps"] == 6 and state["config"]["conditional"] is True
    assert state["optimizer"]["state"] and state["rng"]["generator"].dtype == torch.uint8
    assert state["model"].keys() == state["ema"].keys()
    assert any(not torch.equal(state["model"][k], state["ema"][k]) for k in state["model"])


def test_load_for_sampling_rebuilds_the_ema_model(trained):
    path = trained / "run" / "checkpoints" / "last.pt"
    model, schedule, meta = load_for_sampling(path)
    assert meta["prediction"] == "v"  # the default recipe: the network predicts v, the wrapper returns eps
    ema = load_checkpoint(path)["ema"]
    assert all(torch.equal(model.net.state_dict()[k], ema[k]) for k in ema)
    assert not model.training and schedule.T == 100 and model.null_label == 10
    assert meta["image_shape"] == (1, 8, 8) and meta["num_classes"] == 10 and meta["step"] == 6
    assert meta["dataset"] == "mnist" and meta["class_names"][3] == "3"
    raw, _, _ = load_for_sampling(path, use_ema=False)
    assert any(not torch.equal(raw.net.state_dict()[k], model.net.state_dict()[k]) for k in ema)
    eps = model(torch.zeros(2, 1, 8, 8), torch.tensor([0, 99]), torch.tensor([3, 10]))
    assert eps.shape == (2, 1, 8, 8) and torch.isfinite(eps).all()


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (["--base-channels", "16", "--model-option", "norm_groups=8"], "--base-channels 8"),
        (["--batch-size", "4"], "--batch-size 8"),
        (["--schedule", "cosine"], "--schedule 'linear'"),
    ],
)
def test_resume_with_another_config_names_both_and_exits_2(trained, tmp_path, capsys, change, named):
    out = tmp_path / "run"
    digits = trained / "digits"
    assert main(tiny_flags(digits, out, steps=5, conditional=True)) == 0
    before = (out / "checkpoints" / "last.pt").read_bytes()
    capsys.readouterr()
    assert main(tiny_flags(digits, out, steps=9, conditional=True, resume=True) + change) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and named in err[0] and "--out" in err[0], err
    assert (out / "checkpoints" / "last.pt").read_bytes() == before


def test_resume_errors_are_one_line(trained, tmp_path, capsys):
    digits, out = trained / "digits", tmp_path / "run"
    assert main(tiny_flags(digits, out, steps=3, resume=True)) == 2  # nothing to resume
    assert main(tiny_flags(digits, out, steps=3)) == 0
    assert main(tiny_flags(digits, out, steps=3)) == 2  # would overwrite a run without --resume
    last = out / "checkpoints" / "last.pt"
    last.write_bytes(last.read_bytes()[:1000])
    assert main(tiny_flags(digits, out, steps=6, resume=True)) == 2  # truncated
    errors = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(errors) == 3, errors
    assert "no checkpoint" in errors[0] and "--resume" in errors[1] and "truncated" in errors[2]


# ---- a disk that fills while a checkpoint is written


class FullDisk(io.FileIO):
    """A file on a disk with `room` bytes left: a larger write fails with ENOSPC, like a 2 MB filesystem."""

    room = 0

    def write(self, data) -> int:
        if len(data) > FullDisk.room:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        FullDisk.room -= len(data)
        return super().write(data)


@pytest.mark.parametrize("room", [0, 500, 3000])
def test_a_disk_that_fills_during_a_save_is_one_line_and_keeps_the_previous_checkpoint(tmp_path, monkeypatch, room):
    """torch's zip writer swallows the OSError and raises RuntimeError('unexpected pos'): still one WriteError."""
    path, before = _write_good(tmp_path)
    monkeypatch.setattr(FullDisk, "room", room)
    monkeypatch.setattr(io, "FileIO", FullDisk)
    with pytest.raises(WriteError) as info:
        save_checkpoint(path, {"step": 2, "w": torch.zeros(1000)})
    message = str(info.value)
    assert "\n" not in message and str(path) in message and os.strerror(errno.ENOSPC) in message, message
    assert "unchanged" in message and "free" in message
    assert isinstance(info.value, OSError) and info.value.errno == errno.ENOSPC  # `except OSError` still catches it
    assert path.read_bytes() == before and [p.name for p in tmp_path.iterdir()] == ["last.pt"]


def test_errors_inside_a_write_that_are_not_write_failures_pass_unchanged(tmp_path):
    with pytest.raises(KeyError), atomic_write(tmp_path / "x"):
        raise KeyError("a bug")  # not turned into a user error: it keeps its traceback
    with pytest.raises(RuntimeError, match="unrelated"), atomic_write(tmp_path / "x"):
        raise RuntimeError("unrelated")
    assert list(tmp_path.iterdir()) == []


# ---- a checkpoint is checked against itself on every load


def _edit(state: dict, case: str) -> None:
    """Make a well-formed checkpoint disagree with itself in one way."""
    if case == "3 channels recorded, 1-channel network":
        state["dataset"]["image_shape"] = [3, 8, 8]
    elif case == "other image size recorded":
        state["dataset"]["image_shape"] = [1, 16, 16]
    elif case == "other number of classes":
        state["dataset"] |= {"num_classes": 5, "class_names": list("abcde")}
    elif case == "class names do not match":
        state["dataset"]["class_names"] = ["0", "1"]
    elif case == "T above the maximum":
        state["schedule"]["T"] = state["config"]["timesteps"] = 100_000
    elif case == "config T differs":
        state["config"]["timesteps"] = 1000
    elif case == "unknown schedule":
        state["schedule"]["name"] = state["config"]["schedule"] = "sigmoid"
    elif case == "unknown objective":
        state["config"]["objective"] = "score"
    elif case == "unknown prediction":
        state["config"]["prediction"] = "score"
    elif case == "config says unconditional":
        state["config"]["conditional"] = False


INCONSISTENT = ["3 channels recorded, 1-channel network", "other image size recorded", "other number of classes",
                "class names do not match", "T above the maximum", "config T differs", "unknown schedule",
                "unknown objective", "unknown prediction", "config says unconditional"]  # fmt: skip


@pytest.mark.parametrize("case", INCONSISTENT)
def test_a_checkpoint_that_disagrees_with_itself_is_refused_on_every_load(trained, tmp_path, case):
    state = load_checkpoint(trained / "run" / "checkpoints" / "last.pt")
    _edit(state, case)
    path = tmp_path / "bad.pt"
    torch.save(state, path)
    for load in (load_for_sampling, lambda p: load_for_resume(p, "cpu", 100)):
        with pytest.raises(CheckpointError) as info:
            load(path)
        assert "\n" not in str(info.value) and str(path) in str(info.value)


@pytest.mark.parametrize(
    "damage, named",
    [
        (lambda chain: chain.pop("ema"), "'chain'"),
        (lambda chain: chain["ema"].update({k: v[:1] for k, v in chain["ema"].items() if v.ndim}), "chain's EMA"),
        (lambda chain: chain["ema"].update({k: v * float("nan") for k, v in chain["ema"].items()}), "chain's EMA"),
        (lambda chain: chain["model_spec"].update(kind="no-such-network"), "cannot be built"),
    ],
)
def test_a_damaged_second_network_is_one_checkpoint_error(trained, tmp_path, damage, named):
    state = load_checkpoint(trained / "run" / "checkpoints" / "last.pt")
    state["chain"] = {key: state[key] for key in ("model_spec", "model", "ema")}  # what `distill --chain` adds
    torch.save(state, tmp_path / "pair.pt")
    assert isinstance(load_for_sampling(tmp_path / "pair.pt")[0], OneStepAndChain)  # intact: it loads
    state["chain"] = {key: dict(value) for key, value in state["chain"].items()}
    damage(state["chain"])
    torch.save(state, tmp_path / "bad.pt")
    with pytest.raises(CheckpointError) as info:
        load_for_sampling(tmp_path / "bad.pt")
    assert named in str(info.value) and "\n" not in str(info.value)


def test_the_maximum_T_is_accepted(trained, tmp_path):
    state = load_checkpoint(trained / "run" / "checkpoints" / "last.pt")
    state["schedule"]["T"] = state["config"]["timesteps"] = MAX_TIMESTEPS
    torch.save(state, tmp_path / "big_T.pt")
    _, schedule, _ = load_for_sampling(tmp_path / "big_T.pt")
    assert schedule.T == MAX_TIMESTEPS


# ---- a resume must see the data the run trained on


def test_check_same_data_refuses_other_data_and_accepts_older_checkpoints(tmp_path):
    a = {"n": 64, "image_shape": [1, 8, 8], "num_classes": 10, "sha256": "a" * 64}
    b = {**a, "sha256": "b" * 64}
    check_same_data({"data_fingerprint": a}, a, "last.pt")
    check_same_data({}, b, "last.pt")  # written before fingerprints: nothing to compare
    with pytest.raises(CheckpointError, match="other data.*--data-dir") as info:
        check_same_data({"data_fingerprint": a}, b, "last.pt")
    assert "aaaaaaaaaaaa" in str(info.value) and "bbbbbbbbbbbb" in str(info.value)
    for damaged in ("x", {**a, "image_shape": 5}, {**a, "sha256": None}):
        with pytest.raises(CheckpointError, match="damaged"):
            check_same_data({"data_fingerprint": damaged}, a, "last.pt")


def test_an_interrupt_during_a_failing_write_stays_an_interrupt(tmp_path, monkeypatch):
    monkeypatch.setattr(FullDisk, "room", 0)
    monkeypatch.setattr(io, "FileIO", FullDisk)
    with pytest.raises(KeyboardInterrupt), atomic_write(tmp_path / "x") as f:
        with contextlib.suppress(OSError):
            f.write(bytes(10**5))  # fails with ENOSPC, swallowed like torch's writer does
        raise KeyboardInterrupt
    assert list(tmp_path.iterdir()) == []
