"""`cleardiffusion train-classifier`: the small CNN whose features and softmax the evaluation uses."""

import argparse

from . import positive_float, positive_int, seed

EPILOG = """\
examples:
  cleardiffusion train-classifier --dataset folder --data-dir my_images --out clf-my_images.pt
  cleardiffusion eval --samples samples.npz --dataset folder --data-dir my_images --classifier clf-my_images.pt
  cleardiffusion train-classifier --dataset mnist --data-dir data/mnist --seed 1 --device cuda --out clf-mnist.pt
"""


def register(subparsers) -> None:
    from ..data import DATASETS

    p = subparsers.add_parser(
        "train-classifier",
        help="train the small classifier used for FID features and class accuracy (CPU-friendly)",
        description="Train a small CNN on a dataset's train split, save it and report its test accuracy and "
        "SHA-256.\nmnist, fashion-mnist and cifar10 need none: a reference network trained this way ships "
        "with\nthe package and is the default. For other data (an image folder with train/ and test/), or to "
        "score\nwith your own network, make the result the reference: pass --classifier FILE to `eval`,\n"
        "`train --eval-every` and `experiment`. Their JSON names its SHA-256 (features_sha256); scores\n"
        "are comparable only between results that name the same digest.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--data-dir", required=True, help="folder with the dataset's files (a folder: train/, test/)")
    p.add_argument("--out", required=True, help="output file; pass it as --classifier FILE to score with it")
    p.add_argument(
        "--epochs",
        type=positive_int,
        default=None,
        help="default: 3 (mnist), 6 (fashion-mnist), 10 (cifar10), 6 (folder)",
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
