"""What a training run depends on (`TrainConfig`, stored in OUT/config.json and in every checkpoint) and its checks.

Each field is declared once: its type (a `Literal` where it has choices), default, `--help` text, group and
bounds (options.py); `cleardiffusion train` builds its flags from the fields, and `validate` is the one place
every value and combination is checked, for the command line and the Python API alike. The defaults are the
CPU recipe of docs/quality.md.
"""

import typing
from collections.abc import Collection
from dataclasses import MISSING, dataclass, fields

import torch
from torch import nn

from . import fastpath
from .consistency import DMD_T_MIN, Distance, Method
from .data import ImageDataset
from .data.dataset import DatasetName
from .denoiser import UNUSED_OPTIONS
from .distributed import DeviceName
from .errors import UsageError
from .limits import FLOAT32, MAX_TIMESTEPS, check_memory, resolve_device
from .models import CONFIG_TYPES, PRESETS, model_from_preset, preset_kind
from .models.unet import UNetConfig
from .objective import LossWeighting, Objective, Prediction
from .options import check_fields, option
from .schedule import NoiseSchedule, ScheduleName

Precision = typing.Literal["auto", "fp32", "bf16"]
PRECISIONS: tuple[str, ...] = typing.get_args(Precision)
TimeEmbedding = typing.get_type_hints(UNetConfig)["time_embedding"]  # the U-Net's own Literal
UNLIMITED_STEPS = 10**9  # --steps when only --time-budget bounds a run
TIMESTEPS_MAX = MAX_TIMESTEPS  # limits.py: T beyond it, float32 alpha_bar_T underflows and samplers divide by 0
EVAL_DEFAULT_EVERY = 1500  # `--eval-every` without a number: about 3% of the training time (docs/quality.md)
SEED_MAX = 2**63 - 1  # torch.Generator's seeds
DATA, MODEL, DISTILL, OPTIMISATION, HARDWARE, OUTPUT = (
    "data", "model", "distillation (objective consistency: `cleardiffusion distill`)", "optimisation", "hardware",
    "output",
)  # --help groups  # fmt: skip
DISTILL_FIELDS = ("teacher", "distill_method", "consistency_delta", "consistency_distance", "teacher_guidance",
                  "trajectories", "teacher_steps", "student", "chain", "dmd_chain", "dmd_fake_steps", "dmd_fake_lr",
                  "dmd_gan", "dmd_t_max", "autoguide", "autoguide_from", "grow_student", "student_codes")  # fmt: skip


