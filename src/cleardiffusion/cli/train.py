"""`cleardiffusion train`: flags -> TrainConfig -> train().

Every flag is a TrainConfig field (train_config.py declares its type, default, help text and group once);
`validate` checks the values and their combination, so this module only parses and calls.
"""

import argparse

EPILOG = """\
--batch-size is the GLOBAL batch: with torchrun it is split evenly over the processes (it must be
divisible by their number), so any number of GPUs trains the same model as one process would (to float
rounding).

examples:
  cleardiffusion train --dataset mnist --data-dir ../shared/data/mnist --time-budget 15 --eval-every \\
      --out runs/mnist                                    # the CPU recipe: the README's 15-minute run
  cleardiffusion train --dataset mnist --data-dir ../shared/data/mnist --steps 20000 --out runs/mnist
  cleardiffusion train --dataset mnist --data-dir ../shared/data/mnist --time-budget 15 --model vit-small \\
      --model-option mixer=scan --out runs/ssm   # a transformer, tokens mixed by a scan (docs/backbones.md)
  cleardiffusion train --dataset cifar10 --data-dir data/cifar10 --model ddpm-cifar10 --conditional \\
      --steps 800000 --batch-size 128 --lr 2e-4 --warmup 5000 --ema-decay 0.9999 --prediction eps \\
      --loss-weighting none --out runs/cifar   # Ho et al.'s settings; add --resume to continue after a stop
  torchrun --nproc-per-node 8 -m cleardiffusion train --dataset cifar10 ... --out runs/cifar
  torchrun --nnodes 2 --node-rank K --master-addr HOST --master-port 29500 --nproc-per-node 8 \\
      -m cleardiffusion train ...                         # on every node K = 0, 1

Ctrl-C or SIGTERM finishes the current step, writes OUT/checkpoints/last.pt and exits with status 130
(SIGINT) or 143 (SIGTERM); rerun the same command with --resume to continue where it stopped (on the
CPU, bit for bit).

The defaults are the CPU recipe (docs/quality.md): the small preset, v-prediction with min-SNR-5 weighting,
batch 64, lr 1e-3 after 100 warm-up steps, EMA 0.999, bf16 autocast where the CPU computes bf16 natively
(AVX512-BF16 or AMX; on an AVX512-BF16 Zen 4 core 1.55x the steps per minute at the same quality per
step; AMX was not measured) and on CUDA. Seed 000's and Ho et al.'s runs set their own values, as in the
cifar10 example.
"""


def register(subparsers) -> None:
    from ..options import add_arguments
    from ..train_config import TrainConfig

    parser = subparsers.add_parser(
        "train",
        help="train a diffusion model on images (resumable, multi-GPU with torchrun)",
        description="Train a DDPM noise predictor (Ho et al. 2020, Algorithm 1) on an image dataset.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_arguments(parser, TrainConfig)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..options import given_values
    from ..train import UNLIMITED_STEPS, TrainConfig, train, validate

    values = given_values(args, TrainConfig)  # only the flags given: every default is TrainConfig's
    values.setdefault("data_dir", f"data/{values['dataset']}")
    values.setdefault("steps", UNLIMITED_STEPS)  # validate insists on --steps or --time-budget
    config = TrainConfig(**values)
    validate(config, given=values.keys())  # before anything is loaded or written
    return train(config)["exit_code"]
