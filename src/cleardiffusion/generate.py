"""Draw many samples from a trained model, in batches, each reproducible from (seed, its index).

One path for every objective: `generate_images(model, path, ...)` takes the model a sampler calls and its
noise path (`checkpoint.load_for_sampling` returns both; `denoiser.sampling_parts` builds them from a
network), and a `recipe.SamplingRecipe` saying how to sample; the default recipe is the command line's.
"""

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .denoiser import Path
from .fastpath import trusted_inputs
from .guidance import guided_model
from .recipe import SamplingRecipe
from .samplers import SAMPLERS, make_timesteps

DEFAULT_RECIPE = SamplingRecipe()


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of sample `index`: x_T and all its noise come from it, whatever the batch."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def generate_images(
    model: nn.Module,
    path: Path,
    *,
    n: int,
    shape: tuple[int, ...],
    recipe: SamplingRecipe = DEFAULT_RECIPE,
    timesteps: list | None = None,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    callback: Callable | None = None,
) -> Iterator[torch.Tensor]:
    """Yield batches of samples in [-1, 1], (B, *shape), n in all; memory is bounded by `batch_size`.

    Each sample draws x_T and any per-step noise from its own CPU generator (see `sample_generator`), so
    it is the same whatever the batch size or device. The price: samplers that add noise at every step
    (DDPM, DDIM with eta > 0, dpm++2m-sde) draw it on the CPU, one sample at a time; the ODE solvers draw none.

    Args:
        model, path: what `checkpoint.load_for_sampling` returns (or `denoiser.sampling_parts`).
        recipe: sampler, steps, spacing and options; None fields take the defaults of the model's objective.
        timesteps: an explicit descending grid on `path`; overrides the recipe's steps and spacing.
        labels: (n,) class labels for a conditional model, or None for unconditional sampling.
        callback: passed to the sampler for each batch: callback(i, t, x_t, x0_pred).
    """
    recipe = recipe.resolve(path)
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be at least 1, got n={n}, batch_size={batch_size}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} samples")
    timesteps = make_timesteps(path, recipe.steps, recipe.spacing) if timesteps is None else timesteps
    sampler, options = SAMPLERS[recipe.sampler], recipe.options()
    path = path.to(device)
    model.eval()
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        generators = [sample_generator(seed, i) for i in range(start, stop)]
        x_T = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
        y = None if labels is None else labels[start:stop].to(device)
        guided = guided_model(model, y, recipe.guidance)  # checks the labels once, here
        with trusted_inputs(model):  # so the model need not re-check them (a host sync) at every step
            samples = sampler(guided, path, x_T, timesteps, generator=generators, clip_x0=recipe.clip_x0,
                              callback=callback, **options)  # fmt: skip
        yield samples
