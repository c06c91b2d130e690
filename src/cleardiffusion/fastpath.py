"""The fast path: the same training step and sampling forward as the paper's, arranged to keep a GPU busy.

Nothing here changes the mathematics of Ho et al. 2020, Algorithm 1; each option only changes how the same
numbers are computed (docs/performance.md measures each one):

| option          | what it does                                                                          |
|-----------------|---------------------------------------------------------------------------------------|
| amp_dtype       | bf16 autocast: convs/matmuls in bfloat16 on tensor cores; weights, loss, Adam in fp32 |
| channels_last   | NHWC activations and weights, the layout cuDNN's and Triton's convolutions prefer     |
| fused_adam      | AdamW(fused=True): one kernel for the whole parameter update instead of one per op    |
| foreach_ema     | EMA as one `_foreach_lerp_` over every tensor instead of a Python loop of kernels     |
| compile_mode    | torch.compile the denoiser: fused GroupNorm+SiLU+add kernels; "reduce-overhead" also  |
|                 | replays the whole forward/backward as CUDA graphs (no per-kernel launch cost)         |
| sync_every_step | (measurement only) read the loss with .item() every step, the host sync to avoid      |

The hot path never synchronises with the host: the loss stays a device tensor, the U-Net's label-range check
(a host sync on a GPU) is switched off by `prepare_denoiser` once inputs are known to be valid.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from .flow import flow_matching_loss
from .objective import LossWeighting, Objective, Prediction, diffusion_loss
from .schedule import NoiseSchedule

CompileMode = Literal["none", "default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = (
    "none",
    "default",
    "max-autotune-no-cudagraphs",
    "reduce-overhead",
    "max-autotune",
)
AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class FastOptions:
    """How to run the same step; the defaults are the fastest safe choice on a CUDA GPU."""

    amp: Literal["fp32", "bf16", "fp16"] = "bf16"  # autocast dtype for convs/matmuls ("fp32": no autocast)
    channels_last: bool = True  # NHWC memory format for weights and activations
    fused_adam: bool = True  # AdamW(fused=True) (CUDA and, in recent torch, CPU)
    foreach_ema: bool = True  # one _foreach_lerp_ over all EMA tensors (False: a per-tensor Python loop)
    compile_mode: CompileMode = "none"  # torch.compile mode for the denoiser ("none": eager)
    sync_every_step: bool = False  # measurement only: call loss.item() every step (a host sync)

    def __post_init__(self) -> None:
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp={self.amp!r} is not one of {', '.join(AMP_DTYPES)}")
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode={self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")

    @property
    def amp_dtype(self) -> torch.dtype | None:
        return AMP_DTYPES[self.amp]


PLAIN = FastOptions(amp="fp32", channels_last=False, fused_adam=False, foreach_ema=False)  # the reference


@contextmanager
def trusted_inputs(model: nn.Module) -> Iterator[nn.Module]:
    """Within the block, skip the denoiser's label-range check (a host sync per call on a GPU)."""
    before = getattr(model, "validate_labels", None)
    if before is not None:
        model.validate_labels = False
    try:
        yield model
    finally:
        if before is not None:
            model.validate_labels = before


def prepare_denoiser(model: nn.Module, options: FastOptions) -> nn.Module:
    """Apply the memory format and the label-check switch in place; return what to call (maybe compiled)."""
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    if hasattr(model, "validate_labels"):
        model.validate_labels = False  # callers pass labels already checked (dataset, guidance wrapper)
    if options.compile_mode == "none":
        return model
    mode = None if options.compile_mode == "default" else options.compile_mode
    return torch.compile(model, mode=mode, dynamic=False)  # static shapes: one graph per batch size


def make_optimizer(model: nn.Module, options: FastOptions, lr: float = 2e-4, **kwargs) -> torch.optim.AdamW:
    """AdamW over the model's parameters, fused into one kernel when options.fused_adam."""
    return torch.optim.AdamW(model.parameters(), lr=lr, fused=True if options.fused_adam else None, **kwargs)


