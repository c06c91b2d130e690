"""Dataset readers on small files written here in each official format, plus the real data when present."""

import gzip
import hashlib
import io
import math
import os
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
from pathlib import Path

import numpy as np
import pytest
import torch

from cleardiffusion.data import (
    CLASS_NAMES,
    DATASETS,
    ChecksumError,
    DataError,
    check_labels,
    data_fingerprint,
    from_model_range,
    load_dataset,
    official,
    random_hflip,
    to_model_range,
)

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    """Never write decoded-image caches into the user's home during tests."""
    monkeypatch.setenv("CLEARDIFFUSION_CACHE", str(tmp_path / "cache"))


# ------------------------------------------------------------------------------------------------------------
# Writers of the official formats
# ------------------------------------------------------------------------------------------------------------


def idx_bytes(array: np.ndarray) -> bytes:
    """IDX: big-endian magic 0x0000080<ndim>, the dims, then the uint8 payload."""
    return struct.pack(f">{1 + array.ndim}I", 0x0800 + array.ndim, *array.shape) + array.tobytes()


def write_idx_set(folder: Path, split: str, images: np.ndarray, labels: np.ndarray, gz: bool = True) -> None:
    prefix = "train" if split == "train" else "t10k"
    folder.mkdir(parents=True, exist_ok=True)
    for stem, array in ((f"{prefix}-images-idx3-ubyte", images), (f"{prefix}-labels-idx1-ubyte", labels)):
        raw = idx_bytes(array)
        (folder / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(raw) if gz else raw)


def small_digits(n: int = 5, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 256, (n, 4, 3), dtype=np.uint8), rng.integers(0, 10, n, dtype=np.uint8)


def planar_images(n: int, seed: int) -> np.ndarray:
    """(n, 3, 32, 32) with distinct R, G, B planes: R in 0..84, G in 85..169, B in 170..254."""
    rng = np.random.default_rng(seed)
    return (rng.integers(0, 85, (n, 3, 32, 32)) + np.array([0, 85, 170])[None, :, None, None]).astype(np.uint8)


def write_cifar(folder: Path) -> dict[str, tuple[np.ndarray, list[int]]]:
    """data_batch_1..5 (2 images each) and test_batch (3 images), as pickled dicts of bytes keys.

    Protocol 4, not 2: Python 3's protocol 2 spells bytes as `_codecs.encode(...)`, which the official
    (Python 2) files never contain and the restricted unpickler rightly refuses.
    """
    folder.mkdir(parents=True)
    batches = {}
    for i, name in enumerate([f"data_batch_{k}" for k in range(1, 6)] + ["test_batch"]):
        images = planar_images(3 if name == "test_batch" else 2, seed=i)
        labels = [(i + j) % 10 for j in range(len(images))]
        batch = {b"batch_label": name.encode(), b"labels": labels, b"data": images.reshape(len(images), -1)}
        (folder / name).write_bytes(pickle.dumps(batch, protocol=4))
        batches[name] = (images, labels)
    return batches


# ------------------------------------------------------------------------------------------------------------
# MNIST / Fashion-MNIST
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("split", ["train", "test"])
def test_idx_round_trip(tmp_path, gz, split):
    images, labels = small_digits(5, seed=1 if split == "train" else 2)
    write_idx_set(tmp_path, split, images, labels, gz=gz)
    ds = load_dataset("fashion-mnist", tmp_path, split)
    assert ds.images.dtype == torch.uint8 and ds.labels.dtype == torch.int64
    assert ds.images.shape == (5, 1, 4, 3) and ds.images.is_contiguous()
    assert (len(ds), ds.channels, ds.image_size, ds.num_classes) == (5, 1, (4, 3), 10)
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))  # rows x cols, row-major
    assert ds.labels.tolist() == labels.tolist()
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"


def test_mnist_class_names():
    assert CLASS_NAMES["mnist"] == [str(d) for d in range(10)]
    assert CLASS_NAMES["cifar10"][:3] == ["airplane", "automobile", "bird"]


def _broken_sets():
    """name -> (images file bytes, labels file bytes), each wrong in one way."""
    images, labels = small_digits(5)
    good_images, good_labels = idx_bytes(images), idx_bytes(labels)
    return {
        "truncated": (good_images[:-7], good_labels, "truncated"),
        "wrong magic": (idx_bytes(labels) + b"", good_labels, "magic 0x00000801"),
        "trailing": (good_images + b"\x00", good_labels, "trailing"),
        "count mismatch": (good_images, idx_bytes(labels[:4]), "5 images but"),
        "short header": (good_images[:10], good_labels, "header"),
    }


