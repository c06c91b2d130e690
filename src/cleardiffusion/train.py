"""Train an image denoiser with L_simple (Ho et al. 2020, Algorithm 1): one explicit loop, top to bottom.

    repeat: x_0 ~ q(x_0), t ~ Uniform{1..T}, eps ~ N(0, I); step on grad || eps - eps_theta(x_t, t) ||^2

Reproducible and distributed by design. Every random number of a step (batch indices, t, eps, flips,
label dropout) is drawn for the GLOBAL batch from ONE generator, seeded identically in every process; each
of the W processes then takes its slice [rank * B/W, (rank + 1) * B/W). W processes at global batch B
therefore compute exactly the per-sample losses of one process at batch B, and the gradient all-reduce
(a mean) gives the same update to float rounding. The generator's state is checkpointed, so a resumed
run draws what the uninterrupted run would have drawn: on the CPU it reproduces its losses exactly, and it
may resume with a different number of processes. (Dropout, where a preset has it, draws from each
process's own global RNG: its masks are not part of this equivalence.)

Run it on several GPUs or nodes with torchrun (nothing else to configure):

    torchrun --nproc-per-node 8 -m cleardiffusion train --dataset cifar10 ...               # one node
    torchrun --nnodes 2 --node-rank K --master-addr HOST --master-port 29500 \\
             --nproc-per-node 8 -m cleardiffusion train ...                                   # each node

Only rank 0 logs, samples and writes checkpoints; OUT must be on a filesystem every node can read to resume.

Interruptions: SIGINT (Ctrl-C) or SIGTERM finish the current step (distributed processes agree on it
within STOP_CHECK_EVERY steps), write a checkpoint and return with `exit_code` 128 + signal number
(130 / 143), which the command line exits with; a second signal acts at once. A non-finite loss stops
with a NonFiniteLossError naming the step; the last good checkpoint is never overwritten.
"""

import contextlib
import copy
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed, fastpath
from .checkpoint import check_run_folder, check_same_run, load_for_resume, metrics_until, save_checkpoint
from .data import DATASETS, ImageDataset, load_dataset, to_model_range
from .errors import CheckpointError, UsageError
from .files import RunLock, output_dir, remove_stale_temporaries, write_text
from .limits import check_training_fits
from .models import count_parameters, model_spec
from .models.unet import PRESETS, unet_from_preset
from .monitor import TrainingMonitor
from .objective import LOSS_WEIGHTINGS, OBJECTIVES, PREDICTIONS, sampling_model
from .schedule import SCHEDULES, NoiseSchedule


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
     "tensorboard"}
)  # fmt: skip
# what a checkpoint written before these fields existed was trained with
FIELDS_BEFORE_THEY_EXISTED = {"objective": "ddpm", "prediction": "eps", "loss_weighting": "none"}
SAMPLE_STEPS = 50  # DDIM steps for the periodic sample grids
UNLIMITED_STEPS = 10**9  # --steps when only --time-budget bounds a run
SAMPLES_PER_ROW = 8
STOP_CHECK_EVERY = 10  # distributed runs agree on a stop signal every this many steps


