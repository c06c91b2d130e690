"""Flow matching on the straight path from data to noise: rectified flow (Liu et al. 2023) and conditional flow
matching with the optimal-transport path (Lipman et al. 2023), on the same U-Nets as DDPM.

| code        | paper                                                                              |
|-------------|------------------------------------------------------------------------------------|
| `t`         | t in [0, 1]: t = 0 is the data, t = 1 the noise (Liu et al.'s X_0 / X_1 swapped)      |
| `x_t`       | x_t = (1 - t) x_0 + t eps (Lipman et al. Eq. 20 with sigma_min = 0; Liu et al. Eq. 1) |
| `v`         | the velocity dx_t / dt = eps - x_0, what the network predicts                         |
| `v_model`   | v_theta(x_t, TIME_SCALE * t): the network, called with the scaled time               |

Loss (Lipman et al. Eq. 23; Liu et al. Eq. 1): E_{t, x_0, eps} || v_theta(x_t, t) - (eps - x_0) ||^2.
Sampling solves the ODE dx / dt = v_theta(x, t) from x_1 ~ N(0, I) at t = 1 down to t = 0.

The network sees `TIME_SCALE * t`, a float in [0, 1000], so its sinusoidal time embedding covers the same
range as DDPM's integer indices. A wrapper such as `guidance.guided_model` works unchanged: it only binds
class labels to `model(x_t, t, y)`.
"""

from collections.abc import Callable, Sequence
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

VModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
FlowCallback = Callable[[int, float, torch.Tensor, torch.Tensor], None]
TIME_SCALE = 1000.0  # the network's time input is TIME_SCALE * t
FLOW_SPACINGS: tuple[str, ...] = ("uniform", "quadratic")


