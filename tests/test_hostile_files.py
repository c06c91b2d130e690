"""Files nobody vouches for (issue 27): each kind is refused in one line or read correctly, never a traceback.

A disk that fills during a checkpoint, IDX headers that lie, checkpoints that disagree with themselves or
with the data, classifiers with NaN weights, a TensorBoard that fails at import, 16-bit images, labels
outside the classes. The builders of these files are shared with the fuzz test (test_fuzz.py).
"""

import errno
import gzip
import io
import json
import os
import shutil
import struct
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cleardiffusion.errors import UsageError
from cleardiffusion.features import load_classifier, save_classifier
from cleardiffusion.limits import MAX_TIMESTEPS
from test_reliability import make_world, refused, status, temporaries, tiny_train

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("hostile"))


# ----------------------------------------------------------------------------------------------------------
# Builders


def huge_idx_dir(folder: Path) -> Path:
    """MNIST files whose images header claims 2^31 x 2^31 x 4 bytes (numpy's int64 product: 0)."""
    folder.mkdir(parents=True, exist_ok=True)
    header = struct.pack(">IIII", 0x803, 2**31, 2**31, 4)
    (folder / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(header))
    (folder / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, 4) + bytes(4)))
    return folder


def png16(array16: np.ndarray) -> bytes:
    """A 16-bit greyscale PNG of a uint16 (H, W) array."""
    buffer = io.BytesIO()
    Image.fromarray(array16.astype(np.uint16)).save(buffer, format="PNG")
    assert Image.open(io.BytesIO(buffer.getvalue())).mode.startswith("I")  # really stored with 16 bits
    return buffer.getvalue()


def png_folders(root: Path, n: int = 6) -> tuple[Path, Path]:
    """(a folder of n 12x12 16-bit PNGs, the same images as 8-bit PNGs): decoded, they must be equal.

    Each is the one class folder of an image-folder dataset (root/deep/, root/flat/)."""
    rng = np.random.default_rng(0)
    deep, flat = root / "deep" / "c", root / "flat" / "c"
    deep.mkdir(parents=True, exist_ok=True)
    flat.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        eight = rng.integers(0, 256, (12, 12), dtype=np.uint8)
        (deep / f"{i}.png").write_bytes(png16(eight.astype(np.uint16) * 257))  # 255 * 257 = 65535
        Image.fromarray(eight).save(flat / f"{i}.png")
    return deep, flat


def edited_checkpoint(source: Path, target: Path, case: str) -> Path:
    """A copy of a good checkpoint made to disagree with itself in one way (as issue 27 found them)."""
    state = torch.load(source, weights_only=True)
    if case == "3-channel dataset":  # the recorded data has 3 channels, the U-Net 1
        state["dataset"]["image_shape"] = [3, *state["dataset"]["image_shape"][1:]]
    elif case == "T 100000":
        state["schedule"]["T"] = state["config"]["timesteps"] = 100_000
    elif case == "unknown objective":
        state["config"]["objective"] = "score-sde"
    target.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, target)
    return target


def nan_classifier(source: Path, target: Path) -> Path:
    model, config = load_classifier(source)
    with torch.no_grad():
        model.head.bias.fill_(float("nan"))
    save_classifier(target, model, {k: v for k, v in config.items() if k not in model.config})
    return target


def labelled_samples(path: Path, labels: list[int]) -> Path:
    images = np.random.default_rng(1).integers(0, 256, (len(labels), 12, 12, 1), dtype=np.uint8)
    np.savez(path, images=images, labels=np.array(labels, dtype=np.int64))
    return path


# ----------------------------------------------------------------------------------------------------------
# A disk that fills while a checkpoint is written


from test_checkpoint import FullDisk  # noqa: E402  (a file on a disk with FullDisk.room bytes left)


@pytest.mark.parametrize("resume", [False, True])
def test_a_disk_that_fills_during_training_is_one_line_and_loses_nothing(world, tmp_path, monkeypatch, resume):
    run = tmp_path / "run"
    if resume:
        shutil.copytree(world["checkpoint"].parents[1], run)
    before = (run / "checkpoints" / "last.pt").read_bytes() if resume else None
    monkeypatch.setattr(FullDisk, "room", 20_000)  # config.json and metrics fit, a checkpoint does not
    monkeypatch.setattr(io, "FileIO", FullDisk)
    err = refused(tiny_train(world["data"], run, 4, *(["--resume"] if resume else [])), "last.pt",
                  os.strerror(errno.ENOSPC), "free")  # fmt: skip
    assert "unexpected pos" not in err
    last = run / "checkpoints" / "last.pt"
    assert (last.read_bytes() == before) if resume else not last.exists()
    assert temporaries(tmp_path) == []  # no partial file, no lock


# ----------------------------------------------------------------------------------------------------------
# Data files


def test_an_idx_header_claiming_2_to_the_64_bytes_is_one_line(world, tmp_path):
    data = huge_idx_dir(tmp_path / "huge")
    refused(tiny_train(data, tmp_path / "run", 1), "header promises", "18446744073709551616")
    np.savez(tmp_path / "s.npz", images=np.zeros((4, 12, 12, 1), np.uint8))
    refused(["eval", "--samples", tmp_path / "s.npz", "--dataset", "mnist", "--data-dir", data], "header promises")


def test_training_on_a_folder_of_16_bit_pngs_sees_the_8_bit_values(world, tmp_path):
    """Clipped at 255, the 16-bit images would train other weights than their 8-bit twins."""
    deep, flat = png_folders(tmp_path)
    digests = []
    for folder in (deep, flat):
        argv = tiny_train(folder.parent, tmp_path / f"run-{folder.parent.name}", 2)
        argv[argv.index("mnist")] = "folder"
        assert status(argv)[0] == 0
        digests.append(json.loads((tmp_path / f"run-{folder.parent.name}" / "summary.json").read_text()))
    assert digests[0]["param_digests"] == digests[1]["param_digests"]


