"""`cleardiffusion train`: flags -> TrainConfig -> train()."""

import argparse
import ast

from ..errors import UsageError
from . import finite_float, non_negative_float, non_negative_int, positive_float, positive_int, probability, seed

EPILOG = """\
--batch-size is the GLOBAL batch: with torchrun it is split evenly over the processes (it must be
divisible by their number), so any number of GPUs trains the same model as one process would (to float
rounding).

examples:
  cleardiffusion train --dataset mnist --data-dir ../shared/data/mnist --time-budget 15 --eval-every \
      --out runs/mnist                                    # the CPU recipe: clean digits in 15 minutes
  cleardiffusion train --dataset mnist --data-dir ../shared/data/mnist --steps 20000 --out runs/mnist
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
(AVX512-BF16 or AMX; 1.55x the steps per minute at the same quality per step) and on CUDA. Seed 000's and
Ho et al.'s runs set their own values, as in the cifar10 example.
"""


def _model_option(text: str) -> tuple[str, object]:
    """KEY=VALUE with VALUE a Python literal (8, 0.1, (1, 2), 'silu') or a bare word."""
    key, sep, value = text.partition("=")
    if not sep or not key.isidentifier():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE (e.g. norm_groups=8), got {text!r}")
    try:
        return key, ast.literal_eval(value)
    except (ValueError, SyntaxError):
        return key, value


# UNetConfig fields that come from the dataset and --conditional, not from --model-option
FROM_THE_DATA = {"in_channels": "the dataset's channels", "image_size": "the dataset (or --image-size)",
                 "num_classes": "the dataset, with --conditional"}  # fmt: skip


def check_model_options(options: dict) -> dict:
    """UsageError for a --model-option that is not a UNetConfig field, comes from the data, or has the wrong type."""
    import typing
    from dataclasses import fields

    from ..models.unet import UNetConfig

    types = {f.name: f.type for f in fields(UNetConfig)}
    allowed = sorted(set(types) - set(FROM_THE_DATA))
    for key, value in options.items():
        if key in FROM_THE_DATA:
            raise UsageError(f"--model-option {key} cannot be set: it comes from {FROM_THE_DATA[key]}")
        if key not in types:
            raise UsageError(f"--model-option {key} is not a U-Net setting; choose from {', '.join(allowed)}")
        kind = types[key]
        if typing.get_origin(kind) is typing.Literal:
            ok, want = value in typing.get_args(kind), " or ".join(map(str, typing.get_args(kind)))
        elif kind in (bool, "bool"):
            ok, want = isinstance(value, bool), "True or False"
        elif kind in (int, "int"):
            ok, want = isinstance(value, int) and not isinstance(value, bool) and value >= 0, "a whole number"
        elif kind in (float, "float"):
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        else:  # tuple[int, ...]
            ok = isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            want = "a tuple of whole numbers such as (1, 2, 2)"
            value = tuple(value) if ok else value
        if not ok:
            raise UsageError(f"--model-option {key}={value!r}: expected {want}")
        options[key] = value
    return options


