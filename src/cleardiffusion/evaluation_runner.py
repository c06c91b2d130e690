"""The I/O side of evaluation: read samples, cache reference statistics, run every metric (flags: cli/eval.py).

Feature networks: the classifier shipped with the package for mnist, fashion-mnist and cifar10
(features.reference_classifier_path, SHA-256 checked), else the --classifier FILE given (required for image
folders); every result names the network file's SHA-256 as "features_sha256".
Cached: <cache>/reference/<...>.npz, real-data feature statistics keyed by data checksum + extractor weights,
where <cache> is --cache-dir, else $CLEARDIFFUSION_CACHE, else ~/.cache/cleardiffusion.
"""

import hashlib
import time
import warnings
import zipfile
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from . import evaluate as M
from .data import check_labels, decode_image, default_cache_dir, load_dataset
from .errors import UsageError
from .features import (
    REFERENCE_SHA256,
    ClassifierFeatures,
    FeatureExtractor,
    file_sha256,
    load_classifier,
    reference_classifier_path,
    save_classifier,
    train_classifier,
)
from .files import atomic_write, output_file
from .inception import InceptionFeatures, load_inception
from .limits import resolve_device

FeatureName = Literal["classifier", "inception"]
FEATURES: tuple[str, ...] = ("classifier", "inception")
REFERENCE_SUBSET = 10_000  # real features kept for KID and precision/recall


# ----------------------------------------------------------------------------------------------------------
# Samples


class SamplesNotFoundError(UsageError, FileNotFoundError):
    """--samples names nothing."""


def _check_pixels(a: np.ndarray, where: str) -> np.ndarray:
    if np.issubdtype(a.dtype, np.floating) and not np.isfinite(a).all():
        raise UsageError(f"{where}: images contain NaN or inf; the sampler diverged, so there is nothing to score")
    if a.dtype != np.uint8:
        raise UsageError(
            f"{where}: images must be uint8 in 0..255, got {a.dtype}; convert [-1, 1] floats with "
            "data.from_model_range (round((x + 1) * 127.5), clamped)"
        )
    return a


def _channels_last(a: np.ndarray, where: str) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) -> (N, H, W, C); (N, C, H, W), PyTorch's layout, when unambiguous."""
    if a.ndim == 3:
        return a[..., None]  # (N, H, W) grayscale -> (N, H, W, 1)
    if a.ndim == 4 and a.shape[-1] not in (1, 3) and a.shape[1] in (1, 3):
        return a.transpose(0, 2, 3, 1)  # (N, C, H, W) -> (N, H, W, C)
    if a.ndim != 4 or a.shape[-1] not in (1, 3) or a.shape[0] == 0:
        raise UsageError(
            f"{where}: images must be N x H x W x C (or N x C x H x W) with C in (1, 3) and N > 0, got {a.shape}"
        )
    return a