@dataclass
class TrainConfig:
    """Everything a training run depends on; stored in OUT/config.json and in every checkpoint."""

    # ---- data
    dataset: DatasetName = option("mnist", "which dataset to train on", DATA, required=True)
    data_dir: str = option(
        "data/mnist", "folder with the dataset's files (default: data/DATASET)", DATA, show_default=False
    )
    download: bool = option(False, "download the official files if missing (not for image folders)", DATA)
    image_size: int | None = option(None, "image folders: resize every image to SIZE", DATA, metavar="SIZE", at_least=1)
    hflip: bool | None = option(
        None, "random left-right flips (default: on for cifar10/folder, off for the digits)", DATA
    )
    # ---- model
    model: str = option(
        "small",
        "network preset: a U-Net (small: the CPU recipe, 0.62M; seed-minimal, seed-cifar, ddpm-cifar10) or a "
        "transformer (vit-small, ssm-small: its tokens mixed by a linear-time scan; jit-b16: JiT-B/16, 131M)",
        MODEL,
        choices=tuple(PRESETS),
    )
    time_embedding: TimeEmbedding | None = option(
        None, "where t enters the U-Net: middle (seed 000) or every-block (Ho et al.) (default: the preset's)", MODEL
    )
    dropout: float | None = option(
        None, "dropout inside blocks (default: the preset's)", MODEL, metavar="P", at_least=0, below=1
    )
    base_channels: int | None = option(
        None, "width of the first U-Net level (default: the preset's)", MODEL, metavar="C", at_least=1
    )
    model_options: dict = option(
        help="any other field of the preset's UNetConfig or ViTConfig, e.g. norm_groups=8, patch_size=2 (repeatable)",
        group=MODEL,
        flag="--model-option",
        metavar="KEY=VALUE",
        default_factory=dict,
    )
    conditional: bool = option(False, "class-conditional model (num_classes from the dataset) for guidance", MODEL)
    label_dropout: float = option(
        0.1,
        "with --conditional: probability a label becomes the null class (Ho & Salimans)",
        MODEL,
        metavar="P",
        at_least=0,
        below=1,
    )
    # ---- diffusion
    schedule: ScheduleName = option("linear", "beta schedule", MODEL)
    timesteps: int = option(
        1000, f"diffusion steps T (at most {TIMESTEPS_MAX:,})", MODEL, metavar="T", at_least=2, at_most=TIMESTEPS_MAX
    )
    objective: Objective = option(
        "ddpm",
        "ddpm (Ho et al.), flow (flow matching, Lipman et al. 2023; any sampler runs on it) or meanflow (average "
        "velocity, Geng et al. 2025: 1-8 steps with its own sampler); consistency: a 1-8 step model distilled "
        "from --teacher (cleardiffusion distill)",
        MODEL,
    )
    prediction: Prediction = option(
        "v", "what a ddpm network predicts: eps (Ho et al.), v (Salimans & Ho 2022) or x0", MODEL
    )
    loss_weighting: LossWeighting = option(
        "min-snr",
        "ddpm: min-snr weighs the x_0 error by min(SNR, 5) (Hang et al. 2023); none: plain MSE on the target",
        MODEL,
    )
    # ---- distillation (consistency.py)
    teacher: str | None = option(
        None, "the DDPM checkpoint a consistency model starts from (its EMA weights)", DISTILL, metavar="CKPT"
    )
    distill_method: Method = option(
        "trajectory",
        "trajectory: regress each point of the teacher's ODE trajectories onto their ends; cd: consistency "
        "distillation (a frozen teacher's ODE step); ect: consistency tuning (no teacher evaluations); dmd: "
        "distribution matching (Yin et al. 2024) of a --student towards the teacher's samples",
        DISTILL,
    )
    student: str | None = option(
        None, "a `distill` checkpoint of this teacher to start from instead of the teacher's weights (needed by "
        "dmd)", DISTILL, metavar="CKPT",
    )  # fmt: skip
    chain: str | None = option(
        None, "a `distill` checkpoint of this teacher whose network `sample` uses at 2 or more steps: this run's "
        "checkpoints carry it beside their own network, which then serves one step only (a one-step map trained "
        "harder than a chain can be: docs/few_step.md, \"Two networks\")", DISTILL, metavar="CKPT",
    )  # fmt: skip
    consistency_delta: int | None = option(
        None, "cd, ect: indices between the two points the consistency loss compares, t and t - K (default: T / 4, "
        "the 4-step grid's stride)", DISTILL, metavar="K", at_least=1, at_most=TIMESTEPS_MAX,
    )  # fmt: skip
    consistency_distance: Distance = option(
        "pseudo-huber", "distance between the two predictions: pseudo-huber (Song & Dhariwal 2023) or mse", DISTILL
    )
    teacher_guidance: float = option(
        1.0, "cd, trajectory, conditional: labelled samples follow the teacher's guided ODE at this scale; dmd: "
        "they move towards its guided distribution, and a smaller W than the student's keeps their variety "
        "(docs/few_step.md)", DISTILL,
        metavar="W", at_least=0,
    )  # fmt: skip
    trajectories: int = option(
        2000, "trajectory: teacher trajectories made before training (their minutes count in --time-budget)",
        DISTILL, metavar="N", at_least=1,
    )  # fmt: skip
    teacher_steps: int = option(
        16, "trajectory: steps of the teacher's solver (dpm++2m, trailing) per trajectory", DISTILL, metavar="K",
        at_least=1, at_most=TIMESTEPS_MAX,
    )  # fmt: skip
    dmd_chain: int = option(
        1, "dmd: the student learns at each point of its own N-step chain on the jump grid (DMD2's backward "
        "simulation; 1: its one-step map from pure noise only)", DISTILL, metavar="N", at_least=1, at_most=4,
    )  # fmt: skip
    dmd_fake_steps: int = option(
        1, "dmd: AdamW steps of the fake-score network per student step", DISTILL, metavar="N", at_least=1,
        at_most=10,
    )  # fmt: skip
    dmd_fake_lr: float | None = option(
        None, "dmd: AdamW learning rate of the fake-score network (default: 10 x --lr: it must keep up with the "
        "student; at --lr 1e-4, 5e-4 kept its samples clean where 1e-3 did not: docs/few_step.md)", DISTILL,
        metavar="LR", above=0, show_default=False,
    )  # fmt: skip
    dmd_gan: float = option(
        0.3, "dmd: weight of DMD2's GAN term, a discriminator on the fake network's U-Net middle block that tells "
        "data from the student's samples (0: off; other backbones need 0)", DISTILL, metavar="W", at_least=0,
    )  # fmt: skip
    dmd_t_max: float = option(
        0.98, "dmd: the highest noise level, as a fraction of T, at which the student's sample is noised to compare "
        "the two scores (DMD: 0.98; from an unconditional teacher 0.5: a lower one-step FID on six of six MNIST "
        "draws, docs/few_step.md)", DISTILL, metavar="F", above=DMD_T_MIN, at_most=1,
        show_default=False,
    )  # fmt: skip
    autoguide: str | None = option(
        None, "trajectory, dmd, an unconditional teacher: autoguided (Karras et al. 2024) by CKPT, a worse model "
        "of the same recipe (e.g. 2 minutes of `train`), at --teacher-guidance W: eps_bad + W (eps - eps_bad); "
        "trajectory follows the autoguided ODE, dmd's real score is the autoguided one",
        DISTILL, metavar="CKPT",
    )  # fmt: skip
    autoguide_from: float = option(
        0.0, "trajectory, dmd with --autoguide: guide only from this fraction of the noise levels up, t >= F T, and "
        "not below (guidance on a limited interval, Kynkaanniemi et al. 2024); 0: every level", DISTILL, metavar="F",
        at_least=0, below=1,
    )  # fmt: skip
    grow_student: int = option(
        0, "N more residual blocks at the student's lowest resolution than the teacher's (or --student's) U-Net, "
        "each the identity at the start and learning at 10 x --lr: a deeper one-step map for a little more "
        "compute per evaluation (distill's default: 4 for the trajectory method from an unconditional U-Net "
        "teacher's own weights, else 0; docs/few_step.md)", DISTILL, metavar="N", at_least=0, at_most=16,
        show_default=False,
    )  # fmt: skip
    student_codes: int = option(
        0, "trajectory: a U-Net student that picks one of K codes inside its forward (a head on its encoder's "
        "output; the code's embedding, zero at the start, reaches the middle and decoder), taught with k-means "
        "clusters of the teacher's features of the trajectories' ends, so that its one-step map can jump between "
        "digits instead of blending them (distill's default: 20 where --grow-student defaults to 4, else 0; "
        "docs/few_step.md)", DISTILL, metavar="K", at_least=0, at_most=256, show_default=False,
    )  # fmt: skip
    # ---- optimisation
    steps: int = option(
        10_000,
        "optimisation steps in total (needed unless --time-budget; a resumed run continues up to this number)",
        OPTIMISATION,
        metavar="N",
        at_least=1,
        show_default=False,
    )
    time_budget: float | None = option(
        None,
        "stop after this much training wall clock (resumes included), "
        "checkpoint written; with --steps, whichever comes first",
        OPTIMISATION,
        metavar="MINUTES",
        above=0,
    )
    batch_size: int = option(
        64, "GLOBAL batch over all processes, divisible by their number", OPTIMISATION, metavar="B", at_least=1
    )
    lr: float = option(1e-3, "AdamW learning rate after warmup (Ho et al.: 2e-4)", OPTIMISATION, above=0)
    warmup: int = option(100, "steps of linear learning-rate warmup from 0 (Ho et al.: 5000)", OPTIMISATION, at_least=0)
    weight_decay: float = option(0.0, "AdamW's decoupled weight decay", OPTIMISATION, at_least=0)
    adam_betas: tuple[float, float] = option(
        (0.9, 0.999), "AdamW's beta_1 beta_2", OPTIMISATION, metavar=("B1", "B2"), at_least=0, below=1
    )
    grad_clip: float = option(1.0, "clip the global gradient norm to this, 0: off", OPTIMISATION, at_least=0)
    ema_decay: float = option(
        0.999,
        "EMA decay of the weights (at step s: min(ema_decay, (1+s)/(ema_warmup+s)))",
        OPTIMISATION,
        at_least=0,
        below=1,
    )
    ema_warmup: int = option(
        10,
        "the EMA's warm start: the first steps forget the starting weights fast; 0: ema_decay from the first "
        "step (weights that start trained: dmd)",
        OPTIMISATION,
        metavar="W",
        at_least=0,
    )
    seed: int = option(0, "seed of the weights and of every training draw", OPTIMISATION, at_least=0, at_most=SEED_MAX)
    # ---- hardware
    device: DeviceName = option(
        "auto", "auto: CUDA if present; on CUDA bf16 autocast, channels_last, fused AdamW", HARDWARE
    )
    compile: bool = option(
        False,
        "torch.compile the model (a C++ compiler on a CPU, Triton on CUDA; the first steps are slow while it compiles)",
        HARDWARE,
    )
    precision: Precision = option(
        "auto",
        "autocast of the training step (and of distill's teacher trajectories): auto (bf16 on CUDA and on CPUs "
        "with native bf16, AVX512-BF16 or AMX; else fp32), fp32 or bf16",
        HARDWARE,
    )
    channels_last: bool | None = option(
        None, "NHWC memory format for weights and activations (default: on CUDA only)", HARDWARE
    )
    # ---- output
    out: str = option(
        "runs/train", "run folder: config.json, metrics.jsonl, samples/, checkpoints/", OUTPUT, required=True
    )
    resume: bool = option(False, "continue from OUT/checkpoints/last.pt", OUTPUT)
    log_every: int = option(100, "steps between lines of OUT/metrics.jsonl", OUTPUT, metavar="N", at_least=1)
    sample_every: int = option(
        5000,
        "steps between sample grids of the EMA model in OUT/samples (the objective's default sampler: dpm++2m-sde, "
        "50 steps for ddpm), 0: never",
        OUTPUT,
        metavar="N",
        at_least=0,
    )
    checkpoint_every: int = option(
        1000, "steps between writes of OUT/checkpoints/last.pt (and at the end)", OUTPUT, metavar="N", at_least=1
    )
    keep_checkpoints: bool = option(False, "also keep OUT/checkpoints/step_XXXXXXX.pt at every checkpoint", OUTPUT)
    eval_every: int = option(
        0,
        f"every N steps (alone: {EVAL_DEFAULT_EVERY}) score EMA samples: a fixed-N FID in "
        "the features of the dataset's classifier, into metrics.jsonl and curves.png (0: never)",
        OUTPUT,
        metavar="N",
        const=EVAL_DEFAULT_EVERY,
        at_least=0,
    )
    eval_n: int = option(
        256, "with --eval-every: samples per evaluation (the same seeds every time)", OUTPUT, metavar="N", at_least=4
    )
    classifier: str | None = option(
        None,
        "with --eval-every: feature classifier (default: the one shipped for mnist, fashion-mnist, cifar10)",
        OUTPUT,
        metavar="FILE",
    )
    tensorboard: bool = option(
        False, "also write TensorBoard events to OUT/tensorboard (pip install tensorboard)", OUTPUT
    )
    progress: bool = option(True, "no tqdm progress bar (else one on rank 0 when stderr is a terminal)", OUTPUT)


