"""Draw many samples from a trained denoiser, in batches, each reproducible from (seed, its index).

One path for both objectives: a DDPM checkpoint's eps model runs any sampler of `samplers.SAMPLERS`, a flow
matching checkpoint's velocity model (`flow.py`) runs `flow.FLOW_SAMPLERS`. `SAMPLERS_FOR[objective]` names
the valid ones; `count_nfe` and `steps_for_budget` convert between steps and network evaluations.
"""

from collections.abc import Callable, Iterator
from typing import Literal

import numpy as np
import torch
from torch import nn

from .fastpath import trusted_inputs
from .flow import FLOW_SAMPLERS, flow_nfe, flow_steps_for_nfe, flow_timesteps
from .guidance import guided_model
from .samplers import SAMPLERS, SOLVER_TYPED, make_timesteps, sampler_nfe, steps_for_nfe
from .schedule import NoiseSchedule

Objective = Literal["ddpm", "flow"]
SAMPLERS_FOR: dict[str, tuple[str, ...]] = {"ddpm": tuple(SAMPLERS), "flow": tuple(FLOW_SAMPLERS)}


def checkpoint_objective(meta: dict) -> str:
    """'ddpm' or 'flow': what a checkpoint's network predicts, from `load_for_sampling`'s meta (default ddpm)."""
    return meta.get("objective", meta.get("config", {}).get("objective", "ddpm"))


def check_sampler(objective: str, sampler: str) -> None:
    """A ValueError unless `sampler` can sample a model trained with `objective`."""
    if objective not in SAMPLERS_FOR:
        raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(SAMPLERS_FOR)}")
    if sampler not in SAMPLERS_FOR[objective]:
        raise ValueError(
            f"sampler {sampler!r} does not fit a model trained with the {objective} objective; "
            f"choose one of {', '.join(SAMPLERS_FOR[objective])}"
        )


def count_nfe(objective: str, sampler: str, steps: int) -> int:
    """Network evaluations of `steps` steps (a guided evaluation, one batched forward, counts once)."""
    check_sampler(objective, sampler)
    return flow_nfe(sampler, steps) if objective == "flow" else sampler_nfe(sampler, steps)


def steps_for_budget(objective: str, sampler: str, nfe: int) -> int:
    """The step count that costs exactly `nfe` evaluations; a ValueError if none does (Heun's parity)."""
    check_sampler(objective, sampler)
    return flow_steps_for_nfe(sampler, nfe) if objective == "flow" else steps_for_nfe(sampler, nfe)


def sample_generator(seed: int, index: int) -> torch.Generator:
    """The CPU generator of sample `index`: x_T and all its noise come from it, whatever the batch."""
    state = np.random.SeedSequence([seed, index]).generate_state(2, dtype=np.uint32)
    return torch.Generator().manual_seed(int(state[0]) << 32 | int(state[1]))


def generate_images(
    model: nn.Module,
    schedule: NoiseSchedule | None,
    *,
    n: int,
    shape: tuple[int, ...],
    sampler: str = "ddim",
    steps: int = 50,
    eta: float = 0.0,
    solver_type: str = "midpoint",
    spacing: str = "uniform",
    timesteps: list[int] | list[float] | None = None,
    variance: Literal["beta", "posterior"] = "beta",
    clip_x0: bool = True,
    seed: int = 0,
    labels: torch.Tensor | None = None,
    guidance: float = 1.0,
    batch_size: int = 256,
    device: str | torch.device = "cpu",
    callback: Callable | None = None,
    objective: Objective = "ddpm",
) -> Iterator[torch.Tensor]:
    """Yield batches of samples in [-1, 1], (B, *shape), n in all; memory is bounded by `batch_size`.

    Each sample draws x_T and any per-step noise from its own CPU generator (see `sample_generator`), so
    it is the same whatever the batch size or device. The price: samplers that add noise at every step
    (DDPM, DDIM with eta > 0, dpm++2m-sde) draw it on the CPU, one sample at a time; the ODE solvers draw none.

    Args:
        schedule: the DDPM noise schedule; unused (may be None) for a flow model.
        sampler: 'ddpm', 'ddim', 'dpm++2m', 'dpm++2m-sde' or 'heun' for objective 'ddpm'; 'euler' or 'heun'
            for 'flow'.
        solver_type: dpm++2m and dpm++2m-sde: 'midpoint' (Lu et al. 2022, Algorithm 2) or 'exact'
            (`samplers.dpmpp_2m_sample`).
        spacing: 'uniform', 'trailing', 'quadratic', 'logsnr' or 'karras' (`samplers.make_timesteps`); flow:
            'uniform' or 'quadratic' (`flow.flow_timesteps`).
        timesteps: an explicit descending list of step indices (flow: times from 1 to 0); overrides
            `steps` and `spacing`.
        clip_x0: clamp the predicted x_0 to [-1, 1] at each step (flow: x_0 = x_t - t v, for t > 0).
        labels: (n,) class labels for a conditional model, or None for unconditional sampling.
        guidance: classifier-free guidance scale s (1 = plain conditional, 0 = unconditional).
        callback: passed to the sampler for each batch: callback(i, t, x_t, x0_pred).
        objective: what the model predicts: 'ddpm' (eps) or 'flow' (the velocity eps - x_0).
    """
    check_sampler(objective, sampler)
    if n < 1 or batch_size < 1:
        raise ValueError(f"n and batch_size must be at least 1, got n={n}, batch_size={batch_size}")
    if labels is not None and len(labels) != n:
        raise ValueError(f"got {len(labels)} labels for {n} samples")
    if objective == "flow":
        timesteps = flow_timesteps(steps, spacing) if timesteps is None else timesteps
    else:
        timesteps = make_timesteps(schedule, steps, spacing) if timesteps is None else timesteps
        options = {"ddim": {"eta": eta}, "ddpm": {"variance": variance}}.get(sampler, {})
        if sampler in SOLVER_TYPED:
            options = {"solver_type": solver_type}
        schedule = schedule.to(device)
    model.eval()
    for start in range(0, n, batch_size):
        stop = min(start + batch_size, n)
        generators = [sample_generator(seed, i) for i in range(start, stop)]
        x_T = torch.stack([torch.randn(shape, generator=g) for g in generators]).to(device)
        y = None if labels is None else labels[start:stop].to(device)
        guided = guided_model(model, y, guidance)  # checks the labels once, here; eps or velocity alike
        with trusted_inputs(model):  # so the model need not re-check them (a host sync) at every step
            if objective == "flow":  # x_T is x_1, the noise end of the flow
                samples = FLOW_SAMPLERS[sampler](
                    guided, x_T, timesteps, generator=generators, clip_x0=clip_x0, callback=callback
                )
            else:
                samples = SAMPLERS[sampler](
                    guided, schedule, x_T, timesteps,
                    generator=generators, clip_x0=clip_x0, callback=callback, **options,
                )  # fmt: skip
        yield samples