@pytest.mark.parametrize("case", list(_broken_sets()))
def test_broken_idx_names_file_and_fix(tmp_path, case):
    images, labels, expected = _broken_sets()[case]
    (tmp_path / "train-images-idx3-ubyte.gz").write_bytes(gzip.compress(images))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(labels))
    with pytest.raises(DataError, match=expected) as info:
        load_dataset("mnist", tmp_path)
    assert "idx" in str(info.value) and "re-download" in str(info.value)


def test_corrupt_gzip(tmp_path):
    write_idx_set(tmp_path, "train", *small_digits(50))
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[: len(path.read_bytes()) // 2])
    with pytest.raises(DataError, match="corrupt gzip.*re-download") as info:
        load_dataset("mnist", tmp_path)
    assert "train-images-idx3-ubyte.gz" in str(info.value)


@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dims", [(2**31, 2**31, 4), (2**32 - 1, 2**32 - 1, 2**32 - 1), (1, 2**20, 2**20)])
def test_an_idx_header_claiming_more_than_the_file_holds_is_refused_before_reading(tmp_path, gz, dims):
    """2^31 x 2^31 x 4 wraps numpy's int64 product to 0: the size must be exact and checked against the file."""
    header = struct.pack(">IIII", 0x803, *dims)
    raw = header + bytes(100)
    write_idx_set(tmp_path, "train", *small_digits(), gz=False)
    (tmp_path / "train-images-idx3-ubyte").write_bytes(gzip.compress(raw) if gz else raw)  # gzip: found by magic
    with pytest.raises(DataError, match="header promises") as info:
        load_dataset("mnist", tmp_path)
    assert str(math.prod(dims)) in str(info.value) and "\n" not in str(info.value)


def test_missing_files_message(tmp_path):
    write_idx_set(tmp_path, "train", *small_digits())
    (tmp_path / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("mnist", tmp_path)
    message = str(info.value)
    assert "--data-dir" in message and "--download" in message and str(tmp_path) in message
    assert "train-labels-idx1-ubyte.gz" in message and "train-images" not in message
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load_dataset("cifar10", tmp_path / "nowhere")


# ------------------------------------------------------------------------------------------------------------
# Downloads, served from memory by a monkeypatched urlopen
# ------------------------------------------------------------------------------------------------------------


def serve(monkeypatch, files: dict[str, bytes]) -> list[str]:
    requested = []

    def fake_urlopen(url, timeout=None):
        requested.append(url)
        name = url.rsplit("/", 1)[-1]
        if name not in files:
            raise urllib.error.URLError("no network")
        return io.BytesIO(files[name])

    monkeypatch.setattr(urllib.request, "urlopen", fake_urlopen)
    return requested


def official_gz(split: str) -> dict[str, bytes]:
    prefix = "train" if split == "train" else "t10k"
    images, labels = small_digits(6)
    return {
        f"{prefix}-images-idx3-ubyte.gz": gzip.compress(idx_bytes(images)),
        f"{prefix}-labels-idx1-ubyte.gz": gzip.compress(idx_bytes(labels)),
    }


def test_download_verifies_md5_and_moves_into_place(tmp_path, monkeypatch):
    files = official_gz("test")
    for name, raw in files.items():
        monkeypatch.setitem(official._MD5["mnist"], name, hashlib.md5(raw).hexdigest())
    requested = serve(monkeypatch, files)
    ds = load_dataset("mnist", tmp_path / "mnist", "test", download=True)
    assert len(ds) == 6 and all(url.startswith("https://ossci-datasets.s3.amazonaws.com/mnist/") for url in requested)
    assert sorted(p.name for p in (tmp_path / "mnist").iterdir()) == sorted(files)
    serve(monkeypatch, {})  # a second load reads the files it already has
    assert torch.equal(load_dataset("mnist", tmp_path / "mnist", "test", download=True).images, ds.images)


def test_download_checksum_mismatch(tmp_path, monkeypatch):
    files = official_gz("train")
    serve(monkeypatch, files)
    with pytest.raises(ChecksumError) as info:
        load_dataset("mnist", tmp_path, "train", download=True)
    message = str(info.value)
    assert "https://ossci-datasets.s3.amazonaws.com/mnist/train-images-idx3-ubyte.gz" in message
    assert "f68b3c2dcbeaaa9fbdd348bbdeb94873" in message
    assert hashlib.md5(files["train-images-idx3-ubyte.gz"]).hexdigest() in message
    assert list(tmp_path.iterdir()) == []  # temporary file deleted, nothing moved into place


def test_download_offline_is_file_not_found(tmp_path, monkeypatch):
    serve(monkeypatch, {})
    with pytest.raises(FileNotFoundError, match="--data-dir.*--download|download failed"):
        load_dataset("fashion-mnist", tmp_path, "test", download=True)
    with pytest.raises(FileNotFoundError, match="--data-dir"):
        load_dataset("cifar10", tmp_path, "test", download=True)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------------------------------------------------
# CIFAR-10 python batches
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["parent", "folder", "tar.gz"])
def test_cifar_batches(tmp_path, layout):
    batches = write_cifar(tmp_path / "cifar-10-batches-py")
    data_dir = tmp_path / "cifar-10-batches-py" if layout == "folder" else tmp_path
    if layout == "tar.gz":
        root = tmp_path / "cifar-10-batches-py"
        with tarfile.open(tmp_path / "cifar-10-python.tar.gz", "w:gz") as tf:
            tf.add(root, arcname="cifar-10-batches-py")
        for f in root.iterdir():
            f.unlink()
        root.rmdir()
    train, test = load_dataset("cifar10", data_dir, "train"), load_dataset("cifar10", data_dir, "test")
    assert train.images.shape == (10, 3, 32, 32) and test.images.shape == (3, 3, 32, 32)
    expected = np.concatenate([batches[f"data_batch_{k}"][0] for k in range(1, 6)])
    assert torch.equal(train.images, torch.from_numpy(expected))
    assert torch.equal(test.images, torch.from_numpy(batches["test_batch"][0]))
    assert train.labels.tolist() == sum((batches[f"data_batch_{k}"][1] for k in range(1, 6)), [])
    # channel-planar: plane 0 is red (0..84), plane 1 green (85..169), plane 2 blue (170..254)
    assert train.images[:, 0].max() < 85 and train.images[:, 1].min() >= 85 and train.images[:, 2].min() >= 170
    assert train.class_names == CLASS_NAMES["cifar10"] and train.channels == 3
    with pytest.raises(ValueError, match="image folders"):
        load_dataset("cifar10", data_dir, "test", image_size=16)


class _Python2Pickler(pickle._Pickler):
    """Pickles bytes and str as Python 2 strings and _reconstruct as numpy.core, like the official files."""

    dispatch = dict(pickle._Pickler.dispatch)

    def save_bytes(self, obj):
        self.write(b"T" + struct.pack("<i", len(obj)) + obj)  # BINSTRING: a Python 2 str
        self.memoize(obj)

    def save_global(self, obj, name=None):
        module = "numpy.core.multiarray" if obj.__name__ == "_reconstruct" else obj.__module__
        self.write(pickle.GLOBAL + f"{module}\n{obj.__name__}\n".encode())
        self.memoize(obj)

    dispatch[bytes] = save_bytes
    dispatch[str] = lambda self, obj: self.save_bytes(obj.encode("latin1"))


def test_cifar_python2_pickle(tmp_path):
    images = planar_images(2, seed=9)
    buffer = io.BytesIO()
    _Python2Pickler(buffer, protocol=2).dump({"data": images.reshape(2, -1), "labels": [7, 1], "batch_label": "t"})
    folder = tmp_path / "cifar-10-batches-py"
    folder.mkdir()
    (folder / "test_batch").write_bytes(buffer.getvalue())
    ds = load_dataset("cifar10", tmp_path, "test")
    assert torch.equal(ds.images, torch.from_numpy(images)) and ds.labels.tolist() == [7, 1]


class _Evil:
    def __reduce__(self):
        return (os.getcwd, ())


def test_cifar_refuses_unsafe_pickle(tmp_path):
    write_cifar(tmp_path / "cifar-10-batches-py")
    evil = {b"data": np.zeros((1, 3072), np.uint8), b"labels": [0], b"x": _Evil()}
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps(evil, protocol=4))
    with pytest.raises(DataError, match="refusing to unpickle posix.getcwd|refusing to unpickle os.getcwd"):
        load_dataset("cifar10", tmp_path, "test")