# fields a resumed run may change; every other field must equal the checkpoint's
MAY_CHANGE_ON_RESUME = frozenset(
    {"data_dir", "download", "steps", "time_budget", "lr", "device", "compile", "out", "resume", "log_every",
     "sample_every", "checkpoint_every", "keep_checkpoints", "progress", "eval_every", "eval_n", "classifier",
     "tensorboard", "precision", "channels_last"}
)  # fmt: skip
# what a checkpoint written before these fields existed was trained with, where that is not today's default
FIELDS_BEFORE_THEY_EXISTED = {"objective": "ddpm", "prediction": "eps", "loss_weighting": "none", "student": None}


def config_as_of_today(saved: dict) -> dict:
    """A saved run's config with the fields added since it was written: FIELDS_BEFORE_THEY_EXISTED where their old
    behaviour is not today's default, else today's default (a new option that leaves old runs as they were)."""
    defaults = {f.name: f.default_factory() if f.default is MISSING else f.default for f in fields(TrainConfig)}
    return {**defaults, **FIELDS_BEFORE_THEY_EXISTED, **saved}


U_NET_FLAGS = ("time_embedding", "base_channels")  # TrainConfig fields that only a U-Net reads
# UNetConfig / ViTConfig fields that come from the dataset, --conditional and --objective, not from --model-option
FROM_THE_DATA = {"in_channels": "the dataset's channels", "image_size": "the dataset (or --image-size)",
                 "num_classes": "the dataset, with --conditional",
                 "time_inputs": "--objective (2 for meanflow: t and t - r)"}  # fmt: skip
