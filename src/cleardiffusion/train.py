"""Train an image denoiser (Ho et al. 2020, Algorithm 1): one explicit loop, top to bottom.

    repeat: x_0 ~ q(x_0), t ~ Uniform{1..T}, eps ~ N(0, I); step on grad || eps - eps_theta(x_t, t) ||^2

Follow one step: `draw_batch` (x_0, t, eps) -> `train_step` -> the objective's loss (`denoiser.training_loss`:
objective.py, flow.py or meanflow.py) -> the network (models/unet.py) -> AdamW and the EMA (`train_step`). All else
the loop does (logging, evaluation, sample grids, checkpoints, stopping) is bookkeeping, in train_run.py.

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
import os
from collections.abc import Sequence

import torch
from torch import nn

from . import distributed, fastpath
from .errors import NonFiniteLossError, UsageError
from .files import RunLock, output_dir
from .train_config import UNLIMITED_STEPS, TrainConfig, validate
from .train_run import Bookkeeping, Run, setup

__all__ = ["NonFiniteLossError", "TrainConfig", "UNLIMITED_STEPS", "draw_batch", "train", "train_step", "validate"]


def draw_batch(g: torch.Generator, data: dict, config: TrainConfig, path, hflip: bool, part: slice):
    """Draw a step's randomness for the GLOBAL batch from `g`, return this process's slice of it.

    Returns x_0 (b, C, H, W) in [-1, 1], y (b,) or None, t (b,), eps (b, C, H, W) with b = B / W; t is drawn by
    the path: a code index 0..T-1 for DDPM, a time in [0, 1) for flow matching, (b, 2) pairs (t, r) for MeanFlow.
    """
    B, dev, images = config.batch_size, g.device, data["images"]
    index = torch.randint(0, len(images), (B,), generator=g, device=dev)[part]  # (b,) with replacement
    t = path.draw_t(B, g)[part]  # (b,) t ~ Uniform{1..T} (Algorithm 1), or U[0, 1) on the flow path; MeanFlow (b, 2)
    eps = torch.randn((B, *images.shape[1:]), generator=g, device=dev)[part]  # (b, C, H, W)
    x0 = images[index].float() / 127.5 - 1.0  # uint8 on the device -> float32 in [-1, 1] (data.to_model_range)
    if hflip:
        flip = torch.rand(B, generator=g, device=dev)[part] < 0.5  # (b,)
        x0 = torch.where(flip[:, None, None, None], x0.flip(-1), x0)
    y = None
    if config.conditional:  # label dropout trains the null class for classifier-free guidance
        drop = torch.rand(B, generator=g, device=dev)[part] < config.label_dropout  # (b,)
        y = torch.where(drop, data["null_label"], data["labels"][index])
    return x0, y, t, eps


def learning_rate(step: int, lr: float, warmup: int) -> float:
    """Linear warm-up from 0 to `lr` over `warmup` steps (step is 1-based), then constant (Ho et al. 2020)."""
    return lr * min(1.0, step / warmup) if warmup else lr


def ema_decay(step: int, max_decay: float, warmup: int = 10) -> float:
    """The warm-started EMA decay used at optimisation step `step` (1-based): min(max, (1 + s) / (warmup + s)).

    The warm start lets a randomly initialised network's first weights fade within tens of steps; warmup 0 (or 1)
    applies max_decay from the first step, for a run whose starting weights are already good (distill's dmd).
    """
    return min(max_decay, (1 + step) / (warmup + step))


@torch.no_grad()
def ema_update_(ema_params: Sequence[torch.Tensor], params: Sequence[torch.Tensor], decay: float,
                foreach: bool = True) -> None:  # fmt: skip
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, as lerp(theta_ema, theta, 1 - decay)."""
    if foreach:  # one _foreach_lerp_ over every tensor instead of a Python loop of kernels
        torch._foreach_lerp_(list(ema_params), list(params), 1.0 - decay)
        return
    for e, p in zip(ema_params, params, strict=True):
        e.lerp_(p, 1.0 - decay)


# the step of a grown student's new blocks (distill --grow-student) over the run's: they start at zero, and Adam moves
# a weight by about its step per update, so at dmd's 2e-5 they hardly leave zero in five minutes (docs/few_step.md)
GROWN_LR_RATIO = 10


def make_optimizer(model: nn.Module, options: fastpath.FastOptions, lr: float = 2e-4, fast: list = (),
                   **kwargs) -> torch.optim.AdamW:  # fmt: skip
    """AdamW over the model's parameters, fused into one kernel when options.fused_adam; the `fast` ones (a grown
    student's new blocks, zero-initialised) in a group of their own that steps GROWN_LR_RATIO times the lr."""
    ids = {id(p) for p in fast}
    groups = [{"params": [p for p in model.parameters() if id(p) not in ids]}]
    groups += [{"params": list(fast), "lr_scale": GROWN_LR_RATIO}] if fast else []
    return torch.optim.AdamW(groups, lr=lr, fused=True if options.fused_adam else None, **kwargs)


def train_step(net, loss_fn, optimizer, params, ema_params, x0, t, eps, y=None, *, decay: float,
               options: fastpath.FastOptions = fastpath.PLAIN, grad_clip: float = 1.0) -> torch.Tensor:  # fmt: skip
    """One step of Ho et al. 2020, Algorithm 1, then the EMA; returns the loss as a device tensor (no host sync).

    x_0 ~ q(x_0), t and eps ~ N(0, I) come from `draw_batch`; `loss_fn(net, x0, t, eps, y)` is the objective's
    loss (`denoiser.training_loss`); `params` and `ema_params` are the model's and its EMA copy's parameters in
    the same order (None: no EMA). `options` (fastpath.py) changes only how the same numbers are computed: bf16
    autocast, channels_last, fused AdamW, one EMA kernel.
    """
    if options.channels_last:  # NHWC, the layout GPU convolutions prefer
        x0, eps = x0.contiguous(memory_format=torch.channels_last), eps.contiguous(memory_format=torch.channels_last)
    amp = fastpath.AMP_DTYPES[options.amp]  # bf16 autocast: convs and matmuls in bf16, weights and loss in fp32
    with torch.autocast(x0.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        loss = loss_fn(net, x0, t, eps, y)  # || target - net(x_t, t) ||^2, Eq. 14 for eps
    optimizer.zero_grad(set_to_none=True)
    loss.backward()  # "take a gradient descent step on grad_theta ..."
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)  # no host sync: the scale stays on device
    optimizer.step()
    if ema_params is not None:
        ema_update_(ema_params, params, decay, foreach=options.foreach_ema)  # ema <- lerp(ema, theta, 1 - decay)
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
            run = setup(config, procs, make_optimizer)
            summary = _loop(run, Bookkeeping(run, signals))
        # leave together: a rank that tore down its gloo connections while rank 0 still held them made rank 0
        # abort ("terminate called without an active exception", 1 run in about 20 of the test suite)
        distributed.barrier(procs)
        return summary
    finally:
        distributed.stop(procs)


def _loop(run: Run, book: Bookkeeping) -> dict:
    """The training loop: the algorithm, with the bookkeeping behind `book` (train_run.py)."""
    config = run.config
    params, ema_params = list(run.model.parameters()), list(run.ema.parameters())
    step = run.start_step
    run.net.train()
    while step < config.steps:
        step += 1
        # 1. the learning rate at this step: linear warm-up, then constant
        lr = learning_rate(step, config.lr, config.warmup)
        for group in run.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_scale", 1.0)
        # 2. a batch: x_0 ~ q(x_0), labels (with dropout), t and eps ~ N(0, I); this process's slice
        x0, y, t, eps = draw_batch(run.g, run.data, config, run.path, run.hflip, run.part)
        # 3. the gradient step of Algorithm 1, AdamW, and the EMA of the weights
        loss = train_step(run.net, run.loss_fn, run.optimizer, params, ema_params, x0, t, eps, y,
                          decay=ema_decay(step, config.ema_decay, config.ema_warmup), options=run.options,
                          grad_clip=config.grad_clip)  # fmt: skip
        # 4. bookkeeping: the loss kept on the device; at sync points stop, check, log, evaluate, checkpoint
        book.after_step(step, loss, lr)
        if book.stopped:
            break
    return book.finish(step)
