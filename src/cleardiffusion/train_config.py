"""What a training run depends on (`TrainConfig`, stored in OUT/config.json and in every checkpoint) and its checks.

The command line builds a TrainConfig from its flags field by field name (cli/train.py); the defaults here are
the CPU recipe of docs/quality.md.
"""

import math
from dataclasses import dataclass, field

import torch
from torch import nn

from . import fastpath
from .data import DATASETS, ImageDataset
from .errors import UsageError
from .models.unet import PRESETS, unet_from_preset
from .objective import LOSS_WEIGHTINGS, OBJECTIVES, PREDICTIONS
from .schedule import SCHEDULES

PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
UNLIMITED_STEPS = 10**9  # --steps when only --time-budget bounds a run


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in OUT/config.json and in every checkpoint."""

    # ---- data
    dataset: str = "mnist"  # mnist | fashion-mnist | cifar10 | folder
    data_dir: str = "data/mnist"  # folder holding the dataset's files (downloaded into it with `download`)
    download: bool = False  # fetch the official files when they are missing (not for image folders)
    image_size: int | None = None  # image folders only: resize every image to this square size
    hflip: bool | None = None  # random left-right flips; None: on for cifar10 / folder, off for the digits
    # ---- model
    model: str = "small"  # U-Net preset: small (the CPU recipe) | seed-minimal | seed-cifar | ddpm-cifar10
    time_embedding: str | None = None  # override the preset: "middle" (the seed) or "every-block" (Ho et al.)
    dropout: float | None = None  # override the preset's dropout probability inside blocks
    base_channels: int | None = None  # override the preset's width of the first level
    model_options: dict = field(default_factory=dict)  # any other UNetConfig field, e.g. {"norm_groups": 8}
    conditional: bool = False  # class-conditional model (num_classes from the dataset) for guidance
    label_dropout: float = 0.1  # conditional only: probability a label becomes the null class (Ho & Salimans)
    # ---- diffusion
    schedule: str = "linear"  # beta schedule: linear | linear-scaled | cosine
    timesteps: int = 1000  # T, the number of diffusion steps
    objective: str = "ddpm"  # ddpm (Ho et al.) | flow (flow matching, flow.py: prediction/weighting unused)
    prediction: str = "v"  # what the network predicts: eps (Ho et al.) | v | x0 (objective.py); samplers get eps
    loss_weighting: str = "min-snr"  # min-snr (Hang et al. 2023, gamma = 5) | none (plain MSE on the target)
    # ---- optimisation
    steps: int = 10_000  # optimisation steps in total (a resumed run continues up to this number)
    time_budget: float | None = None  # minutes of training wall clock in total (resumes included); then stop
    batch_size: int = 64  # GLOBAL batch: summed over all processes; must be divisible by their number
    lr: float = 1e-3  # AdamW learning rate after warmup (the CPU recipe; Ho et al.: 2e-4 on CIFAR-10)
    warmup: int = 100  # steps of linear learning-rate warmup from 0 (Ho et al.: 5000)
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    adam_betas: tuple[float, float] = (0.9, 0.999)  # AdamW's (beta_1, beta_2)
    grad_clip: float = 1.0  # clip the global gradient norm to this (0: no clipping)
    ema_decay: float = 0.999  # EMA of the weights; the decay used at step s is min(ema_decay, (1+s)/(10+s))
    seed: int = 0  # seeds the weights and the one generator of every training draw
    # ---- hardware
    device: str = "auto"  # auto | cpu | cuda; on CUDA: bf16 autocast, channels_last, fused AdamW
    compile: bool = False  # torch.compile the model (CUDA; first steps are slow while it compiles)
    precision: str = "auto"  # autocast of the step: auto (bf16 on CUDA and on CPUs with native bf16) | fp32 | bf16
    channels_last: bool | None = None  # NHWC weights and activations; None: on CUDA only
    # ---- output
    out: str = "runs/train"  # run folder: config.json, metrics.jsonl, samples/, checkpoints/
    resume: bool = False  # continue from OUT/checkpoints/last.pt
    log_every: int = 100  # append a line to OUT/metrics.jsonl every this many steps
    sample_every: int = 5000  # write an EMA sample grid every this many steps (0: never)
    checkpoint_every: int = 1000  # write OUT/checkpoints/last.pt every this many steps (and at the end)
    keep_checkpoints: bool = False  # also keep OUT/checkpoints/step_XXXXXXX.pt at every checkpoint
    eval_every: int = 0  # score EMA samples (fixed-N FID, classifier features) every this many steps (0: never)
    eval_n: int = 256  # samples per evaluation (the same seeds every time, so the curve is comparable)
    classifier: str | None = None  # feature classifier for --eval-every (default: the cached one, trained if absent)
    tensorboard: bool = False  # also write TensorBoard events to OUT/tensorboard (needs the tensorboard package)
    progress: bool = True  # tqdm progress bar on rank 0 (when stderr is a terminal; else log lines)


# fields a resumed run may change; every other field must equal the checkpoint's
MAY_CHANGE_ON_RESUME = frozenset(
    {"data_dir", "download", "steps", "time_budget", "lr", "device", "compile", "out", "resume", "log_every",
     "sample_every", "checkpoint_every", "keep_checkpoints", "progress", "eval_every", "eval_n", "classifier",
     "tensorboard", "precision", "channels_last"}
)  # fmt: skip
# what a checkpoint written before these fields existed was trained with
FIELDS_BEFORE_THEY_EXISTED = {"objective": "ddpm", "prediction": "eps", "loss_weighting": "none"}


def validate(config: TrainConfig) -> None:
    """Raise a one-line UsageError for a value no run can use."""
    checks = [
        (config.dataset in DATASETS, f"--dataset must be one of {', '.join(DATASETS)}"),
        (config.model in PRESETS, f"--model must be one of {', '.join(PRESETS)}"),
        (config.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
        (config.time_embedding in (None, "middle", "every-block"), "--time-embedding: middle or every-block"),
        (config.precision in PRECISIONS, f"--precision must be one of {', '.join(PRECISIONS)}"),
        (config.objective in OBJECTIVES, f"--objective must be one of {', '.join(OBJECTIVES)}"),
        (config.prediction in PREDICTIONS, f"--prediction must be one of {', '.join(PREDICTIONS)}"),
        (config.loss_weighting in LOSS_WEIGHTINGS, f"--loss-weighting must be one of {', '.join(LOSS_WEIGHTINGS)}"),
        (
            config.time_budget is None or (math.isfinite(config.time_budget) and config.time_budget > 0),
            f"--time-budget must be a positive number of minutes, got {config.time_budget}",
        ),
        (config.eval_every >= 0, f"--eval-every must be >= 0 (0: never), got {config.eval_every}"),
        (config.eval_n >= 4, f"--eval-n must be at least 4 samples, got {config.eval_n}"),
        (config.steps >= 1, f"--steps must be at least 1, got {config.steps}"),
        (config.batch_size >= 1, f"--batch-size must be at least 1, got {config.batch_size}"),
        (config.timesteps >= 2, f"--timesteps must be at least 2, got {config.timesteps}"),
        (math.isfinite(config.lr) and config.lr > 0, f"--lr must be a positive number, got {config.lr}"),
        (config.warmup >= 0 and config.grad_clip >= 0, "--warmup and --grad-clip must be >= 0"),
        (0 <= config.ema_decay < 1, f"--ema-decay must lie in [0, 1), got {config.ema_decay}"),
        (0 <= config.label_dropout < 1, f"--label-dropout must lie in [0, 1), got {config.label_dropout}"),
        (config.log_every >= 1, f"--log-every must be at least 1, got {config.log_every}"),
        (
            config.checkpoint_every >= 1,
            f"--checkpoint-every must be at least 1, got {config.checkpoint_every}",
        ),
        (config.sample_every >= 0, f"--sample-every must be >= 0 (0: never), got {config.sample_every}"),
    ]
    for ok, message in checks:
        if not ok:
            raise UsageError(message)


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 convolutions and matmuls run natively, faster than fp32 (emulated, slower)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and check() for check in checks)


def step_options(config: TrainConfig, dev: torch.device) -> fastpath.FastOptions:
    """The config's speed options on this device. "auto" precision: bf16 autocast on CUDA and on a CPU with
    native bf16 (1.55x the steps per minute of fp32 on a Zen 4 core at the same quality per step,
    docs/quality.md), fp32 elsewhere."""
    cuda = dev.type == "cuda"
    auto = "bf16" if cuda or cpu_has_native_bf16() else "fp32"
    amp = auto if config.precision == "auto" else config.precision
    channels_last = cuda if config.channels_last is None else config.channels_last
    return fastpath.FastOptions(amp=amp, channels_last=channels_last, fused_adam=cuda)


def build_denoiser(config: TrainConfig, data: ImageDataset) -> nn.Module:
    """The preset U-Net for this dataset's channels and size, with the config's overrides."""
    height, width = data.image_size
    if height != width:
        raise UsageError(f"the U-Net needs square images, got {height}x{width}; pass --image-size to resize")
    overrides = dict(config.model_options)
    for name in ("time_embedding", "dropout", "base_channels"):
        if getattr(config, name) is not None:
            overrides[name] = getattr(config, name)
    num_classes = data.num_classes if config.conditional else 0
    try:
        return unet_from_preset(config.model, data.channels, height, num_classes, **overrides)
    except (ValueError, TypeError) as e:  # a --model-option or size the U-Net cannot take
        raise UsageError(f"cannot build the U-Net: {e}; change --model-option / --base-channels") from None
