"""What a training run holds and does besides the algorithm of train.py: setting up (data on the device, the
model, its EMA copy, the optimiser, resuming) and the bookkeeping of the loop (what is due at this step, the
processes' agreement to stop, the non-finite check, throughput, logs, evaluation, grids, checkpoints).

The hot path never reads a value back to the host: the loss and the first non-finite step stay device tensors
until a sync point (a log line, an evaluation, a grid, a checkpoint, the end).
"""

import copy
import json
import math
import signal
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from . import distributed, fastpath
from .checkpoint import (
    check_run_folder,
    check_same_data,
    check_same_run,
    load_autoguide,
    load_checkpoint,
    load_for_resume,
    load_for_sampling,
    metrics_until,
    save_checkpoint,
)
from .consistency import check_teacher
from .data import ImageDataset, data_fingerprint, load_dataset
from .denoiser import jump_grid, training_parts
from .errors import CheckpointError, NonFiniteLossError, UsageError
from .files import remove_stale_temporaries, write_text
from .generate import teacher_trajectories
from .guidance import AutoGuidance, interval_start
from .limits import check_training_fits
from .models import count_parameters, grown_spec, model_spec, ungrown_spec
from .models.unet import grow_into
from .monitor import TrainingMonitor
from .schedule import NoiseSchedule
from .train_config import (
    MAY_CHANGE_ON_RESUME,
    UNLIMITED_STEPS,
    TrainConfig,
    build_denoiser,
    config_as_of_today,
    step_options,
)

STOP_CHECK_EVERY = 10  # distributed runs agree on a stop signal every this many steps
NEVER = 2**62  # "no non-finite loss yet"


@dataclass
class Run:
    """What `setup` builds and the loop uses: data on the device, model, EMA copy, optimiser, the generator."""

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
    path: object  # where t is drawn: the schedule, or flow.FlowPath (denoiser.training_parts)
    loss_fn: object  # loss_fn(net, x0, t, eps, y), the objective's loss
    optimizer: torch.optim.Optimizer
    options: fastpath.FastOptions
    g: torch.Generator  # ONE generator: every draw of every step
    fingerprint: dict | None = None  # data.data_fingerprint of the training data, kept in every checkpoint
    chain: dict | None = None  # --chain: the second network, kept in every checkpoint (load_chain)
    start_step: int = 0
    elapsed_before: float = 0.0
    monitor: TrainingMonitor | None = None  # rank 0 only

    @property
    def last_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"


