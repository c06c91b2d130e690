"""The `cleardiffusion` command: parse arguments -> a config -> one library call.

Each subcommand lives in its own module with `register(subparsers)`, which adds its parser and sets
`func` to the function that runs it. Errors a user can fix (`UsageError`, a missing file, a bad value)
are printed on one line with exit status 2, never as a traceback.
"""

import argparse
import importlib
import sys

from ..errors import UsageError

# subcommand modules, in the order `--help` lists them
COMMANDS = ("toy", "train", "sample", "train_classifier", "eval", "experiment")


class OneLineParser(argparse.ArgumentParser):
    """argparse with its errors on one line of stderr and exit status 2 (instead of the usage block)."""

    def error(self, message: str):
        print(f"{self.prog}: error: {message} (see --help)", file=sys.stderr)
        sys.exit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cleardiffusion",
        description="DDPM, DDIM and classifier-free guidance: train, sample and measure diffusion models.",
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f".{name}", __name__)
        except ModuleNotFoundError as e:  # a subcommand whose module is not part of this build
            if e.name and e.name.endswith(name):
                continue
            raise
        module.register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except (UsageError, FileNotFoundError, NotADirectoryError, PermissionError, ValueError) as e:
        message = str(e).splitlines()[0] if str(e) else type(e).__name__
        print(f"cleardiffusion {args.command}: error: {message}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"cleardiffusion {args.command}: interrupted", file=sys.stderr)
        return 130


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = non_negative_float(text)
    if value == 0:
        raise argparse.ArgumentTypeError(f"must be a finite number > 0, got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a float in [0, 1)."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value