def register(subparsers) -> None:
    from ..data import DATASETS
    from ..models.unet import PRESETS
    from ..monitor import EVAL_DEFAULT_EVERY
    from ..objective import LOSS_WEIGHTINGS, OBJECTIVES, PREDICTIONS
    from ..schedule import SCHEDULES
    from ..train_config import PRECISIONS, TrainConfig

    D = TrainConfig()  # the defaults live in one place: the config

    p = subparsers.add_parser(
        "train",
        help="train a diffusion model on images (resumable, multi-GPU with torchrun)",
        description="Train a DDPM noise predictor (Ho et al. 2020, Algorithm 1) on an image dataset.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    data = p.add_argument_group("data")
    data.add_argument("--dataset", required=True, choices=DATASETS, help="which dataset to train on")
    data.add_argument("--data-dir", help="folder with the dataset's files (default: data/DATASET)")
    data.add_argument("--download", action="store_true", help="download the official files if missing")
    data.add_argument(
        "--image-size", type=positive_int, metavar="SIZE", help="image folders: resize every image to SIZE"
    )
    data.add_argument(
        "--hflip",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="random left-right flips (default: on for cifar10/folder, off for mnist)",
    )
    model = p.add_argument_group("model")
    model.add_argument(
        "--model", default=D.model, choices=list(PRESETS), help="U-Net preset (small: the CPU recipe, 0.62M)"
    )
    model.add_argument(
        "--time-embedding",
        choices=("middle", "every-block"),
        help="where t enters the U-Net (default: the preset's)",
    )
    model.add_argument("--dropout", type=probability, metavar="P", help="dropout inside blocks (default: the preset's)")
    model.add_argument("--base-channels", type=positive_int, metavar="C", help="width of the first U-Net level")
    model.add_argument(
        "--model-option",
        type=_model_option,
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="any other UNetConfig field, e.g. norm_groups=8 (repeatable)",
    )
    model.add_argument(
        "--conditional", action="store_true", help="class-conditional model (for classifier-free guidance)"
    )
    model.add_argument(
        "--label-dropout",
        metavar="P",
        type=probability,
        default=D.label_dropout,
        help=f"probability a label becomes the null class, with --conditional ({D.label_dropout})",
    )
    model.add_argument("--schedule", default=D.schedule, choices=SCHEDULES, help=f"beta schedule ({D.schedule})")
    model.add_argument(
        "--timesteps", type=positive_int, metavar="T", default=D.timesteps, help=f"diffusion steps T ({D.timesteps})"
    )
    model.add_argument(
        "--objective",
        choices=OBJECTIVES,
        default=D.objective,
        help=f"ddpm (Ho et al.) or flow (flow matching, Lipman et al. 2023; sample with euler|heun) ({D.objective})",
    )
    model.add_argument(
        "--prediction",
        choices=PREDICTIONS,
        default=D.prediction,
        help=f"what a ddpm network predicts: eps (Ho et al.), v (Salimans & Ho 2022) or x0 ({D.prediction})",
    )
    model.add_argument(
        "--loss-weighting",
        choices=LOSS_WEIGHTINGS,
        default=D.loss_weighting,
        help="min-snr: min(SNR, 5) on the x_0 error (Hang et al. 2023); none: plain MSE on the target "
        f"({D.loss_weighting})",
    )
    opt = p.add_argument_group("optimisation")
    opt.add_argument(
        "--steps", type=positive_int, metavar="N", help="optimisation steps in total (needed unless --time-budget)"
    )
    opt.add_argument(
        "--time-budget",
        type=positive_float,
        metavar="MINUTES",
        help="stop after this much training wall clock (resumes included), checkpoint written; with --steps, "
        "whichever comes first",
    )
    opt.add_argument(
        "--batch-size",
        metavar="B",
        type=positive_int,
        default=D.batch_size,
        help=f"GLOBAL batch over all processes, divisible by their number ({D.batch_size})",
    )
    opt.add_argument("--lr", type=positive_float, default=D.lr, help=f"AdamW learning rate ({D.lr:g}; Ho et al.: 2e-4)")
    opt.add_argument(
        "--warmup", type=non_negative_int, default=D.warmup, help=f"linear learning-rate warmup steps ({D.warmup})"
    )
    opt.add_argument(
        "--weight-decay",
        type=non_negative_float,
        default=D.weight_decay,
        help=f"AdamW weight decay ({D.weight_decay:g})",
    )
    opt.add_argument(
        "--adam-betas",
        type=finite_float,
        nargs=2,
        default=D.adam_betas,
        metavar=("B1", "B2"),
        help=f"AdamW's beta_1 beta_2 ({D.adam_betas[0]} {D.adam_betas[1]})",
    )
    opt.add_argument(
        "--grad-clip", type=non_negative_float, default=D.grad_clip, help=f"max gradient norm, 0: off ({D.grad_clip:g})"
    )
    opt.add_argument(
        "--ema-decay", type=probability, default=D.ema_decay, help=f"EMA decay of the weights ({D.ema_decay})"
    )
    opt.add_argument("--seed", type=seed, default=D.seed, help=f"seed of the weights and of every draw ({D.seed})")
    hw = p.add_argument_group("hardware")
    hw.add_argument("--device", default=D.device, choices=("auto", "cpu", "cuda"), help="auto: CUDA if present")
    hw.add_argument("--compile", action="store_true", help="torch.compile the model (CUDA)")
    hw.add_argument(
        "--precision",
        choices=PRECISIONS,
        default=D.precision,
        help="autocast of the training step: auto (bf16 on CUDA and on CPUs with native bf16, AVX512-BF16 or "
        f"AMX; else fp32), fp32 or bf16 ({D.precision})",
    )
    hw.add_argument(
        "--channels-last",
        action=argparse.BooleanOptionalAction,
        default=D.channels_last,
        help="NHWC memory format for weights and activations (default: on CUDA only)",
    )
    out = p.add_argument_group("output")
    out.add_argument("--out", required=True, help="run folder: config, metrics, samples, checkpoints")
    out.add_argument("--resume", action="store_true", help="continue from OUT/checkpoints/last.pt")
    out.add_argument(
        "--log-every",
        type=positive_int,
        default=D.log_every,
        metavar="N",
        help=f"steps between lines of OUT/metrics.jsonl ({D.log_every})",
    )
    out.add_argument(
        "--sample-every",
        type=non_negative_int,
        default=D.sample_every,
        metavar="N",
        help=f"steps between sample grids (dpm++2m-sde, 50 steps) of the EMA model in OUT/samples, 0: never "
        f"({D.sample_every})",
    )
    out.add_argument(
        "--checkpoint-every",
        type=positive_int,
        default=D.checkpoint_every,
        metavar="N",
        help=f"steps between writes of OUT/checkpoints/last.pt ({D.checkpoint_every})",
    )
    out.add_argument("--keep-checkpoints", action="store_true", help="also keep step_XXXXXXX.pt files")
    out.add_argument(
        "--eval-every",
        type=int,
        nargs="?",
        const=EVAL_DEFAULT_EVERY,
        default=0,
        metavar="N",
        help=f"every N steps (alone: {EVAL_DEFAULT_EVERY}) score EMA samples: a fixed-N FID in the features of the "
        "dataset's classifier, into metrics.jsonl and curves.png (0: never)",
    )
    out.add_argument(
        "--eval-n", type=positive_int, default=D.eval_n, metavar="N", help=f"samples per evaluation ({D.eval_n})"
    )
    out.add_argument(
        "--classifier",
        metavar="FILE",
        help="feature classifier for --eval-every (default: the cached one; trained first if there is none)",
    )
    out.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard events (pip install tensorboard)"
    )
    out.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bar")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from dataclasses import fields

    from ..schedule import NoiseSchedule
    from ..train import UNLIMITED_STEPS, TrainConfig, train

    if args.steps is None and args.time_budget is None:
        raise UsageError("say how long to train: --steps N, --time-budget MINUTES, or both")
    options = check_model_options(dict(args.model_option))
    try:  # a schedule that cannot exist (linear-scaled below T = 21); capped T: only the validity is checked
        NoiseSchedule.from_name(args.schedule, min(args.timesteps, 10_000))
    except ValueError as e:
        raise UsageError(f"--schedule {args.schedule} --timesteps {args.timesteps}: {e}") from None
    if not all(0 <= b < 1 for b in args.adam_betas):
        raise UsageError(f"--adam-betas must both lie in [0, 1), got {args.adam_betas[0]} {args.adam_betas[1]}")
    values = {f.name: getattr(args, f.name) for f in fields(TrainConfig) if hasattr(args, f.name)}
    values.update(
        data_dir=args.data_dir or f"data/{args.dataset}",
        model_options=options,
        steps=args.steps if args.steps is not None else UNLIMITED_STEPS,
        adam_betas=tuple(args.adam_betas),
    )
    config = TrainConfig(**values)  # every field from the flag of the same name
    return train(config)["exit_code"]
