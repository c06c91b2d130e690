"""Train an image denoiser (Ho et al. 2020, Algorithm 1): one explicit loop, top to bottom.

    repeat: x_0 ~ q(x_0), t ~ Uniform{1..T}, eps ~ N(0, I); step on grad || eps - eps_theta(x_t, t) ||^2

Follow one step: `draw_batch` (x_0, t, eps) -> `train_step` -> `schedule.q_sample` and the loss
(objective.py) -> the network (models/unet.py) -> AdamW and the EMA (`train_step`) -> `_checkpoint_state`.

Reproducible and distributed by design. Every random number of a step (batch indices, t, eps, flips, label
dropout) is drawn for the GLOBAL batch from ONE generator, seeded identically in every process; each of the W
processes takes its slice [rank * B/W, (rank + 1) * B/W), so W processes at global batch B compute the
per-sample losses of one process at batch B and the gradient all-reduce (a mean) gives the same update to
float rounding. The generator's state is checkpointed: a resumed run draws what the uninterrupted run would
have drawn (on the CPU it reproduces its losses exactly), with any number of processes. (Dropout, where a
preset has it, draws from each process's own global RNG, outside this equivalence.) Several GPUs or nodes:
`torchrun --nproc-per-node 8 -m cleardiffusion train ...`; only rank 0 logs, samples and writes checkpoints.

SIGINT or SIGTERM finish the current step (distributed processes agree within STOP_CHECK_EVERY steps), write
a checkpoint and return `exit_code` 128 + signal number; a second signal acts at once. A non-finite loss
raises NonFiniteLossError naming the step; the last good checkpoint is never overwritten.
"""

import contextlib
import copy
import json
import math
import os
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed, fastpath
from .checkpoint import check_run_folder, check_same_run, load_for_resume, metrics_until, save_checkpoint
from .data import ImageDataset, load_dataset, to_model_range
from .errors import CheckpointError, UsageError
from .files import RunLock, output_dir, remove_stale_temporaries, write_text
from .flow import flow_matching_loss
from .limits import check_training_fits
from .models import count_parameters, model_spec
from .monitor import TrainingMonitor
from .objective import LossWeighting, Objective, Prediction, diffusion_loss
from .schedule import NoiseSchedule
from .train_config import (
    FIELDS_BEFORE_THEY_EXISTED,
    MAY_CHANGE_ON_RESUME,
    UNLIMITED_STEPS,
    TrainConfig,
    build_denoiser,
    step_options,
    validate,
)

__all__ = ["NonFiniteLossError", "TrainConfig", "UNLIMITED_STEPS", "draw_batch", "train", "train_step", "validate"]
STOP_CHECK_EVERY = 10  # distributed runs agree on a stop signal every this many steps


class NonFiniteLossError(CheckpointError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


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


def train_step(net, schedule, optimizer, params, ema_params, x0, t, eps, y=None, *, decay: float,
               options: fastpath.FastOptions = fastpath.PLAIN, grad_clip: float = 1.0, objective: Objective = "ddpm",
               prediction: Prediction = "eps", weighting: LossWeighting = "none") -> torch.Tensor:  # fmt: skip
    """One step of Ho et al. 2020, Algorithm 1, then the EMA; returns the loss as a device tensor (no host sync).

    x_0 ~ q(x_0), t ~ Uniform{1..T} and eps ~ N(0, I) come from `draw_batch`; `params` and `ema_params` are the
    model's and its EMA copy's parameters in the same order. `options` (fastpath.py) changes only how the same
    numbers are computed: bf16 autocast, channels_last, fused AdamW, one EMA kernel.
    """
    fastpath.step_begin(options)
    x0, eps = fastpath.memory_format(options, x0), fastpath.memory_format(options, eps)
    with fastpath.autocast(options, x0.device):
        if objective == "flow":  # || (eps - x_0) - v_theta((1 - t) x_0 + t eps, t) ||^2, Lipman et al. 2023
            loss = flow_matching_loss(net, x0, t, eps, y)
        else:  # || target - net(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2, Eq. 14 for eps
            loss = diffusion_loss(net, schedule, x0, t, eps, y, prediction=prediction, weighting=weighting)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # "take a gradient descent step on grad_theta ..."
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)  # no host sync: the scale stays on device
    optimizer.step()
    fastpath.ema_update_(ema_params, params, decay, foreach=options.foreach_ema)  # ema <- lerp(ema, theta, 1-decay)
    return loss.detach()


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
            run = _setup(config, procs)
            summary = _loop(run, signals)
        # leave together: a rank that tore down its gloo connections while rank 0 still held them made rank 0
        # abort ("terminate called without an active exception", 1 run in about 20 of the test suite)
        distributed.barrier(procs)
        return summary
    finally:
        distributed.stop(procs)