def setup(config: TrainConfig, procs: distributed.Processes, make_optimizer) -> Run:
    """Check the run folder, load the data onto the device, build the model, EMA, optimiser; resume if asked."""
    dev, out = procs.device, Path(config.out)
    last_path = out / "checkpoints" / "last.pt"
    part = slice(procs.rank * config.batch_size // procs.world_size,
                 (procs.rank + 1) * config.batch_size // procs.world_size)  # fmt: skip
    if config.distill_method == "dmd" and config.objective == "consistency" and procs.world_size > 1:
        raise UsageError("--distill-method dmd runs in one process (each would train its own fake-score network): "
                         "start it without torchrun")  # fmt: skip
    if config.resume and not last_path.is_file():
        raise CheckpointError(f"--resume: no checkpoint at {last_path}; drop --resume to start a new run")
    if not config.resume and last_path.exists():
        raise UsageError(f"{last_path} exists: add --resume to continue that run, or choose a new --out")
    saved = load_for_resume(last_path, dev, config.steps) if config.resume else None
    check_run_folder(out)  # never overwrite files this tool did not write
    if saved is not None:  # a checkpoint from before a field existed ran that field's old behaviour
        check_same_run(config_as_of_today(saved["config"]), asdict(config), MAY_CHANGE_ON_RESUME, last_path)

    # data: the whole dataset lives on the device as uint8; each batch is converted on the fly
    folder_options = {"image_size": config.image_size} if config.image_size else {}
    dataset = load_dataset(config.dataset, config.data_dir, "train", config.download, **folder_options)
    if len(dataset) == 0:
        raise UsageError(f"{config.dataset} in {config.data_dir} holds no images; check --data-dir")
    if saved is not None:  # --resume on other data than the run trained on is refused
        check_same_data(saved, data_fingerprint(dataset), last_path)
    hflip = config.hflip if config.hflip is not None else config.dataset in ("cifar10", "folder")

    # model, EMA copy, noise schedule, the objective's loss, optimiser
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
    teacher, grown = start_from_teacher(config, model, ema, dev) if config.teacher else (None, [])
    started = time.perf_counter()  # a trajectory bank is made here: its minutes count in the time budget
    distill = distill_options(config, model, dataset, teacher, schedule, dev) if config.teacher else None
    loss_fn, path = training_parts(config.objective, config.prediction, config.loss_weighting, schedule,
                                   teacher=teacher, distill=distill)  # fmt: skip
    setup_seconds = time.perf_counter() - started
    if options.channels_last:
        model, ema = model.to(memory_format=torch.channels_last), ema.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, options, lr=config.lr, betas=tuple(config.adam_betas),
                               weight_decay=config.weight_decay, fast=grown)  # fmt: skip
    chain = None  # --chain: before the global RNG is seeded below, so a run draws the same with it or without
    if config.chain:
        chain = load_chain(config.chain, getattr(teacher, "net", teacher), {"name": config.schedule,
                                                                            "T": config.timesteps})  # fmt: skip
    g = torch.Generator(device=dev).manual_seed(config.seed)
    torch.manual_seed(config.seed + 1 + procs.rank)  # the global RNG only feeds dropout
    run = Run(config, procs, out, part, dataset, data, hflip, model, ema, model, schedule, path, loss_fn, optimizer,
              options, g, data_fingerprint(dataset), chain=chain)  # fmt: skip
    if saved is not None:
        _resume(run, saved)
    elif distill is not None:
        run.elapsed_before = setup_seconds
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


def start_from_teacher(config: TrainConfig, model: nn.Module, ema: nn.Module, dev) -> tuple[nn.Module, list]:
    """Load the teacher (a DDPM checkpoint), copy its EMA weights (or those of --student, a model distilled from
    it) into the student and its EMA (a resumed run overwrites them with its own), and return the frozen teacher
    as an eps-model, with the parameters of the blocks --grow-student added and of the code --student-codes
    added (models.unet.grow_into)."""
    teacher, schedule, meta = load_for_sampling(config.teacher, dev)
    check_teacher(meta, config.teacher)
    net = getattr(teacher, "net", teacher)  # the network inside objective.EpsFromPrediction
    # a distilled model of this teacher to go on from (dmd's starting point), else the teacher itself
    start = load_student(config.student, net, dev) if config.student else net
    if model_spec(model) != grown_spec(model_spec(start), config.grow_student, config.student_codes) or (
            schedule.T, meta["config"].get("schedule")) != (config.timesteps, config.schedule):  # fmt: skip
        raise UsageError(f"the teacher {config.teacher} has another network or schedule than this run: use "
                         "`cleardiffusion distill`, which takes them from the teacher")  # fmt: skip
    weights = start.state_dict()
    if not config.grow_student and not config.student_codes:
        model.load_state_dict(weights)
        ema.load_state_dict(weights)
        return teacher.requires_grad_(False), []
    grow_into(ema, weights, config.grow_student)  # --grow-student more middle blocks (each the identity), a code
    return teacher.requires_grad_(False), grow_into(model, weights, config.grow_student)


