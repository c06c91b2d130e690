"""Draw many samples from a trained model, in batches, each reproducible from (seed, its index).

One path for every objective: `generate_images(model, path, ...)` takes the model a sampler calls and its
noise path (`checkpoint.load_for_sampling` returns both; `denoiser.sampling_parts` builds them from a
network), and a `recipe.SamplingRecipe` saying how to sample; the default recipe is the command line's.
"""

from collections.abc import Callable, Iterator

import numpy as np
import torch
from torch import nn

from .consistency import TrajectoryBank, end_codes
from .denoiser import Path, network_for_steps
from .fastpath import sampling_batch, sampling_model, trusted_inputs
from .guidance import AutoGuidance, guided_model
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
    batch_size: int | None = None,
    device: str | torch.device = "cpu",
    precision: str = "auto",
    callback: Callable | None = None,
    autoguide: nn.Module | None = None,
    autoguide_from: float = 0,
) -> Iterator[torch.Tensor]:
    """Yield batches of samples in [-1, 1], (B, *shape), n in all; memory is bounded by `batch_size`.

    Each sample draws x_T and any per-step noise from its own CPU generator (see `sample_generator`), so
    it is the same whatever the batch size or device. The price: samplers that add noise at every step
    (DDPM, DDIM with eta > 0, dpm++2m-sde) draw it on the CPU, one sample at a time; the ODE solvers draw none.

    Args:
        model, path: what `checkpoint.load_for_sampling` returns (or `denoiser.sampling_parts`); of a
            `denoiser.OneStepAndChain`, the network for this many steps.
        recipe: sampler, steps, spacing and options; None fields take the defaults of the model's objective.
        timesteps: an explicit descending grid on `path`; overrides the recipe's steps and spacing.
        labels: (n,) class labels for a conditional model, or None for unconditional sampling.
        batch_size: samples per forward pass (None: the device's default, `fastpath.SAMPLING_BATCH`).
        precision: the network's: auto (bf16 on CUDA and on a CPU with native bf16, else fp32), fp32 or bf16
            (`fastpath.sampling_model`); the sampler's own arithmetic is float32 either way.
        callback: passed to the sampler for each batch: callback(i, t, x_t, x0_pred).
        autoguide: a worse unconditional model on the same path (`checkpoint.load_autoguide`): unconditional
            samples of `model` autoguided by it at scale recipe.guidance (Karras et al. 2024), where the network's
            time is `autoguide_from` or more (guidance.AutoGuidance, guidance.interval_start; 0: everywhere).
    """
    recipe = recipe.resolve(path)
    batch_size = sampling_batch(device, batch_size)
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be at least 1, got n={n}, batch_size={batch_size}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} samples")
    timesteps = make_timesteps(path, recipe.steps, recipe.spacing) if timesteps is None else timesteps
    sampler, options = SAMPLERS[recipe.sampler], recipe.options()
    path = path.to(device)
    model = network_for_steps(model, len(timesteps)).eval()  # a two-network model: its one-step map, or its chain
    network = sampling_model(model, device, precision)  # bf16 autocast around the network alone, or itself
    if autoguide is not None:
        if labels is not None:
            raise ValueError("autoguidance here guides unconditional samples: drop the labels or the autoguide model")
        bad = sampling_model(autoguide.eval(), device, precision)
        network = AutoGuidance(network, bad, recipe.guidance, from_t=autoguide_from)
        recipe = recipe.replace(guidance=1.0)  # spent on the autoguidance
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        generators = [sample_generator(seed, i) for i in range(start, stop)]
        x_T = recipe.noise_scale * torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
        y = None if labels is None else labels[start:stop].to(device)
        guided = guided_model(network, y, recipe.guidance)  # checks the labels once, here
        with trusted_inputs(network):  # so the model need not re-check them (a host sync) at every step
            samples = sampler(guided, path, x_T, timesteps, generator=generators, clip_x0=recipe.clip_x0,
                              callback=callback, **options)  # fmt: skip
        yield samples


def teacher_trajectories(teacher: nn.Module, schedule, *, n: int, steps: int, guidance: float, shape: tuple[int, ...],
                         num_classes: int, null_label: int | None, label_dropout: float, seed: int,
                         device: str | torch.device = "cpu", batch_size: int | None = None,
                         autoguide: nn.Module | None = None, autoguide_from: float = 0,
                         codes: int = 0, precision: str = "fp32") -> TrajectoryBank:  # fmt: skip
    """`n` trajectories of the teacher's probability-flow ODE (DPM-Solver++(2M), `steps` trailing points), as a
    `consistency.TrajectoryBank`: every point the solver visits, paired with the trajectory's end and, with
    `codes` K > 0, the end's cluster among K (consistency.end_codes).

    Labels (a conditional teacher): each class uniformly, the null class with probability `label_dropout`; a
    labelled trajectory follows the guided ODE at `guidance`, a null-labelled one the unconditional ODE. An
    unconditional teacher with `autoguide` (a worse model): every trajectory follows the autoguided ODE at
    `guidance` (from timestep `autoguide_from` up; generate_images). `precision`: the teacher's, as in
    generate_images (`distill` passes its --precision: the bank in bf16 where the training step is)."""
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, max(num_classes, 1), (n,), generator=g)
    if num_classes:
        y = torch.where(torch.rand(n, generator=g) < label_dropout, null_label, y)
    recipe = SamplingRecipe(sampler="dpm++2m", steps=steps, spacing="trailing", solver_type="exact")
    xs, ts, ends, ys, visited = [], [], [], [], []
    groups = [(y != null_label, guidance), (y == null_label, 1.0)] if num_classes else [(y == y, 1.0)]
    if autoguide is not None:
        if num_classes:
            raise ValueError("autoguidance here guides an unconditional teacher's trajectories")
        groups = [(y == y, guidance)]
    with torch.no_grad():
        for i, (chosen, scale) in enumerate(groups):
            count = int(chosen.sum())
            if count == 0:
                continue
            labels = y[chosen] if num_classes and i == 0 else None  # None: the null class
            start = 0
            for end in generate_images(teacher, schedule, n=count, shape=shape, recipe=recipe.replace(guidance=scale),
                                       seed=seed + i, labels=labels, batch_size=batch_size, device=device,
                                       precision=precision,
                                       callback=lambda k, t, x_t, x0: visited.append((t, x_t)),
                                       autoguide=autoguide, autoguide_from=autoguide_from):  # fmt: skip
                for t, x_t in visited:  # every point the solver visited in this batch, with the end it reached
                    xs.append(x_t), ends.append(end), ts.append(torch.full((len(end),), t, device=end.device))
                    ys.append(y[chosen][start : start + len(end)].to(end.device))
                visited.clear()
                start += len(end)
    x0 = torch.cat(ends)
    code = None
    if codes:  # each distinct end once: every point of a trajectory shares its end's code
        distinct, which = torch.unique(x0.flatten(1), dim=0, return_inverse=True)
        code = end_codes(teacher, schedule, distinct.reshape(-1, *x0.shape[1:]), codes)[which]
    return TrajectoryBank(torch.cat(xs), torch.cat(ts), x0, torch.cat(ys), num_classes > 0, code)