# (channels, height, width) of the official datasets' images, for estimates made before they are loaded
IMAGE_SHAPES = {"mnist": (1, 28, 28), "fashion-mnist": (1, 28, 28), "cifar10": (3, 32, 32)}
FEATURES = 128 + 10  # floats per evaluation sample: the classifier's features (features.py) and logits


def validate(config: TrainConfig, given: Collection[str] | None = None) -> None:
    """Raise a one-line UsageError, naming the flag and the fix, for a value or combination no run can use.

    Args:
        given: the fields the user set (the command line passes its flags); None: those that differ from
            their defaults. A field set to no effect in the combination given is refused, not ignored.
    """
    if given is None:
        default = TrainConfig()
        given = {f.name for f in fields(config) if getattr(config, f.name) != getattr(default, f.name)}
    check_fields(config)  # every field within its Literal's choices and its declared bounds
    if config.steps == UNLIMITED_STEPS and config.time_budget is None:
        raise UsageError("say how long to train: --steps N, --time-budget MINUTES, or both")
    unused, why = UNUSED_OPTIONS[config.objective]  # options this objective's loss never reads
    refuse_unused(given, unused, f"with --objective {config.objective} ({why})")
    check_distillation(config, given)
    if not config.eval_every:
        refuse_unused(given, ("eval_n", "classifier"), "without --eval-every", "add --eval-every [N] or ")
    try:  # a schedule that cannot exist (linear-scaled below T = 21)
        NoiseSchedule.from_name(config.schedule, config.timesteps)
    except ValueError as e:
        raise UsageError(f"--schedule {config.schedule} --timesteps {config.timesteps}: {e}") from None
    check_model_flags(config, given)
    check_model_options(config.model_options, config.model)
    if config.eval_every:
        check_eval_memory(config)
    if config.compile and (problem := fastpath.compiler_problem(resolve_device(config.device))):
        raise UsageError(f"--compile: {problem}, or drop --compile (the same steps, uncompiled)")