class NonFiniteLossError(CheckpointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


def validate(config: TrainConfig) -> None:
    """Raise a one-line UsageError for a value no run can use."""
    checks = [
        (config.dataset in DATASETS, f"--dataset must be one of {', '.join(DATASETS)}"),
        (config.model in PRESETS, f"--model must be one of {', '.join(PRESETS)}"),
        (config.schedule in SCHEDULES, f"--schedule must be one of {', '.join(SCHEDULES)}"),
        (config.time_embedding in (None, "middle", "every-block"), "--time-embedding: middle or every-block"),
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


def draw_batch(g: torch.Generator, data: dict, config: TrainConfig, T: int, hflip: bool, part: slice):
    """Draw a step's randomness for the GLOBAL batch from `g`, return this process's slice of it.

    Returns x_0 (b, C, H, W) in [-1, 1], y (b,) or None, t (b,), eps (b, C, H, W) with b = B / W; t is a
    code index 0..T-1 for DDPM, a time in [0, 1) for flow matching.
    """
    B, dev, images = config.batch_size, g.device, data["images"]
    index = torch.randint(0, len(images), (B,), generator=g, device=dev)[part]  # (b,) with replacement
    if config.objective == "flow":
        t = torch.rand(B, generator=g, device=dev)[part]  # (b,) t ~ U[0, 1)
    else:
        t = torch.randint(0, T, (B,), generator=g, device=dev)[part]  # (b,) code index 0..T-1
    eps = torch.randn((B, *images.shape[1:]), generator=g, device=dev)[part]  # (b, C, H, W)
    x0 = to_model_range(images[index])  # uint8 on the device -> float32 in [-1, 1]
    if hflip:
        flip = torch.rand(B, generator=g, device=dev)[part] < 0.5  # (b,)
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    y = None
    if config.conditional:  # label dropout trains the null class for classifier-free guidance
        drop = torch.rand(B, generator=g, device=dev)[part] < config.label_dropout  # (b,)
        y = torch.where(drop, data["null_label"], data["labels"][index])
    return x0, y, t, eps


def sampler_for(config: TrainConfig) -> dict:
    """generate_images' deterministic sampler for this objective: DDIM for DDPM, Euler for flow matching."""
    return {"objective": "flow", "sampler": "euler"} if config.objective == "flow" else {"sampler": "ddim"}


def sample_grid(ema: nn.Module, schedule: NoiseSchedule, data: ImageDataset, config: TrainConfig, path, dev):
    """DDIM-50 samples of the EMA model as one PNG; a conditional model gets one row per class."""
    from .generate import generate_images
    from .viz import save_grid

    labels = None
    n = SAMPLES_PER_ROW * SAMPLES_PER_ROW
    if config.conditional:
        labels = torch.arange(data.num_classes).repeat_interleave(SAMPLES_PER_ROW)
        n = len(labels)
    model = sampling_model(ema, schedule, config.objective, config.prediction)
    batches = generate_images(model, schedule, n=n, steps=SAMPLE_STEPS, shape=tuple(data.images.shape[1:]),
                              seed=config.seed, labels=labels, device=dev, **sampler_for(config))  # fmt: skip
    save_grid(torch.cat(list(batches)).cpu(), path, nrow=SAMPLES_PER_ROW)


def train(config: TrainConfig) -> dict:
    """Train (or resume) a denoiser as `config` says; returns a summary (also written to OUT/summary.json).

    `config.batch_size` is the GLOBAL batch over all torchrun processes.
    """
    validate(config)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))  # checked before joining the process group
    if config.batch_size % world_size:
        raise UsageError(
            f"--batch-size {config.batch_size} (the global batch) must be divisible by the "
            f"{world_size} processes; use a multiple of {world_size}"
        )
    procs = distributed.start(config.device)
    try:  # rank 0 owns the run folder: a second run on it is refused while this one lives
        lock = RunLock(output_dir(config.out)) if procs.is_main else contextlib.nullcontext()
        with lock, distributed.StopSignals() as signals:
            return _train(config, procs, signals)
    finally:
        distributed.stop(procs)