def ema_decay(step: int, max_decay: float) -> float:
    """The warm-started EMA decay used at optimisation step `step` (1-based): min(max, (1 + s) / (10 + s))."""
    return min(max_decay, (1 + step) / (10 + step))


@torch.no_grad()
def ema_update_(ema_params: Sequence[torch.Tensor], params: Sequence[torch.Tensor], decay: float,
                foreach: bool = True) -> None:  # fmt: skip
    """theta_ema <- decay * theta_ema + (1 - decay) * theta, as lerp(theta_ema, theta, 1 - decay)."""
    if foreach:
        torch._foreach_lerp_(list(ema_params), list(params), 1.0 - decay)
        return
    for e, p in zip(ema_params, params, strict=True):
        e.lerp_(p, 1.0 - decay)


def train_step(
    net: Callable,
    schedule: NoiseSchedule,
    optimizer: torch.optim.Optimizer,
    params: Sequence[torch.Tensor],
    ema_params: Sequence[torch.Tensor],
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    decay: float,
    options: FastOptions,
    grad_clip: float = 1.0,
    objective: Objective = "ddpm",
    prediction: Prediction = "eps",
    weighting: LossWeighting = "none",
) -> torch.Tensor:
    """One step of Algorithm 1 (Ho et al. 2020) + EMA, as train.py's loop runs it; returns the loss tensor.

    Args:
        net: the denoiser to call (the model, or what `prepare_denoiser` returned for it).
        params, ema_params: the model's and the EMA copy's parameters, in the same order.
        x0, t, eps: clean images (B, C, H, W) in [-1, 1], code timesteps (B,), noise (B, C, H, W).
        objective: "ddpm" (t: code indices) or "flow" (t: times in [0, 1], flow.flow_matching_loss).
        prediction, weighting: what a DDPM network predicts and how timesteps are weighted (objective.py).
    """
    if options.compile_mode in ("reduce-overhead", "max-autotune"):
        torch.compiler.cudagraph_mark_step_begin()  # CUDA graphs: last step's outputs may be overwritten
    if options.channels_last:
        x0 = x0.contiguous(memory_format=torch.channels_last)
        eps = eps.contiguous(memory_format=torch.channels_last)
    amp = options.amp_dtype
    with torch.autocast(device_type=x0.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        if objective == "flow":  # Lipman et al. 2023, Eq. 23
            loss = flow_matching_loss(net, x0, t, eps, y)
        else:  # L_simple (Eq. 14) for eps with no weighting; reduced in fp32
            loss = diffusion_loss(net, schedule, x0, t, eps, y, prediction=prediction, weighting=weighting)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    if grad_clip > 0:
        nn.utils.clip_grad_norm_(params, grad_clip, foreach=True)  # no host sync: the scale stays on device
    optimizer.step()
    ema_update_(ema_params, params, decay, foreach=options.foreach_ema)
    if options.sync_every_step:
        loss.item()
    return loss.detach()


@torch.inference_mode()
def sampling_forward(
    net: Callable, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, *, options: FastOptions
) -> torch.Tensor:
    """eps_theta(x_t, t, y) as one sampler step calls it: no autograd, autocast, fp32 result (B, C, H, W)."""
    if options.compile_mode in ("reduce-overhead", "max-autotune"):
        torch.compiler.cudagraph_mark_step_begin()
    if options.channels_last:
        x_t = x_t.contiguous(memory_format=torch.channels_last)
    amp = options.amp_dtype
    with torch.autocast(device_type=x_t.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        eps = net(x_t, t) if y is None else net(x_t, t, y)
    return eps.float()


__all__ = [
    "COMPILE_MODES",
    "PLAIN",
    "FastOptions",
    "ema_decay",
    "ema_update_",
    "make_optimizer",
    "prepare_denoiser",
    "sampling_forward",
    "train_step",
    "trusted_inputs",
]