@dataclass
class _Run:
    """What `_setup` builds and the loop uses: data on the device, model, EMA copy, optimiser, the generator."""

    config: TrainConfig
    procs: distributed.Processes
    out: Path
    part: slice  # this process's slice of the global batch
    dataset: ImageDataset
    data: dict  # images and labels on the device, and the null label
    hflip: bool
    model: nn.Module
    ema: nn.Module
    net: nn.Module  # what the step calls: the model, or its DDP / compiled wrapper
    schedule: NoiseSchedule
    optimizer: torch.optim.Optimizer
    options: fastpath.FastOptions
    g: torch.Generator  # ONE generator: every draw of every step
    start_step: int = 0
    elapsed_before: float = 0.0
    monitor: TrainingMonitor | None = None  # rank 0 only

    @property
    def last_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"


def _setup(config: TrainConfig, procs: distributed.Processes) -> _Run:
    """Check the run folder, load the data onto the device, build the model, EMA, optimiser; resume if asked."""
    dev, out = procs.device, Path(config.out)
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

    # data: the whole dataset lives on the device as uint8; each batch is converted on the fly
    folder_options = {"image_size": config.image_size} if config.image_size else {}
    dataset = load_dataset(config.dataset, config.data_dir, "train", config.download, **folder_options)
    if len(dataset) == 0:
        raise UsageError(f"{config.dataset} in {config.data_dir} holds no images; check --data-dir")
    hflip = config.hflip if config.hflip is not None else config.dataset in ("cifar10", "folder")

    # model, EMA copy, noise schedule, optimiser
    torch.manual_seed(config.seed)  # the same initial weights in every process
    check_training_fits(lambda: build_denoiser(config, dataset), part.stop - part.start,
                        config.batch_size, config.timesteps, dev)  # fmt: skip
    model = build_denoiser(config, dataset).to(dev)
    data = {"images": dataset.images.to(dev), "labels": dataset.labels.to(dev),
            "null_label": getattr(model, "null_label", 0)}  # fmt: skip
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    model.validate_labels = False  # batch labels are dataset labels or the null class: no per-step host sync
    schedule = NoiseSchedule.from_name(config.schedule, config.timesteps).to(dev)
    options = step_options(config, dev)
    if options.channels_last:
        model, ema = model.to(memory_format=torch.channels_last), ema.to(memory_format=torch.channels_last)
    optimizer = fastpath.make_optimizer(model, options, lr=config.lr, betas=tuple(config.adam_betas),
                                        weight_decay=config.weight_decay)  # fmt: skip
    g = torch.Generator(device=dev).manual_seed(config.seed)
    torch.manual_seed(config.seed + 1 + procs.rank)  # the global RNG only feeds dropout
    run = _Run(config, procs, out, part, dataset, data, hflip, model, ema, model, schedule, optimizer, options, g)
    if saved is not None:
        _resume(run, saved)
    if procs.distributed:
        run.net = DistributedDataParallel(model, device_ids=[dev] if dev.type == "cuda" else None)
    if config.compile:
        run.net = torch.compile(run.net)
    if procs.is_main:  # output folder: config, metrics (cut back to the checkpoint's step on resume), samples
        (out / "samples").mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(last_path.parent)  # left by a kill during a checkpoint write (we hold the lock)
        write_text(out / "config.json", json.dumps(asdict(config), indent=2) + "\n")
        metrics_path = out / "metrics.jsonl"
        write_text(metrics_path, "".join(f"{line}\n" for line in metrics_until(metrics_path, run.start_step)))
        what = f"resuming at step {run.start_step}" if saved else "training"
        print(f"{what}: {count_parameters(model) / 1e6:.2f}M-parameter {config.model} on {len(dataset)} "
              f"{config.dataset} images {tuple(dataset.images.shape[1:])}, {procs.world_size} process(es) on "
              f"{dev.type} ({options.amp}), global batch {config.batch_size}; writing to {out}",
              flush=True)  # fmt: skip
        run.monitor = TrainingMonitor(config, dataset, out, dev)  # metrics.jsonl, FID, curves, TensorBoard
    return run


