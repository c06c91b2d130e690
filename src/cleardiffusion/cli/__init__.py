"""The `cleardiffusion` command: parse arguments -> a config -> one library call.

Each subcommand lives in its own module with `register(subparsers)`, which adds its parser and sets
`func` to the function that runs it. Errors a user can fix (the project's `UsageError` and its subclasses,
an OS error about a path, a permission or disk space, running out of memory) are printed on one line with
exit status 2. Anything else is a bug and shows its traceback.
"""

import argparse
import importlib
import math
import os
import sys

from ..errors import UsageError
from ..files import USER_OS_ERRNOS

OUT_OF_MEMORY = "out of memory; lower --batch-size (or --n, the model size, --timesteps)"
SEED_MAX = 2**63 - 1

# subcommand modules, in the order `--help` lists them
COMMANDS = ("toy", "train", "distill", "sample", "export", "train_classifier", "eval", "experiment")


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
    except UsageError as e:
        return _one_line_error(args.command, str(e) or type(e).__name__)
    except OSError as e:  # a path, a permission, disk space; errno None: raised by our code with a message
        if e.errno is not None and e.errno not in USER_OS_ERRNOS:
            raise
        if e.errno is None:
            return _one_line_error(args.command, str(e))
        where = f": {e.filename}" if e.filename else ""
        return _one_line_error(args.command, f"{e.strerror or e}{where}")
    except MemoryError:
        return _one_line_error(args.command, OUT_OF_MEMORY)
    except RuntimeError as e:  # torch.OutOfMemoryError, or the CPU allocator's "can't allocate memory"
        if type(e).__name__ != "OutOfMemoryError" and "can't allocate memory" not in str(e):
            raise
        return _one_line_error(args.command, OUT_OF_MEMORY)
    except KeyboardInterrupt:
        print(f"cleardiffusion {args.command}: interrupted", file=sys.stderr)
        return 130


def _one_line_error(command: str, message: str) -> int:
    print(f"cleardiffusion {command}: error: {message.splitlines()[0] if message else 'failed'}", file=sys.stderr)
    return 2


def _int(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None


def positive_int(text: str) -> int:
    """argparse type: an integer >= 1."""
    value = _int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def thread_count(text: str) -> int:
    """argparse type: CPU threads, 1 .. 4 x this machine's cores (more only thrash, or hang starting them)."""
    value, cores = positive_int(text), os.cpu_count() or 1
    if value > 4 * cores:
        raise argparse.ArgumentTypeError(f"must lie in 1..{4 * cores} ({cores} CPU cores here), got {value}")
    return value


def non_negative_int(text: str) -> int:
    """argparse type: an integer >= 0."""
    value = _int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be 0 or more, got {value}")
    return value


def seed(text: str) -> int:
    """argparse type: a seed in 0..2**63 - 1."""
    value = _int(text)
    if not 0 <= value <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must lie in 0..{SEED_MAX} (2**63 - 1), got {value}")
    return value


def finite_float(text: str) -> float:
    """argparse type: any finite float (no NaN, no inf)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"must be a finite number, got {text}")
    return value


def positive_float(text: str) -> float:
    """argparse type: a finite float > 0."""
    value = finite_float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be a positive number, got {text}")
    return value


def non_negative_float(text: str) -> float:
    """argparse type: a finite float >= 0."""
    value = finite_float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text}")
    return value


def unit_interval(text: str) -> float:
    """argparse type: a float in [0, 1]."""
    value = non_negative_float(text)
    if value > 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1], got {text}")
    return value


def probability(text: str) -> float:
    """argparse type: a float in [0, 1)."""
    value = non_negative_float(text)
    if value >= 1:
        raise argparse.ArgumentTypeError(f"must lie in [0, 1), got {text}")
    return value
