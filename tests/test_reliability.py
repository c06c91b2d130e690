"""What a careless or hostile user types never loses work, leaves half-written files or prints a traceback.

One test per kind of failure found by the hostile-user campaign (issue 15); the files of issue 27 are in
test_hostile_files.py, and the hypothesis fuzz test over every subcommand's arguments in test_fuzz.py. Each
asserts the command line's contract: exit status 0 or 2, at most one line of error on stderr naming the
problem and the fix, and nothing written outside the output paths.
"""

import contextlib
import errno
import io
import os
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion import cli
from cleardiffusion.cli import main
from cleardiffusion.errors import UsageError
from cleardiffusion.files import RunLock, atomic_write
from test_eval_cli import write_split

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
SRC = Path(__file__).resolve().parents[1] / "src" / "cleardiffusion"
CPU_ONLY = not torch.cuda.is_available()


def tiny_train(data: Path, out: Path, steps: int = 2, *extra: str) -> list[str]:
    """`train` flags of a 12x12 run that takes a fraction of a second."""
    return ["train", "--dataset", "mnist", "--data-dir", str(data), "--out", str(out), "--steps", str(steps),
            "--base-channels", "8", "--model-option", "norm_groups=4", "--batch-size", "4", "--timesteps", "20",
            "--warmup", "1", "--sample-every", "0", "--checkpoint-every", "1", "--device", "cpu", "--no-progress",
            *extra]  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("reliability"))


def make_world(root: Path) -> dict:
    """Tiny 12x12 digits (train and test splits), a trained checkpoint and a trained classifier."""
    torch.set_num_threads(1)
    data = root / "data"
    data.mkdir()
    write_split(data, "train", 64, 0)
    write_split(data, "t10k", 32, 1)
    assert main(tiny_train(data, root / "run", 2)) == 0
    classifier = root / "clf.pt"
    argv = ["train-classifier", "--dataset", "mnist", "--data-dir", str(data), "--out", str(classifier),
            "--epochs", "1", "--batch-size", "16"]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(argv) == 0
    (root / "afile").write_text("not a folder")
    return {"root": root, "data": data, "checkpoint": root / "run" / "checkpoints" / "last.pt",
            "classifier": classifier, "afile": root / "afile"}  # fmt: skip


def status(argv: list[str]) -> tuple[int, str]:
    """(exit status, stderr) of the command line called in-process; a traceback fails the test."""
    err = io.StringIO()
    try:
        with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
            code = main([str(a) for a in argv])
    except SystemExit as e:  # argparse's refusals
        code = e.code
    return code, err.getvalue()


def refused(argv: list[str], *words: str) -> str:
    """Assert exit status 2 with one line of error containing every word; return that line."""
    code, err = status(argv)
    assert code == 2, err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    for word in words:
        assert word in err, err
    return err


def temporaries(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.name.endswith(".tmp") or ".tmp." in p.name or p.name == ".lock"]


# ----------------------------------------------------------------------------------------------------------
# One writer of files