def test_unknown_names():
    with pytest.raises(ValueError, match="mnist, fashion-mnist, cifar10, folder"):
        load_dataset("imagenet", ".")
    with pytest.raises(ValueError, match="train, test"):
        load_dataset("mnist", ".", "val")
    assert DATASETS == ("mnist", "fashion-mnist", "cifar10", "folder")


# ------------------------------------------------------------------------------------------------------------
# Pixel range and flips
# ------------------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("bad", [-1, 10, 1500])
def test_labels_outside_the_classes_are_refused_naming_the_first(bad):
    labels = torch.tensor([0, 9, 3, bad, 2, bad])
    with pytest.raises(DataError, match=f"label {bad} \\(at index 3\\).*10 classes 0..9"):
        check_labels(labels, 10, "--samples")
    check_labels(torch.tensor([0, 9, 3]), 10, "--samples")  # in range: no error
    check_labels(torch.zeros(0, dtype=torch.long), 10, "--samples")


def test_the_data_fingerprint_tells_datasets_apart_and_is_stable(tmp_path):
    images, labels = small_digits(50)
    write_idx_set(tmp_path / "a", "train", images, labels)
    first = data_fingerprint(load_dataset("mnist", tmp_path / "a"))
    assert first == data_fingerprint(load_dataset("mnist", tmp_path / "a"))  # the same files, read again
    assert first["n"] == 50 and first["image_shape"] == [1, 4, 3] and first["num_classes"] == 10
    other_pixels = images.copy()
    other_pixels[7] ^= 1
    other_labels = (labels + 1) % 10
    for name, (im, lab) in {"pixels": (other_pixels, labels), "labels": (images, other_labels),
                            "fewer": (images[:49], labels[:49])}.items():  # fmt: skip
        write_idx_set(tmp_path / name, "train", im, lab)
        assert data_fingerprint(load_dataset("mnist", tmp_path / name))["sha256"] != first["sha256"], name
    fashion = data_fingerprint(load_dataset("fashion-mnist", tmp_path / "a"))  # other class names
    assert fashion["sha256"] != first["sha256"]