def check_distillation(config: TrainConfig, given: Collection[str]) -> None:
    """The distillation fields: only with objective consistency, which needs a teacher; guidance needs labels."""
    if config.objective != "consistency":
        refuse_unused(given, DISTILL_FIELDS, "without --objective consistency", "use `cleardiffusion distill`, or ")
        return
    if not config.teacher:
        raise UsageError("--objective consistency starts from a teacher: pass --teacher CKPT, or use "
                         "`cleardiffusion distill --teacher CKPT`")  # fmt: skip
    method = config.distill_method
    dmd_only = ("dmd_chain", "dmd_fake_steps", "dmd_fake_lr", "dmd_gan", "dmd_t_max")
    unused = {"ect": ("teacher_guidance", "trajectories", "teacher_steps", "autoguide", "autoguide_from",
                      "student_codes", *dmd_only),
              "cd": ("trajectories", "teacher_steps", "autoguide", "autoguide_from", "student_codes", *dmd_only),
              "trajectory": ("consistency_delta", *dmd_only),
              "dmd": ("consistency_delta", "consistency_distance", "trajectories", "teacher_steps", "student_codes"),
              }[method]  # fmt: skip
    refuse_unused(given, unused, f"with --distill-method {method}")
    if method == "dmd" and not config.student:
        raise UsageError("--distill-method dmd improves a distilled model: pass --student CKPT (a `cleardiffusion "
                         "distill` checkpoint of this teacher, e.g. the default method's)")  # fmt: skip
    if config.grow_student and preset_kind(config.model) != "unet":
        raise UsageError(f"--grow-student adds U-Net blocks; this teacher is a --model {config.model}: drop "
                         "--grow-student")  # fmt: skip
    if config.student_codes and preset_kind(config.model) != "unet":
        raise UsageError(f"--student-codes gives a U-Net student a code; this teacher is a --model {config.model}: "
                         "drop --student-codes")  # fmt: skip
    if config.student_codes == 1:
        raise UsageError("--student-codes 1 is one code, which chooses nothing: pass 0 (none) or at least 2")
    if config.student_codes and config.student:
        raise UsageError("--student-codes adds a code to the network the run starts from; --student gives a "
                         "distilled one: drop --student or --student-codes")  # fmt: skip
    if method == "dmd" and config.resume:
        raise UsageError("a dmd run cannot resume (its fake-score network is not checkpointed): start a new run "
                         "with --student set to this run's checkpoints/last.pt")  # fmt: skip
    if not config.autoguide:
        refuse_unused(given, ("autoguide_from",), "without --autoguide", "add --autoguide CKPT or ")
    if config.autoguide and config.conditional:
        raise UsageError("--autoguide guides an unconditional teacher; this one is conditional: use "
                         "--teacher-guidance alone (classifier-free guidance), or drop --autoguide")  # fmt: skip
    if config.teacher_guidance != 1.0 and not config.conditional and not config.autoguide:
        raise UsageError("--teacher-guidance guides a conditional teacher, or an unconditional one with "
                         "--autoguide CKPT; this one is unconditional: drop it, or add --autoguide")  # fmt: skip
    delta = config.consistency_delta
    if method != "trajectory" and delta is not None and delta >= config.timesteps:
        raise UsageError(f"--consistency-delta {config.consistency_delta} must be below the teacher's "
                         f"{config.timesteps} steps")  # fmt: skip