def _train(config: TrainConfig, procs: distributed.Processes, signals: distributed.StopSignals) -> dict:
    dev, main = procs.device, procs.is_main
    out = Path(config.out)
    last_path = out / "checkpoints" / "last.pt"
    part = slice(procs.rank * config.batch_size // procs.world_size,
                 (procs.rank + 1) * config.batch_size // procs.world_size)  # fmt: skip
    if config.resume and not last_path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {last_path}; drop --resume to start a new run")
    if not config.resume and last_path.exists():
        raise UsageError(f"{last_path} exists: add --resume to continue that run, or choose a new --out")
    saved = load_for_resume(last_path, dev, config.steps) if config.resume else None
    check_run_folder(out)  # never overwrite files this tool did not write
    if saved is not None:  # a checkpoint from before a field existed ran that field's old behaviour
        check_same_run({**FIELDS_BEFORE_THEY_EXISTED, **saved["config"]}, asdict(config), MAY_CHANGE_ON_RESUME,
                       last_path)  # fmt: skip

    # ---- data: the whole dataset lives on the device as uint8; each batch is converted on the fly
    folder_options = {"image_size": config.image_size} if config.image_size else {}
    dataset = load_dataset(config.dataset, config.data_dir, "train", config.download, **folder_options)
    if len(dataset) == 0:
        raise UsageError(f"{config.dataset} in {config.data_dir} holds no images; check --data-dir")
    hflip = config.hflip if config.hflip is not None else config.dataset in ("cifar10", "folder")

    # ---- model, EMA copy, noise schedule, optimiser
    torch.manual_seed(config.seed)  # the same initial weights in every process
    check_training_fits(lambda: build_denoiser(config, dataset), len(range(*part.indices(config.batch_size))),
                        config.batch_size, config.timesteps, dev)  # fmt: skip
    model = build_denoiser(config, dataset).to(dev)
    data = {"images": dataset.images.to(dev), "labels": dataset.labels.to(dev),
            "null_label": getattr(model, "null_label", 0)}  # fmt: skip
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    model.validate_labels = False  # batch labels are dataset labels or the null class: no per-step host sync
    schedule = NoiseSchedule.from_name(config.schedule, config.timesteps).to(dev)
    cuda = dev.type == "cuda"
    # the step: bf16 autocast, channels_last and fused AdamW on a GPU, plain fp32 on a CPU (--compile below)
    step_options = fastpath.FastOptions(amp="bf16" if cuda else "fp32", channels_last=cuda, fused_adam=cuda)
    if cuda:  # channels_last suits cuDNN's convolutions under bf16
        model, ema = model.to(memory_format=torch.channels_last), ema.to(memory_format=torch.channels_last)
    optimizer = fastpath.make_optimizer(model, step_options, lr=config.lr, betas=tuple(config.adam_betas),
                                        weight_decay=config.weight_decay)  # fmt: skip
    g = torch.Generator(device=dev).manual_seed(config.seed)  # ONE generator: every draw of every step
    torch.manual_seed(config.seed + 1 + procs.rank)  # the global RNG only feeds dropout
    start_step, elapsed_before = 0, 0.0

    # ---- resume: weights, EMA, optimiser moments, step and every RNG state from the checkpoint
    if saved is not None:
        if saved["model_spec"] != model_spec(model):
            raise CheckpointError(f"checkpoint {last_path} holds another network; use a new --out")
        model.load_state_dict(saved["model"])
        ema.load_state_dict(saved["ema"])
        optimizer.load_state_dict(saved["optimizer"])
        start_step, elapsed_before = saved["step"], saved["elapsed"]
        rng = saved["rng"]
        if rng["device"] == dev.type:
            g.set_state(rng["generator"].cpu())
        else:  # CPU <-> CUDA generators have different states: continue reproducibly from (seed, step)
            g.manual_seed(config.seed * 1_000_003 + start_step)
        if procs.is_main:
            torch.set_rng_state(rng["torch"].cpu())
            if cuda and rng.get("cuda") is not None:
                torch.cuda.set_rng_state(rng["cuda"].cpu())
    net = DistributedDataParallel(model, device_ids=[dev] if cuda else None) if procs.distributed else model
    if config.compile:
        net = torch.compile(net)
    ema_params, params = list(ema.parameters()), list(model.parameters())

    # ---- output folder: config, metrics (cut back to the checkpoint's step on resume), samples
    metrics_path = out / "metrics.jsonl"
    if main:
        (out / "samples").mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(last_path.parent)  # left by a kill during a checkpoint write (we hold the lock)
        write_text(out / "config.json", json.dumps(asdict(config), indent=2) + "\n")
        write_text(metrics_path, "".join(f"{line}\n" for line in metrics_until(metrics_path, start_step)))
        what = f"resuming at step {start_step}" if saved else "training"
        print(f"{what}: {count_parameters(model) / 1e6:.2f}M-parameter {config.model} on {len(dataset)} "
              f"{config.dataset} images {tuple(dataset.images.shape[1:])}, {procs.world_size} process(es) on "
              f"{dev.type}, global batch {config.batch_size}; writing to {out}", flush=True)  # fmt: skip
    monitor = TrainingMonitor(config, dataset, out, dev) if main else None  # FID, curves, TensorBoard
    from tqdm import tqdm

    show_bar = main and config.progress  # None: tqdm shows the bar only on a terminal
    open_ended = config.time_budget is not None and config.steps >= UNLIMITED_STEPS  # --time-budget alone
    bar = tqdm(total=None if open_ended else config.steps, initial=start_step, disable=None if show_bar else True,
               desc="train")  # fmt: skip
    budget_s = config.time_budget * 60 if config.time_budget is not None else math.inf

    def checkpoint_state(step: int, elapsed: float) -> dict:
        return {
            "model_spec": model_spec(model),
            "schedule": {"name": config.schedule, "T": config.timesteps},
            "model": model.state_dict(),
            "ema": ema.state_dict(),
            "optimizer": optimizer.state_dict(),
            "step": step,
            "elapsed": elapsed,
            "world_size": procs.world_size,
            "rng": {"device": dev.type, "generator": g.get_state(), "torch": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state() if cuda else None},  # fmt: skip
            "config": json.loads(json.dumps(asdict(config))),
            "dataset": {"name": config.dataset, "image_shape": list(dataset.images.shape[1:]),
                        "num_classes": dataset.num_classes, "class_names": list(dataset.class_names)},
        }  # fmt: skip

    # ---- the loop: every quantity below stays on the device; the host only syncs at "sync points"
    NEVER = 2**62
    loss_sum = torch.zeros((), device=dev)  # sum of the step losses since the last log line
    bad_step = torch.full((), NEVER, device=dev, dtype=torch.long)  # first step whose loss was not finite
    step_t = torch.full((), start_step, device=dev, dtype=torch.long)
    window_steps, window_start, run_start = 0, time.perf_counter(), time.perf_counter()
    step, stop_signum, last_loss, images_seen, out_of_time = start_step, 0, None, 0, False
    net.train()
    while step < config.steps:
        step += 1
        step_t += 1

        # learning rate: linear warmup from 0 to lr over `warmup` steps, then constant (Ho et al. 2020)
        lr = config.lr * min(1.0, step / config.warmup) if config.warmup else config.lr
        for group in optimizer.param_groups:
            group["lr"] = lr

        # forward + backward on this process's slice of the global batch (DDP averages the gradients),
        # AdamW, then the EMA ema <- decay * ema + (1 - decay) * theta: the step gpu_throughput.py measures
        x0, y, t, eps = draw_batch(g, data, config, schedule.T, hflip, part)
        decay = fastpath.ema_decay(step, config.ema_decay)
        loss = fastpath.train_step(net, schedule, optimizer, params, ema_params, x0, t, eps, y, decay=decay,
                                   options=step_options, grad_clip=config.grad_clip, objective=config.objective,
                                   prediction=config.prediction, weighting=config.loss_weighting)  # fmt: skip

        # bookkeeping without a host sync
        loss_sum += loss
        bad_step = torch.minimum(bad_step, torch.where(torch.isfinite(loss), NEVER, step_t))
        window_steps += 1
        images_seen += config.batch_size
        bar.update(1)

        # sync points: decide together whether to stop, check the loss, log, sample, checkpoint
        log_due = step % config.log_every == 0
        ckpt_due = step % config.checkpoint_every == 0
        sample_due = config.sample_every > 0 and step % config.sample_every == 0
        eval_due = config.eval_every > 0 and step % config.eval_every == 0
        if procs.distributed:  # rank 0's clock decides the time budget for every process
            if log_due or ckpt_due or sample_due or eval_due or step % STOP_CHECK_EVERY == 0 or step == config.steps:
                over = main and elapsed_before + time.perf_counter() - run_start >= budget_s
                flag = torch.tensor([signals.signum, int(over)], device=dev)
                stop_signum, over = (int(v) for v in distributed.all_reduce(flag, procs, "max").tolist())
                out_of_time = bool(over)
        else:
            stop_signum = signals.signum
            out_of_time = elapsed_before + time.perf_counter() - run_start >= budget_s
        finished = step == config.steps or stop_signum != 0 or out_of_time

        if not (log_due or ckpt_due or sample_due or eval_due or finished):
            continue
        first_bad = int(distributed.all_reduce(bad_step.clone(), procs, "min").item())
        if first_bad != NEVER:
            bar.close()
            again = (f"--resume from the last good checkpoint {last_path}" if last_path.is_file()
                     else "run again (no checkpoint was written yet)")  # fmt: skip
            raise NonFiniteLossError(
                f"the loss became non-finite (NaN/inf) at step {first_bad}; lower --lr (now {config.lr:g}) and {again}"
            )
        elapsed = elapsed_before + time.perf_counter() - run_start
        if log_due or finished:
            total = distributed.all_reduce(loss_sum.clone(), procs, "sum")
            last_loss = total.item() / (window_steps * procs.world_size)
            images_per_sec = window_steps * config.batch_size / max(time.perf_counter() - window_start, 1e-9)
            record = {"step": step, "loss": last_loss, "lr": lr, "images_per_sec": round(images_per_sec, 2),
                      "elapsed": round(elapsed, 3)}  # fmt: skip
            if main:
                with metrics_path.open("a") as f:
                    f.write(json.dumps(record) + "\n")
                monitor.log(record)
                bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{images_per_sec:.0f}")
                if bar.disable and config.progress:
                    print(f"step {step}/{config.steps} loss {last_loss:.4f} lr {lr:.2e} "
                          f"{images_per_sec:.0f} img/s", flush=True)  # fmt: skip
            loss_sum.zero_()
            window_steps = 0
        if main and (eval_due or (finished and not stop_signum and config.eval_every > 0)):
            model_for_eval = sampling_model(ema, schedule, config.objective, config.prediction)
            scores = monitor.evaluate(model_for_eval, schedule, **sampler_for(config))
            record = {"step": step, "elapsed": round(elapsed, 3), **scores}
            with metrics_path.open("a") as f:
                f.write(json.dumps(record) + "\n")
            monitor.log(record)
            window_start += scores["eval_seconds"]  # images/s measures training, not evaluation
            bar.write(f"step {step}: FID {scores['fid']:.2f} ({config.eval_n} samples), "
                      f"{scores['confident']:.0%} confident, {scores['eval_seconds']:.1f} s")  # fmt: skip
        if main and (sample_due or (finished and not stop_signum and config.sample_every > 0)):
            sample_grid(ema, schedule, dataset, config, out / "samples" / f"step_{step:07d}.png", dev)
        if main and (ckpt_due or finished):
            state = checkpoint_state(step, elapsed)
            save_checkpoint(last_path, state)
            if config.keep_checkpoints:
                save_checkpoint(out / "checkpoints" / f"step_{step:07d}.pt", state)
            monitor.plot(metrics_path)
        distributed.barrier(procs)  # the other ranks wait for rank 0's files
        if log_due or finished:
            window_start = time.perf_counter()  # images/s measures training, not sampling or saving
        if stop_signum or out_of_time:
            break
    bar.close()

    # ---- summary: every process must hold bit-identical weights
    digests = distributed.all_gather_strings(distributed.parameter_digest(model), procs)
    wall = time.perf_counter() - run_start
    summary = {
        "step": step, "steps": config.steps, "loss": last_loss, "elapsed": elapsed_before + wall,
        "images_per_sec": images_seen / wall if images_seen else 0.0, "world_size": procs.world_size,
        "parameters": count_parameters(model), "param_digests": digests, "checkpoint": str(last_path),
        "interrupted": signal.Signals(stop_signum).name if stop_signum else None,
        "stopped_by": ("signal" if stop_signum else "time-budget" if out_of_time and step < config.steps else "steps"),
        "exit_code": 128 + stop_signum if stop_signum else 0,
    }  # fmt: skip
    if main:
        monitor.close()
        write_text(out / "summary.json", json.dumps(summary, indent=2) + "\n")
        if len(set(digests)) > 1:
            print(f"warning: the processes hold different weights ({digests})", file=sys.stderr)
        if summary["stopped_by"] == "time-budget":
            print(f"time budget of {config.time_budget:g} min reached at step {step}; checkpoint {last_path}",
                  flush=True)  # fmt: skip
        if stop_signum:
            print(f"stopped by {summary['interrupted']} at step {step}; checkpoint {last_path}: "
                  "resume with the same flags plus --resume", file=sys.stderr)  # fmt: skip
    return summary
