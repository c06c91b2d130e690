"""The fast path: options that compute the same training step (train.train_step) and sampling forward faster.

Nothing here changes the mathematics of Ho et al. 2020, Algorithm 1; each option only changes how the same
numbers are computed (docs/performance.md measures each one):

| option          | what it does                                                                          |
|-----------------|---------------------------------------------------------------------------------------|
| amp_dtype       | bf16 autocast: convs/matmuls in bfloat16 on tensor cores; weights, loss, Adam in fp32 |
| channels_last   | NHWC activations and weights, the layout cuDNN's and Triton's convolutions prefer     |
| fused_adam      | AdamW(fused=True): one kernel for the whole parameter update (CUDA; CPU, torch >= 2.4) |
| foreach_ema     | EMA as one `_foreach_lerp_` over every tensor instead of a Python loop of kernels     |

Sampling has two such choices, each decided here once for every caller (`generate.generate_images`, so the
command line, the Python API, `--eval-every`, the experiments and the benchmarks): the network's precision
(`sampling_model`: bf16 autocast around the network alone where bf16 is native, `auto_amp`, the rule training
uses too) and the batch (`sampling_batch`). docs/performance.md, "Sampling on a CPU", measures them.

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

from .objective import DenoiserWrapper

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


def cpu_has_native_bf16() -> bool:
    """AVX512-BF16 or AMX: bf16 convolutions and matmuls run natively, faster than fp32 (emulated, slower)."""
    checks = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    return any(check is not None and check() for check in checks)


def auto_amp(device: torch.device | str) -> Literal["fp32", "bf16"]:
    """Precision "auto", for training and sampling alike: bf16 on CUDA and on a CPU with native bf16, else fp32."""
    return "bf16" if torch.device(device).type == "cuda" or cpu_has_native_bf16() else "fp32"


def fused_adam_supported(device: torch.device | str) -> bool:
    """AdamW(fused=True) runs here: on CUDA, and on a CPU from torch 2.4 (one pass over every tensor instead of
    Adam's per-tensor Python loop, which dominates a step of a tiny network)."""
    if torch.device(device).type == "cuda":
        return True
    major, minor = (int(part) for part in torch.__version__.split(".")[:2])
    return (major, minor) >= (2, 4)


def compiler_problem(device: torch.device | str) -> str | None:
    """Why torch.compile cannot build kernels for `device` on this machine, or None when it can.

    Inductor writes C++ for a CPU (it needs a C++ compiler: $CXX, else g++) and Triton for CUDA; without them
    torch.compile fails at the first step with a long traceback, after the data and the model are loaded.
    """
    if torch.device(device).type == "cuda":
        from torch.utils._triton import has_triton

        if has_triton():
            return None
        return "torch.compile on a GPU needs Triton, which this PyTorch cannot import: pip install triton"
    try:
        from torch._inductor.cpp_builder import get_cpp_compiler
    except ImportError:  # torch before 2.4: look for the compiler inductor would call
        import os
        import shutil

        found = shutil.which(os.environ.get("CXX", "g++"))
    else:
        try:
            found = get_cpp_compiler()
        except Exception:  # torch._inductor.exc.InvalidCxxCompiler
            found = None
    if found:
        return None
    return "torch.compile on a CPU needs a C++ compiler and none was found: install g++ (or clang++ and set CXX)"


# ---- sampling: how the network is run; the sampler's arithmetic is untouched -------------------------------
SamplingPrecision = Literal["auto", "fp32", "bf16"]
SAMPLING_PRECISIONS: tuple[str, ...] = ("auto", "fp32", "bf16")
# samples per batch when none is asked for: on a CPU a batch of 128 (256 inputs when guided) keeps the
# activations in cache, faster per image than 256 or 1000 (benchmarks/results/sampler_speed_cpu); a GPU wants more
SAMPLING_BATCH = {"cpu": 128, "cuda": 256}


def sampling_precision(device: torch.device | str, precision: str = "auto") -> Literal["fp32", "bf16"]:
    """The network's precision while sampling on `device`: "auto" is `auto_amp` (bf16 where it is native)."""
    if precision not in SAMPLING_PRECISIONS:
        raise ValueError(f"precision={precision!r} is not one of {', '.join(SAMPLING_PRECISIONS)}")
    return auto_amp(device) if precision == "auto" else precision


def sampling_batch(device: torch.device | str, batch_size: int | None = None) -> int:
    """Samples per forward pass: `batch_size` when given, else the device's default (`SAMPLING_BATCH`)."""
    if batch_size is not None:
        return batch_size
    return SAMPLING_BATCH.get(torch.device(device).type, SAMPLING_BATCH["cuda"])


class Autocast(DenoiserWrapper):
    """A network run under bf16 autocast, its output returned in float32.

    Only the network's convolutions and matmuls run in bfloat16 (weights stay float32); what a sampler does
    with the output (guidance's eps_uncond + s (eps_cond - eps_uncond), x_0 and the step, with float64
    coefficients) stays in float32, as it is on the fp32 path.
    """

    def __init__(self, model: nn.Module, device_type: str, dtype: torch.dtype = torch.bfloat16):
        super().__init__()
        self.net, self.device_type, self.dtype = model, device_type, dtype

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.net(x_t, t) if y is None else self.net(x_t, t, y)
        return out.float()


def sampling_model(model: nn.Module, device: torch.device | str, precision: str = "auto") -> nn.Module:
    """The model a sampler should call on `device`: the model itself in fp32, wrapped in `Autocast` in bf16."""
    if sampling_precision(device, precision) == "fp32":
        return model
    return Autocast(model, torch.device(device).type)


# glibc's mallopt parameters (malloc.h) and the values `keep_freed_memory` sets
M_TRIM_THRESHOLD, M_MMAP_THRESHOLD = -1, -3
MMAP_THRESHOLD = 32 * 2**20  # glibc's largest on 64-bit: buffers below it come from the heap, reused
TRIM_THRESHOLD = 2**30  # free memory at the heap's top kept up to 1 GiB instead of returned to the kernel


def keep_freed_memory(libc=None) -> bool:
    """Make glibc's malloc reuse the memory a sampler frees instead of handing it back to the kernel.

    Each sampler step allocates and frees the same activations (a few MB each). By default glibc hands such
    buffers back to the kernel when they are freed (unmapping them, or trimming the heap's top), so the next
    step faults their pages in again, each zeroed by the kernel (docs/performance.md, "Sampling on a CPU",
    measures the cost). A fixed 32 MiB mmap threshold and a 1 GiB trim threshold keep those buffers in the heap
    for the next step: the same arithmetic, with the memory of the largest step kept until the process ends.

    Process-wide and not undone, so the command line calls it for `sample` (its process is its own) and the
    library never does on its own; Python code that samples a lot may call it. Returns whether it took
    effect: False off glibc (macOS, Windows, musl) or where mallopt refuses the values.
    """
    import platform

    if libc is None:
        if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
            return False
        import ctypes

        libc = ctypes.CDLL(None)  # the C library this process already runs on
    return bool(libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD)) and bool(libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD))


__all__ = [
    "AMP_DTYPES", "PLAIN", "SAMPLING_BATCH", "SAMPLING_PRECISIONS", "Autocast", "FastOptions", "auto_amp",
    "compiler_problem", "cpu_has_native_bf16", "fused_adam_supported", "keep_freed_memory", "sampling_batch",
    "sampling_model", "sampling_precision", "trusted_inputs",
]  # fmt: skip
