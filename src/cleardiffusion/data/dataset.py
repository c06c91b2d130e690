"""The in-memory dataset type, dataset names and class names, the model's pixel range, checks of labels and data."""

import hashlib
import json
from dataclasses import dataclass
from typing import Literal

import torch

from ..errors import DataError

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
DISPLAY_NAMES = {"mnist": "MNIST", "fashion-mnist": "Fashion-MNIST", "cifar10": "CIFAR-10"}
REFETCH_HINT = "delete it and re-download, or pass --data-dir pointing at the official files"


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
# Checks: labels within the classes, and a fingerprint that tells one dataset from another
# ------------------------------------------------------------------------------------------------------------


def check_labels(labels: torch.Tensor, num_classes: int, where: str) -> None:
    """DataError naming the first label outside 0..num_classes-1 (e.g. -1, or 1500 for ten classes)."""
    if labels.numel() == 0:
        return
    bad = (labels < 0) | (labels >= num_classes)  # (N,)
    if bad.any():
        i = int(bad.nonzero()[0, 0])
        raise DataError(
            f"{where}: label {int(labels[i])} (at index {i}) is not one of the dataset's {num_classes} classes "
            f"0..{num_classes - 1}; fix the labels, or evaluate without them"
        )


FINGERPRINT_IMAGES = 1024  # images hashed, evenly spaced over the dataset: a few milliseconds for any dataset


def data_fingerprint(dataset: ImageDataset) -> dict:
    """{"n", "image_shape", "num_classes", "sha256"} of a dataset: its size, shape, every label, the class names
    and FINGERPRINT_IMAGES evenly spaced images, hashed. Equal for the same files read again; a dataset
    that differs only in images outside the sample is not told apart (cheap enough for every checkpoint)."""
    n = len(dataset)
    index = torch.linspace(0, n - 1, min(n, FINGERPRINT_IMAGES)).round().long() if n else torch.zeros(0).long()
    h = hashlib.sha256()
    h.update(json.dumps([list(dataset.images.shape), dataset.class_names]).encode())
    h.update(dataset.labels.cpu().numpy().tobytes())
    h.update(dataset.images[index].cpu().contiguous().numpy().tobytes())
    shape = list(dataset.images.shape[1:])
    return {"n": n, "image_shape": shape, "num_classes": dataset.num_classes, "sha256": h.hexdigest()}
