"""The official files: verified downloads, MNIST / Fashion-MNIST IDX files and CIFAR-10 python batches."""

import contextlib
import gzip
import hashlib
import math
import pickle
import struct
import tarfile
import urllib.error
import urllib.request
import zlib
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch

from ..errors import DataError, UsageError, first_line
from ..files import atomic_write
from ..limits import available_memory
from .dataset import CLASS_NAMES, DISPLAY_NAMES, REFETCH_HINT, ChecksumError, DatasetNotFoundError, ImageDataset
from .folders import ARCHIVES, load_image_folder

# ------------------------------------------------------------------------------------------------------------
# Downloads: stream to a temporary file, check the official md5, then move into place
# ------------------------------------------------------------------------------------------------------------

_MNIST_URL = "https://ossci-datasets.s3.amazonaws.com/mnist/"
_FASHION_URL = "http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/"
_CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"
_MD5 = {
    "mnist": {
        "train-images-idx3-ubyte.gz": "f68b3c2dcbeaaa9fbdd348bbdeb94873",
        "train-labels-idx1-ubyte.gz": "d53e105ee54ea40749a09fcbcd1e9432",
        "t10k-images-idx3-ubyte.gz": "9fb629c4189551a2d022fa330f9573f3",
        "t10k-labels-idx1-ubyte.gz": "ec29112dd5afa0611ce80d1b7f02629c",
    },
    "fashion-mnist": {
        "train-images-idx3-ubyte.gz": "8d4fb7e6c68d591d4c3dfef9ec88bf0d",
        "train-labels-idx1-ubyte.gz": "25c81989df183df01b3e8a0aad5dffbe",
        "t10k-images-idx3-ubyte.gz": "bef4ecab320f06d8554ea6380940ec79",
        "t10k-labels-idx1-ubyte.gz": "bb300cfdad3c16e7a12a480ee83cd310",
    },
    "cifar10": {"cifar-10-python.tar.gz": "c58f30108f718f92721af3b95e74349a"},
}
_OFFLINE = (urllib.error.URLError, TimeoutError, ConnectionError)


def download_file(url: str, dest: Path, md5: str) -> Path:
    """Fetch url to dest atomically (`files.atomic_write`); a wrong md5 discards it and raises ChecksumError."""
    digest = hashlib.md5()
    with urllib.request.urlopen(url, timeout=60) as response, atomic_write(dest) as f:
        while chunk := response.read(1 << 20):
            digest.update(chunk)
            f.write(chunk)
        if digest.hexdigest() != md5:
            raise ChecksumError(
                f"checksum mismatch for {url}: expected md5 {md5}, got {digest.hexdigest()}; "
                f"the download was discarded, try again (or fetch it by hand into {dest.parent})"
            )
    return dest


def _not_found(name: str, data_dir: Path, missing: list[str], hint: str, error: Exception | None = None):
    """The one message for missing dataset files: what is missing, and the two flags that fix it."""
    if error is None:
        fix = f"Pass --data-dir pointing at a folder with {hint}, or add --download to fetch them."
    else:  # --download was given and failed (offline, a proxy): only a folder of files can help now
        reason = getattr(error, "reason", None) or error
        fix = (
            f"The download failed ({str(reason).splitlines()[0][:100]}): this machine may be offline; copy the "
            f"official files into {data_dir} by hand (or pass --data-dir pointing at a folder with {hint})."
        )
    return DatasetNotFoundError(
        f"{DISPLAY_NAMES[name]} files not found in {data_dir} (missing: {', '.join(missing)}). {fix}"
    )


# ------------------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST: IDX files (big-endian header, then uint8 payload in row-major order)
# ------------------------------------------------------------------------------------------------------------

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # uint8 with 3 dims, uint8 with 1 dim


