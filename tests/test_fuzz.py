"""Fuzz: every subcommand, numbers at and past their bounds, NaN/inf, odd strings, every kind of path, and the
hostile files of issue 27 (test_hostile_files.py builds them) and checkpoints of every objective and
prediction as inputs to `sample` and `eval`.

Asserts the command line's contract for every drawn command: exit status 0 or 2, no traceback, at most one line
of error, and no file written outside the output paths (no temporary file, no lock left behind).
"""

import os
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cleardiffusion.cli import main
from test_hostile_files import (
    edited_checkpoint,
    huge_idx_dir,
    labelled_samples,
    nan_classifier,
    png_folders,
)
from test_reliability import make_world, status, tiny_train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py

OBJECTIVES = {"ddpm-eps": ["--prediction", "eps"], "ddpm-v": ["--prediction", "v"],
              "ddpm-x0": ["--prediction", "x0"], "flow": ["--objective", "flow"]}  # fmt: skip


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """make_world's data, checkpoint and classifier, plus every hostile file and a checkpoint (and its samples)
    of every objective and prediction."""
    w = make_world(tmp_path_factory.mktemp("fuzz"))
    root = w["root"] / "hostile"
    for name, flags in OBJECTIVES.items():
        assert main(tiny_train(w["data"], root / name, 1, *flags)) == 0, name
        w[name] = root / name / "checkpoints" / "last.pt"
        w[f"{name}.npz"] = root / f"{name}.npz"
        argv = ["sample", "--checkpoint", w[name], "--out", w[f"{name}.npz"], "--n", "4", "--steps", "2",
                "--device", "cpu"]  # fmt: skip
        assert status(argv)[0] == 0, name
    w["inconsistent"] = [edited_checkpoint(w["checkpoint"], root / "bad" / f"{case}.pt", case)
                         for case in ("3-channel dataset", "T 100000", "unknown objective")]  # fmt: skip
    w["huge-idx"] = huge_idx_dir(root / "huge-idx")
    w["png16"], w["png8"] = png_folders(root / "png")
    w["bad-labels"] = [labelled_samples(root / f"labels{b}.npz", [0, b, 2, 3]) for b in (-1, 1500)]
    w["nan-classifier"] = nan_classifier(w["classifier"], root / "nan.pt")
    return w


def checkpoints(world) -> list[str]:
    return [str(p) for p in (world["checkpoint"], *(world[n] for n in OBJECTIVES), *world["inconsistent"])]


def samples(world) -> list[str]:
    return [str(p) for p in (*(world[f"{n}.npz"] for n in OBJECTIVES), world["png16"], world["png8"],
                             *world["bad-labels"])]  # fmt: skip


FUZZ_EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "25"))  # per subcommand; raise it for a longer campaign
NUMBERS = ["0", "-1", "1", "2", "1e400", "nan", "inf", "-inf", "", "x", "99999999999999999999999", "0.5"]
SMALL = ["0", "-1", "1", "2", "nan", "", "x", "1.5"]  # for counts that would make accepted runs slow


def paths(root: Path, world) -> list[str]:
    return [str(p) for p in (root / "new" / "out.png", root / "new", world["afile"], world["afile"] / "sub",
                             root, "/proc/cleardiffusion", "", root / "out.npz")]  # fmt: skip


