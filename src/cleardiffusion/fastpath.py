"""The fast path: options that compute the same training step (train.train_step) and sampling forward faster.

Nothing here changes the mathematics of Ho et al. 2020, Algorithm 1; each option only changes how the same
numbers are computed (docs/performance.md measures each one):

| option          | what it does                                                                          |
|-----------------|---------------------------------------------------------------------------------------|
| amp_dtype       | bf16 autocast: convs/matmuls in bfloat16 on tensor cores; weights, loss, Adam in fp32 |
| channels_last   | NHWC activations and weights, the layout cuDNN's and Triton's convolutions prefer     |
| fused_adam      | AdamW(fused=True): one kernel for the whole parameter update instead of one per op    |
| foreach_ema     | EMA as one `_foreach_lerp_` over every tensor instead of a Python loop of kernels     |

The hot path never synchronises with the host: the loss stays a device tensor, the U-Net's label-range check
(a host sync on a GPU) is switched off inside `trusted_inputs` once inputs are known to be valid. AdamW and
the EMA themselves are in train.py; torch.compile and CUDA graphs, measured only by the GPU benchmark, are in
benchmarks/bench_fastpath.py.
"""

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn

AMP_DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass(frozen=True)
class FastOptions:
    """How to run the same step; the defaults are the fastest safe choice on a CUDA GPU."""

    amp: Literal["fp32", "bf16", "fp16"] = "bf16"  # autocast dtype for convs/matmuls ("fp32": no autocast)
    channels_last: bool = True  # NHWC memory format for weights and activations
    fused_adam: bool = True  # AdamW(fused=True) (CUDA and, in recent torch, CPU)
    foreach_ema: bool = True  # one _foreach_lerp_ over all EMA tensors (False: a per-tensor Python loop)

    def __post_init__(self) -> None:
        if self.amp not in AMP_DTYPES:
            raise ValueError(f"amp={self.amp!r} is not one of {', '.join(AMP_DTYPES)}")

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


def sampling_autocast(device: torch.device | str) -> torch.autocast:
    """bf16 autocast for sampling on CUDA (the network's convolutions on tensor cores), off on a CPU; the
    samplers' own arithmetic stays in the input dtype with float64 step coefficients."""
    device_type = torch.device(device).type
    return torch.autocast(device_type, dtype=torch.bfloat16, enabled=device_type == "cuda")


__all__ = ["AMP_DTYPES", "PLAIN", "FastOptions", "sampling_autocast", "trusted_inputs"]
