"""One interface between a trained network and every sampler: the prediction at (x_t, t) on a noise path.

A sampler never asks which objective trained the model. It holds a *model* (the network with its labels and
guidance bound, `guidance.py`), a *path* (the noise schedule it was trained on) and calls

    predict(model, path, x_t, t) -> Prediction(x0, eps, d)

which turns the model's native output into the three quantities any sampler reads. This is the one place a
network's output is interpreted (as k-diffusion's `denoiser(x, sigma) -> x0` is; here the native quantity is
kept, so that each sampler reads exactly the numbers it did before the paths were unified).

| code             | meaning                                                                                  |
|------------------|------------------------------------------------------------------------------------------|
| `path`           | `schedule.NoiseSchedule` (DDPM's VP path, t an index 0..T-1) or `flow.FlowPath` (t in [0, 1]) |
|                  | (a few-step model's: a `FewStepPath` around one)                                        |
| `alpha_t, sigma_t` | `path.coefficients(t)`: x_t = alpha_t x_0 + sigma_t eps                                  |
| `x0`             | the predicted clean image                                                                |
| `eps`            | the predicted noise, consistent with x_t: x_t = alpha_t x0 + sigma_t eps                  |
| `d`              | dx_hat / dtau, the probability-flow ODE's derivative in the path's ODE coordinates          |
|                  | x_hat = x_t / scale(t), tau(t) (`path.ode_scale_tau`): eps on the VP path (Karras et al.  |
|                  | 2022, Table 1), the velocity v = eps - x_0 on the flow path                                |

The native output (`path.native`): an eps-model on the VP path (a v- or x_0-network is converted to eps by
`objective.EpsFromPrediction`, in the same float32 arithmetic as its training loss), a velocity model on the
flow path. A MeanFlow network's output, the average velocity u(z_t, r, t) of two times, is not read here but
by its own sampler (`samplers.meanflow_sample`). `sampling_parts` decides, once, which path and native model a
trained network has, and `training_parts` which loss trains it and where its t is drawn.
"""

import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .consistency import distillation_loss
from .flow import FlowPath, flow_matching_loss
from .meanflow import TimePairs, meanflow_loss
from .objective import OBJECTIVES, DiffusionLoss, as_eps_model
from .recipe import JUMP_SPACINGS
from .schedule import NoiseSchedule, eps_from_x0, x0_from_eps

Model = Callable[[Tensor, Tensor], Tensor]  # model(x_t, t_network) -> the path's native quantity
Path = NoiseSchedule | FlowPath  # or a FewStepPath around one
# the training options each objective's loss never reads (train_config.validate refuses them when set), and why
UNUSED_OPTIONS: dict[str, tuple[tuple[str, ...], str]] = {
    "ddpm": ((), ""),
    "flow": (("prediction", "loss_weighting"), "it regresses the velocity with plain MSE"),
    "consistency": (("loss_weighting",), "it matches the model to itself one step along its teacher's ODE"),
    "meanflow": (("prediction", "loss_weighting", "precision"),
                 "it regresses the average velocity on the MeanFlow identity with its own weighting, in float32"),
}  # fmt: skip


FEW_STEP_MAX = 8  # the most steps a few-step model samples with: past it, its teacher's solvers are better


class FewStepPath:
    """The path of a few-step model: a consistency model on its teacher's DDPM path, a MeanFlow model on the flow
    path. A sampler reads only the base path (its coefficients, grids, clean end and network time); the wrapper
    adds the model's `objective`, which picks its sampler (recipe.SAMPLERS_OF), and a bound on the steps."""

    max_steps = FEW_STEP_MAX
    max_steps_meaning = "a few-step model's bound: past it, a diffusion model's own solvers do better"

    def __init__(self, base: "NoiseSchedule | FlowPath", objective: str):
        self.base, self.objective = base, objective

    def __getattr__(self, name: str):  # everything not defined here is the base path's
        if name == "base":  # (not yet set: while unpickling or copying)
            raise AttributeError(name)
        return getattr(self.base, name)

    def to(self, device) -> "FewStepPath":
        return FewStepPath(self.base.to(device), self.objective)

    @property
    def spacings(self) -> tuple[str, ...]:
        jump = JUMP_SPACINGS if isinstance(self.base, NoiseSchedule) else ()
        return (*self.base.spacings, *jump)

    def timesteps(self, steps: int, spacing: str = "uniform") -> list:
        if not 1 <= steps <= self.max_steps:
            raise ValueError(f"a {self.objective} model samples in 1 to {self.max_steps} steps, got {steps}")
        if spacing in JUMP_SPACINGS and isinstance(self.base, NoiseSchedule):
            return jump_grid(self.base, steps)
        return self.base.timesteps(steps, spacing)

    def check_timesteps(self, timesteps) -> list:
        ts = self.base.check_timesteps(timesteps)
        if len(ts) > self.max_steps:
            raise ValueError(f"a {self.objective} model samples in 1 to {self.max_steps} steps, got {len(ts)}")
        return ts


JUMP_SIGMAS = (1.2, 0.17)  # sigma = sqrt((1 - alpha_bar) / alpha_bar) of the points after the jump (few_step.md)


