"""The reference feature networks shipped in src/cleardiffusion/reference/: how they are made, what they measure.

Each is `cleardiffusion train-classifier` with seed 0 and EPOCHS below, on the CPU with one thread; the rest is
its defaults (batch 128, lr 2e-3, width 16 grayscale / 32 RGB). mnist and fashion-mnist use the command's
default epochs (3, 6); cifar10 4 instead of 10, to fit a CPU budget of about 15 minutes (a feature network
needs consistent features, not the best accuracy: its SHA-256 names the scale, whatever its accuracy). Without
--train this script only measures the shipped files: SHA-256 (which must equal features.REFERENCE_SHA256),
size, the training settings stored in each file, and the test accuracy the library measures
(features.classifier_accuracy on the dataset's test split). It writes OUT/results.json and OUT/README.md.

    PYTHONPATH=src python benchmarks/reference_classifiers.py --data-root ../shared/data \\
        --out benchmarks/results/reference_classifiers
    # --train first retrains the three files (minutes each); then paste the printed digests into
    # features.REFERENCE_SHA256 and run the tests.
"""

import argparse
import datetime
import json
import os
import platform
import subprocess
import sys
from pathlib import Path

import torch

from cleardiffusion.data import load_dataset
from cleardiffusion.features import (
    REFERENCE_DIR,
    REFERENCE_SHA256,
    classifier_accuracy,
    file_sha256,
    load_classifier,
)

ROOT = Path(__file__).resolve().parents[1]
DATA_FOLDERS = {"mnist": "mnist", "fashion-mnist": "fashion-mnist", "cifar10": "cifar10-jpeg"}
SEED = 0
EPOCHS = {"mnist": 3, "fashion-mnist": 6, "cifar10": 4}


def command(dataset: str, data_root: str) -> list[str]:
    """The command that made REFERENCE_DIR/<dataset>.pt (paths relative to the repository)."""
    out = Path("src/cleardiffusion/reference") / f"{dataset}.pt"
    return ["cleardiffusion", "train-classifier", "--dataset", dataset, "--data-dir",
            f"{data_root}/{DATA_FOLDERS[dataset]}", "--epochs", str(EPOCHS[dataset]), "--seed", str(SEED),
            "--out", str(out)]  # fmt: skip


def train(dataset: str, data_root: str) -> None:
    argv = [sys.executable, "-m", "cleardiffusion", *command(dataset, data_root)[1:]]
    subprocess.run(argv, check=True, cwd=ROOT, env={**os.environ, "OMP_NUM_THREADS": "1"})


def measure(dataset: str, data_root: str) -> dict:
    path = REFERENCE_DIR / f"{dataset}.pt"
    model, config = load_classifier(path)
    test = load_dataset(dataset, Path(data_root) / DATA_FOLDERS[dataset] if Path(data_root).is_absolute()
                        else ROOT / data_root / DATA_FOLDERS[dataset], "test")  # fmt: skip
    digest = file_sha256(path)
    return {
        "dataset": dataset,
        "file": str(path.relative_to(ROOT)),
        "sha256": digest,
        "sha256_matches_table": digest == REFERENCE_SHA256[dataset],
        "bytes": path.stat().st_size,
        "parameters": sum(p.numel() for p in model.parameters()),
        "command": " ".join(command(dataset, data_root)),
        "epochs": config.get("epochs"),
        "seed": config.get("seed"),
        "width": config["width"],
        "feature_dim": config["feature_dim"],
        "test_accuracy_at_training": config.get("test_accuracy"),
        "test_accuracy": classifier_accuracy(model, test.images, test.labels),
        "test_images": len(test),
    }


def readme(rows: list[dict], meta: dict) -> str:
    lines = [
        "# Reference feature networks (src/cleardiffusion/reference/)",
        "",
        "Written by `benchmarks/reference_classifiers.py` (numbers from results.json). `eval`, `train --eval-every`,",
        "the experiments and the benchmarks score mnist, fashion-mnist and cifar10 in these networks' features",
        "unless `--classifier FILE` is given; every JSON of scores names the file's SHA-256 as `features_sha256`.",
        "",
        "| dataset | test accuracy | epochs | seed | parameters | size | SHA-256 |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['dataset']} | {r['test_accuracy']:.4f} ({r['test_images']} test images) | {r['epochs']} | "
            f"{r['seed']} | {r['parameters']:,} | {r['bytes'] / 1024:.0f} KiB | `{r['sha256']}` |"
        )
    lines += ["", "Commands (CPU, OMP_NUM_THREADS=1; the data folders of ../shared/data/README.md):", ""]
    lines += [f"    {r['command']}" for r in rows]
    lines += [
        "",
        "Settings: train-classifier's defaults except --epochs for cifar10 (4, not 10: a CPU budget; a feature",
        "network needs fixed features more than top accuracy). The cifar10 images are the JPEG re-encoding in",
        "../shared/data, not the official pixels.",
        "",
        f"Measured {meta['date']} on {meta['machine']}, torch {meta['torch']}.",
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-root", default="../shared/data", help="folder with mnist/, fashion-mnist/, cifar10-jpeg/")
    p.add_argument("--out", type=Path, default=ROOT / "benchmarks/results/reference_classifiers")
    p.add_argument("--datasets", nargs="+", default=list(DATA_FOLDERS), choices=list(DATA_FOLDERS))
    p.add_argument("--train", action="store_true", help="retrain the shipped files first")
    args = p.parse_args()
    torch.set_num_threads(1)
    if args.train:
        for dataset in args.datasets:
            train(dataset, args.data_root)
            print(f"{dataset}: SHA-256 {file_sha256(REFERENCE_DIR / f'{dataset}.pt')}", flush=True)
    rows = [measure(d, args.data_root) for d in args.datasets]
    meta = {
        "date": datetime.date.today().isoformat(),
        "machine": f"{platform.machine()} CPU, {os.cpu_count()} cores",
        "torch": torch.__version__,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.json").write_text(json.dumps({"meta": meta, "networks": rows}, indent=2) + "\n")
    (args.out / "README.md").write_text(readme(rows, meta))
    print(readme(rows, meta))
    if not all(r["sha256_matches_table"] for r in rows):
        sys.exit("a shipped file's SHA-256 differs from features.REFERENCE_SHA256: update the table")


if __name__ == "__main__":
    main()