def test_model_range_round_trip():
    pixels = torch.arange(256, dtype=torch.uint8)
    x = to_model_range(pixels)
    assert x.dtype == torch.float32 and x[0] == -1 and x[-1] == 1
    assert torch.equal(from_model_range(x), pixels)
    assert from_model_range(torch.tensor([-3.0, 0.0, 5.0])).tolist() == [0, 128, 255]
    with pytest.raises(ValueError, match="uint8"):
        to_model_range(x)


def test_random_hflip():
    x = torch.randn(4000, 2, 3, 5)
    out = random_hflip(x, torch.Generator().manual_seed(0))
    flipped = (out == x.flip(-1)).flatten(1).all(1)
    kept = (out == x).flatten(1).all(1)
    assert torch.all(flipped ^ kept)  # each image is either mirrored or untouched, never both or neither
    expected = torch.rand(4000, generator=torch.Generator().manual_seed(0)) < 0.5
    assert torch.equal(flipped, expected)  # exactly the images the generator picked
    assert abs(flipped.float().mean().item() - 0.5) < 0.03  # 4 standard deviations
    assert torch.equal(random_hflip(x, torch.Generator().manual_seed(0)), out)
    assert not torch.equal(random_hflip(x, torch.Generator().manual_seed(1)), out)


# ------------------------------------------------------------------------------------------------------------
# Real data
# ------------------------------------------------------------------------------------------------------------


def need(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"real data not found at {path} (the shared data folder is absent)")
    return path


def test_real_mnist_train():
    ds = load_dataset("mnist", need(SHARED / "mnist"), "train")
    assert ds.images.shape == (60000, 1, 28, 28)
    assert torch.all(torch.bincount(ds.labels, minlength=10) > 5000)  # every digit, roughly balanced
    assert ds.images.max() == 255 and ds.images.min() == 0


def test_real_fashion_mnist_test():
    ds = load_dataset("fashion-mnist", need(SHARED / "fashion-mnist"), "test")
    assert ds.images.shape == (10000, 1, 28, 28)
    assert torch.bincount(ds.labels).tolist() == [1000] * 10


@pytest.mark.slow
def test_real_cifar_jpeg_test_split():
    ds = load_dataset("cifar10", need(SHARED / "cifar10-jpeg"), "test")
    assert ds.images.shape == (10000, 3, 32, 32) and ds.class_names == CLASS_NAMES["cifar10"]
    assert torch.bincount(ds.labels).tolist() == [1000] * 10
    assert ds.source.endswith("cifar10-jpeg.tar.gz")
