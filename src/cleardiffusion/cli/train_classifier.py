"""`cleardiffusion train-classifier`: the small CNN whose features and softmax the evaluation uses."""

import argparse

from . import positive_float, positive_int, seed

EPILOG = """\
examples:
  cleardiffusion train-classifier --dataset mnist --data-dir data/mnist --out clf-mnist.pt
  cleardiffusion train-classifier --dataset cifar10 --data-dir data/cifar10 --device cuda --out clf-cifar10.pt
"""


def register(subparsers) -> None:
    from ..data import DATASETS

    p = subparsers.add_parser(
        "train-classifier",
        help="train the small classifier used for FID features and class accuracy (CPU-friendly)",
        description="Train a small CNN on a dataset's train split and report its test accuracy; `eval` "
        "uses its penultimate layer as features and its softmax for the score and class accuracy.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, choices=[d for d in DATASETS if d != "folder"])
    p.add_argument("--data-dir", required=True)
    p.add_argument("--out", default=None, help="output file (default: <cache>/classifiers/<dataset>.pt)")
    p.add_argument(
        "--epochs", type=positive_int, default=None, help="default: 3 (mnist), 6 (fashion-mnist), 10 (cifar10)"
    )
    p.add_argument("--batch-size", type=positive_int, default=128, help="at most the number of training images")
    p.add_argument("--lr", type=positive_float, default=2e-3)
    p.add_argument("--seed", type=seed, default=0)
    p.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default: cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation_runner import DEFAULT_EPOCHS, train_classifier_main

    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS[args.dataset]
    train_classifier_main(
        args.dataset, args.data_dir, args.out, epochs, args.batch_size, args.lr, args.seed, args.device
    )
    return 0