def refuse_unused(given: Collection[str], names: tuple[str, ...], why: str, fix: str = "") -> None:
    """UsageError when fields that do nothing in this combination were set: "--x does nothing WHY; drop --x"."""
    flags = " and ".join(f"--{name.replace('_', '-')}" for name in names if name in given)
    if flags:
        verb = "do" if " and " in flags else "does"
        raise UsageError(f"{flags} {verb} nothing {why}; {fix}drop {flags}")


def check_model_flags(config: TrainConfig, given: Collection[str]) -> None:
    """--time-embedding and --base-channels are U-Net settings: refused with a transformer preset."""
    if preset_kind(config.model) == "vit":
        refuse_unused(given, U_NET_FLAGS, f"with --model {config.model} (a transformer: its width is "
                      "--model-option hidden=N)")  # fmt: skip


def check_model_options(options: dict, model: str = "small") -> None:
    """UsageError for a --model-option that is not a field of `model`'s config (UNetConfig or ViTConfig), comes
    from the data, or has the wrong type.

    A list of whole numbers becomes the tuple the U-Net takes (`options` is updated in place)."""
    family = preset_kind(model)
    types = typing.get_type_hints(CONFIG_TYPES[family])
    allowed = sorted(set(types) - set(FROM_THE_DATA))
    what = {"unet": "U-Net", "vit": "ViT"}[family]
    for key, value in options.items():
        if key in FROM_THE_DATA:
            raise UsageError(f"--model-option {key} cannot be set: it comes from {FROM_THE_DATA[key]}")
        if key not in types:
            raise UsageError(f"--model-option {key} is not a {what} setting (--model {model}); choose from "
                             f"{', '.join(allowed)}")  # fmt: skip
        kind = types[key]
        if typing.get_origin(kind) is typing.Literal:
            ok, want = value in typing.get_args(kind), " or ".join(map(str, typing.get_args(kind)))
        elif kind is bool:
            ok, want = isinstance(value, bool), "True or False"
        elif kind is int:
            ok, want = isinstance(value, int) and not isinstance(value, bool) and value >= 0, "a whole number"
        elif kind is float:
            ok, want = isinstance(value, (int, float)) and not isinstance(value, bool), "a number"
        else:  # tuple[int, ...]
            ok = isinstance(value, (tuple, list)) and all(isinstance(v, int) and not isinstance(v, bool) for v in value)
            want = "a tuple of whole numbers such as (1, 2, 2)"
            value = tuple(value) if ok else value
        if not ok:
            raise UsageError(f"--model-option {key}={value!r}: expected {want}")
        options[key] = value