def load_student(path: str, teacher: nn.Module, device="cpu", flag: str = "--student") -> nn.Module:
    """The network of `path`, a `cleardiffusion distill` checkpoint of `teacher`'s network (EMA weights; grown by
    --grow-student or not; of two networks, its own one-step map); a UsageError for any other checkpoint, before
    anything is written."""
    student, _, meta = load_for_sampling(path, device)
    student = getattr(student, "one_step", student)  # of two networks (--chain), the file's own
    student = getattr(student, "net", student)  # the network inside objective.EpsFromPrediction
    teacher_spec = ungrown_spec(model_spec(getattr(teacher, "net", teacher)))
    if meta["objective"] != "consistency" or ungrown_spec(model_spec(student)) != teacher_spec:
        raise UsageError(f"{flag} {path} is not a `cleardiffusion distill` checkpoint of this teacher's network: "
                         "pass one distilled from --teacher")  # fmt: skip
    return student


def load_chain(path: str, teacher: nn.Module, schedule: dict, device="cpu") -> dict:
    """The "chain" entry of this run's checkpoints (--chain): the network, raw and EMA weights of `path`, a
    `cleardiffusion distill` checkpoint of `teacher`'s network on its `schedule` ({"name", "T"}) holding one
    network; a UsageError for any other, before anything is written."""
    state = load_checkpoint(path, device)
    if "chain" in state:
        raise UsageError(f"--chain {path} holds two networks itself: pass the checkpoint of the run that trained "
                         "the chain")  # fmt: skip
    load_student(path, teacher, device, flag="--chain")
    if state["schedule"] != schedule:
        raise UsageError(f"--chain {path} was distilled on another noise schedule than this teacher's: pass one "
                         "distilled from --teacher")  # fmt: skip
    return {key: state[key] for key in ("model_spec", "model", "ema")}


def distill_options(config: TrainConfig, model: nn.Module, dataset: ImageDataset, teacher: nn.Module,
                    schedule: NoiseSchedule, dev) -> dict:  # fmt: skip
    """consistency.distillation_loss's settings from the config; for the trajectory method, the teacher's
    trajectories (generate.teacher_trajectories: the minutes before the first step)."""
    null_label = getattr(model, "null_label", None)
    bad = real = None  # --autoguide: a worse model; dmd's real score, the teacher autoguided by it
    from_t = interval_start(schedule, config.autoguide_from)  # --autoguide-from: guided from here up (0: all)
    if config.autoguide:  # the teacher is a DDPM model of this run's schedule and images (start_from_teacher)
        bad = load_autoguide(config.autoguide, "ddpm", config.schedule, tuple(dataset.images.shape[1:]), schedule,
                             dev).requires_grad_(False)  # fmt: skip
        real = AutoGuidance(teacher, bad, config.teacher_guidance, from_t=from_t)
    bank = None
    if config.distill_method == "trajectory":
        bank = teacher_trajectories(teacher, schedule, n=config.trajectories, steps=config.teacher_steps,
                                    guidance=config.teacher_guidance, shape=tuple(dataset.images.shape[1:]),
                                    num_classes=model.config.num_classes, null_label=null_label,
                                    label_dropout=config.label_dropout, seed=config.seed, device=dev,
                                    autoguide=bad, autoguide_from=from_t, codes=config.student_codes,
                                    precision=config.precision)  # fmt: skip
    return {"method": config.distill_method, "delta": config.consistency_delta or max(config.timesteps // 4, 1),
            "distance": config.consistency_distance, "teacher_guidance": config.teacher_guidance,
            "null_label": null_label, "bank": bank, "lr": config.lr, "fake_steps": config.dmd_fake_steps,
            "fake_lr": config.dmd_fake_lr, "gan_weight": config.dmd_gan, "real": real, "t_max": config.dmd_t_max,
            "grid": jump_grid(schedule, config.dmd_chain) if config.distill_method == "dmd" else None}  # fmt: skip


def _resume(run: Run, saved: dict) -> None:
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


def checkpoint_state(run: Run, step: int, elapsed: float) -> dict:
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
        "data_fingerprint": run.fingerprint,
        **({"chain": run.chain} if run.chain else {}),
    }  # fmt: skip