def load_samples(path: str | Path) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Images uint8 (N, C, H, W) and labels (N,) or None, from an .npz (`images` N x H x W x C) or PNGs.

    An `images` array in PyTorch's N x C x H x W layout is accepted when that is unambiguous (C in 1 or 3,
    the last axis not).
    """
    path = Path(path)
    if path.is_dir():
        return _load_png_dir(path), None
    if not path.is_file():
        raise SamplesNotFoundError(
            f"samples {path} not found; pass an .npz written by `cleardiffusion sample` or a PNG folder"
        )
    if path.suffix.lower() != ".npz":
        raise UsageError(
            f"--samples {path} is not an .npz file; pass the .npz written by `cleardiffusion sample` or a folder "
            "of PNG samples"
        )
    try:
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, AttributeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise UsageError(f"{path} is not a readable .npz file ({reason[:160]}); write it with numpy.savez") from None
    if "images" not in arrays:
        raise UsageError(f"{path} has no 'images' array (found {sorted(arrays)}); save samples as images=N x H x W x C")
    a = _channels_last(_check_pixels(arrays["images"], str(path)), str(path))
    images = torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # (N, C, H, W)
    labels = None
    if "labels" in arrays:
        lab = arrays["labels"]
        if lab.shape != (a.shape[0],) or not np.issubdtype(lab.dtype, np.integer):
            raise UsageError(f"{path}: labels must be integers of shape ({a.shape[0]},), got {lab.dtype} {lab.shape}")
        labels = torch.from_numpy(lab.astype(np.int64))
    return images, labels


def _load_png_dir(path: Path) -> torch.Tensor:
    files = sorted(p for p in path.iterdir() if p.suffix.lower() == ".png" and p.is_file())
    if not files:
        raise UsageError(f"{path} holds no .png files; pass a folder of PNG samples or an .npz")
    arrays = []
    for f in files:  # any bit depth scaled to 8 bits, or a one-line refusal (data.decode_image)
        arrays.append(decode_image(f.read_bytes(), str(f)))
    shapes = {a.shape for a in arrays}
    if len(shapes) != 1:
        raise UsageError(f"{path}: PNG files differ in size or channels ({sorted(shapes)}); all samples must match")
    a = np.stack(arrays)  # (N, H, W) or (N, H, W, 3)
    a = a[..., None] if a.ndim == 3 else a
    return torch.from_numpy(np.ascontiguousarray(a.transpose(0, 3, 1, 2)))  # (N, C, H, W)


# ----------------------------------------------------------------------------------------------------------
# Reference statistics


def reference_statistics(
    dataset: Any, split: str, extractor: FeatureExtractor, cache_dir: str | Path | None = None
) -> dict[str, np.ndarray]:
    """mu, sigma over the whole split and features of a fixed random subset of <= 10k images, cached.

    The cache file name holds the sha256 of the images, the extractor name and its weights' checksum, so any
    change to the data or the network computes fresh statistics.
    """
    h = hashlib.sha256(dataset.images.numpy().tobytes())
    h.update(f"|{extractor.name}|{extractor.weights_sha256}|{REFERENCE_SUBSET}".encode())
    safe = extractor.name.replace(":", "-")
    path = (
        Path(cache_dir or default_cache_dir()) / "reference" / f"{dataset.name}-{split}-{safe}-{h.hexdigest()[:16]}.npz"
    )
    if path.is_file():
        try:
            with np.load(path) as z:
                return {k: z[k] for k in ("mu", "sigma", "features", "n")}
        except Exception:
            pass  # a damaged cache is recomputed and overwritten below
    features = extractor(dataset.images)  # (N, D) float64
    mu, sigma = M.feature_statistics(features)
    g = torch.Generator().manual_seed(0)
    subset = torch.randperm(len(features), generator=g)[:REFERENCE_SUBSET].numpy()
    stats = {"mu": mu, "sigma": sigma, "features": features[np.sort(subset)], "n": np.array(len(features))}
    try:
        with atomic_write(path) as f:
            np.savez(f, **stats)
    except OSError as e:  # a cache that cannot be written costs time, not results
        warnings.warn(f"could not cache reference statistics at {path} ({e.strerror or e})", stacklevel=2)
    return stats


# ----------------------------------------------------------------------------------------------------------
# Evaluation


def classifier_or_help(
    dataset: str, channels: int, classifier_path: str | Path | None, device: str, image_size: tuple | None = None
) -> ClassifierFeatures:
    """The --classifier FILE, else the dataset's shipped reference network, as a feature extractor; or an error
    that says how to get one.

    The checks `eval`, `--eval-every` and `experiment --classifier` share: the file exists (and, for the
    shipped one, has its SHA-256), it was trained on `dataset` (when it says) and takes `channels`-channel
    images of `image_size` (H, W) when given.
    """
    if classifier_path is None:
        path = reference_classifier_path(dataset)
        if path is None:
            raise UsageError(
                f"no reference classifier ships for {dataset} data (only for {', '.join(REFERENCE_SHA256)}); "
                f"train one with `cleardiffusion train-classifier --dataset folder --data-dir PATH --out FILE` "
                "and pass --classifier FILE"
            )
    else:
        path = Path(classifier_path)
        if not path.is_file():
            raise UsageError(
                f"no classifier file {path} (--classifier); train one with `cleardiffusion train-classifier "
                "--dataset D --data-dir PATH --out FILE`, or drop --classifier to use the shipped network of a known "
                "dataset"
            )
    model, config = load_classifier(path, device)
    if config.get("dataset") not in (None, dataset):
        raise UsageError(f"{path} is a classifier for {config['dataset']}, not {dataset}; pass the right --classifier")
    if config["in_channels"] != channels:
        raise UsageError(f"{path} expects {config['in_channels']}-channel images; {dataset} has {channels}")
    if image_size is not None and tuple(image_size) != (config["image_size"],) * 2:
        which = f"the reference {dataset} classifier" if classifier_path is None else str(path)
        raise UsageError(
            f"{which} takes {config['image_size']}x{config['image_size']} images, these are "
            f"{'x'.join(map(str, image_size))}; pass --classifier FILE trained on images of this size"
        )
    return ClassifierFeatures(model, dataset, device=device, file_sha256=file_sha256(path))


def evaluate_samples(
    samples: str | Path | torch.Tensor,
    labels: torch.Tensor | None,
    dataset_name: str,
    data_dir: str | Path,
    features: FeatureName = "classifier",
    classifier_path: str | Path | None = None,
    inception_path: str | Path | None = None,
    split: str = "train",
    cache_dir: str | Path | None = None,
    device: str = "cpu",
    seed: int = 0,
) -> dict[str, Any]:
    """FID, KID, precision/recall, classifier score, class histogram (+ accuracy given labels) as a dict."""
    device = resolve_device(device)
    if cache_dir is not None and Path(cache_dir).exists() and not Path(cache_dir).is_dir():
        raise UsageError(f"--cache-dir {cache_dir} is a file, not a folder; give a folder")
    if features not in FEATURES:
        raise UsageError(f"unknown features {features!r}; choose one of {', '.join(FEATURES)}")
    if not isinstance(samples, torch.Tensor):
        samples, file_labels = load_samples(samples)
        labels = labels if labels is not None else file_labels
    if samples.dtype != torch.uint8 or samples.ndim != 4:
        raise UsageError(f"samples must be uint8 (N, C, H, W), got {samples.dtype} {tuple(samples.shape)}")
    if len(samples) < 4:
        raise UsageError(f"need at least 4 samples for FID, KID and precision/recall, got {len(samples)}")
    reference = load_dataset(dataset_name, data_dir, split)
    if len(reference) < 4:
        raise UsageError(f"{dataset_name} {split} in {data_dir} has {len(reference)} images; the metrics need 4")
    if samples.shape[1] != reference.channels:
        raise UsageError(f"samples have {samples.shape[1]} channels but {dataset_name} has {reference.channels}")
    if tuple(samples.shape[2:]) != tuple(reference.image_size):
        raise UsageError(f"samples are {tuple(samples.shape[2:])} pixels but {dataset_name} is {reference.image_size}")
    if labels is not None and labels.shape != (len(samples),):
        raise UsageError(f"labels must have shape ({len(samples)},), got {tuple(labels.shape)}")
    if labels is not None:
        check_labels(labels, reference.num_classes, "--samples labels")

    classifier = None
    if features == "classifier" or classifier_path is not None:
        classifier = classifier_or_help(
            dataset_name, reference.channels, classifier_path, device, tuple(reference.image_size)
        )
    if features == "classifier":
        extractor, digest = classifier, classifier.file_sha256
    else:
        extractor = InceptionFeatures(load_inception(inception_path, device))
        digest = file_sha256(inception_path)
    start = time.perf_counter()
    ref = reference_statistics(reference, split, extractor, cache_dir)
    result = compute_metrics(samples, labels, extractor, ref, reference.num_classes, classifier, seed)
    result["features_sha256"] = digest  # the network file behind the numbers: same digest, same scale
    result["reference"] = {"dataset": dataset_name, "split": split, "n": int(ref["n"])}
    result["seconds"] = round(time.perf_counter() - start, 2)
    return result


def compute_metrics(
    samples: torch.Tensor,
    labels: torch.Tensor | None,
    extractor: FeatureExtractor,
    ref: dict[str, np.ndarray],
    num_classes: int,
    classifier: ClassifierFeatures | None = None,
    seed: int = 0,
) -> dict[str, Any]:
    """Every metric of uint8 samples (N, C, H, W) against reference statistics from `reference_statistics`."""
    f_fake, logits = extractor.features_and_logits(samples)  # (N, D), (N, K)
    score_mean, score_std = M.inception_score(M.softmax(logits), splits=min(10, len(samples)))
    result: dict[str, Any] = {
        **M.score_features(ref, f_fake, k=3, seed=seed),  # fid, kid {mean, std}, precision, recall
        "score": {"mean": score_mean, "std": score_std, "from": extractor.name},
        "class_histogram": None,
        "accuracy": None,
        "n": len(samples),
        "features": extractor.name,
    }
    if classifier is not None:
        class_logits = logits if classifier is extractor else classifier.features_and_logits(samples)[1]
        result["class_histogram"] = M.class_histogram(class_logits.argmax(1), num_classes)
        if labels is not None:
            result["accuracy"] = M.class_accuracy(class_logits, labels)
    return result


def train_classifier_main(
    dataset: str,
    data_dir: str | Path,
    out: str | Path,
    epochs: int = 3,
    batch_size: int = 128,
    lr: float = 2e-3,
    seed: int = 0,
    device: str = "cpu",
) -> dict[str, Any]:
    """Train the dataset's SmallClassifier, save it to `out` and print its test accuracy and SHA-256."""
    out = output_file(out, "--out")  # before the work, not after it
    device = resolve_device(device)
    train, test = load_dataset(dataset, data_dir, "train"), load_dataset(dataset, data_dir, "test")
    start = time.perf_counter()
    model, accuracy = train_classifier(train, test, epochs, batch_size, lr, seed, device)
    seconds = time.perf_counter() - start
    save_classifier(out, model, {"dataset": dataset, "test_accuracy": accuracy, "epochs": epochs, "seed": seed})
    digest = file_sha256(out)
    print(
        f"{dataset} classifier: test accuracy {accuracy:.4f} after {epochs} epochs ({seconds:.0f} s); saved {out} "
        f"(SHA-256 {digest}); score with it: --classifier {out}",
        flush=True,
    )
    return {
        "dataset": dataset,
        "test_accuracy": accuracy,
        "epochs": epochs,
        "seed": seed,
        "seconds": seconds,
        "out": str(out),
        "sha256": digest,
    }


DEFAULT_EPOCHS = {"mnist": 3, "fashion-mnist": 6, "cifar10": 10, "folder": 6}
