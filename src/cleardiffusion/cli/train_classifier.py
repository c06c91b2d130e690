"""`cleardiffusion train-classifier`: the small CNN whose features and softmax the evaluation uses."""

from ..evaluation_runner import add_train_classifier_arguments, run_train_classifier


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train-classifier",
        help="train the small classifier used for FID features and class accuracy (CPU-friendly)",
        description="Train a small CNN on a dataset's train split and report its test accuracy; `eval` "
        "uses its penultimate layer as features and its softmax for the score and class accuracy.",
    )
    add_train_classifier_arguments(p)
    p.set_defaults(func=run_train_classifier)
