"""Feature extractors for the metrics in evaluate.py: a small per-dataset CNN and the FID Inception-v3.

- `SmallClassifier`: a CPU-friendly CNN trained on the dataset itself; its penultimate layer (D = 128) gives
  features for FID/KID/precision-recall on MNIST-sized data, its softmax the classifier score and accuracy.
- `FIDInceptionV3`: the network of pytorch-fid (Heusel et al. 2017's TensorFlow graph ported to PyTorch),
  written here in plain torch so that `pt_inception-2015-12-05-6726825d.pth` loads with its own key names.
  Its 2048-d pool features make FIDs comparable with published numbers (for RGB data at least).
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

from .checkpoint import read_torch_file
from .errors import CheckpointError, UsageError, first_line
from .files import atomic_write

INCEPTION_FILE = "pt_inception-2015-12-05-6726825d.pth"
INCEPTION_URL = f"https://github.com/mseitzer/pytorch-fid/releases/download/fid_weights/{INCEPTION_FILE}"
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
        x = images[s : s + batch_size].to(device).float() / 127.5 - 1
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
            x = images[idx].float() / 127.5 - 1  # (B, C, H, W) in [-1, 1]
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
    """Load a file written by save_classifier; a missing, corrupt or foreign file raises CheckpointError."""
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
    """FeatureExtractor from a trained SmallClassifier: features (B, D) and logits (B, K)."""

    def __init__(self, model: SmallClassifier, dataset: str, batch_size: int = 1000, device: str = "cpu"):
        super().__init__(model, batch_size, device)
        self.name = f"classifier:{dataset}"

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = self.model.features(images.float() / 127.5 - 1)  # (b, C, H, W) in [-1, 1]
        return f, self.model.head(f)


# ----------------------------------------------------------------------------------------------------------
# Inception-v3 for FID (Szegedy et al. 2016; the TF graph of Heusel et al. 2017 as ported by pytorch-fid).
# Module names follow torchvision's Inception3 so that the state dict keys match the released file.


class BasicConv2d(nn.Module):
    """conv (no bias) -> BatchNorm(eps=1e-3) -> ReLU."""

    def __init__(self, c_in: int, c_out: int, **kwargs: Any):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, bias=False, **kwargs)
        self.bn = nn.BatchNorm2d(c_out, eps=0.001)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.relu(self.bn(self.conv(x)))


def _tf_avg_pool(x: torch.Tensor) -> torch.Tensor:
    """TensorFlow's 3x3 average pool: padded zeros are not counted in the mean (the FID patch)."""
    return F.avg_pool2d(x, kernel_size=3, stride=1, padding=1, count_include_pad=False)


