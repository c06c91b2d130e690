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

from pathlib import Path

from ..errors import DataError, UsageError
from .dataset import (
    CLASS_NAMES,
    DATASETS,
    SPLITS,
    ChecksumError,
    DatasetName,
    DatasetNotFoundError,
    ImageDataset,
    Split,
    check_labels,
    data_fingerprint,
    from_model_range,
    random_hflip,
    to_model_range,
)
from .folders import default_cache_dir, load_image_folder
from .images import decode_image
from .official import download_file, load_cifar10, load_idx_dataset, read_idx

__all__ = [
    "CLASS_NAMES",
    "DATASETS",
    "SPLITS",
    "ChecksumError",
    "DataError",
    "DatasetName",
    "DatasetNotFoundError",
    "ImageDataset",
    "Split",
    "check_labels",
    "data_fingerprint",
    "decode_image",
    "default_cache_dir",
    "download_file",
    "from_model_range",
    "load_dataset",
    "load_image_folder",
    "random_hflip",
    "read_idx",
    "to_model_range",
]


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
        raise UsageError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    if split not in SPLITS:
        raise UsageError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    data_dir = Path(data_dir).expanduser()
    folder_options = {"channels": channels, "image_size": image_size, "cache_dir": cache_dir}
    if name == "folder":
        if download:
            raise UsageError("download is available for mnist, fashion-mnist and cifar10, not for an image folder")
        return load_image_folder(data_dir, split, **folder_options)
    if name == "cifar10":
        return load_cifar10(data_dir, split, download, **folder_options)
    if channels is not None or image_size is not None:
        raise UsageError(f"channels and image_size apply to image folders, not to {name}")
    return load_idx_dataset(name, data_dir, split, download)