def _resume(run: _Run, saved: dict) -> None:
    """Weights, EMA, optimiser moments, step and every RNG state from the checkpoint."""
    if saved["model_spec"] != model_spec(run.model):
        raise CheckpointError(f"checkpoint {run.last_path} holds another network; use a new --out")
    run.model.load_state_dict(saved["model"])
    run.ema.load_state_dict(saved["ema"])
    run.optimizer.load_state_dict(saved["optimizer"])
    run.start_step, run.elapsed_before = saved["step"], saved["elapsed"]
    rng, dev = saved["rng"], run.procs.device
    if rng["device"] == dev.type:
        run.g.set_state(rng["generator"].cpu())
    else:  # CPU <-> CUDA generators have different states: continue reproducibly from (seed, step)
        run.g.manual_seed(run.config.seed * 1_000_003 + run.start_step)
    if run.procs.is_main:
        torch.set_rng_state(rng["torch"].cpu())
        if dev.type == "cuda" and rng.get("cuda") is not None:
            torch.cuda.set_rng_state(rng["cuda"].cpu())


def _checkpoint_state(run: _Run, step: int, elapsed: float) -> dict:
    config, dataset, cuda = run.config, run.dataset, run.procs.device.type == "cuda"
    return {
        "model_spec": model_spec(run.model),
        "schedule": {"name": config.schedule, "T": config.timesteps},
        "model": run.model.state_dict(),
        "ema": run.ema.state_dict(),
        "optimizer": run.optimizer.state_dict(),
        "step": step,
        "elapsed": elapsed,
        "world_size": run.procs.world_size,
        "rng": {"device": run.procs.device.type, "generator": run.g.get_state(), "torch": torch.get_rng_state(),
                "cuda": torch.cuda.get_rng_state() if cuda else None},  # fmt: skip
        "config": json.loads(json.dumps(asdict(config))),
        "dataset": {"name": config.dataset, "image_shape": list(dataset.images.shape[1:]),
                    "num_classes": dataset.num_classes, "class_names": list(dataset.class_names)},
    }  # fmt: skip


