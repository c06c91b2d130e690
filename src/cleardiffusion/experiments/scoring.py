"""FID and friends for the experiments, from the project's classifier features (features.py, evaluate.py).

The classifier is read from --classifier when given, else trained once and cached under CACHE/; the
reference statistics are cached under CACHE/reference/. Quick mode trains the classifier for one epoch on
a few thousand images and takes a 2,000-image reference: its numbers show the plumbing, not the models.
"""

import time
from typing import TYPE_CHECKING, Any

import torch

from ..data import ImageDataset
from ..evaluation_runner import compute_metrics, reference_statistics
from ..features import ClassifierFeatures, load_classifier, save_classifier, train_classifier

if TYPE_CHECKING:  # common.py does not import this module, so there is no circle at run time
    from .common import Context


def subset(data: ImageDataset, n: int | None, seed: int) -> ImageDataset:
    """A fixed random subset of n images (all of them when n is None or larger than the dataset)."""
    if n is None or n >= len(data):
        return data
    index = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n].sort().values
    return ImageDataset(data.images[index], data.labels[index], data.class_names, data.name, data.source)


class Scorer:
    """score(images uint8 (N, C, H, W), labels or None) -> fid, kid, precision, recall, accuracy."""

    def __init__(self, ctx: "Context"):
        s, device = ctx.sizes, str(ctx.device)
        mode = ctx.size
        path = ctx.classifier_path or ctx.cache / f"classifier-{ctx.dataset}-{mode}.pt"
        train_data, test_data = ctx.load("train"), ctx.load("test")
        start = time.perf_counter()
        if path.is_file():
            model, meta = load_classifier(path, device)
            origin = f"read from {path}"
        else:
            print(f"training the FID feature classifier ({mode}) -> {path}", flush=True)
            model, accuracy = train_classifier(
                subset(train_data, s.classifier_images, ctx.seed),
                subset(test_data, 2000 if ctx.quick else None, 1),
                epochs=s.classifier_epochs,
                batch_size=64 if ctx.quick else 128,
                seed=ctx.seed,
                device=device,
                progress=not ctx.quick,
            )
            meta = {
                "dataset": ctx.dataset,
                "test_accuracy": accuracy,
                "epochs": s.classifier_epochs,
                "train_images": s.classifier_images or len(train_data),
                "seed": ctx.seed,
            }
            save_classifier(path, model, meta)
            origin = f"trained by this run and cached at {path}"
        self.classifier = ClassifierFeatures(model, ctx.dataset, device=device)
        if ctx.quick:
            reference, split = subset(test_data, s.reference_images, 2), "test"
        else:
            reference, split = train_data, "train"
        self.reference = reference_statistics(reference, split, self.classifier, ctx.cache)
        self.num_classes = train_data.num_classes
        self.seconds = time.perf_counter() - start
        self.description = {
            "features": f"SmallClassifier penultimate layer ({model.config['feature_dim']}-d), {origin}",
            "classifier_test_accuracy": meta.get("test_accuracy"),
            "classifier_epochs": meta.get("epochs"),
            "classifier_train_images": meta.get("train_images"),
            "reference": f"{len(reference)} real images of the {split} split",
        }

    def __call__(self, images: torch.Tensor, labels: torch.Tensor | None = None) -> dict[str, Any]:
        m = compute_metrics(images, labels, self.classifier, self.reference, self.num_classes, self.classifier, seed=0)
        return {
            "fid": m["fid"],
            "kid": m["kid"]["mean"],
            "precision": m["precision"],
            "recall": m["recall"],
            "accuracy": m["accuracy"],
            "n": m["n"],
        }

    def note(self) -> str:
        """One paragraph for a report: what the FID numbers are computed from."""
        d = self.description
        acc = d["classifier_test_accuracy"]
        acc_text = f", test accuracy {acc:.4f}" if isinstance(acc, float) else ""
        return (
            f"FID, KID and precision/recall use the project's classifier features: {d['features']} "
            f"({d['classifier_epochs']} epoch(s) on {d['classifier_train_images']} images{acc_text}); "
            f"reference: {d['reference']}. These are not Inception FIDs: compare them within this report "
            "only."
        )


def scorer(ctx: "Context") -> Scorer:
    """The experiment's Scorer, built once per `experiment all` (its classifier and reference statistics)."""
    key = ("scorer", ctx.dataset, str(ctx.cache), ctx.size, str(ctx.device))
    if key not in ctx.shared:
        ctx.shared[key] = Scorer(ctx)
    return ctx.shared[key]