def flow_interpolate(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x_0 + t eps for t of shape (B,)."""
    t = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)  # (B, 1, ...)
    return (1 - t) * x0 + t * eps


def flow_matching_loss(
    net: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor, y: torch.Tensor | None = None
) -> torch.Tensor:
    """|| v_theta(x_t, t) - (eps - x_0) ||^2, averaged over every element (Lipman et al. 2023, Eq. 23).

    Args:
        x0: clean data (B, ...) in [-1, 1]; eps: noise N(0, I) shaped like x0.
        t: (B,) times in [0, 1] (e.g. uniform); the network is called with TIME_SCALE * t.
        y: class labels (B,) for a conditional model, with any label dropout already applied.
    """
    x_t = flow_interpolate(x0, t, eps)
    t_in = TIME_SCALE * t.to(torch.float32)
    v_pred = net(x_t, t_in) if y is None else net(x_t, t_in, y)
    return F.mse_loss(v_pred.float(), (eps - x0).float())


def flow_timesteps(steps: int, spacing: Literal["uniform", "quadratic"] = "uniform") -> list[float]:
    """steps + 1 descending times from 1 to 0: uniform, or quadratic (t = (i / steps)^2, denser near the data)."""
    if steps < 1:
        raise ValueError(f"steps must be at least 1, got {steps}")
    if spacing == "uniform":
        ts = [i / steps for i in range(steps + 1)]
    elif spacing == "quadratic":
        ts = [(i / steps) ** 2 for i in range(steps + 1)]
    else:
        raise ValueError(f"unknown flow spacing {spacing!r}; choose one of {', '.join(FLOW_SPACINGS)}")
    return ts[::-1]


def check_flow_timesteps(timesteps: Sequence[float]) -> list[float]:
    """Validate a time grid: at least two strictly decreasing floats in [0, 1]."""
    ts = [float(t) for t in timesteps]
    if len(ts) < 2 or any(not 0 <= t <= 1 for t in ts) or any(a <= b for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"flow timesteps must be >= 2 strictly decreasing times in [0, 1], got {ts[:10]}")
    return ts


def _velocity(v_model: VModel, x: torch.Tensor, t: float, clip_x0: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """v_theta(x, t) for a batch at one time t (the network sees TIME_SCALE * t) and x0_pred = x - t v.

    With `clip_x0` (and t > 0), x0_pred is clamped to [-1, 1] and v re-derived from it, v = (x - x0_pred) / t,
    so the step moves towards the clamped x_0, as the DDPM samplers' `clip_x0` does.
    """
    t_batch = torch.full((x.shape[0],), TIME_SCALE * t, device=x.device, dtype=x.dtype)
    v = v_model(x, t_batch).to(x.dtype)
    x0_pred = x - t * v
    if clip_x0 and t > 0:
        x0_pred = x0_pred.clamp(-1, 1)
        v = (x - x0_pred) / t
    return v, x0_pred


# ----------------------------------------------------------------------------------------------------------
# Samplers: x_1 ~ N(0, I) at t = 1 integrated to t = 0 by Euler or Heun (Karras et al. 2022, Algorithm 1 in
# t instead of sigma). The velocity is defined at t = 0 (x_t = x_0 there), so unlike the VP Heun sampler every
# step, the last included, is a Heun step: NFE = 2 * steps. `callback(i, t, x_t, x0_pred)` sees each step,
# with x0_pred = x_t - t v, the endpoint of a straight line through x_t. Same signature as the DDPM samplers
# less the schedule; x_1 plays x_T's part and `timesteps` are times in [0, 1].


@torch.no_grad()
def flow_euler_sample(
    v_model: VModel,
    x_1: torch.Tensor,
    timesteps: Sequence[float],
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    clip_x0: bool = False,
    callback: FlowCallback | None = None,
) -> torch.Tensor:
    """Euler's method on dx / dt = v_theta(x, t) over `timesteps` (1 -> 0); NFE = steps. `generator` is unused."""
    ts = check_flow_timesteps(timesteps)
    x = x_1
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        v, x0_pred = _velocity(v_model, x, t, clip_x0)
        if callback is not None:
            callback(i, t, x, x0_pred)
        x = x + (s - t) * v
    return x


@torch.no_grad()
def flow_heun_sample(
    v_model: VModel,
    x_1: torch.Tensor,
    timesteps: Sequence[float],
    *,
    generator: torch.Generator | list[torch.Generator] | None = None,
    clip_x0: bool = False,
    callback: FlowCallback | None = None,
) -> torch.Tensor:
    """Heun's method (trapezoidal predictor-corrector) on dx / dt = v_theta(x, t); NFE = 2 * steps."""
    ts = check_flow_timesteps(timesteps)
    x = x_1
    for i, (t, s) in enumerate(zip(ts, ts[1:])):
        v, x0_pred = _velocity(v_model, x, t, clip_x0)
        if callback is not None:
            callback(i, t, x, x0_pred)
        x_next = x + (s - t) * v  # Euler predictor
        v_next, _ = _velocity(v_model, x_next, s, clip_x0)
        x = x + (s - t) * (0.5 * v + 0.5 * v_next)  # trapezoidal corrector
    return x


FLOW_SAMPLERS = {"euler": flow_euler_sample, "heun": flow_heun_sample}


def flow_nfe(sampler: str, steps: int) -> int:
    """Network evaluations of a flow sampler over `steps` steps: Euler 1 per step, Heun 2 per step."""
    if sampler not in FLOW_SAMPLERS:
        raise ValueError(f"unknown flow sampler {sampler!r}; choose one of {', '.join(FLOW_SAMPLERS)}")
    return 2 * steps if sampler == "heun" else steps


def flow_steps_for_nfe(sampler: str, nfe: int) -> int:
    """The step count whose NFE is exactly `nfe`; a ValueError for an odd budget with Heun."""
    flow_nfe(sampler, 1)  # validates the name
    if nfe < 1:
        raise ValueError(f"NFE must be at least 1, got {nfe}")
    if sampler == "heun":
        if nfe % 2:
            raise ValueError(f"flow heun makes 2 evaluations per step, so its NFE is even; got {nfe}: use {nfe + 1}")
        return nfe // 2
    return nfe
