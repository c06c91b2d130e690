"""Image folders, root/[train|test/]<class>/*.png|jpg|jpeg, as a directory or a tar(.gz) archive, with a cache.

Every file is decoded by `images.decode_image` (any bit depth to uint8). Decoding 50,000 JPEGs takes seconds,
so a decode slower than `CACHE_MIN_SECONDS` is written once (atomically) to an .npz under `default_cache_dir()`,
keyed by the source's paths, sizes and mtimes and the options.
"""

import contextlib
import functools
import hashlib
import json
import os
import tarfile
import time
import warnings
import zipfile
import zlib
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError, UsageError, first_line
from ..files import atomic_write
from .dataset import SPLITS, DatasetNotFoundError, ImageDataset, Split
from .images import decode_image

_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")
ARCHIVES = (".tar.gz", ".tgz", ".tar")
_FOLDER_FIX = "pass --data-dir pointing at root/<class>/*.png|jpg (or a .tar.gz of it)"
CACHE_MIN_SECONDS = 2.0  # decoding slower than this is cached (50,000 CIFAR-10 JPEGs: about 10 s on 2 cores)
_CACHE_VERSION = 2  # 2: 16-bit images scaled to 8 bits (data/images.py), no longer clipped


def default_cache_dir() -> Path:
    """$CLEARDIFFUSION_CACHE if set, else ~/.cache/cleardiffusion: decoded images, classifiers, reference statistics."""
    return Path(os.environ.get("CLEARDIFFUSION_CACHE") or Path.home() / ".cache" / "cleardiffusion").expanduser()


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
    archives = [p for p in entries if p.is_file() and p.name.endswith(ARCHIVES)]
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
        raise DataError(f"{source} is not a readable tar archive ({first_line(e)}); {_FOLDER_FIX}") from e


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
    """Write the decoded arrays atomically (`files.atomic_write`); a failure only warns."""
    try:
        with atomic_write(path) as f:
            arrays = {"images": dataset.images.numpy(), "labels": dataset.labels.numpy()}
            np.savez(f, **arrays, class_names=np.array(dataset.class_names), source=np.array(dataset.source))
    except OSError as e:
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
        raise UsageError(f"channels must be 1 or 3 (or None for automatic), got {channels!r}")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    size = (image_size, image_size) if isinstance(image_size, int) else image_size
    size = tuple(size) if size is not None else None
    source = _resolve_source(Path(data_dir).expanduser())
    cache = _cache_path(source, split, (channels, size), cache_dir)
    if (cached := _read_cache(cache)) is not None:
        return cached
    start = time.perf_counter()
    with _open_images(source) as readers:
        class_of = _select_split(list(readers), split, source)
        arrays = {rel: decode_image(readers[rel](), f"{source}/{rel}", channels, size) for rel in class_of}
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