def check_eval_memory(config: TrainConfig) -> None:
    """Refuse an --eval-n whose samples cannot fit in memory before training starts, not when it evaluates.

    A lower bound: the samples in float32 and as uint8 images (C, H, W each) and the classifier's features.
    """
    size = config.image_size or 1  # an image folder's size is unknown before it is read: 1 pixel, a lower bound
    channels, height, width = IMAGE_SHAPES.get(config.dataset, (1, size, size))
    need = config.eval_n * ((FLOAT32 + 1) * channels * height * width + FLOAT32 * FEATURES)
    check_memory(need, f"--eval-n {config.eval_n} ({channels}x{height}x{width} samples and their features)",
                 "lower --eval-n")  # fmt: skip


def step_options(config: TrainConfig, dev: torch.device) -> fastpath.FastOptions:
    """The config's speed options on this device. "auto" precision: bf16 autocast on CUDA and on a CPU with
    native bf16 (1.55x the steps per minute of fp32 on a Zen 4 core at the same quality per step,
    docs/quality.md), fp32 elsewhere; always fp32 for MeanFlow."""
    cuda = dev.type == "cuda"
    amp = fastpath.auto_amp(dev) if config.precision == "auto" else config.precision
    amp = "fp32" if config.objective == "meanflow" else amp  # its jvp runs in float32 (meanflow.py)
    channels_last = cuda if config.channels_last is None else config.channels_last
    return fastpath.FastOptions(amp=amp, channels_last=channels_last, fused_adam=fastpath.fused_adam_supported(dev))


def build_denoiser(config: TrainConfig, data: ImageDataset) -> nn.Module:
    """The preset network (U-Net or ViT) for this dataset's channels and size, with the config's overrides (two
    time inputs for --objective meanflow)."""
    height, width = data.image_size
    kind = {"unet": "U-Net", "vit": "ViT"}[preset_kind(config.model)]
    if height != width:
        raise UsageError(f"the {kind} needs square images, got {height}x{width}; pass --image-size to resize")
    overrides = dict(config.model_options)
    for name in ("time_embedding", "dropout", "base_channels"):
        if getattr(config, name) is not None:
            overrides[name] = getattr(config, name)
    if config.grow_student:  # a distillation student: the network it starts from, grown (train_run.start_from_teacher)
        overrides["extra_middle_blocks"] = overrides.get("extra_middle_blocks", 0) + config.grow_student
    if config.student_codes:  # ... with a code (models.unet.CodeHead)
        overrides["code_classes"] = config.student_codes
    if config.objective == "meanflow":  # u_theta(z_t, r, t) sees two times (meanflow.py)
        overrides["time_inputs"] = 2
    num_classes = data.num_classes if config.conditional else 0
    try:
        return model_from_preset(config.model, data.channels, height, num_classes, **overrides)
    except (ValueError, TypeError) as e:  # a --model-option or size the network cannot take
        fix = "--model-option / --base-channels" if kind == "U-Net" else "--model-option"
        raise UsageError(f"cannot build the {kind} --model {config.model}: {e}; change {fix}") from None
