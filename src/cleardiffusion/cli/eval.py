"""`cleardiffusion eval`: FID, KID, precision/recall, score and class accuracy of samples, as one JSON."""

import argparse
import json

from . import seed

EPILOG = """\
examples:
  cleardiffusion eval --samples samples.npz --dataset mnist --data-dir data/mnist
  cleardiffusion eval --samples pngs/ --dataset cifar10 --data-dir data/cifar10 --out metrics.json
  cleardiffusion eval --samples samples.npz --dataset folder --data-dir my_images --classifier clf-my_images.pt
  cleardiffusion eval --samples samples.npz --dataset cifar10 --data-dir data/cifar10 --features inception \\
      --inception pt_inception-2015-12-05-6726825d.pth
"""


def register(subparsers) -> None:
    from ..data import DATASETS
    from ..evaluation_runner import FEATURES
    from ..inception import INCEPTION_FILE

    p = subparsers.add_parser(
        "eval",
        help="measure samples against a dataset: FID, KID, precision/recall, accuracy (one JSON object)",
        description="Compare generated samples with a real dataset split in the feature space of the\n"
        "project's classifier or of the Inception-v3 FID network (weights from a path you give; never\n"
        "downloaded). The classifier ships with the package for mnist,\nfashion-mnist and cifar10 (its SHA-256 "
        "checked on every load); an image folder needs one\nfrom train-classifier (--classifier FILE). The JSON "
        "names the network file's SHA-256\n(features_sha256): scores are comparable when it is the same. "
        "Reference statistics are cached.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "--samples",
        required=True,
        help=".npz with images (N x H x W x C uint8, or N x C x H x W) [+ labels], or a folder of PNGs",
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-dir", required=True, help="folder with the dataset's files")
    p.add_argument("--features", choices=FEATURES, default="classifier")
    p.add_argument(
        "--classifier",
        default=None,
        help="file from train-classifier (default: the network shipped for mnist, fashion-mnist, cifar10; "
        "required for an image folder)",
    )
    p.add_argument("--inception", default=None, help=f"path to pytorch-fid's {INCEPTION_FILE}")
    p.add_argument("--split", choices=("train", "test"), default="train", help="reference split")
    p.add_argument("--cache-dir", default=None, help="where reference statistics are cached")
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.add_argument("--seed", type=seed, default=0, help="seed of the KID subsets")
    p.add_argument("--out", default=None, help="also write the metrics JSON here")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation_runner import evaluate_samples
    from ..files import output_file, write_text

    out = output_file(args.out, "--out") if args.out else None  # checked before the features are computed
    result = evaluate_samples(
        args.samples, None, args.dataset, args.data_dir, args.features, args.classifier, args.inception,
        args.split, args.cache_dir, args.device, args.seed,
    )  # fmt: skip
    text = json.dumps(result, indent=2)
    print(text)
    if out:
        write_text(out, text + "\n")
    return 0
