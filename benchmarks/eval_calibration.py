"""Calibrate the metrics: what do FID, KID, precision and recall read for real, degraded and noise images?

For each dataset: load the small classifier shipped with the package (features.reference_classifier_path),
cache the real train-split statistics, then score 10k test images as they are (the floor: finite-sample noise
only), with Gaussian noise of std 0.1 and 0.2 in [-1, 1] pixel units (i.e. 0.05 and 0.1 of the [0, 1] range),
blurred by a 3x3 box filter, and pure noise (N(0, 1) in [-1, 1] units, clipped). The time per row is the whole
`compute_metrics` call on 10k images (features, FID, KID, precision/recall, score, histogram); the one-off
reference statistics are reported separately.

    PYTHONPATH=src python benchmarks/eval_calibration.py --datasets mnist fashion-mnist \
        --out benchmarks/results/eval_calibration_cpu.md
"""

import argparse
import datetime
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from cleardiffusion.data import from_model_range, load_dataset, to_model_range
from cleardiffusion.evaluation_runner import compute_metrics, reference_statistics
from cleardiffusion.features import ClassifierFeatures, load_classifier, reference_classifier_path

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
DATA_DIRS = {
    "mnist": DATA / "mnist",
    "fashion-mnist": DATA / "fashion-mnist",
    "cifar10": DATA / "cifar10-jpeg",
}


def degraded(images: torch.Tensor, g: torch.Generator) -> dict[str, torch.Tensor]:
    """The rows of the table: uint8 (N, C, H, W) variants of the real test images."""
    x = to_model_range(images)  # (N, C, H, W) in [-1, 1]
    blurred = F.avg_pool2d(F.pad(x, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return {
        "real test": images,
        "test + noise 0.1": from_model_range(x + 0.1 * torch.randn(x.shape, generator=g)),
        "test + noise 0.2": from_model_range(x + 0.2 * torch.randn(x.shape, generator=g)),
        "test, 3x3 box blur": from_model_range(blurred),
        "pure noise": from_model_range(torch.randn(x.shape, generator=g)),
    }


def calibrate(name: str, n: int, cache_dir: Path | None) -> tuple[list[str], dict]:
    train = load_dataset(name, DATA_DIRS[name], "train")
    test = load_dataset(name, DATA_DIRS[name], "test")
    path = reference_classifier_path(name)  # shipped with the package, SHA-256 checked
    model, config = load_classifier(path)
    info: dict = {"classifier": f"the shipped {path.name}", "accuracy": config["test_accuracy"]}
    extractor = ClassifierFeatures(model, name)
    start = time.perf_counter()
    ref = reference_statistics(train, "train", extractor, cache_dir)
    info["reference_seconds"] = time.perf_counter() - start
    rows = []
    for label, images in degraded(test.images[:n], torch.Generator().manual_seed(0)).items():
        start = time.perf_counter()
        m = compute_metrics(images, None, extractor, ref, test.num_classes, extractor)
        seconds = time.perf_counter() - start
        rows.append(
            f"| {name} | {label} | {m['fid']:.3f} | {m['kid']['mean']:.5f} +- {m['kid']['std']:.5f} "
            f"| {m['precision']:.3f} | {m['recall']:.3f} | {m['score']['mean']:.2f} | {seconds:.1f} |"
        )
        print(rows[-1], flush=True)
    return rows, info


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=["mnist", "fashion-mnist"], choices=sorted(DATA_DIRS))
    parser.add_argument("--n", type=int, default=10_000, help="test images per row")
    parser.add_argument("--cache-dir", type=Path, default=None, help="reference statistics")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    parser.add_argument("--out", type=Path, default=None, help="markdown file to write")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    header = [
        "| dataset | samples (vs real train) | FID | KID | precision | recall | classifier score | seconds |",
        "|---|---|---|---|---|---|---|---|",
    ]
    rows, notes = [], []
    for name in args.datasets:
        r, info = calibrate(name, args.n, args.cache_dir)
        rows += r
        notes.append(
            f"- {name}: classifier test accuracy {info['accuracy']:.4f} ({info['classifier']}); "
            f"train-split reference statistics {info['reference_seconds']:.1f} s (then cached)"
        )
    cpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
    model = next((ln.split(":", 1)[1].strip() for ln in cpu.splitlines() if ln.startswith("Model name")), "?")
    text = "\n".join(
        [
            "# Metric calibration on CPU",
            "",
            f"- date: {datetime.datetime.now().isoformat(timespec='minutes')}",
            f"- machine: {model}, {os.cpu_count()} cores, torch {torch.__version__} "
            f"({torch.get_num_threads()} threads), Python {platform.python_version()}",
            f"- load average at the end: {os.getloadavg()[0]:.1f} (other jobs shared the CPU)",
            f"- command: `PYTHONPATH=src python {' '.join(sys.argv)}`",
            "- features: the dataset's SmallClassifier (128-d penultimate layer); reference: the train split",
            "- noise std in [-1, 1] pixel units (0.1 there = 0.05 of the [0, 1] range)",
            "",
            *header,
            *rows,
            "",
            *notes,
            "",
        ]
    )
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
