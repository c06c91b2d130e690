"""`cleardiffusion experiment NAME --out DIR`: run a recipe that answers one of the seeds' open questions."""

import argparse
import shlex
import sys
from pathlib import Path

from ..errors import UsageError
from . import seed, thread_count

EPILOG = """\
experiments:
  overfit-one-image  train on one digit, sample, measure the reconstruction MSE (seed 000, experiment 1)
  ddpm-steps         DDPM at 100 / 300 / 1000 steps: FID and time (seed 000, experiment 2)
  ddim-steps         DDIM 5..100 steps vs DDPM-1000: FID, wall clock, speed-up (open question 3)
  time-embedding     time embedding in the middle block vs every block (open question 2)
  cfg-dropout        label dropout {0.1, 0.3, 0.5} x guidance {0, 1, 2, 3, 5}: FID and class accuracy
  sampling-cost      one step of JiT-B/16 and the U-Nets at 256x256, timed; cost vs resolution (seed 003)
  all                every one of them, into OUT/NAME/, sharing trained models and the FID classifier

examples:
  cleardiffusion experiment all --quick --dataset synthetic --out runs/experiments-quick   # a minute on a CPU
  cleardiffusion experiment time-embedding --size cpu --data-dir data/mnist --out runs/te   # < 1 h, 2 CPU cores
  cleardiffusion experiment ddim-steps --data-dir data/mnist --device cuda --out runs/ddim
  cleardiffusion experiment ddim-steps --render-only --out runs/ddim   # report.md again from results.json
"""


def register(subparsers) -> None:
    from ..experiments import EXPERIMENTS

    p = subparsers.add_parser(
        "experiment",
        help="run a recipe answering a seed's open question; writes report.md and results.json",
        description="Train, sample and measure as one experiment describes; write OUT/results.json, then "
        "OUT/report.md (tables, plots, sample grids, the command, device and versions) from it alone. Running "
        "again into the same OUT overwrites what the experiment wrote there and reuses the models of its cache "
        "that match the data, seed, size and recipe.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("name", choices=[*EXPERIMENTS, "all"], metavar="NAME", help="an experiment, or all")
    p.add_argument("--out", required=True, help="output folder (all: one subfolder per experiment)")
    p.add_argument(
        "--size",
        choices=("quick", "cpu", "full"),
        default=None,
        help="quick: CI sizes, tiny models, tens of steps, few samples (numbers show the plumbing only); cpu: "
        "the CPU training recipe, each experiment within an hour on a 2-core CPU; full: sized for a GPU "
        "(default: full where PyTorch sees a CUDA GPU, else cpu, said on one line)",
    )
    p.add_argument("--quick", action="store_const", const="quick", dest="size", help="the same as --size quick")
    p.add_argument(
        "--dataset",
        choices=("mnist", "fashion-mnist", "cifar10", "synthetic"),
        default="mnist",
        help="data (default: mnist); synthetic: digit-like glyphs drawn by the experiment, no files needed",
    )
    p.add_argument("--data-dir", default=None, help="folder with the dataset's files (default: data/DATASET)")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto", help="default: auto")
    p.add_argument("--seed", type=seed, default=0, help="seeds training, sampling and subsets (default: 0)")
    p.add_argument(
        "--threads",
        type=thread_count,
        default=None,
        help="torch CPU threads (default: 1 with --quick on the CPU, else PyTorch's default)",
    )
    p.add_argument(
        "--cache-dir",
        default=None,
        help="trained runs, FID classifier, reference statistics; reused if they match (default: OUT/cache)",
    )
    p.add_argument(
        "--classifier",
        default=None,
        help="FID feature classifier from train-classifier, checked as `eval` checks it (default: train one "
        "into the cache)",
    )
    p.add_argument(
        "--render-only",
        action="store_true",
        help="write OUT/report.md and its plots again from OUT/results.json: no training, sampling or scoring",
    )
    p.set_defaults(func=run)


def command_of(args: argparse.Namespace) -> str:
    """The command line that reproduces this run, every option spelled out."""
    argv = ["cleardiffusion", "experiment", args.name, "--out", args.out]
    argv += ["--quick"] if args.size == "quick" else ["--size", args.size]
    argv += ["--dataset", args.dataset] + (["--data-dir", args.data_dir] if args.data_dir else [])
    argv += ["--device", args.device, "--seed", str(args.seed)]
    argv += ["--threads", str(args.threads)] if args.threads else []
    argv += ["--cache-dir", args.cache_dir] if args.cache_dir else []
    argv += ["--classifier", args.classifier] if args.classifier else []
    return shlex.join(argv)


def run(args: argparse.Namespace) -> int:
    from ..experiments import EXPERIMENTS, render, run_all, run_experiment
    from ..files import output_dir

    if args.render_only:  # all: the index, then every experiment folder that holds results
        written = [render(args.out, args.name)]
        for name in EXPERIMENTS if args.name == "all" else ():
            if (Path(args.out) / name / "results.json").is_file():
                written.append(render(Path(args.out) / name, name))
        print(f"wrote {', '.join(map(str, written))}")
        return 0
    if args.size is None:  # never start hours of GPU-sized work on a CPU unasked
        import torch

        gpu = torch.cuda.is_available()
        args.size = "full" if gpu else "cpu"
        why = ("a CUDA GPU is present" if gpu else "no GPU: each experiment takes up to about an hour on a 2-core "
               "CPU; --size quick checks the plumbing in about a minute")  # fmt: skip
        print(f"--size not given: {args.size} ({why})", file=sys.stderr, flush=True)
    if args.name in ("overfit-one-image", "all") and args.dataset == "cifar10":
        raise UsageError("overfit-one-image (also part of `all`) needs 1-channel images, not cifar10; use "
                         "--dataset mnist, fashion-mnist or synthetic")  # fmt: skip
    output_dir(args.out)
    options = dict(
        size=args.size,
        dataset=args.dataset,
        data_dir=args.data_dir,
        device=args.device,
        seed=args.seed,
        threads=args.threads,
        classifier=args.classifier,
        command=command_of(args),
        cache=args.cache_dir,
    )
    if args.name == "all":
        run_all(args.out, **options)
    else:
        run_experiment(args.name, args.out, **options)
    return 0