def test_atomic_write_keeps_the_old_file_and_no_temporary_on_error(tmp_path):
    target = tmp_path / "f.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError), atomic_write(target, "w") as f:
        f.write("half")
        raise RuntimeError("killed")
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_write(target, "w") as f:
        f.write("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]


def test_atomic_write_temporaries_are_unique_and_exclusive(tmp_path):
    target = tmp_path / "f.bin"
    with atomic_write(target) as a, atomic_write(target) as b:  # two writers at once never share a file
        assert a.name != b.name
        a.write(b"a")
        b.write(b"b")
    assert target.read_bytes() in (b"a", b"b") and sorted(tmp_path.iterdir()) == [target]


def test_no_other_module_renames_files_itself():
    """One atomic writer: no module but files.py calls os.replace / os.rename or builds its own temp names."""
    offenders = []
    for path in SRC.rglob("*.py"):
        if path.name == "files.py":
            continue
        text = path.read_text()
        if re.search(r"os\.(replace|rename)\(|\.tmp\{|\.part\{", text):
            offenders.append(path.name)
    assert offenders == []


# ----------------------------------------------------------------------------------------------------------
# Outputs checked before the work


@pytest.mark.parametrize(
    "case",
    ["sample-out-under-file", "sample-out-folder", "sample-out-is-trajectory", "sample-gif-is-out",
     "train-out-file", "train-out-unwritable", "eval-out-folder", "eval-cache-file", "classifier-out-folder",
     "classifier-out-under-file", "toy-out-file"],
)  # fmt: skip
def test_unwritable_outputs_are_refused_before_any_work(world, case, monkeypatch, tmp_path):
    import cleardiffusion.generate
    import cleardiffusion.toy

    def no_work(*args, **kwargs):
        raise AssertionError("the expensive work started before the outputs were checked")

    monkeypatch.setattr(cleardiffusion.generate, "generate_images", no_work)
    monkeypatch.setattr(cleardiffusion.toy, "train_toy", no_work)
    afile, ck, data = world["afile"], world["checkpoint"], world["data"]
    sample = ["sample", "--checkpoint", ck, "--device", "cpu", "--n", "2", "--steps", "2"]
    evaluate = ["eval", "--samples", tmp_path / "s.npz", "--dataset", "mnist", "--data-dir", data]
    np.savez(tmp_path / "s.npz", images=np.zeros((4, 12, 12, 1), np.uint8))
    argv = {
        "sample-out-under-file": sample + ["--out", afile / "x.png"],
        "sample-out-folder": sample + ["--out", tmp_path],
        "sample-out-is-trajectory": sample + ["--out", tmp_path / "x.png", "--trajectory", tmp_path / "x.png"],
        "sample-gif-is-out": sample + ["--out", tmp_path / "x.gif", "--trajectory", tmp_path / "x.png"],
        "train-out-file": tiny_train(data, afile),
        "train-out-unwritable": tiny_train(data, "/proc/cleardiffusion-run"),
        "eval-out-folder": evaluate + ["--out", tmp_path, "--classifier", world["classifier"]],
        "eval-cache-file": evaluate + ["--cache-dir", afile, "--classifier", world["classifier"]],
        "classifier-out-folder": ["train-classifier", "--dataset", "mnist", "--data-dir", data, "--out", tmp_path],
        "classifier-out-under-file": [
            "train-classifier",
            "--dataset",
            "mnist",
            "--data-dir",
            data,
            "--out",
            afile / "c.pt",
        ],  # fmt: skip
        "toy-out-file": ["toy", "--out", afile, "--steps", "1"],
    }[case]
    before = sorted(tmp_path.rglob("*"))
    refused(argv)
    assert sorted(tmp_path.rglob("*")) == before  # nothing left behind, not even a 0-byte PNG


def test_user_fixable_os_errors_are_one_line_and_bugs_keep_their_traceback(monkeypatch, capsys):
    import cleardiffusion.cli.toy

    def fail_with(error):
        def run(args):
            raise error

        monkeypatch.setattr(cleardiffusion.cli.toy, "run", run)

    fail_with(OSError(errno.ENOSPC, "No space left on device", "/full/disk"))
    assert main(["toy"]) == 2
    assert "No space left on device: /full/disk" in capsys.readouterr().err
    fail_with(ValueError("a bug inside the library"))  # not a UsageError: a bug, shown with its traceback
    with pytest.raises(ValueError):
        main(["toy"])
    fail_with(KeyError("bug"))
    with pytest.raises(KeyError):
        main(["toy"])
    assert cli.main is main


# ----------------------------------------------------------------------------------------------------------
# Checkpoints: missing keys, wrong types, NaN weights


def damaged(world, tmp_path, key, value) -> Path:
    state = torch.load(world["checkpoint"], weights_only=True)
    if value is KeyError:
        del state[key]
    else:
        state[key] = value
    path = tmp_path / "run" / "checkpoints" / "last.pt"
    path.parent.mkdir(parents=True)
    torch.save(state, path)
    return path


DAMAGE = [("dataset", KeyError), ("dataset", "mnist"), ("step", KeyError), ("step", "7"), ("config", KeyError),
          ("config", [1]), ("model_spec", KeyError), ("model_spec", {"kind": "unet", "config": {"nope": 1}}),
          ("optimizer", KeyError), ("optimizer", 3), ("rng", KeyError), ("rng", None), ("elapsed", KeyError),
          ("elapsed", "1 s"), ("ema", {"w": torch.zeros(1)}),
          ("schedule", {"name": "linear", "T": 10**13})]  # fmt: skip


@pytest.mark.parametrize("key, value", DAMAGE)
def test_damaged_checkpoints_are_one_line_errors(world, tmp_path, key, value):
    path = damaged(world, tmp_path, key, value)
    sampling_needs = {"dataset", "step", "config", "model_spec", "ema", "schedule"}
    if key in sampling_needs:
        refused(["sample", "--checkpoint", path, "--out", tmp_path / "x.png", "--device", "cpu"], str(path))
    refused(tiny_train(world["data"], tmp_path / "run", 5, "--resume"), str(path))
    assert not (tmp_path / "x.png").exists()


def test_nan_weights_are_detected_when_a_checkpoint_is_loaded(world, tmp_path):
    state = torch.load(world["checkpoint"], weights_only=True)
    path = damaged(world, tmp_path, "ema", {k: v * float("nan") for k, v in state["ema"].items()})
    refused(["sample", "--checkpoint", path, "--out", tmp_path / "x.png", "--device", "cpu"], "NaN", "--no-ema")
    assert status(["sample", "--checkpoint", path, "--out", tmp_path / "x.png", "--device", "cpu", "--n", "1",
                   "--steps", "1", "--no-ema"])[0] == 0  # fmt: skip
    refused(tiny_train(world["data"], tmp_path / "run", 5, "--resume"), "NaN")


def test_a_checkpoint_holding_foreign_objects_says_why_in_one_sentence(tmp_path):
    torch.save({"format": "cleardiffusion-checkpoint", "x": np.zeros(2)}, tmp_path / "np.pt")
    err = refused(["sample", "--checkpoint", tmp_path / "np.pt", "--out", tmp_path / "x.png"], "never loads")
    assert "\x1b" not in err and "two options" not in err


def test_resume_below_the_checkpoint_step_is_refused_and_rewrites_nothing(world, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(world["checkpoint"].parents[1], run)
    config = (run / "config.json").read_text()
    refused(tiny_train(world["data"], run, 1, "--resume"), "--steps 1", "step 2")
    assert (run / "config.json").read_text() == config


# ----------------------------------------------------------------------------------------------------------
# Devices, sizes and flags


@pytest.mark.skipif(not CPU_ONLY, reason="a CPU-only build")
@pytest.mark.parametrize("device", ["cuda", "cuda:7", "banana"])
@pytest.mark.parametrize("command", ["sample", "train-classifier", "eval"])
def test_missing_devices_are_one_line_errors(world, tmp_path, device, command):
    data = world["data"]
    np.savez(tmp_path / "s.npz", images=np.zeros((4, 12, 12, 1), np.uint8))
    argv = {
        "sample": ["sample", "--checkpoint", world["checkpoint"], "--out", tmp_path / "x.png"],
        "train-classifier": ["train-classifier", "--dataset", "mnist", "--data-dir", data, "--out", tmp_path / "c"],
        "eval": ["eval", "--samples", tmp_path / "s.npz", "--dataset", "mnist", "--data-dir", data],
    }[command]
    refused(argv + ["--device", device], "--device")
    assert not (tmp_path / "x.png").exists() and not (tmp_path / "c").exists()


@pytest.mark.parametrize(
    "flags",
    [["--base-channels", "100000"], ["--batch-size", "100000000"]],  # --timesteps: capped (test_train_cli.py)
)
def test_sizes_that_cannot_fit_are_refused_with_an_estimate(world, tmp_path, flags):
    refused(tiny_train(world["data"], tmp_path / "run", 2, *flags), "needs at least", "memory")
    assert not (tmp_path / "run" / "checkpoints").exists()


@pytest.mark.parametrize("flags", [["--n", "1000000000000"], ["--n", "100000000", "--batch-size", "100000000"]])
def test_sampling_sizes_that_cannot_fit_are_refused(world, tmp_path, flags):
    refused(["sample", "--checkpoint", world["checkpoint"], "--out", tmp_path / "x.npz", "--device", "cpu", *flags],
            "needs")  # fmt: skip


@pytest.mark.parametrize("flags", [["--timesteps", "100000000000"], ["--batch-size", "100000000000"]])
def test_toy_sizes_that_cannot_fit_are_refused(tmp_path, flags):
    refused(["toy", "--out", tmp_path / "toy", *flags], "needs at least")


@pytest.mark.parametrize(
    "option, words",
    [("image_size=64", "comes from"), ("in_channels=3", "comes from"), ("num_classes=-1", "comes from"),
     ("channel_mults=abc", "channel_mults"), ("dropout=x", "dropout"), ("norm_groups=3", "norm_groups"),
     ("nonsense=1", "not a U-Net setting"), ("block=dense", "block")],
)  # fmt: skip
def test_bad_model_options_are_one_line_errors(world, tmp_path, option, words):
    err = refused(tiny_train(world["data"], tmp_path / "run", 2, "--model-option", option), words)
    assert "in_channels," not in err  # the list of valid options no longer offers the data's own fields


@pytest.mark.parametrize(
    "command, flag, value",
    [("sample", "--guidance", "nan"), ("sample", "--guidance", "inf"), ("sample", "--eta", "2"),
     ("sample", "--eta", "nan"), ("sample", "--seed", "-1"), ("sample", "--seed", "99999999999999999999999"),
     ("train", "--lr", "nan"), ("train", "--lr", "0"), ("train", "--adam-betas", "nan"),
     ("train", "--seed", "-5"), ("toy", "--lr", "inf"), ("toy", "--steps", "0"),
     ("train-classifier", "--batch-size", "0"), ("train-classifier", "--epochs", "0"),
     ("train-classifier", "--lr", "nan"), ("eval", "--seed", "-1")],
)  # fmt: skip
def test_non_finite_and_out_of_range_flags_are_refused_at_parse_time(world, tmp_path, command, flag, value):
    base = {
        "sample": ["sample", "--checkpoint", world["checkpoint"], "--out", tmp_path / "x.png"],
        "train": tiny_train(world["data"], tmp_path / "run", 2),
        "toy": ["toy", "--out", tmp_path / "toy"],
        "train-classifier": ["train-classifier", "--dataset", "mnist", "--data-dir", world["data"]],
        "eval": ["eval", "--samples", tmp_path / "s.npz", "--dataset", "mnist", "--data-dir", world["data"]],
    }[command]
    extra = [flag, value, "0.9"] if flag == "--adam-betas" else [flag, value]
    refused(base + extra, flag)
    assert list(tmp_path.iterdir()) == []


def test_a_batch_larger_than_the_dataset_is_refused(world, tmp_path):
    refused(["train-classifier", "--dataset", "mnist", "--data-dir", world["data"], "--out", tmp_path / "c.pt",
             "--batch-size", "1000"], "--batch-size", "1..64")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# A run folder belongs to one run


def test_a_live_lock_refuses_a_second_run_and_a_dead_one_is_taken_over(world, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / ".lock").write_text(f"{os.getppid()}\n")  # a process that is alive
    refused(tiny_train(world["data"], out, 1), "in use by another run", str(os.getppid()))
    assert not (out / "checkpoints").exists()
    (out / ".lock").write_text("999999999\n")  # a process that no longer exists
    assert status(tiny_train(world["data"], out, 1))[0] == 0
    assert not (out / ".lock").exists() and (out / "checkpoints" / "last.pt").is_file()


def test_the_lock_is_exclusive_and_released(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(UsageError, match="in use"):
            RunLock(tmp_path).acquire()
    assert not (tmp_path / ".lock").exists()


def test_files_the_tool_did_not_write_are_never_overwritten(world, tmp_path):
    out = tmp_path / "mine"
    out.mkdir()
    for name in ("config.json", "summary.json", "metrics.jsonl"):
        (out / name).write_text("the user's own notes\n")
    refused(tiny_train(world["data"], out, 1), "config.json", "metrics.jsonl", "summary.json")
    assert all((out / n).read_text() == "the user's own notes\n" for n in ("config.json", "summary.json"))


def test_the_toy_stops_on_a_non_finite_loss_and_writes_no_nan(tmp_path):
    refused(["toy", "--out", tmp_path / "toy", "--lr", "1e10", "--steps", "30"], "non-finite", "--lr")
    assert not (tmp_path / "toy" / "metrics.json").exists()


def test_the_non_finite_loss_message_points_at_a_checkpoint_that_exists(world, tmp_path):
    err = refused(tiny_train(world["data"], tmp_path / "run", 3, "--lr", "1e30", "--checkpoint-every", "100"),
                  "non-finite")  # fmt: skip
    assert "last good checkpoint" not in err and "no checkpoint was written yet" in err