class FIDInceptionA(nn.Module):
    def __init__(self, c_in: int, pool_features: int):
        super().__init__()
        self.branch1x1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch5x5_1 = BasicConv2d(c_in, 48, kernel_size=1)
        self.branch5x5_2 = BasicConv2d(48, 64, kernel_size=5, padding=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, padding=1)
        self.branch_pool = BasicConv2d(c_in, pool_features, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch1x1(x), b5, b3, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionB(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3 = BasicConv2d(c_in, 384, kernel_size=3, stride=2)
        self.branch3x3dbl_1 = BasicConv2d(c_in, 64, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(64, 96, kernel_size=3, padding=1)
        self.branch3x3dbl_3 = BasicConv2d(96, 96, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        return torch.cat([self.branch3x3(x), b3, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionC(nn.Module):
    def __init__(self, c_in: int, channels_7x7: int):
        super().__init__()
        c7 = channels_7x7
        self.branch1x1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7_2 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7_3 = BasicConv2d(c7, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_1 = BasicConv2d(c_in, c7, kernel_size=1)
        self.branch7x7dbl_2 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_3 = BasicConv2d(c7, c7, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7dbl_4 = BasicConv2d(c7, c7, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7dbl_5 = BasicConv2d(c7, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b7 = self.branch7x7_3(self.branch7x7_2(self.branch7x7_1(x)))
        bd = self.branch7x7dbl_1(x)
        for layer in (self.branch7x7dbl_2, self.branch7x7dbl_3, self.branch7x7dbl_4, self.branch7x7dbl_5):
            bd = layer(bd)
        return torch.cat([self.branch1x1(x), b7, bd, self.branch_pool(_tf_avg_pool(x))], 1)


class InceptionD(nn.Module):
    def __init__(self, c_in: int):
        super().__init__()
        self.branch3x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch3x3_2 = BasicConv2d(192, 320, kernel_size=3, stride=2)
        self.branch7x7x3_1 = BasicConv2d(c_in, 192, kernel_size=1)
        self.branch7x7x3_2 = BasicConv2d(192, 192, kernel_size=(1, 7), padding=(0, 3))
        self.branch7x7x3_3 = BasicConv2d(192, 192, kernel_size=(7, 1), padding=(3, 0))
        self.branch7x7x3_4 = BasicConv2d(192, 192, kernel_size=3, stride=2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_2(self.branch3x3_1(x))
        b7 = self.branch7x7x3_4(self.branch7x7x3_3(self.branch7x7x3_2(self.branch7x7x3_1(x))))
        return torch.cat([b3, b7, F.max_pool2d(x, kernel_size=3, stride=2)], 1)


class FIDInceptionE(nn.Module):
    """InceptionE; pool="avg" is pytorch-fid's FIDInceptionE_1 (Mixed_7b), pool="max" its E_2 (Mixed_7c)."""

    def __init__(self, c_in: int, pool: str):
        super().__init__()
        self.pool = pool
        self.branch1x1 = BasicConv2d(c_in, 320, kernel_size=1)
        self.branch3x3_1 = BasicConv2d(c_in, 384, kernel_size=1)
        self.branch3x3_2a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3_2b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch3x3dbl_1 = BasicConv2d(c_in, 448, kernel_size=1)
        self.branch3x3dbl_2 = BasicConv2d(448, 384, kernel_size=3, padding=1)
        self.branch3x3dbl_3a = BasicConv2d(384, 384, kernel_size=(1, 3), padding=(0, 1))
        self.branch3x3dbl_3b = BasicConv2d(384, 384, kernel_size=(3, 1), padding=(1, 0))
        self.branch_pool = BasicConv2d(c_in, 192, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b3 = self.branch3x3_1(x)
        b3 = torch.cat([self.branch3x3_2a(b3), self.branch3x3_2b(b3)], 1)
        bd = self.branch3x3dbl_2(self.branch3x3dbl_1(x))
        bd = torch.cat([self.branch3x3dbl_3a(bd), self.branch3x3dbl_3b(bd)], 1)
        # The TF graph uses a max pool in the last block (likely a bug there; kept for comparable FIDs).
        pooled = _tf_avg_pool(x) if self.pool == "avg" else F.max_pool2d(x, kernel_size=3, stride=1, padding=1)
        return torch.cat([self.branch1x1(x), b3, bd, self.branch_pool(pooled)], 1)


class FIDInceptionV3(nn.Module):
    """Inception-v3 of the FID reference: 2048-d pool3 features and 1008 logits (no aux head)."""

    def __init__(self):
        super().__init__()
        self.Conv2d_1a_3x3 = BasicConv2d(3, 32, kernel_size=3, stride=2)
        self.Conv2d_2a_3x3 = BasicConv2d(32, 32, kernel_size=3)
        self.Conv2d_2b_3x3 = BasicConv2d(32, 64, kernel_size=3, padding=1)
        self.Conv2d_3b_1x1 = BasicConv2d(64, 80, kernel_size=1)
        self.Conv2d_4a_3x3 = BasicConv2d(80, 192, kernel_size=3)
        self.Mixed_5b = FIDInceptionA(192, pool_features=32)
        self.Mixed_5c = FIDInceptionA(256, pool_features=64)
        self.Mixed_5d = FIDInceptionA(288, pool_features=64)
        self.Mixed_6a = InceptionB(288)
        self.Mixed_6b = FIDInceptionC(768, channels_7x7=128)
        self.Mixed_6c = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6d = FIDInceptionC(768, channels_7x7=160)
        self.Mixed_6e = FIDInceptionC(768, channels_7x7=192)
        self.Mixed_7a = InceptionD(768)
        self.Mixed_7b = FIDInceptionE(1280, pool="avg")
        self.Mixed_7c = FIDInceptionE(2048, pool="max")
        self.fc = nn.Linear(2048, 1008)

    def forward(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """uint8 images (B, C, H, W), C in {1, 3} -> pool features (B, 2048) and logits (B, 1008)."""
        x = images.float() / 255.0  # [0, 1], as pytorch-fid expects
        if x.shape[1] == 1:
            x = x.repeat(1, 3, 1, 1)  # grayscale -> RGB
        x = F.interpolate(x, size=(299, 299), mode="bilinear", align_corners=False)
        x = 2 * x - 1  # (B, 3, 299, 299) in [-1, 1]
        x = self.Conv2d_2b_3x3(self.Conv2d_2a_3x3(self.Conv2d_1a_3x3(x)))  # (B, 64, 147, 147)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 64, 73, 73)
        x = self.Conv2d_4a_3x3(self.Conv2d_3b_1x1(x))  # (B, 192, 71, 71)
        x = F.max_pool2d(x, kernel_size=3, stride=2)  # (B, 192, 35, 35)
        for name in ("5b", "5c", "5d", "6a", "6b", "6c", "6d", "6e", "7a", "7b", "7c"):
            x = getattr(self, f"Mixed_{name}")(x)  # ends at (B, 2048, 8, 8)
        pool = x.mean(dim=(2, 3))  # (B, 2048)
        return pool, self.fc(pool)


def load_inception(path: str | Path | None, device: str = "cpu") -> FIDInceptionV3:
    """Build FIDInceptionV3 and load the pytorch-fid weights file; never downloads anything."""
    if path is None or not Path(path).is_file():
        where = "no --inception PATH was given" if path is None else f"{path} does not exist"
        raise UsageError(
            f"Inception weights needed for --features inception, but {where}. Download {INCEPTION_FILE} "
            f"(about 92 MB) from {INCEPTION_URL} and pass --inception PATH"
        )
    state = read_torch_file(path, device, f"FID Inception weights file ({INCEPTION_FILE})")
    model = FIDInceptionV3()
    if not isinstance(state, dict) or "Mixed_7c.branch_pool.conv.weight" not in state:
        raise CheckpointError(f"{path} is not the FID Inception state dict ({INCEPTION_FILE} from pytorch-fid)")
    try:
        model.load_state_dict(state)
    except RuntimeError as e:
        raise CheckpointError(f"{path}: keys or shapes differ from the FID Inception-v3 ({first_line(e)})") from None
    return model.to(device).eval()


class InceptionFeatures(_BatchedFeatures):
    """FeatureExtractor from FIDInceptionV3: 2048-d pool features and 1008 ImageNet(-ish) logits."""

    name = "inception-v3-fid"

    def __init__(self, model: FIDInceptionV3, batch_size: int = 50, device: str = "cpu"):
        super().__init__(model, batch_size, device)

    def _batch(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.model(images)
