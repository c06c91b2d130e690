"""Image datasets as uint8 tensors from the official files: MNIST, Fashion-MNIST, CIFAR-10, image folders.

Every reader returns an `ImageDataset` with images (N, C, H, W) uint8 and labels (N,) int64. The model works
in [-1, 1] (Ho et al. 2020, Sec. 3.3: "image data consists of integers in {0, 1, ..., 255} scaled linearly
to [-1, 1]"): `to_model_range` and `from_model_range` convert between the two.

| name            | files read from `data_dir`                                                              |
|-----------------|-----------------------------------------------------------------------------------------|
| `mnist`         | train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, t10k-* (or the same un-gzipped) |
| `fashion-mnist` | the same four IDX file names                                                            |
| `cifar10`       | cifar-10-batches-py/ or cifar-10-python.tar.gz; else an image-folder tree of its classes |
| `folder`        | root/<class>/*.png|jpg|jpeg, or a .tar.gz of it, with optional train/ and test/ subtrees |
"""

import contextlib
import functools
import gzip
import hashlib
import io
import json
import os
import pickle
import struct
import tarfile
import time
import urllib.error
import urllib.request
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal

import numpy as np
import torch
from PIL import Image

from .errors import DataError

DatasetName = Literal["mnist", "fashion-mnist", "cifar10", "folder"]
DATASETS: tuple[str, ...] = ("mnist", "fashion-mnist", "cifar10", "folder")
Split = Literal["train", "test"]
SPLITS: tuple[str, ...] = ("train", "test")

CLASS_NAMES: dict[str, list[str]] = {
    "mnist": [str(d) for d in range(10)],
    "fashion-mnist": ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat"]
    + ["Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"],
    "cifar10": ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"],
}
_DISPLAY = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
_REFETCH = "delete it and re-download, or pass --data-dir pointing at the official files"


class DatasetNotFoundError(DataError, FileNotFoundError):
    """The dataset's files are not in the directory given (and were not downloaded)."""


class ChecksumError(DataError):
    """A downloaded file whose md5 differs from the official one."""


@dataclass
class ImageDataset:
    """A labelled image dataset held in memory: images (N, C, H, W) uint8, labels (N,) int64."""

    images: torch.Tensor  # (N, C, H, W) uint8
    labels: torch.Tensor  # (N,) int64
    class_names: list[str]
    name: str
    source: str = ""  # the file or folder it was read from

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError(f"labels must be ({self.images.shape[0]},), got {tuple(self.labels.shape)}")
        self.images = self.images.contiguous()
        self.labels = self.labels.to(torch.int64)

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return self.images.shape[1]

    @property
    def image_size(self) -> tuple[int, int]:
        """(H, W)."""
        return (self.images.shape[2], self.images.shape[3])


# ------------------------------------------------------------------------------------------------------------
# Pixel range and augmentation
# ------------------------------------------------------------------------------------------------------------


def to_model_range(images: torch.Tensor) -> torch.Tensor:
    """uint8 {0..255} -> float32 [-1, 1]: x / 127.5 - 1."""
    if images.dtype != torch.uint8:
        raise ValueError(f"to_model_range expects uint8 images in 0..255, got {images.dtype}; already scaled?")
    return images.float() / 127.5 - 1.0


def from_model_range(x: torch.Tensor) -> torch.Tensor:
    """float [-1, 1] -> uint8 {0..255}: round((x + 1) * 127.5), clamped."""
    return ((x.float() + 1.0) * 127.5).clamp(0, 255).round().to(torch.uint8)