def fuzz_flags(command: str, root: Path, world) -> dict[str, list[str]]:
    """For each flag, the values to try; every accepted combination finishes in well under a second."""
    p = paths(root, world)
    common = {"--seed": NUMBERS, "--device": ["cpu", "cuda:7", "banana", ""]}
    return {
        "sample": {"--checkpoint": [*checkpoints(world), *p], "--out": p,
                   "--sampler": ["ddim", "ddpm", "euler", "heun", "dpm++2m", "dpm++2m-sde", "x"],
                   "--n": SMALL, "--steps": SMALL,
                   "--eta": NUMBERS, "--guidance": NUMBERS, "--batch-size": NUMBERS, "--trajectory": p,
                   "--class-label": ["0", "all", "none", "-1", "x"], **common},
        "train": {"--out": p, "--steps": SMALL, "--timesteps": NUMBERS, "--batch-size": NUMBERS, "--lr": NUMBERS,
                  "--base-channels": NUMBERS, "--warmup": NUMBERS, "--ema-decay": NUMBERS, "--grad-clip": NUMBERS,
                  "--ema-warmup": NUMBERS, "--label-dropout": NUMBERS, "--log-every": NUMBERS,
                  "--checkpoint-every": NUMBERS,
                  "--model-option": ["norm_groups=8", "image_size=64", "channel_mults=abc", "x", "dropout=2"],
                  "--data-dir": [str(world["data"]), str(world["huge-idx"]), str(world["png16"].parent), *p],
                  "--dataset": ["mnist", "folder"], **common},
        "toy": {"--out": p, "--steps": SMALL, "--timesteps": NUMBERS, "--batch-size": SMALL, "--lr": NUMBERS,
                **common},
        "train-classifier": {"--out": p, "--epochs": ["0", "-1", "x", "nan", "1"], "--batch-size": NUMBERS,
                             "--lr": NUMBERS, "--data-dir": [str(world["data"]), str(world["huge-idx"]), *p],
                             **common},
        "eval": {"--samples": [str(world["afile"]), *samples(world), *p], "--out": p, "--cache-dir": p,
                 "--data-dir": [str(world["huge-idx"]), *p],
                 "--classifier": [str(world["classifier"]), str(world["nan-classifier"]), *p], **common},
    }[command]  # fmt: skip


BASE = {
    "sample": lambda w: ["sample", "--checkpoint", w["checkpoint"], "--out", "OUT/x.png", "--n", "1", "--steps", "1"],
    "train": lambda w: tiny_train(w["data"], "OUT/run", 1),
    "toy": lambda w: ["toy", "--out", "OUT/toy", "--steps", "1", "--timesteps", "20", "--batch-size", "2"],
    "train-classifier": lambda w: ["train-classifier", "--dataset", "mnist", "--data-dir", w["data"],
                                   "--out", "OUT/c.pt", "--epochs", "1"],
    "eval": lambda w: ["eval", "--samples", "OUT/none.npz", "--dataset", "mnist", "--data-dir", w["data"]],
}  # fmt: skip


def with_flags(argv: list, chosen: dict[str, str]) -> list[str]:
    argv = [str(a) for a in argv]
    for flag, value in chosen.items():
        if flag in argv and flag != "--model-option":
            argv[argv.index(flag) + 1] = value  # replace the base's value
        else:
            argv += [flag, value]
    return argv


def tree(root: Path) -> set[Path]:
    return {p for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("command", list(BASE))
@settings(max_examples=FUZZ_EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_fuzz_every_subcommand(world, command, data, monkeypatch):
    """Exit status 0 or 2, no traceback, at most one line of error, no file outside the output paths."""
    root = Path(tempfile.mkdtemp(dir=world["root"]))
    try:
        monkeypatch.setenv("CLEARDIFFUSION_CACHE", str(root / "cache"))
        options = fuzz_flags(command, root, world)
        picked = data.draw(st.lists(st.sampled_from(sorted(options)), min_size=1, max_size=3, unique=True))
        chosen = {flag: data.draw(st.sampled_from(options[flag]), label=flag) for flag in picked}
        argv = [a.replace("OUT", str(root)) for a in with_flags(BASE[command](world), chosen)]
        outputs = [Path(v) for f, v in chosen.items() if f in ("--out", "--trajectory", "--cache-dir")]
        outputs += [Path(v).with_suffix(".gif") for f, v in chosen.items() if f == "--trajectory" and v]
        outputs += [root / "run", root / "toy", root / "c.pt", root / "x.png", root / "cache"]
        before = tree(world["root"])
        code, err = status(argv)
        assert code in (0, 2), (argv, err)
        assert "Traceback" not in err and (code == 0 or err.count("\n") == 1), (argv, err)
        written = tree(world["root"]) - before  # every file the command wrote, wherever it is
        stray = [p for p in written if not any(p == o or o in p.parents for o in outputs)]
        stray += [p for p in written if p.name.endswith(".tmp") or p.name == ".lock"]
        assert stray == [], (argv, stray)
    finally:
        shutil.rmtree(root, ignore_errors=True)
