"""Draw many samples from a trained denoiser, in batches, each reproducible from (seed, its index)."""

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch
from torch import nn

from .fastpath import trusted_inputs
from .guidance import guided_model
from .samplers import SAMPLERS, make_timesteps
from .schedule import NoiseSchedule


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of sample `index`: x_T and all its noise come from it, whatever the batch."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def generate_images(
    model: nn.Module,
    schedule: NoiseSchedule,
    *,
    n: int,
    shape: tuple[int, ...],
    sampler: Literal["ddpm", "ddim"] = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    spacing: Literal["uniform", "quadratic"] = "uniform",
    timesteps: list[int] | None = None,
    variance: Literal["beta", "posterior"] = "beta",
    clip_x0: bool = True,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    callback: Callable | None = None,
) -> Iterator[torch.Tensor]:
    """Yield batches of samples in [-1, 1], (B, *shape), n in all; memory is bounded by `batch_size`.

    Each sample draws x_T and any per-step noise from its own CPU generator (see `sample_generator`), so
    it is the same whatever the batch size or device. The price: samplers that add noise at every step
    (DDPM, DDIM with eta > 0) draw it on the CPU, one sample at a time; DDIM with eta = 0 draws none.

    Args:
        shape: one sample's shape, (C, H, W) or (D,).
        timesteps: an explicit descending list of step indices; overrides `steps` and `spacing`.
        labels: (n,) class labels for a conditional model, or None for unconditional sampling.
        guidance: classifier-free guidance scale s (1 = plain conditional, 0 = unconditional).
        callback: passed to the sampler for each batch: callback(i, t, x_t, x0_pred).
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be at least 1, got n={n}, batch_size={batch_size}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} samples")
    if timesteps is None:
        timesteps = make_timesteps(schedule.T, steps, spacing)
    options = {"eta": eta} if sampler == "ddim" else {"variance": variance}
    sample_fn = SAMPLERS[sampler]
    model.eval()
    schedule = schedule.to(device)
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        generators = [sample_generator(seed, i) for i in range(start, stop)]
        x_T = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
        y = None if labels is None else labels[start:stop].to(device)
        eps_model = guided_model(model, y, guidance)  # checks the labels once, here
        with trusted_inputs(model):  # so the model need not re-check them (a host sync) at every step
            samples = sample_fn(
                eps_model, schedule, x_T, timesteps,
                generator=generators, clip_x0=clip_x0, callback=callback, **options,
            )  # fmt: skip
        yield samples