def random_hflip(x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mirror each image of x (B, C, H, W) left-right with probability 1/2, drawn on x's device."""
    flip = torch.rand(x.shape[0], generator=generator, device=x.device) < 0.5  # (B,)
    return torch.where(flip[:, None, None, None], x.flip(-1), x)  # (B, C, H, W)


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
    """Fetch url to dest through a temporary file; a wrong md5 deletes it and raises ChecksumError."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f"{dest.name}.part{os.getpid()}")
    digest = hashlib.md5()
    try:
        with urllib.request.urlopen(url, timeout=60) as response, open(tmp, "wb") as f:
            while chunk := response.read(1 << 20):
                digest.update(chunk)
                f.write(chunk)
        if digest.hexdigest() != md5:
            raise ChecksumError(
                f"checksum mismatch for {url}: expected md5 {md5}, got {digest.hexdigest()}; "
                f"the download was discarded, try again (or fetch it by hand into {dest.parent})"
            )
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    os.replace(tmp, dest)
    return dest


def _not_found(name: str, data_dir: Path, missing: list[str], hint: str, error: Exception | None = None):
    """The one message for missing dataset files: what is missing, and the two flags that fix it."""
    reason = f" (download failed: {error})" if error is not None else ""
    return DatasetNotFoundError(
        f"{_DISPLAY[name]} files not found in {data_dir} (missing: {', '.join(missing)}){reason}. "
        f"Pass --data-dir pointing at a folder with {hint}, or add --download to fetch them."
    )


# ------------------------------------------------------------------------------------------------------------
# MNIST and Fashion-MNIST: IDX files (big-endian header, then uint8 payload in row-major order)
# ------------------------------------------------------------------------------------------------------------

_IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
_IDX_IMAGES, _IDX_LABELS = 0x00000803, 0x00000801  # uint8 with 3 dims, uint8 with 1 dim


def _read_maybe_gzip(path: Path) -> bytes:
    """The bytes of path, gunzipped when it starts with the gzip magic 1f 8b (whatever its name)."""
    raw = path.read_bytes()
    if raw[:2] != b"\x1f\x8b":
        return raw
    try:
        return gzip.decompress(raw)
    except (OSError, EOFError, zlib.error) as e:
        raise DataError(f"{path} is a corrupt gzip file ({e}); {_REFETCH}") from e


def read_idx(path: str | Path, magic: int) -> np.ndarray:
    """One IDX file (gzipped or not) with the expected magic -> uint8 (count, rows, cols) or (count,)."""
    path = Path(path)
    raw = _read_maybe_gzip(path)
    ndim, header = magic & 0xFF, 4 + 4 * (magic & 0xFF)
    found = struct.unpack(">I", raw[:4])[0] if len(raw) >= 4 else None
    if found is not None and found != magic:
        kind = "images" if magic == _IDX_IMAGES else "labels"
        raise DataError(f"{path} is not an IDX {kind} file (magic 0x{found:08x}, expected 0x{magic:08x}); {_REFETCH}")
    if len(raw) < header:
        raise DataError(f"{path} is truncated: {len(raw)} bytes, shorter than its {header}-byte header; {_REFETCH}")
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    expected, payload = int(np.prod(dims)), len(raw) - header
    if payload != expected:
        problem = "is truncated" if payload < expected else "has trailing bytes"
        raise DataError(
            f"{path} {problem}: header promises {' x '.join(map(str, dims))} = {expected} bytes of data, "
            f"file holds {payload}; {_REFETCH}"
        )
    return np.frombuffer(raw, dtype=np.uint8, count=expected, offset=header).reshape(dims).copy()


def _load_idx_dataset(name: str, data_dir: Path, split: str, download: bool) -> ImageDataset:
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
            f"the two files are from different releases or one is damaged: {_REFETCH}"
        )
    if labels.size and labels.max() >= 10:
        raise DataError(f"{labels_path} has label {labels.max()}, expected 0..9; {_REFETCH}")
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
        raise DataError(f"{where} is not a CIFAR-10 python batch ({type(e).__name__}: {e}); {_REFETCH}") from e
    if data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or len(labels) != len(data):
        raise DataError(
            f"{where}: expected b'data' uint8 (N, 3072) and N labels, got {data.dtype} {data.shape} "
            f"and {len(labels)} labels; {_REFETCH}"
        )
    if labels.size and (labels.min() < 0 or labels.max() >= 10):
        raise DataError(f"{where} has labels outside 0..9; {_REFETCH}")
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
        raise DataError(f"{tar_path} is not a readable tar.gz ({e}); {_REFETCH}") from e
    if len(found) < len(names):
        missing = ", ".join(n for n in names if n not in found)
        raise DataError(f"{tar_path} lacks {missing}; {_REFETCH}")
    return [found[n] for n in names], str(tar_path)


def _load_cifar10(data_dir: Path, split: str, download: bool, **folder_options) -> ImageDataset:
    """CIFAR-10 from the official python batches, else from an image-folder tree of its ten classes."""
    try:
        result = _cifar_batches(data_dir, split, download)
    except _OFFLINE as e:
        raise _not_found("cifar10", data_dir, [_CIFAR_TAR], f"{_CIFAR_DIR}/ or {_CIFAR_TAR}", e) from e
    if result is not None:
        batches, source = result
        if folder_options["channels"] is not None or folder_options["image_size"] is not None:
            raise ValueError("channels and image_size apply to image folders, not to the official CIFAR-10 files")
        images = torch.from_numpy(np.concatenate([b[0] for b in batches]))  # (N, 3, 32, 32)
        labels = torch.from_numpy(np.concatenate([b[1] for b in batches]))  # (N,)
        return ImageDataset(images, labels, list(CLASS_NAMES["cifar10"]), "cifar10", source)
    has_tree = data_dir.is_dir() and (
        (data_dir / split).is_dir() or any(p.name.endswith(_ARCHIVES) for p in data_dir.iterdir())
    )
    if not has_tree and not (data_dir.is_file() and data_dir.name.endswith(_ARCHIVES)):
        raise _not_found("cifar10", data_dir, [f"{_CIFAR_DIR}/ or {_CIFAR_TAR}"], f"{_CIFAR_DIR}/ or {_CIFAR_TAR}")
    dataset = load_image_folder(data_dir, split, **folder_options)
    if dataset.class_names != CLASS_NAMES["cifar10"]:
        raise DataError(
            f"{dataset.source} holds classes {dataset.class_names}, not CIFAR-10's {CLASS_NAMES['cifar10']}; "
            f"pass --data-dir pointing at {_CIFAR_DIR}/, {_CIFAR_TAR} or a CIFAR-10 image-folder tree"
        )
    return ImageDataset(dataset.images, dataset.labels, dataset.class_names, "cifar10", dataset.source)


# ------------------------------------------------------------------------------------------------------------
# Image folders: root/[train|test/]<class>/*.png|jpg|jpeg, as a directory or a tar(.gz) archive
# ------------------------------------------------------------------------------------------------------------

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
_ARCHIVES = (".tar.gz", ".tgz", ".tar")
_GRAY_MODES = {"1", "L", "LA", "I", "I;16", "F"}
_FOLDER_FIX = "pass --data-dir pointing at root/<class>/*.png|jpg (or a .tar.gz of it)"
CACHE_MIN_SECONDS = 2.0  # decoding slower than this is cached (50,000 CIFAR-10 JPEGs: about 10 s on 2 cores)
_CACHE_VERSION = 1


def default_cache_dir() -> Path:
    """$CLEARDIFFUSION_CACHE if set, else ~/.cache/cleardiffusion."""
    return Path(os.environ.get("CLEARDIFFUSION_CACHE") or Path.home() / ".cache" / "cleardiffusion")


def _is_image(relpath: str) -> bool:
    """An image file by its suffix, skipping hidden files and macOS resource forks."""
    hidden = any(part.startswith(".") or part == "__MACOSX" for part in relpath.split("/"))
    return relpath.lower().endswith(_IMAGE_SUFFIXES) and not hidden


def _resolve_source(data_dir: Path) -> Path:
    """The tree itself: data_dir if it is an archive or has subfolders, else the one archive inside it."""
    if data_dir.is_file():
        return data_dir
    if not data_dir.is_dir():
        raise DatasetNotFoundError(f"image folder {data_dir} does not exist; {_FOLDER_FIX}")
    entries = [p for p in data_dir.iterdir() if not p.name.startswith(".")]
    archives = [p for p in entries if p.is_file() and p.name.endswith(_ARCHIVES)]
    if any(p.is_dir() for p in entries) or len(archives) != 1:
        return data_dir
    return archives[0]


@contextlib.contextmanager
def _open_images(source: Path) -> Iterator[dict[str, Callable[[], bytes]]]:
    """Relative path -> reader of its bytes, for each image in a directory or an archive, in storage order."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        yield {rel: p.read_bytes for p in files if _is_image(rel := p.relative_to(source).as_posix())}
        return
    try:
        with tarfile.open(source, "r:*") as tf:
            members = [m for m in tf.getmembers() if m.isfile() and _is_image(m.name)]
            yield {m.name.removeprefix("./"): functools.partial(_read_member, tf, m) for m in members}
    except (tarfile.TarError, EOFError, zlib.error) as e:
        raise DataError(f"{source} is not a readable tar archive ({e}); {_FOLDER_FIX}") from e


def _read_member(tf: tarfile.TarFile, member: tarfile.TarInfo) -> bytes:
    return tf.extractfile(member).read()


def _select_split(relpaths: list[str], split: str, source: Path) -> dict[str, str]:
    """Relative path -> class name for the split's images: root[/<split>]/<class>/.../<file>."""
    parts = {rel: rel.split("/") for rel in relpaths}
    if not parts:
        raise DataError(f"{source} holds no {'/'.join(_IMAGE_SUFFIXES)} images; {_FOLDER_FIX}")
    while source.is_file() and len({p[0] for p in parts.values()}) == 1 and min(map(len, parts.values())) >= 3:
        if next(iter(parts.values()))[0] in SPLITS:
            break
        parts = {rel: p[1:] for rel, p in parts.items()}  # an archive of `mydata/`: look inside the wrapper
    present = sorted({p[0] for p in parts.values()} & set(SPLITS))
    if present and split not in present:
        raise DataError(f"{source} has no {split}/ subtree (found {', '.join(present)}/); pick another split")
    if present:
        parts = {rel: p[1:] for rel, p in parts.items() if p[0] == split}
    elif split != "train":
        raise DataError(f"{source} has no train/ and test/ subfolders, so it holds only a train split")
    for rel, p in parts.items():
        if len(p) < 2:
            raise DataError(f"{source}: {rel} is not inside a class folder; put images in root/<class>/")
    return {rel: p[0] for rel, p in parts.items()}


def _decode(data: bytes, where: str, channels: int | None, size: tuple[int, int] | None) -> np.ndarray:
    """One image file -> uint8 (H, W) if grayscale (or channels=1), else (H, W, 3); resized if size given."""
    try:
        with Image.open(io.BytesIO(data)) as im:
            gray = channels == 1 or (channels is None and im.mode in _GRAY_MODES)
            im = im.convert("L" if gray else "RGB")
            if size is not None and im.size != (size[1], size[0]):
                im = im.resize((size[1], size[0]), Image.Resampling.BICUBIC)  # PIL sizes are (W, H)
            return np.asarray(im)
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as e:
        raise DataError(f"{where} is not a readable image ({e}); delete or replace it") from e


def _cache_path(source: Path, split: str, options: tuple, cache_dir: str | Path | None) -> Path:
    """Cache file keyed by the source's path, sizes and mtimes, the split and the decoding options."""
    if source.is_dir():
        files = sorted(p for p in source.rglob("*") if p.is_file())
        stats = [(p.relative_to(source).as_posix(), p.stat().st_size, p.stat().st_mtime_ns) for p in files]
    else:
        stats = [source.stat().st_size, source.stat().st_mtime_ns]
    key = json.dumps([_CACHE_VERSION, str(source.resolve()), stats, split, options])
    digest = hashlib.sha256(key.encode()).hexdigest()[:16]
    return Path(cache_dir or default_cache_dir()).expanduser() / f"{source.name}-{split}-{digest}.npz"


def _read_cache(path: Path) -> ImageDataset | None:
    """The cached dataset, or None if absent or unreadable (it is then rebuilt)."""
    try:
        with np.load(path, allow_pickle=False) as z:
            images, labels = torch.from_numpy(z["images"]), torch.from_numpy(z["labels"])
            return ImageDataset(images, labels, [str(c) for c in z["class_names"]], "folder", str(z["source"]))
    except (OSError, ValueError, KeyError, zipfile.BadZipFile):
        return None


def _write_cache(path: Path, dataset: ImageDataset) -> None:
    """Write the decoded arrays atomically (temporary file + os.replace); a failure only warns."""
    tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as f:
            arrays = {"images": dataset.images.numpy(), "labels": dataset.labels.numpy()}
            np.savez(f, **arrays, class_names=np.array(dataset.class_names), source=np.array(dataset.source))
        os.replace(tmp, path)
    except OSError as e:
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not cache decoded images at {path} ({e}); set CLEARDIFFUSION_CACHE", stacklevel=3)


def load_image_folder(
    data_dir: str | Path,
    split: Split = "train",
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
) -> ImageDataset:
    """Images under root/<class>/ (classes = sorted folder names); root/train/ and root/test/ select a split.

    Args:
        data_dir: the root folder, a .tar.gz of it, or a folder holding exactly one such archive.
        channels: 1 (grayscale) or 3 (RGB); default 3 unless every image is grayscale.
        image_size: resize every image to this (H, W) (or square side); without it all sizes must agree.
        cache_dir: where decoding slower than CACHE_MIN_SECONDS is cached; default `default_cache_dir()`.
    """
    if channels not in (None, 1, 3):
        raise ValueError(f"channels must be 1 or 3 (or None for automatic), got {channels!r}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    size = tuple(size) if size is not None else None
    source = _resolve_source(Path(data_dir).expanduser())
    cache = _cache_path(source, split, (channels, size), cache_dir)
    if (cached := _read_cache(cache)) is not None:
        return cached
    start = time.perf_counter()
    with _open_images(source) as readers:
        class_of = _select_split(list(readers), split, source)
        arrays = {rel: _decode(readers[rel](), f"{source}/{rel}", channels, size) for rel in class_of}
    class_names = sorted(set(class_of.values()))
    label_of = {c: i for i, c in enumerate(class_names)}
    rels = sorted(arrays, key=lambda rel: (label_of[class_of[rel]], rel))  # by class, then by file name
    first = arrays[rels[0]].shape[:2]
    for rel in rels:
        if arrays[rel].shape[:2] != first:
            raise DataError(
                f"{source}/{rel} has (H, W) = {arrays[rel].shape[:2]} but {source}/{rels[0]} has {first}; "
                "all images must share one size: pass an image size (--image-size) to resize them"
            )
    colour = any(a.ndim == 3 for a in arrays.values())
    if colour:  # some images were grayscale and channels was automatic: L -> RGB repeats the plane
        images = np.stack([a if a.ndim == 3 else np.repeat(a[..., None], 3, axis=2) for a in map(arrays.get, rels)])
        images = images.transpose(0, 3, 1, 2)  # (N, H, W, 3) -> (N, 3, H, W)
    else:
        images = np.stack([arrays[rel] for rel in rels])[:, None]  # (N, 1, H, W)
    labels = np.array([label_of[class_of[rel]] for rel in rels], dtype=np.int64)
    images = torch.from_numpy(np.ascontiguousarray(images))
    dataset = ImageDataset(images, torch.from_numpy(labels), class_names, "folder", str(source))
    if time.perf_counter() - start > CACHE_MIN_SECONDS:
        _write_cache(cache, dataset)
    return dataset


# ------------------------------------------------------------------------------------------------------------
# The one entry point
# ------------------------------------------------------------------------------------------------------------


def load_dataset(
    name: DatasetName,
    data_dir: str | Path,
    split: Split = "train",
    download: bool = False,
    *,
    channels: int | None = None,
    image_size: int | tuple[int, int] | None = None,
    cache_dir: str | Path | None = None,
) -> ImageDataset:
    """Read the named dataset's split from data_dir (fetching the official files first if download is set).

    Args:
        channels, image_size, cache_dir: image folders only (see `load_image_folder`).
    """
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    data_dir = Path(data_dir).expanduser()
    folder_options = {"channels": channels, "image_size": image_size, "cache_dir": cache_dir}
    if name == "folder":
        if download:
            raise ValueError("download is available for mnist, fashion-mnist and cifar10, not for an image folder")
        return load_image_folder(data_dir, split, **folder_options)
    if name == "cifar10":
        return _load_cifar10(data_dir, split, download, **folder_options)
    if channels is not None or image_size is not None:
        raise ValueError(f"channels and image_size apply to image folders, not to {name}")
    return _load_idx_dataset(name, data_dir, split, download)
