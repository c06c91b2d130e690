"""FID and friends for the experiments, from the project's classifier features (features.py, evaluate.py).

The classifier is the --classifier FILE when given, else the network shipped for mnist, fashion-mnist and
cifar10 (both checked as `eval` checks them: SHA-256, dataset, channels, size); only other data (the
synthetic digits) gets one trained once and cached under CACHE/classifiers/, in a file whose name holds the
dataset, its folder, the size and the seed. results.json names the network file's SHA-256 (features_sha256).
Reference statistics are cached under CACHE/reference/; quick mode takes a 2,000-image reference (and
trains a synthetic-data classifier for one epoch on a few thousand images): its numbers show the plumbing,
not the models. The metrics themselves are `evaluate.score_features`, the scorer of `eval` and `--eval-every`.
"""

import time
from typing import TYPE_CHECKING, Any

import torch

from .. import evaluate as M
from ..data import ImageDataset
from ..evaluation_runner import classifier_or_help, reference_statistics
from ..features import (
    ClassifierFeatures,
    file_sha256,
    load_classifier,
    reference_classifier_path,
    save_classifier,
    train_classifier,
)

if TYPE_CHECKING:  # common.py does not import this module, so there is no circle at run time
    from .common import Context


def subset(data: ImageDataset, n: int | None, seed: int) -> ImageDataset:
    """A fixed random subset of n images (all of them when n is None or larger than the dataset)."""
    if n is None or n >= len(data):
        return data
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return ImageDataset(data.images[index], data.labels[index], data.class_names, data.name, data.source)


def check_classifier(ctx: "Context") -> ClassifierFeatures | None:
    """The --classifier, else the shipped network of a known dataset, as a feature extractor after `eval`'s
    checks (SHA-256, dataset, channels, size); None for other data without --classifier."""
    if ctx.classifier_path is None and reference_classifier_path(ctx.dataset) is None:
        return None
    train = ctx.load("train")
    size = tuple(train.images.shape[2:])  # (H, W)
    return classifier_or_help(ctx.dataset, train.channels, ctx.classifier_path, str(ctx.device), size)


def classifier_file(ctx: "Context"):
    """CACHE/classifiers/DATASET-DATAKEY-SIZEKEY-seedS.pt: a cached classifier answers only for what it learnt."""
    s = ctx.sizes
    what = ctx.key(s.classifier_images, s.classifier_epochs)
    return ctx.cache / "classifiers" / f"{ctx.dataset}-{ctx.data_key}-{ctx.size}-{what}-seed{ctx.seed}.pt"


class Scorer:
    """score(images uint8 (N, C, H, W), labels or None) -> fid, kid, precision, recall, accuracy."""

    def __init__(self, ctx: "Context"):
        s, device = ctx.sizes, str(ctx.device)
        train_data, test_data = ctx.load("train"), ctx.load("test")
        path = ctx.classifier_path or reference_classifier_path(ctx.dataset) or classifier_file(ctx)
        start = time.perf_counter()
        given = check_classifier(ctx)  # --classifier or the shipped network, after `eval`'s checks
        if given is not None or path.is_file():
            model, meta = load_classifier(path, device)
            digest = file_sha256(path)
            self.classifier = given or ClassifierFeatures(model, ctx.dataset, device=device, file_sha256=digest)
            shipped = ctx.classifier_path is None and given is not None
            origin = f"the network shipped with the package ({path.name})" if shipped else f"read from {path}"
        else:
            print(f"training the FID feature classifier ({ctx.size}) -> {path}", flush=True)
            model, accuracy = train_classifier(
                subset(train_data, s.classifier_images, ctx.seed),
                subset(test_data, 2000 if ctx.quick else None, 1),
                epochs=s.classifier_epochs,
                batch_size=64 if ctx.quick else 128,
                seed=ctx.seed,
                device=device,
                progress=not ctx.quick,
            )
            meta = {**model.config, "dataset": ctx.dataset, "test_accuracy": accuracy, "epochs": s.classifier_epochs,
                    "train_images": s.classifier_images or len(train_data), "seed": ctx.seed}  # fmt: skip
            save_classifier(path, model, meta)
            self.classifier = ClassifierFeatures(model, ctx.dataset, device=device, file_sha256=file_sha256(path))
            origin = f"trained by this run and cached at {path}"
        if ctx.quick:
            reference, split = subset(test_data, s.reference_images, 2), "test"
        else:
            reference, split = train_data, "train"
        self.reference = reference_statistics(reference, split, self.classifier, ctx.cache)
        self.seconds = time.perf_counter() - start
        self.description = {
            "features": f"SmallClassifier penultimate layer ({meta['feature_dim']}-d), {origin}",
            "features_sha256": self.classifier.file_sha256,
            "classifier_test_accuracy": meta.get("test_accuracy"),
            "classifier_epochs": meta.get("epochs"),
            "classifier_train_images": meta.get("train_images"),
            "reference": f"{len(reference)} real images of the {split} split",
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        features, logits = self.classifier.features_and_logits(images)  # (N, D), (N, K)
        m = M.score_features(self.reference, features, seed=0)
        return {
            "fid": m["fid"],
            "kid": m["kid"]["mean"],
            "precision": m["precision"],
            "recall": m["recall"],
            "accuracy": None if labels is None else M.class_accuracy(logits, labels),
            "n": len(images),
        }


def note(description: dict[str, Any]) -> str:
    """One paragraph for a report: what the FID numbers are computed from (results.json's `features`)."""
    d = description
    acc, images = d["classifier_test_accuracy"], d["classifier_train_images"]
    training = f"{d['classifier_epochs']} epoch(s)" + (f" on {images} images" if images else "")
    training += f", test accuracy {acc:.4f}" if isinstance(acc, float) else ""
    digest = f", SHA-256 {d['features_sha256'][:16]}..." if d.get("features_sha256") else ""
    return (
        f"FID, KID and precision/recall use the project's classifier features: {d['features']} "
        f"({training}{digest}); reference: {d['reference']}. These are not Inception FIDs: compare them only "
        "between results that name the same features_sha256."
    )


def scorer(ctx: "Context") -> Scorer:
    """The experiment's Scorer, built once per `experiment all` (its classifier and reference statistics)."""
    key = ("scorer", ctx.dataset, ctx.data_key, str(ctx.cache), ctx.size, ctx.seed, str(ctx.classifier_path))
    if key not in ctx.shared:
        ctx.shared[key] = Scorer(ctx)
    return ctx.shared[key]
