"""`cleardiffusion eval`: FID, KID, precision/recall, score and class accuracy of samples, as one JSON."""

from ..evaluation_runner import add_eval_arguments, run_eval


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="measure samples against a dataset: FID, KID, precision/recall, accuracy (one JSON object)",
        description="Compare generated samples with a real dataset split in the feature space of the "
        "project's classifier (train it once with train-classifier) or of the Inception-v3 FID network "
        "(weights from a path you give; never downloaded). Reference statistics are cached.",
    )
    add_eval_arguments(p)
    p.set_defaults(func=run_eval)
