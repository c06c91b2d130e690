"""The evaluation runner's I/O: sample files (npz, PNG folders), and the end-to-end evaluation against MNIST."""

import gzip
import json
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cleardiffusion.data import load_dataset
from cleardiffusion.errors import UsageError
from cleardiffusion.evaluation_runner import classifier_or_help, evaluate_samples, load_samples
from cleardiffusion.features import SmallClassifier, file_sha256, save_classifier

MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


# -------------------------------------------------------------------------------- evaluation_runner (I/O)


def test_load_samples_npz_and_png(tmp_path):
    images = np.random.default_rng(0).integers(0, 256, (6, 8, 8, 3), dtype=np.uint8)  # N x H x W x C
    np.savez(tmp_path / "s.npz", images=images, labels=np.arange(6))
    x, y = load_samples(tmp_path / "s.npz")
    assert x.shape == (6, 3, 8, 8) and x.dtype == torch.uint8 and y.tolist() == list(range(6))
    np.testing.assert_array_equal(x.permute(0, 2, 3, 1).numpy(), images)
    (tmp_path / "png").mkdir()
    for i, im in enumerate(images):
        Image.fromarray(im).save(tmp_path / "png" / f"{i:03d}.png")
    x_png, y_png = load_samples(tmp_path / "png")
    assert y_png is None and torch.equal(x_png, x)


@pytest.mark.parametrize(
    "arrays, match",
    [
        ({"samples": np.zeros((2, 8, 8, 1), np.uint8)}, "no 'images' array"),
        ({"images": np.zeros((2, 8, 8, 1), np.float32)}, "must be uint8"),
        ({"images": np.full((2, 8, 8, 1), np.nan, np.float32)}, "NaN or inf"),
        ({"images": np.zeros((2, 8, 8, 2), np.uint8)}, "C in"),
        ({"images": np.zeros((2, 8, 8, 1), np.uint8), "labels": np.zeros(3, np.int64)}, "labels must be"),
    ],
)
def test_load_samples_rejects_bad_files(tmp_path, arrays, match):
    np.savez(tmp_path / "bad.npz", **arrays)
    with pytest.raises(ValueError, match=match):
        load_samples(tmp_path / "bad.npz")


def test_load_samples_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        load_samples(tmp_path / "nothing.npz")


@pytest.fixture
def mnist_classifier(tmp_path):
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {MNIST}")
    torch.manual_seed(0)  # an untrained network: the plumbing, not the numbers, is under test
    model = SmallClassifier(1, 10, 28, width=8)
    for m in model.modules():  # BatchNorm statistics of real digits, so random features are not all ~0
        if isinstance(m, torch.nn.BatchNorm2d):
            m.momentum = None
    with torch.no_grad():
        model.train()(load_dataset("mnist", MNIST, "test").images[:2000].float() / 127.5 - 1)
    path = tmp_path / "clf.pt"
    save_classifier(path, model.eval(), {"dataset": "mnist", "test_accuracy": 0.0})
    return path


def first_mnist_test_images(folder: Path, n: int) -> Path:
    """MNIST's test split cut to its first n images, in MNIST's own IDX files (a smaller, faster reference)."""
    test = load_dataset("mnist", MNIST, "test")
    folder.mkdir(parents=True)
    images = test.images[:n, 0].numpy().astype(np.uint8)  # (n, 28, 28)
    header = struct.pack(">IIII", 0x803, n, 28, 28)
    (folder / "t10k-images-idx3-ubyte.gz").write_bytes(gzip.compress(header + images.tobytes()))
    labels = test.labels[:n].numpy().astype(np.uint8)
    (folder / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(struct.pack(">II", 0x801, n) + labels.tobytes()))
    return folder


@pytest.mark.slow
def test_evaluate_samples_end_to_end_and_cache(tmp_path, mnist_classifier):
    reference = first_mnist_test_images(tmp_path / "mnist", 600)
    test = load_dataset("mnist", reference, "test")
    images, labels = test.images[:300], test.labels[:300]
    np.savez(tmp_path / "s.npz", images=images.permute(0, 2, 3, 1).numpy(), labels=labels.numpy())
    kwargs = dict(classifier_path=mnist_classifier, split="test", cache_dir=tmp_path / "cache")
    result = evaluate_samples(tmp_path / "s.npz", None, "mnist", reference, **kwargs)
    json.dumps(result)  # JSON-serialisable
    assert result["n"] == 300 and result["features"] == "classifier:mnist"
    assert result["features_sha256"] == file_sha256(mnist_classifier)  # the network behind the numbers
    assert result["reference"] == {"dataset": "mnist", "split": "test", "n": 600}
    assert sum(result["class_histogram"]) == 300 and result["accuracy"] is not None
    assert result["precision"] > 0.9 and result["recall"] > 0.5
    (cached,) = (tmp_path / "cache" / "reference").glob("*.npz")
    stamp = cached.stat().st_mtime_ns
    noisy = images.float() + 80 * torch.randn(images.shape, generator=torch.Generator().manual_seed(0))
    worse = evaluate_samples(noisy.clamp(0, 255).to(torch.uint8), None, "mnist", reference, **kwargs)
    assert cached.stat().st_mtime_ns == stamp  # the reference statistics came from the cache
    assert worse["accuracy"] is None and worse["fid"] > 10 * result["fid"] and worse["precision"] < 0.5


def test_evaluate_samples_rejects_mismatched_samples(tmp_path, mnist_classifier):
    kwargs = dict(classifier_path=mnist_classifier, split="test", cache_dir=tmp_path)
    with pytest.raises(ValueError, match="3 channels but mnist has 1"):
        evaluate_samples(torch.zeros(8, 3, 28, 28, dtype=torch.uint8), None, "mnist", MNIST, **kwargs)
    with pytest.raises(ValueError, match=r"\(32, 32\) pixels"):
        evaluate_samples(torch.zeros(8, 1, 32, 32, dtype=torch.uint8), None, "mnist", MNIST, **kwargs)
    with pytest.raises(ValueError, match="uint8"):
        evaluate_samples(torch.zeros(8, 1, 28, 28), None, "mnist", MNIST, **kwargs)
    with pytest.raises(ValueError, match="unknown features"):
        evaluate_samples(torch.zeros(8, 1, 28, 28, dtype=torch.uint8), None, "mnist", MNIST, features="vgg")


def test_other_data_without_classifier_says_how_to_get_one():
    """Only mnist, fashion-mnist and cifar10 have a shipped network; an image folder needs --classifier."""
    with pytest.raises(UsageError, match="cleardiffusion train-classifier --dataset folder.*--classifier FILE"):
        classifier_or_help("folder", 3, None, "cpu", (32, 32))


def test_evaluate_samples_without_inception_weights_says_how_to_get_them(tmp_path):
    if not (MNIST / "t10k-images-idx3-ubyte.gz").is_file():
        pytest.skip(f"MNIST not found under {MNIST}")
    images = torch.zeros(8, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(UsageError, match="--inception PATH"):
        evaluate_samples(images, None, "mnist", MNIST, features="inception", split="test", cache_dir=tmp_path)
