"""What only the GPU benchmark (gpu_throughput.py) measures of the fast path: torch.compile modes, CUDA graphs
and a host sync per step, on top of the library's `fastpath.FastOptions` (which the training run uses)."""

from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

from cleardiffusion import fastpath

CompileMode = Literal["none", "default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune"]
COMPILE_MODES: tuple[str, ...] = ("none", "default", "max-autotune-no-cudagraphs", "reduce-overhead", "max-autotune")


@dataclass(frozen=True)
class BenchOptions(fastpath.FastOptions):
    compile_mode: CompileMode = "none"  # torch.compile mode for the denoiser ("none": eager)
    sync_every_step: bool = False  # call loss.item() every step (a host sync), to measure its cost

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.compile_mode not in COMPILE_MODES:
            raise ValueError(f"compile_mode={self.compile_mode!r} is not one of {', '.join(COMPILE_MODES)}")


PLAIN = BenchOptions(amp="fp32", channels_last=False, fused_adam=False, foreach_ema=False)


def prepare_denoiser(model: nn.Module, options: BenchOptions) -> nn.Module:
    """Apply the memory format and the label-check switch in place; return what to call (maybe compiled)."""
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    if hasattr(model, "validate_labels"):
        model.validate_labels = False  # callers pass labels already checked
    if options.compile_mode == "none":
        return model
    mode = None if options.compile_mode == "default" else options.compile_mode
    return torch.compile(model, mode=mode, dynamic=False)  # static shapes: one graph per batch size


def step_begin(options: BenchOptions) -> None:
    """Mark a new step for CUDA graphs ("reduce-overhead" compile): the last step's outputs may be overwritten."""
    if options.compile_mode in ("reduce-overhead", "max-autotune"):
        torch.compiler.cudagraph_mark_step_begin()


@torch.inference_mode()
def sampling_forward(
    net: Callable, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None, *, options: BenchOptions
) -> torch.Tensor:
    """eps_theta(x_t, t, y) as one sampler step calls it: no autograd, autocast, fp32 result (B, C, H, W)."""
    step_begin(options)
    x_t = x_t.contiguous(memory_format=torch.channels_last) if options.channels_last else x_t
    amp = options.amp_dtype
    with torch.autocast(x_t.device.type, dtype=amp or torch.float32, enabled=amp is not None):
        eps = net(x_t, t) if y is None else net(x_t, t, y)
    return eps.float()