class Bookkeeping:
    """Everything the loop does besides the algorithm, at sync points: agree to stop (signal, time budget), check
    the loss is finite, log, evaluate, draw a grid, checkpoint. Between sync points it only adds device tensors."""

    def __init__(self, run: Run, signals: distributed.StopSignals):
        from tqdm import tqdm

        config, dev = run.config, run.procs.device
        self.run, self.signals, self.config = run, signals, config
        open_ended = config.time_budget is not None and config.steps >= UNLIMITED_STEPS  # --time-budget alone
        self.bar = tqdm(total=None if open_ended else config.steps, initial=run.start_step, desc="train",
                        disable=None if run.procs.is_main and config.progress else True)  # fmt: skip
        self.budget_s = config.time_budget * 60 if config.time_budget is not None else math.inf
        self.loss_sum = torch.zeros((), device=dev)  # sum of the step losses since the last log line
        self.bad_step = torch.full((), NEVER, device=dev, dtype=torch.long)  # first step whose loss was not finite
        self.step_t = torch.full((), run.start_step, device=dev, dtype=torch.long)
        self.window_steps, self.window_start = 0, time.perf_counter()
        self.run_start, self.images_seen, self.last_loss = time.perf_counter(), 0, None
        self.stop_signum, self.out_of_time, self.stopped = 0, False, False

    def elapsed(self) -> float:
        return self.run.elapsed_before + time.perf_counter() - self.run_start

    def after_step(self, step: int, loss: torch.Tensor, lr: float) -> None:
        """Keep the loss on the device; at a sync point, act on whatever is due."""
        self.step_t += 1
        self.loss_sum += loss
        self.bad_step = torch.minimum(self.bad_step, torch.where(torch.isfinite(loss), NEVER, self.step_t))
        self.window_steps += 1
        self.images_seen += self.config.batch_size
        self.bar.update(1)
        due = self._due(step)
        finished = self._decide_stop(step, due)
        if finished or any(due.values()):
            self._sync_point(step, due, lr, finished)

    def _due(self, step: int) -> dict[str, bool]:
        c = self.config
        return {"log": step % c.log_every == 0, "checkpoint": step % c.checkpoint_every == 0,
                "sample": c.sample_every > 0 and step % c.sample_every == 0,
                "eval": c.eval_every > 0 and step % c.eval_every == 0}  # fmt: skip

    def _decide_stop(self, step: int, due: dict[str, bool]) -> bool:
        """Whether the run ends at this step: the last step, a signal, or the time budget (rank 0's clock)."""
        procs = self.run.procs
        if not procs.distributed:
            self.stop_signum, self.out_of_time = self.signals.signum, self.elapsed() >= self.budget_s
        elif any(due.values()) or step % STOP_CHECK_EVERY == 0 or step == self.config.steps:
            over = procs.is_main and self.elapsed() >= self.budget_s
            flag = torch.tensor([self.signals.signum, int(over)], device=procs.device)
            self.stop_signum, over = (int(v) for v in distributed.all_reduce(flag, procs, "max").tolist())
            self.out_of_time = bool(over)
        return step == self.config.steps or self.stop_signum != 0 or self.out_of_time

    def _check_finite(self) -> None:
        first_bad = int(distributed.all_reduce(self.bad_step.clone(), self.run.procs, "min").item())
        if first_bad != NEVER:
            self.bar.close()
            last = self.run.last_path
            again = (f"--resume from the last good checkpoint {last}" if last.is_file()
                     else "run again (no checkpoint was written yet)")  # fmt: skip
            raise NonFiniteLossError(f"the loss became non-finite (NaN/inf) at step {first_bad}; lower --lr "
                                     f"(now {self.config.lr:g}) and {again}")  # fmt: skip

    def _sync_point(self, step: int, due: dict[str, bool], lr: float, finished: bool) -> None:
        run, config, procs, monitor = self.run, self.config, self.run.procs, self.run.monitor
        main = procs.is_main
        self._check_finite()
        elapsed = self.elapsed()
        completed = finished and not self.stop_signum  # a signal stops at once, without the final grid or FID
        if due["log"] or finished:
            self._log(step, lr, elapsed)
        if main and (due["eval"] or (completed and config.eval_every > 0)):
            scores = monitor.evaluate(run.ema, run.schedule)
            monitor.record({"step": step, "elapsed": round(elapsed, 3), **scores})
            self.window_start += scores["eval_seconds"]  # images/s measures training, not evaluation
            self.bar.write(f"step {step}: FID {scores['fid']:.2f} ({config.eval_n} samples), "
                           f"{scores['confident']:.0%} confident, {scores['eval_seconds']:.1f} s")  # fmt: skip
        if main and (due["sample"] or (completed and config.sample_every > 0)):
            monitor.sample_grid(run.ema, run.schedule, run.out / "samples" / f"step_{step:07d}.png")
        if main and (due["checkpoint"] or finished):
            state = checkpoint_state(run, step, elapsed)
            save_checkpoint(run.last_path, state)
            if config.keep_checkpoints:
                save_checkpoint(run.out / "checkpoints" / f"step_{step:07d}.pt", state)
            monitor.plot(force=finished)  # curves.png at most every PLOT_EVERY_S, and at the end
        distributed.barrier(procs)  # the other ranks wait for rank 0's files
        if due["log"] or finished:
            self.window_start = time.perf_counter()  # images/s measures training, not sampling or saving
        self.stopped = bool(self.stop_signum or self.out_of_time)

    def _log(self, step: int, lr: float, elapsed: float) -> None:
        procs, config = self.run.procs, self.config
        total = distributed.all_reduce(self.loss_sum.clone(), procs, "sum")
        self.last_loss = total.item() / (self.window_steps * procs.world_size)
        images_per_sec = self.window_steps * config.batch_size / max(time.perf_counter() - self.window_start, 1e-9)
        if procs.is_main:
            record = {"step": step, "loss": self.last_loss, "lr": lr, "images_per_sec": round(images_per_sec, 2),
                      "elapsed": round(elapsed, 3)}  # fmt: skip
            self.run.monitor.record(record)
            self.bar.set_postfix(loss=f"{self.last_loss:.4f}", img_s=f"{images_per_sec:.0f}")
            if self.bar.disable and config.progress:
                print(f"step {step}/{config.steps} loss {self.last_loss:.4f} lr {lr:.2e} "
                      f"{images_per_sec:.0f} img/s", flush=True)  # fmt: skip
        self.loss_sum.zero_()
        self.window_steps = 0

    def finish(self, step: int) -> dict:
        """The summary (every process must hold bit-identical weights), written to OUT/summary.json."""
        self.bar.close()
        run, config, procs, signum = self.run, self.config, self.run.procs, self.stop_signum
        digests = distributed.all_gather_strings(distributed.parameter_digest(run.model), procs)
        wall = time.perf_counter() - self.run_start
        summary = {
            "step": step, "steps": config.steps, "loss": self.last_loss, "elapsed": run.elapsed_before + wall,
            "images_per_sec": self.images_seen / wall if self.images_seen else 0.0, "world_size": procs.world_size,
            "parameters": count_parameters(run.model), "param_digests": digests, "checkpoint": str(run.last_path),
            "interrupted": signal.Signals(signum).name if signum else None,
            "stopped_by": ("signal" if signum else "time-budget" if self.out_of_time and step < config.steps
                           else "steps"),
            "exit_code": 128 + signum if signum else 0,
        }  # fmt: skip
        if procs.is_main:
            run.monitor.close()
            write_text(run.out / "summary.json", json.dumps(summary, indent=2) + "\n")
            if len(set(digests)) > 1:
                print(f"warning: the processes hold different weights ({digests})", file=sys.stderr)
            if summary["stopped_by"] == "time-budget":
                print(f"time budget of {config.time_budget:g} min reached at step {step}; checkpoint "
                      f"{run.last_path}", flush=True)  # fmt: skip
            if signum:
                print(f"stopped by {summary['interrupted']} at step {step}; checkpoint {run.last_path}: "
                      "resume with the same flags plus --resume", file=sys.stderr)  # fmt: skip
        return summary