def _read_at_most(f: BinaryIO, n: int) -> bytes:
    """Up to n bytes, read in chunks: memory grows with what the file holds, never with what a header claims."""
    chunks, left = [], n
    while left > 0 and (chunk := f.read(min(left, 1 << 24))):
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """One IDX file (gzipped or not) with the expected magic -> uint8 (count, rows, cols) or (count,).

    The header is checked before the data is read (a damaged one can claim 2^31 x 2^31 x 4 bytes): the size
    it promises is computed exactly and compared with the file's size; a gzipped file (recognised by its
    magic 1f 8b, whatever its name) is decompressed only up to that size.
    """
    path = Path(path)
    ndim, header = magic & 0xFF, 4 + 4 * (magic & 0xFF)
    kind = "images" if magic == _IDX_IMAGES else "labels"
    with open(path, "rb") as raw:
        compressed = raw.read(2) == b"\x1f\x8b"
        size = raw.seek(0, 2)  # bytes on disk
        raw.seek(0)
        try:
            with gzip.GzipFile(fileobj=raw, mode="rb") if compressed else contextlib.nullcontext(raw) as f:
                head = _read_at_most(f, header)
                found = struct.unpack(">I", head[:4])[0] if len(head) >= 4 else None
                if found is not None and found != magic:
                    raise DataError(f"{path} is not an IDX {kind} file (magic 0x{found:08x}, expected "
                                    f"0x{magic:08x}); {REFETCH_HINT}")  # fmt: skip
                if len(head) < header:
                    raise DataError(f"{path} is truncated: {len(head)} bytes, shorter than its {header}-byte "
                                    f"header; {REFETCH_HINT}")  # fmt: skip
                dims = struct.unpack(f">{ndim}I", head[4:header])
                expected = math.prod(dims)  # exact: numpy's int64 product of 2^31 x 2^31 x 4 wraps around to 0
                if compressed and expected > available_memory():  # a gzip "bomb" that would hold all it claims
                    raise DataError(f"{path}: its header promises {' x '.join(map(str, dims))} = {expected} "
                                    f"bytes, more than this machine's memory; {REFETCH_HINT}")  # fmt: skip
                if not compressed and size - header != expected:
                    held = size - header
                else:  # read one byte more than promised, to see trailing bytes
                    held = len(payload := _read_at_most(f, expected + 1))
        except (OSError, EOFError, zlib.error) as e:
            raise DataError(f"{path} is a corrupt gzip file ({first_line(e)}); {REFETCH_HINT}") from e
    if held != expected:
        problem = "is truncated" if held < expected else "has trailing bytes"
        holds = f"more than {expected}" if compressed and held > expected else str(held)
        raise DataError(
            f"{path} {problem}: header promises {' x '.join(map(str, dims))} = {expected} bytes of data, "
            f"file holds {holds}; {REFETCH_HINT}"
        )
    return np.frombuffer(payload, dtype=np.uint8).reshape(dims).copy()


def load_idx_dataset(name: str, data_dir: Path, split: str, download: bool) -> ImageDataset:
    """MNIST or Fashion-MNIST: find (or fetch) the split's two IDX files, parse and cross-check them."""
    stems = _IDX_FILES[split]
    paths = {s: next((p for p in (data_dir / f"{s}.gz", data_dir / s) if p.is_file()), None) for s in stems}
    missing = [f"{s}.gz" for s, p in paths.items() if p is None]
    hint = "the official IDX .gz files"
    if missing and download:
        base = _MNIST_URL if name == "mnist" else _FASHION_URL
        try:
            for file in missing:
                download_file(base + file, data_dir / file, _MD5[name][file])
        except _OFFLINE as e:
            raise _not_found(name, data_dir, missing, hint, e) from e
        paths = {s: data_dir / f"{s}.gz" if p is None else p for s, p in paths.items()}
    elif missing:
        raise _not_found(name, data_dir, missing, hint)
    images_path, labels_path = paths[stems[0]], paths[stems[1]]
    images = read_idx(images_path, _IDX_IMAGES)  # (N, H, W)
    labels = read_idx(labels_path, _IDX_LABELS)  # (N,)
    if len(images) != len(labels):
        raise DataError(
            f"{images_path} holds {len(images)} images but {labels_path} holds {len(labels)} labels; "
            f"the two files are from different releases or one is damaged: {REFETCH_HINT}"
        )
    if labels.size and labels.max() >= 10:
        raise DataError(f"{labels_path} has label {labels.max()}, expected 0..9; {REFETCH_HINT}")
    return ImageDataset(
        images=torch.from_numpy(images).unsqueeze(1),  # (N, 1, H, W)
        labels=torch.from_numpy(labels).long(),
        class_names=list(CLASS_NAMES[name]),
        name=name,
        source=str(images_path.parent),
    )


# ------------------------------------------------------------------------------------------------------------
# CIFAR-10, official python format: pickled dicts {b'data': uint8 (N, 3072) channel-planar, b'labels': [int]}
# ------------------------------------------------------------------------------------------------------------

_CIFAR_DIR, _CIFAR_TAR = "cifar-10-batches-py", "cifar-10-python.tar.gz"
_CIFAR_BATCHES = {"train": [f"data_batch_{i}" for i in range(1, 6)], "test": ["test_batch"]}


_NP_RECONSTRUCT = np.zeros(0).__reduce__()[0]  # numpy.core or numpy._core .multiarray._reconstruct


class _CifarUnpickler(pickle.Unpickler):
    """Unpickles plain containers and numpy arrays only: a pickle naming any other callable is refused."""

    _ALLOWED = {  # numpy.core: pickled by numpy 1.x and Python 2 (the official files); numpy._core: numpy 2.x
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.multiarray", "_reconstruct"),
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
    }

    def find_class(self, module: str, name: str):
        if (module, name) not in self._ALLOWED:
            raise pickle.UnpicklingError(f"refusing to unpickle {module}.{name}: not part of a CIFAR-10 batch")
        return _NP_RECONSTRUCT if name == "_reconstruct" else getattr(np, name)