def jump_grid(schedule: NoiseSchedule, steps: int) -> list[int]:
    """Multistep consistency sampling's grid (Song et al. 2023, Algorithm 1, whose tau_n are chosen by search):
    the first step from pure noise (index T-1), the other steps - 1 at low noise, geometric in sigma from
    JUMP_SIGMAS[0] down to JUMP_SIGMAS[1], each at its nearest index. Chosen by a grid search on two MNIST
    students (docs/few_step.md): a second point at sigma 0.5-1.2 (t = 150-300 of the linear schedule) scored a
    lower FID than the trailing grid's t = 499 at 2 steps, and low points (t = 293, 131, 48) lower than its
    749, 499, 249 at 4 steps, for unconditional and class-conditional samples alike."""
    sigmas = torch.logspace(math.log10(JUMP_SIGMAS[0]), math.log10(JUMP_SIGMAS[1]), steps - 1, dtype=torch.float64)
    sigma_t = ((1 - schedule.alpha_bar64) / schedule.alpha_bar64).sqrt()  # increasing in t
    ts = [schedule.T - 1] + [int((sigma_t - s).abs().argmin()) for s in sigmas]
    for i in range(1, len(ts)):  # distinct and descending where the schedule is coarse
        ts[i] = max(min(ts[i], ts[i - 1] - 1), steps - 1 - i)
    return ts


class Prediction(NamedTuple):
    x0: Tensor
    eps: Tensor
    d: Tensor


def predict(model: Model, path: Path, x_t: Tensor, t, clip_x0: bool = False) -> Prediction:
    """x0, eps and the ODE derivative at (x_t, t) from the model's native output (see the table above).

    With `clip_x0`, x0 is clamped to [-1, 1] and eps and d are re-derived from the clamped x0, so all three
    stay consistent with x_t and a step moves towards the clamped x0.
    """
    out = model(x_t, path.network_time(t, x_t)).to(x_t.dtype)
    a, s = path.coefficients(t)
    if path.native == "eps":  # eps_theta (Ho et al. 2020); Eq. 4 inverted for x0
        eps = out
        x0 = x0_from_eps(x_t, eps, a, s)
        if clip_x0:
            x0 = x0.clamp(-1, 1)
            eps = eps_from_x0(x_t, x0, a, s)
        return Prediction(x0, eps, eps)
    v = out  # the velocity eps - x_0 (flow matching): x_0 = x_t - t v, eps = x_t + (1 - t) v
    x0 = x_t - t * v
    if clip_x0 and t > 0:
        x0 = x0.clamp(-1, 1)
        v = (x_t - x0) / t
    return Prediction(x0, x_t + (1 - t) * v, v)


def sampling_parts(net: nn.Module, objective: str, prediction: str, schedule: NoiseSchedule) -> tuple[nn.Module, Path]:
    """(the model a sampler calls, its path) for a network trained with `objective`: the one place that decides.

    'ddpm': an eps-model on the DDPM schedule, whatever the network predicts (eps, v or x0); 'flow': the
    velocity network on the straight path (`schedule` unused); 'meanflow': the average-velocity network on the
    straight path, as a few-step model.
    """
    if objective == "ddpm":
        return as_eps_model(net, schedule, prediction), schedule
    if objective == "flow":
        return net, FlowPath()
    if objective == "consistency":  # its x0 prediction is the consistency function (consistency.py)
        return as_eps_model(net, schedule, prediction), FewStepPath(schedule, "consistency")
    if objective == "meanflow":  # the average velocity u(z_t, r, t), read by samplers.meanflow_sample alone
        return net, FewStepPath(FlowPath(), "meanflow")
    raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")


class OneStepAndChain(nn.Module):
    """A few-step model of two networks (`distill --chain`): `one_step` draws one-step samples, `chain` takes every
    step of a chain of 2 or more. A one-step map can be trained harder than a chain's first step may be (its later
    maps must still fit it; docs/few_step.md, "Two networks"). Called, it is the chain; `for_steps` picks."""

    def __init__(self, one_step: nn.Module, chain: nn.Module):
        super().__init__()
        self.one_step, self.chain = one_step, chain

    def for_steps(self, steps: int) -> nn.Module:
        return self.one_step if steps == 1 else self.chain

    def forward(self, *args, **kwargs) -> Tensor:
        return self.chain(*args, **kwargs)


def network_for_steps(model: nn.Module, steps: int) -> nn.Module:
    """The network a sampler of `steps` steps calls: one of a OneStepAndChain, else the model itself."""
    return model.for_steps(steps) if isinstance(model, OneStepAndChain) else model


def training_parts(objective: str, prediction: str, weighting: str, schedule: NoiseSchedule, *,
                   teacher: nn.Module | None = None, distill: dict | None = None) -> tuple[Callable, Path]:  # fmt: skip
    """(loss_fn(net, x0, t, eps, y), the path that draws t) for training with `objective`.

    'ddpm': `objective.DiffusionLoss`, the prediction target and weighting bound (L_simple for eps, none);
    'flow': `flow.flow_matching_loss` (prediction and weighting do not apply); 'meanflow':
    `meanflow.meanflow_loss`, its t a (B, 2) tensor of the pairs (t, r) that `meanflow.TimePairs` draws;
    'consistency': `consistency.distillation_loss` with the `distill` settings and the frozen `teacher`.
    """
    if objective == "ddpm":
        return DiffusionLoss(schedule, prediction, weighting), schedule
    if objective == "flow":
        return flow_matching_loss, FlowPath()
    if objective == "consistency":  # t: an index of the schedule, or of the trajectory bank
        loss = distillation_loss(schedule, prediction, teacher, **distill)
        return loss, getattr(loss, "bank", schedule)
    if objective == "meanflow":
        return meanflow_loss, TimePairs()
    raise ValueError(f"unknown objective {objective!r}; choose one of {', '.join(OBJECTIVES)}")
