"""What this machine can run: devices that exist and sizes that fit, checked before anything is allocated.

A size that cannot fit (a huge batch, a huge network, a huge T, a huge number of samples) is refused with an
estimate of the memory it needs, instead of an out-of-memory error after minutes of work. The estimates
are LOWER bounds (weights, optimiser moments, the largest tensors), so a refusal is never wrong; a run that
passes can still exhaust memory, which the command line reports on one line.
"""

import os
from pathlib import Path

import torch

from .errors import UsageError

FLOAT32 = 4
FLOAT64 = 8
SCHEDULE_BUFFERS = 12  # float64 arrays of length T a NoiseSchedule holds (a generous count)
# The largest number of diffusion steps T the library supports: a T of 100,000 made the linear schedule's
# alpha_bar underflow to 0 and sampling divide by zero. Checkpoints above it are refused when loaded.
MAX_TIMESTEPS = 10_000


def format_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if abs(n) < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"


def available_memory(device: str | torch.device = "cpu") -> int:
    """Bytes that can still be allocated on `device` (host RAM: MemAvailable; CUDA: free device memory)."""
    if str(device).startswith("cuda"):
        return int(torch.cuda.mem_get_info(torch.device(device))[0])
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return 2**62  # unknown: refuse nothing


def check_memory(need_bytes: float, what: str, fix: str, device: str | torch.device = "cpu") -> None:
    """UsageError when `need_bytes` (a lower-bound estimate) exceeds the memory available on `device`."""
    have = available_memory(device)
    if need_bytes > have:
        raise UsageError(
            f"{what} needs at least {format_bytes(need_bytes)} of memory but {device} has {format_bytes(have)} "
            f"available; {fix}"
        )


def schedule_bytes(T: int) -> int:
    """Memory of a NoiseSchedule with T steps (float64 buffers)."""
    return SCHEDULE_BUFFERS * FLOAT64 * T


def unet_activation_bytes(config, batch: int, training: bool) -> int:
    """The largest activations of a U-Net forward pass (backward: every block's output is kept).

    Per level of size s = H / 2**i and width w: a block's output is batch * w * s * s floats; attention at
    size s adds its (s*s) x (s*s) score matrix per image.
    """
    size, total, largest = config.image_size, 0, 0
    for i, mult in enumerate(config.channel_mults):
        s = size // 2**i
        block = batch * config.base_channels * mult * s * s * FLOAT32
        largest = max(largest, block)
        total += 2 * (config.num_res_blocks + 1) * block  # encoder + decoder outputs at this level
        if s in config.attention_resolutions:
            total += batch * (s * s) ** 2 * FLOAT32
    return total if training else 3 * largest  # inference keeps a few maps alive, not all


def vit_activation_bytes(config, batch: int, training: bool) -> int:
    """The largest activations of a ViT forward pass (backward: every block's are kept).

    Per block and token: about (8 + 2 mlp_ratio) D floats (norms, q k v, the mixer's output, the MLP's hidden
    layer before and after its activation); the scan adds its per-chunk decays, T * D / P per token and
    direction. Attention's L x L scores are not counted: the fused kernel never holds them.
    """
    tokens, D = config.tokens, config.hidden
    per_token = (8 + 2 * config.mlp_ratio) * D
    if config.mixer == "scan":
        per_token += 2 * config.scan_chunk * D / config.scan_head_dim
    block = batch * tokens * per_token * FLOAT32
    return int(config.depth * block if training else 3 * block)


def activation_bytes(config, batch: int, training: bool) -> int:
    """A U-Net's or a ViT's activations (above); 0 for a network without an estimate (the MLP)."""
    if hasattr(config, "channel_mults"):
        return unet_activation_bytes(config, batch, training)
    if hasattr(config, "patch_size"):
        return vit_activation_bytes(config, batch, training)
    return 0


def resolve_device(name: str, flag: str = "--device") -> str:
    """'auto' -> 'cuda' if present else 'cpu'; 'cpu', 'cuda', 'cuda:N' checked against this machine."""
    name = str(name).strip().lower()
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return "cpu"
    kind, _, index = name.partition(":")
    if kind != "cuda" or (index and not index.isdigit()):
        raise UsageError(f"{flag} must be auto, cpu, cuda or cuda:N, got {name!r}")
    if not torch.cuda.is_available():
        raise UsageError(f"{flag} {name}: PyTorch sees no CUDA GPU on this machine; use {flag} cpu")
    count = torch.cuda.device_count()
    if index and int(index) >= count:
        raise UsageError(f"{flag} {name}: this machine has {count} GPU(s), cuda:0..cuda:{count - 1}")
    return name


def check_training_fits(build, batch: int, global_batch: int, T: int, device: str | torch.device) -> None:
    """Refuse a training run whose weights, optimiser, activations and schedule cannot fit on `device`.

    Args:
        build: returns the network; it is built on the meta device, so nothing is allocated.
        batch: images per process; global_batch: per step over all processes (each draws its noise).
    """
    with torch.device("meta"):
        model = build()
    params = sum(p.numel() for p in model.parameters())
    config = getattr(model, "config", None)
    weights = 5 * FLOAT32 * params  # weights, EMA, gradients, AdamW's two moments
    if hasattr(config, "image_size"):  # an image network: its activations and the batch's x_0, noise, x_t
        image = config.in_channels * config.image_size**2
        activations = activation_bytes(config, batch, True) + 3 * FLOAT32 * global_batch * image
    else:
        activations = 0
    parts = {"weights+EMA+optimiser": weights, "activations": activations, "schedule": schedule_bytes(T)}
    detail = ", ".join(f"{k} {format_bytes(v)}" for k, v in parts.items())
    check_memory(
        sum(parts.values()),
        f"training this {params:,}-parameter model at batch {batch} with T = {T} ({detail})",
        "lower --batch-size, the network (--model, --base-channels, --model-option hidden=N) or --timesteps",
        device,
    )
