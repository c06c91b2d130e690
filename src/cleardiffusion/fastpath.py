"""The fast path: options that compute the same training step (train.train_step) and sampling forward faster.

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
| sync_every_step | (measurement only: the benchmark reads the loss with .item() every step) a host sync |

The hot path never synchronises with the host: the loss stays a device tensor, the U-Net's label-range check
(a host sync on a GPU) is switched off by `prepare_denoiser` once inputs are known to be valid.
"""

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

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


def step_begin(options: FastOptions) -> None:
    """Mark a new step for CUDA graphs ("reduce-overhead" compile): the last step's outputs may be overwritten."""
    if options.compile_mode in ("reduce-overhead", "max-autotune"):
        torch.compiler.cudagraph_mark_step_begin()


def memory_format(options: FastOptions, x: torch.Tensor) -> torch.Tensor:
    """x in the options' memory format (NHWC with channels_last, else as it is)."""
    return x.contiguous(memory_format=torch.channels_last) if options.channels_last else x


def autocast(options: FastOptions, device: torch.device) -> torch.autocast:
    """The options' autocast context on `device` (disabled for fp32)."""
    amp = options.amp_dtype
    return torch.autocast(device_type=device.type, dtype=amp or torch.float32, enabled=amp is not None)


def sampling_autocast(device: torch.device | str) -> torch.autocast:
    """bf16 autocast for sampling on CUDA (the network's convolutions on tensor cores), off on a CPU; the
    samplers' own arithmetic stays in the input dtype with float64 step coefficients."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda")


@torch.inference_mode()
def sampling_forward(
    net: Callable, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, *, options: FastOptions
) -> torch.Tensor:
    """eps_theta(x_t, t, y) as one sampler step calls it: no autograd, autocast, fp32 result (B, C, H, W)."""
    step_begin(options)
    x_t = memory_format(options, x_t)
    with autocast(options, x_t.device):
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
    "sampling_autocast",
    "sampling_forward",
    "step_begin",
    "memory_format",
    "autocast",
    "trusted_inputs",
]
