"""Feature extractors for the metrics in evaluate.py: a small per-dataset CNN (the FID Inception-v3: inception.py).

- `SmallClassifier`: a CPU-friendly CNN trained on the dataset itself; its penultimate layer (D = 128) gives
  features for FID/KID/precision-recall on MNIST-sized data, its softmax the classifier score and accuracy.
  The package ships one trained network per known dataset (reference/<dataset>.pt, SHA-256 in
  REFERENCE_SHA256, checked on every load), so every user's FIDs are on the same scale.
- `inception.FIDInceptionV3`: the network of pytorch-fid, whose 2048-d features make FIDs comparable with
  published numbers (for RGB data at least).
"""

import hashlib
import math
import time
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from .checkpoint import check_finite, read_torch_file
from .data.dataset import to_model_range
from .errors import CheckpointError, UsageError, first_line
from .files import atomic_write

CLASSIFIER_FORMAT = "cleardiffusion-classifier-v1"


class FeatureExtractor(Protocol):
    """Maps uint8 images (B, C, H, W) to float64 features (B, D); `name` and `weights_sha256` key caches."""

    name: str
    weights_sha256: str

    def __call__(self, images: torch.Tensor) -> np.ndarray: ...

    def features_and_logits(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray | None]: ...


def state_dict_sha256(model: nn.Module) -> str:
    """Checksum of a model's weights (names, shapes and bytes), independent of how they were saved."""
    h = hashlib.sha256()
    for key, value in sorted(model.state_dict().items()):
        h.update(key.encode())
        h.update(str(tuple(value.shape)).encode())
        h.update(value.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()


# ----------------------------------------------------------------------------------------------------------
# The small classifier


def _conv_bn(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


class SmallClassifier(nn.Module):
    """Three conv-BN-ReLU-maxpool stages, a 3x3 adaptive pool, a D-dim hidden layer (the features), logits.

    About 2 M multiply-adds per 28x28 image at width 16, so 10k images take seconds on a laptop CPU.
    """

    def __init__(self, in_channels: int, num_classes: int, image_size: int, width: int = 16, feature_dim: int = 128):
        super().__init__()
        if image_size < 12:
            raise UsageError(f"the classifier needs images of at least 12x12 pixels, got {image_size}")
        self.config = dict(
            in_channels=in_channels,
            num_classes=num_classes,
            image_size=image_size,
            width=width,
            feature_dim=feature_dim,
        )
        w = width
        self.body = nn.Sequential(
            _conv_bn(in_channels, w), nn.MaxPool2d(2),  # (B, w, H/2, W/2)
            _conv_bn(w, 2 * w), nn.MaxPool2d(2),  # (B, 2w, H/4, W/4)
            _conv_bn(2 * w, 4 * w), nn.AdaptiveAvgPool2d(3), nn.Flatten(),  # (B, 36w)
        )  # fmt: skip
        self.hidden = nn.Sequential(nn.Linear(36 * w, feature_dim), nn.ReLU())
        self.dropout = nn.Dropout(0.2)
        self.head = nn.Linear(feature_dim, num_classes)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer activations (B, D) of images x in [-1, 1] (B, C, H, W)."""
        return self.hidden(self.body(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (B, num_classes)."""
        return self.head(self.dropout(self.features(x)))


def _random_shift(x: torch.Tensor, max_shift: int, generator: torch.Generator) -> torch.Tensor:
    """Translate each image by an integer offset in [-max_shift, max_shift]^2, padding with edge pixels."""
    B, _, H, W = x.shape
    padded = F.pad(x, (max_shift,) * 4, mode="replicate")  # (B, C, H + 2s, W + 2s)
    dy, dx = torch.randint(0, 2 * max_shift + 1, (2, B), generator=generator)
    rows = (dy[:, None] + torch.arange(H))[:, :, None]  # (B, H, 1)
    cols = (dx[:, None] + torch.arange(W))[:, None, :]  # (B, 1, W)
    return padded[torch.arange(B)[:, None, None], :, rows, cols].permute(0, 3, 1, 2)  # (B, C, H, W)


@torch.no_grad()
def classifier_accuracy(
    model: SmallClassifier, images: torch.Tensor, labels: torch.Tensor, batch_size: int = 1000
) -> float:
    """Top-1 accuracy of `model` on uint8 images (N, C, H, W)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for s in range(0, len(images), batch_size):
        x = to_model_range(images[s : s + batch_size].to(device))
        correct += int((model(x).argmax(1).cpu() == labels[s : s + batch_size]).sum())
    return correct / len(images)


def train_classifier(
    dataset_train: Any,
    dataset_test: Any,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
    progress: bool = True,
    width: int | None = None,
) -> tuple[SmallClassifier, float]:
    """Train a SmallClassifier with AdamW + one-cycle LR and random shifts (and flips for RGB).

    Datasets are data.ImageDataset-like: uint8 `images` (N, C, H, W), int64 `labels`, `num_classes`.
    Returns the model in eval mode and its test accuracy.
    """
    if epochs < 1:
        raise UsageError(f"--epochs must be at least 1, got {epochs}")
    if not 1 <= batch_size <= len(dataset_train.images):
        raise UsageError(
            f"--batch-size must lie in 1..{len(dataset_train.images)} (the training images), got {batch_size}"
        )
    if not (math.isfinite(lr) and lr > 0):
        raise UsageError(f"--lr must be a positive number, got {lr}")
    # Initialisation and dropout draw from the global RNG: seed a fork of it, leaving the caller's untouched.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        _, C, H, _ = dataset_train.images.shape
        model = SmallClassifier(C, int(dataset_train.num_classes), H, width=width or (32 if C == 3 else 16))
        _fit(model.to(device), dataset_train, dataset_test, epochs, batch_size, lr, seed, device, progress)
    return model.eval(), classifier_accuracy(model, dataset_test.images, dataset_test.labels)


def _fit(model, dataset_train, dataset_test, epochs, batch_size, lr, seed, device, progress) -> None:
    """The training loop of `train_classifier`; shuffles and augmentations use a generator seeded by seed."""
    g = torch.Generator().manual_seed(seed)
    images, labels = dataset_train.images, dataset_train.labels
    C = images.shape[1]
    opt = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=5e-4)
    steps_per_epoch = len(images) // batch_size
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        order = torch.randperm(len(images), generator=g)
        total = 0.0
        for step in range(steps_per_epoch):
            idx = order[step * batch_size : (step + 1) * batch_size]
            x = to_model_range(images[idx])  # (B, C, H, W) in [-1, 1]
            x = _random_shift(x, 2, g)
            if C == 3:  # horizontal flips suit natural images, not digits
                flip = torch.rand(len(x), generator=g) < 0.5
                x = torch.where(flip[:, None, None, None], x.flip(3), x)
            loss = F.cross_entropy(model(x.to(device)), labels[idx].to(device), label_smoothing=0.05)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += loss.item()
        if progress:
            acc = classifier_accuracy(model, dataset_test.images, dataset_test.labels)
            print(f"epoch {epoch + 1}/{epochs}: loss {total / steps_per_epoch:.4f}, test accuracy {acc:.4f}, "
                  f"{time.perf_counter() - start:.0f} s", flush=True)  # fmt: skip


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """torch.save through `files.atomic_write`: a crash never leaves a half-written file."""
    with atomic_write(path) as f:
        torch.save(obj, f)


def save_classifier(path: str | Path, model: SmallClassifier, meta: dict[str, Any]) -> None:
    """Save weights + config (in_channels, num_classes, image_size, width, feature_dim) + meta atomically."""
    config = {**model.config, **meta}
    atomic_torch_save({"format": CLASSIFIER_FORMAT, "config": config, "state_dict": model.state_dict()}, path)


def load_classifier(path: str | Path, device: str = "cpu") -> tuple[SmallClassifier, dict[str, Any]]:
    """Load a file written by save_classifier; a missing, corrupt, foreign or NaN/inf file raises CheckpointError."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"classifier file {path} not found; create it with "
            "`cleardiffusion train-classifier --dataset D --data-dir PATH --out FILE`"
        )
    ckpt = read_torch_file(path, device, "classifier from `cleardiffusion train-classifier`")
    if not isinstance(ckpt, dict) or ckpt.get("format") != CLASSIFIER_FORMAT:
        raise CheckpointError(f"{path} is not a cleardiffusion classifier (no '{CLASSIFIER_FORMAT}' marker)")
    config = ckpt.get("config")
    keys = ("in_channels", "num_classes", "image_size", "width", "feature_dim")
    if not isinstance(config, dict) or not all(isinstance(config.get(k), int) and config[k] > 0 for k in keys):
        raise CheckpointError(f"{path} lacks a classifier configuration ({', '.join(keys)}); train it again")
    try:
        model = SmallClassifier(**{k: config[k] for k in keys}).to(device)
        model.load_state_dict(ckpt.get("state_dict"))
    except (RuntimeError, TypeError, ValueError, AttributeError) as e:
        raise CheckpointError(f"{path}: weights do not match the saved configuration ({first_line(e)})") from None
    # NaN weights (a diverged training run) would make every feature NaN and every metric fail later
    check_finite(model.state_dict(), "classifier weights", path, "train it with `cleardiffusion train-classifier`")
    return model.eval(), config


class _BatchedFeatures:
    """A FeatureExtractor that runs `model` over uint8 images in batches; subclasses map one batch."""

    def __init__(self, model: nn.Module, batch_size: int, device: str):
        self.model = model.to(device).eval()
        self.weights_sha256 = state_dict_sha256(model)
        self.batch_size, self.device = batch_size, device

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(b, C, H, W) uint8 on the device -> features (b, D), logits (b, K)."""
        raise NotImplementedError

    @torch.no_grad()
    def features_and_logits(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        feats, logits = [], []
        for s in range(0, len(images), self.batch_size):
            f, lg = self._batch(images[s : s + self.batch_size].to(self.device))
            feats.append(f.double().cpu())
            logits.append(lg.double().cpu())
        return torch.cat(feats).numpy(), torch.cat(logits).numpy()

    def __call__(self, images: torch.Tensor) -> np.ndarray:
        return self.features_and_logits(images)[0]


class ClassifierFeatures(_BatchedFeatures):
    """FeatureExtractor from a trained SmallClassifier: features (B, D) and logits (B, K).

    `file_sha256` is the SHA-256 of the file the network was read from (None for a network built in memory):
    every JSON of scores names it as "features_sha256".
    """

    def __init__(
        self,
        model: SmallClassifier,
        dataset: str,
        batch_size: int = 1000,
        device: str = "cpu",
        file_sha256: str | None = None,
    ):
        super().__init__(model, batch_size, device)
        self.name = f"classifier:{dataset}"
        self.file_sha256 = file_sha256

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.features(to_model_range(images))  # (b, C, H, W) in [-1, 1]
        return f, self.model.head(f)


# ----------------------------------------------------------------------------------------------------------
# The reference networks shipped with the package (benchmarks/reference_classifiers.py trains them)

REFERENCE_DIR = Path(__file__).resolve().parent / "reference"
REFERENCE_SHA256 = {  # sha256sum of src/cleardiffusion/reference/<dataset>.pt
    "mnist": "a979a5fc5b84b323a20c7a3861acd9d7d088e0f0d22179d6bb9a1b7f01d8b9f0",
    "fashion-mnist": "6cdfd8336c69d94907d4f811dfd7555c1f3d087b4f5a58f3f77c94c105eca37e",
    "cifar10": "ed3065b9bf1d584ee8dfc141f69882ce655f2ca76897e0ae4dc16ef943adc471",
}


def file_sha256(path: str | Path) -> str:
    """SHA-256 of a file's bytes (what `sha256sum` prints)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def reference_classifier_path(dataset: str) -> Path | None:
    """The shipped classifier of mnist, fashion-mnist or cifar10 after its SHA-256 check; None for other data.

    A missing or altered file raises a one-line CheckpointError: scores from another network would silently
    be on another scale.
    """
    expected = REFERENCE_SHA256.get(dataset)
    if expected is None:
        return None
    path = REFERENCE_DIR / f"{dataset}.pt"
    if not path.is_file():
        raise CheckpointError(f"the reference {dataset} classifier {path} is missing; reinstall cleardiffusion")
    digest = file_sha256(path)
    if digest != expected:
        raise CheckpointError(
            f"{path} has SHA-256 {digest[:16]}..., not the reference {expected[:16]}...: the file was changed; "
            "reinstall cleardiffusion, or pass --classifier FILE to score with another network"
        )
    return path