def test_eval_scores_16_bit_png_samples_like_their_8_bit_twins(world, tmp_path):
    from cleardiffusion.evaluation_runner import load_samples

    deep, flat = png_folders(tmp_path)
    assert torch.equal(load_samples(deep)[0], load_samples(flat)[0])


@pytest.mark.parametrize("bad", [-1, 1500])
def test_eval_labels_outside_the_classes_are_refused(world, tmp_path, bad):
    samples = labelled_samples(tmp_path / "s.npz", [0, 1, bad, 3])
    refused(["eval", "--samples", samples, "--dataset", "mnist", "--data-dir", world["data"], "--classifier",
             world["classifier"], "--cache-dir", tmp_path / "cache"], str(bad), "0..9")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Checkpoints and classifiers


@pytest.mark.parametrize("case, words", [("3-channel dataset", ["3-channel", "1-channel"]),
                                         ("T 100000", ["100000", str(MAX_TIMESTEPS)]),
                                         ("unknown objective", ["score-sde"])])  # fmt: skip
def test_a_checkpoint_that_disagrees_with_itself_is_one_line_for_sample_and_resume(world, tmp_path, case, words):
    path = edited_checkpoint(world["checkpoint"], tmp_path / "run" / "checkpoints" / "last.pt", case)
    refused(["sample", "--checkpoint", path, "--out", tmp_path / "x.png", "--device", "cpu"], str(path), *words)
    refused(tiny_train(world["data"], tmp_path / "run", 5, "--resume"), str(path), *words)
    assert not (tmp_path / "x.png").exists()


def test_resume_with_other_data_in_data_dir_is_refused(world, tmp_path):
    from test_eval_cli import write_split

    run, other = tmp_path / "run", tmp_path / "other"
    shutil.copytree(world["checkpoint"].parents[1], run)
    other.mkdir()
    write_split(other, "train", 64, 7)  # the same shapes and size, other pixels
    refused(tiny_train(other, run, 5, "--resume"), "other data", "--data-dir")
    assert status(tiny_train(world["data"], run, 3, "--resume"))[0] == 0  # its own data: accepted


def test_a_classifier_with_nan_weights_is_one_line_in_eval(world, tmp_path):
    classifier = nan_classifier(world["classifier"], tmp_path / "nan.pt")
    np.savez(tmp_path / "s.npz", images=np.zeros((4, 12, 12, 1), np.uint8))
    refused(["eval", "--samples", tmp_path / "s.npz", "--dataset", "mnist", "--data-dir", world["data"],
             "--classifier", classifier, "--cache-dir", tmp_path / "cache"], "NaN", "train-classifier")  # fmt: skip


@pytest.mark.parametrize("error", [TypeError("Descriptors cannot be created directly."), ImportError("no module")])
def test_a_tensorboard_that_fails_at_import_is_one_line(world, tmp_path, monkeypatch, error):
    broken = types.ModuleType("torch.utils.tensorboard")

    def fail(name):
        raise error

    broken.__getattr__ = fail  # `from torch.utils.tensorboard import SummaryWriter` raises like a bad protobuf
    monkeypatch.setitem(sys.modules, "torch.utils.tensorboard", broken)
    refused(tiny_train(world["data"], tmp_path / "run", 1, "--tensorboard"), "--tensorboard", str(error))


# ----------------------------------------------------------------------------------------------------------
# eval's samples (from the issue-15 campaign)


def test_eval_samples_that_are_not_images_are_one_line_errors(world, tmp_path):
    folder = tmp_path / "pngs"
    folder.mkdir()
    (folder / "a.png").write_text("not an image")
    evaluate = ["eval", "--dataset", "mnist", "--data-dir", world["data"], "--classifier", world["classifier"]]
    refused(evaluate + ["--samples", folder], "a.png", "not a readable")
    from PIL import Image

    Image.new("L", (12, 12)).save(tmp_path / "one.png")
    err = refused(evaluate + ["--samples", tmp_path / "one.png"], "not an .npz")
    assert "pickle" not in err


def test_eval_accepts_the_pytorch_layout_when_unambiguous(world, tmp_path):
    from cleardiffusion.evaluation_runner import load_samples

    rng = np.random.default_rng(0)
    nhwc = rng.integers(0, 256, (6, 12, 12, 1), dtype=np.uint8)
    np.savez(tmp_path / "nhwc.npz", images=nhwc)
    np.savez(tmp_path / "nchw.npz", images=nhwc.transpose(0, 3, 1, 2))
    a, _ = load_samples(tmp_path / "nhwc.npz")
    b, _ = load_samples(tmp_path / "nchw.npz")
    assert a.shape == (6, 1, 12, 12) and torch.equal(a, b)
    np.savez(tmp_path / "odd.npz", images=np.zeros((6, 5, 12, 7), np.uint8))  # neither layout
    with pytest.raises(UsageError, match="N x H x W x C"):
        load_samples(tmp_path / "odd.npz")
    out = tmp_path / "metrics.json"
    assert (
        status(
            [
                "eval",
                "--samples",
                tmp_path / "nchw.npz",
                "--dataset",
                "mnist",
                "--data-dir",
                world["data"],
                "--classifier",
                world["classifier"],
                "--cache-dir",
                tmp_path / "cache",
                "--out",
                out,
            ]
        )[0]
        == 0
    )
    assert json.loads(out.read_text())["n"] == 6