def _read_cifar_batch(f: BinaryIO, where: str) -> tuple[np.ndarray, np.ndarray]:
    """One batch file -> (images (N, 3, 32, 32) uint8, labels (N,) int64)."""
    try:
        batch = _CifarUnpickler(f, encoding="bytes").load()
        data, labels = np.asarray(batch[b"data"]), np.asarray(batch[b"labels"], dtype=np.int64)
    except Exception as e:
        raise DataError(f"{where} is not a CIFAR-10 python batch ({first_line(e)}); {REFETCH_HINT}") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(
            f"{where}: expected b'data' uint8 (N, 3072) and N labels, got {data.dtype} {data.shape} "
            f"and {len(labels)} labels; {REFETCH_HINT}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= 10):
        raise DataError(f"{where} has labels outside 0..9; {REFETCH_HINT}")
    return data.reshape(-1, 3, 32, 32), labels  # the 3072 bytes are 1024 R, then 1024 G, then 1024 B


def _cifar_batches(data_dir: Path, split: str, download: bool) -> tuple[list, str] | None:
    """The split's batches from the extracted folder or the official tar.gz; None when neither is there."""
    names = _CIFAR_BATCHES[split]
    for folder in (data_dir / _CIFAR_DIR, data_dir):
        if folder.is_dir() and all((folder / n).is_file() for n in names):
            batches = []
            for n in names:
                with open(folder / n, "rb") as f:
                    batches.append(_read_cifar_batch(f, str(folder / n)))
            return batches, str(folder)
    tar_path = data_dir if data_dir.is_file() else data_dir / _CIFAR_TAR
    if not tar_path.is_file() and download:
        download_file(_CIFAR_URL, tar_path, _MD5["cifar10"][_CIFAR_TAR])
    if not tar_path.is_file() or not tar_path.name.endswith(_CIFAR_TAR):
        return None
    found = {}
    try:
        with tarfile.open(tar_path, "r:*") as tf:
            for member in tf:  # in archive order, so the gzip stream is read once, forwards
                if member.isfile() and member.name.split("/")[-1] in names:
                    f = tf.extractfile(member)
                    found[member.name.split("/")[-1]] = _read_cifar_batch(f, f"{tar_path}:{member.name}")
    except (tarfile.TarError, OSError, EOFError, zlib.error) as e:
        raise DataError(f"{tar_path} is not a readable tar.gz ({first_line(e)}); {REFETCH_HINT}") from e
    if len(found) < len(names):
        missing = ", ".join(n for n in names if n not in found)
        raise DataError(f"{tar_path} lacks {missing}; {REFETCH_HINT}")
    return [found[n] for n in names], str(tar_path)


def load_cifar10(data_dir: Path, split: str, download: bool, **folder_options) -> ImageDataset:
    """CIFAR-10 from the official python batches, else from an image-folder tree of its ten classes."""
    try:
        result = _cifar_batches(data_dir, split, download)
    except _OFFLINE as e:
        raise _not_found("cifar10", data_dir, [_CIFAR_TAR], f"{_CIFAR_DIR}/ or {_CIFAR_TAR}", e) from e
    if result is not None:
        batches, source = result
        if folder_options["channels"] is not None or folder_options["image_size"] is not None:
            raise UsageError("channels and image_size apply to image folders, not to the official CIFAR-10 files")
        images = torch.from_numpy(np.concatenate([b[0] for b in batches]))  # (N, 3, 32, 32)
        labels = torch.from_numpy(np.concatenate([b[1] for b in batches]))  # (N,)
        return ImageDataset(images, labels, list(CLASS_NAMES["cifar10"]), "cifar10", source)
    has_tree = data_dir.is_dir() and (
        (data_dir / split).is_dir() or any(p.name.endswith(ARCHIVES) for p in data_dir.iterdir())
    )
    if not has_tree and not (data_dir.is_file() and data_dir.name.endswith(ARCHIVES)):
        raise _not_found("cifar10", data_dir, [f"{_CIFAR_DIR}/ or {_CIFAR_TAR}"], f"{_CIFAR_DIR}/ or {_CIFAR_TAR}")
    dataset = load_image_folder(data_dir, split, **folder_options)
    if dataset.class_names != CLASS_NAMES["cifar10"]:
        raise DataError(
            f"{dataset.source} holds classes {dataset.class_names}, not CIFAR-10's {CLASS_NAMES['cifar10']}; "
            f"pass --data-dir pointing at {_CIFAR_DIR}/, {_CIFAR_TAR} or a CIFAR-10 image-folder tree"
        )
    return ImageDataset(dataset.images, dataset.labels, dataset.class_names, "cifar10", dataset.source)