def _loop(run: _Run, signals: distributed.StopSignals) -> dict:
    """The training loop: draw a batch, take a step; at sync points stop, check, log, evaluate, checkpoint."""
    config, procs, monitor = run.config, run.procs, run.monitor
    dev, main, last_path = procs.device, procs.is_main, run.last_path
    from tqdm import tqdm

    open_ended = config.time_budget is not None and config.steps >= UNLIMITED_STEPS  # --time-budget alone
    bar = tqdm(total=None if open_ended else config.steps, initial=run.start_step, desc="train",
               disable=None if main and config.progress else True)  # None: a bar only on a terminal  # fmt: skip
    budget_s = config.time_budget * 60 if config.time_budget is not None else math.inf
    ema_params, params = list(run.ema.parameters()), list(run.model.parameters())

    # every quantity below stays on the device; the host only syncs at "sync points"
    NEVER = 2**62
    loss_sum = torch.zeros((), device=dev)  # sum of the step losses since the last log line
    bad_step = torch.full((), NEVER, device=dev, dtype=torch.long)  # first step whose loss was not finite
    step_t = torch.full((), run.start_step, device=dev, dtype=torch.long)
    window_steps, window_start, run_start = 0, time.perf_counter(), time.perf_counter()
    step, stop_signum, last_loss, images_seen, out_of_time = run.start_step, 0, None, 0, False
    run.net.train()
    while step < config.steps:
        step += 1
        step_t += 1
        # learning rate: linear warmup from 0 to lr over `warmup` steps, then constant (Ho et al. 2020)
        lr = config.lr * min(1.0, step / config.warmup) if config.warmup else config.lr
        for group in run.optimizer.param_groups:
            group["lr"] = lr
        x0, y, t, eps = draw_batch(run.g, run.data, config, run.schedule.T, run.hflip, run.part)
        loss = train_step(run.net, run.schedule, run.optimizer, params, ema_params, x0, t, eps, y,
                          decay=fastpath.ema_decay(step, config.ema_decay), options=run.options,
                          grad_clip=config.grad_clip, objective=config.objective, prediction=config.prediction,
                          weighting=config.loss_weighting)  # fmt: skip

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
                over = main and run.elapsed_before + time.perf_counter() - run_start >= budget_s
                flag = torch.tensor([signals.signum, int(over)], device=dev)
                stop_signum, over = (int(v) for v in distributed.all_reduce(flag, procs, "max").tolist())
                out_of_time = bool(over)
        else:
            stop_signum = signals.signum
            out_of_time = run.elapsed_before + time.perf_counter() - run_start >= budget_s
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
        elapsed = run.elapsed_before + time.perf_counter() - run_start
        completed = finished and not stop_signum  # a signal stops at once, without the final grid or FID
        if log_due or finished:
            total = distributed.all_reduce(loss_sum.clone(), procs, "sum")
            last_loss = total.item() / (window_steps * procs.world_size)
            images_per_sec = window_steps * config.batch_size / max(time.perf_counter() - window_start, 1e-9)
            if main:
                monitor.record({"step": step, "loss": last_loss, "lr": lr, "images_per_sec": round(images_per_sec, 2),
                                "elapsed": round(elapsed, 3)})  # fmt: skip
                bar.set_postfix(loss=f"{last_loss:.4f}", img_s=f"{images_per_sec:.0f}")
                if bar.disable and config.progress:
                    print(f"step {step}/{config.steps} loss {last_loss:.4f} lr {lr:.2e} "
                          f"{images_per_sec:.0f} img/s", flush=True)  # fmt: skip
            loss_sum.zero_()
            window_steps = 0
        if main and (eval_due or (completed and config.eval_every > 0)):
            scores = monitor.evaluate(run.ema, run.schedule)
            monitor.record({"step": step, "elapsed": round(elapsed, 3), **scores})
            window_start += scores["eval_seconds"]  # images/s measures training, not evaluation
            bar.write(f"step {step}: FID {scores['fid']:.2f} ({config.eval_n} samples), "
                      f"{scores['confident']:.0%} confident, {scores['eval_seconds']:.1f} s")  # fmt: skip
        if main and (sample_due or (completed and config.sample_every > 0)):
            monitor.sample_grid(run.ema, run.schedule, run.out / "samples" / f"step_{step:07d}.png")
        if main and (ckpt_due or finished):
            state = _checkpoint_state(run, step, elapsed)
            save_checkpoint(last_path, state)
            if config.keep_checkpoints:
                save_checkpoint(run.out / "checkpoints" / f"step_{step:07d}.pt", state)
            monitor.plot()
        distributed.barrier(procs)  # the other ranks wait for rank 0's files
        if log_due or finished:
            window_start = time.perf_counter()  # images/s measures training, not sampling or saving
        if stop_signum or out_of_time:
            break
    bar.close()

    # summary: every process must hold bit-identical weights
    digests = distributed.all_gather_strings(distributed.parameter_digest(run.model), procs)
    wall = time.perf_counter() - run_start
    summary = {
        "step": step, "steps": config.steps, "loss": last_loss, "elapsed": run.elapsed_before + wall,
        "images_per_sec": images_seen / wall if images_seen else 0.0, "world_size": procs.world_size,
        "parameters": count_parameters(run.model), "param_digests": digests, "checkpoint": str(last_path),
        "interrupted": signal.Signals(stop_signum).name if stop_signum else None,
        "stopped_by": ("signal" if stop_signum else "time-budget" if out_of_time and step < config.steps else "steps"),
        "exit_code": 128 + stop_signum if stop_signum else 0,
    }  # fmt: skip
    if main:
        monitor.close()
        write_text(run.out / "summary.json", json.dumps(summary, indent=2) + "\n")
        if len(set(digests)) > 1:
            print(f"warning: the processes hold different weights ({digests})", file=sys.stderr)
        if summary["stopped_by"] == "time-budget":
            print(f"time budget of {config.time_budget:g} min reached at step {step}; checkpoint {last_path}",
                  flush=True)  # fmt: skip
        if stop_signum:
            print(f"stopped by {summary['interrupted']} at step {step}; checkpoint {last_path}: "
                  "resume with the same flags plus --resume", file=sys.stderr)  # fmt: skip
    return summary
