"""Reverse-process samplers: DDPM ancestral sampling (Ho et al. 2020) and DDIM (Song et al. 2021).

Every sampler shares one signature, k-diffusion style:

    sampler(eps_model, schedule, x_T, timesteps=None, *, generator=None, clip_x0=False, callback=None, ...)

- `eps_model(x_t, t) -> eps` is any callable; class labels and guidance are bound by a wrapper
  (see `guidance.py`), so every sampler gets them for free.
- `timesteps` is data: a descending sequence of 0-based step indices (None = all T steps). Build one with
  `make_timesteps`, or pass your own; a sampler visits exactly those steps.
- `generator` is a `torch.Generator` on x_T's device, or a list of CPU generators, one per sample, which
  makes every sample reproducible from its own seed whatever the batch size.
- `callback(i, t, x_t, x0_pred)` is called before each step with the current state and predicted x_0.

A step goes from index `t` to the next index `s` in the list (s = -1 after the last, with alpha_bar = 1).
All step coefficients are computed in float64 on the CPU, as Python floats.
"""

from collections.abc import Callable, Sequence
from typing import Literal

import torch

from .schedule import NoiseSchedule

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]
Generator = torch.Generator | list[torch.Generator] | None
Spacing = Literal["uniform", "quadratic"]
SPACINGS: tuple[str, ...] = ("uniform", "quadratic")


def make_timesteps(T: int, steps: int, spacing: Spacing = "uniform") -> list[int]:
    """Descending step indices for a `steps`-step sampler over a T-step schedule (Song et al. 2021, App. D.2).

    'uniform' takes every (T / steps)-th index; 'quadratic' spaces them as i^2, denser near t = 0.
    """
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be between 1 and T = {T}, got {steps}")
    if spacing == "uniform":
        ts = [int(i * T / steps) for i in range(steps)]
    elif spacing == "quadratic":
        ts = [int((i * (0.8 * T) ** 0.5 / steps) ** 2) for i in range(steps)]
        # the quadratic formula can repeat small indices when steps is close to T: keep them distinct
        for i in range(1, steps):
            ts[i] = max(ts[i], ts[i - 1] + 1)
        if ts[-1] >= T:
            raise ValueError(f"quadratic spacing cannot place {steps} steps in T = {T}; use 'uniform'")
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return ts[::-1]


def check_timesteps(schedule: NoiseSchedule, timesteps: Sequence[int] | None) -> list[int]:
    """Validate an explicit timestep list: strictly decreasing indices in 0..T-1 (None means all T)."""
    if timesteps is None:
        return list(range(schedule.T - 1, -1, -1))
    ts = [int(t) for t in timesteps]
    if not ts:
        raise ValueError("timesteps is empty: give at least one step")
    if any(not 0 <= t < schedule.T for t in ts):
        raise ValueError(f"timesteps must be indices in 0..{schedule.T - 1} (T = {schedule.T}), got {ts}")
    if any(a <= b for a, b in zip(ts, ts[1:], strict=False)):
        raise ValueError(f"timesteps must be strictly decreasing, got {ts}")
    return ts


def randn_like(x: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Standard normal noise shaped like x; with a list of generators, sample i draws from generator i."""
    if isinstance(generator, list):
        if len(generator) != x.shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {x.shape[0]}")
        noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in generator])
        return noise.to(device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _steps(schedule: NoiseSchedule, timesteps: Sequence[int] | None):
    """(i, t, s, alpha_bar_t, alpha_bar_s) for each step t -> s; s = -1 after the last, alpha_bar_{-1} = 1."""
    ts = check_timesteps(schedule, timesteps)
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else -1
        yield i, t, s, _alpha_bar(schedule, t), _alpha_bar(schedule, s)


def _predict(eps_model: EpsModel, x_t, i: int, t: int, alpha_bar_t: float, clip_x0: bool, callback):
    """eps_theta(x_t, t) and the implied x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).

    With `clip_x0`, x_0 is clamped to [-1, 1] and eps is re-derived from the clamped x_0, so the two
    stay consistent with x_t (the step then moves towards the clamped x_0). The callback sees both.
    """
    t_batch = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
    eps = eps_model(x_t, t_batch).to(x_t.dtype)
    x0_pred = (x_t - (1 - alpha_bar_t) ** 0.5 * eps) / alpha_bar_t**0.5
    if clip_x0:
        x0_pred = x0_pred.clamp(-1, 1)
        eps = (x_t - alpha_bar_t**0.5 * x0_pred) / (1 - alpha_bar_t) ** 0.5
    if callback is not None:
        callback(i, t, x_t, x0_pred)
    return eps, x0_pred


def _alpha_bar(schedule: NoiseSchedule, t: int) -> float:
    return 1.0 if t < 0 else schedule.alpha_bar64[t].item()


@torch.no_grad()
def ddpm_sample(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    timesteps: Sequence[int] | None = None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
    variance: Literal["beta", "posterior"] = "beta",
) -> torch.Tensor:
    """Ancestral sampling, Ho et al. 2020 Algorithm 2, from x_T down to x_0.

    `variance` picks sigma_t^2: 'beta' (beta_t, seed 003's choice) or 'posterior' (beta_tilde_t, Eq. 7).
    Over a subsequence of steps, beta is taken between consecutive visited steps:
    beta = 1 - alpha_bar_t / alpha_bar_s.
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"unknown variance {variance!r}; choose 'beta' or 'posterior'")
    x = x_T
    for i, t, s, alpha_bar_t, alpha_bar_s in _steps(schedule, timesteps):
        beta_t = 1 - alpha_bar_t / alpha_bar_s  # = beta_t when s = t - 1
        _, x0_pred = _predict(eps_model, x, i, t, alpha_bar_t, clip_x0, callback)
        # posterior mean mu_tilde(x_t, x_0) (Eq. 7); without clipping it equals Eq. 11's
        # (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        coef_x0 = alpha_bar_s**0.5 * beta_t / (1 - alpha_bar_t)
        coef_xt = (1 - beta_t) ** 0.5 * (1 - alpha_bar_s) / (1 - alpha_bar_t)
        x = coef_x0 * x0_pred + coef_xt * x
        if s >= 0:  # no noise is added on the last step
            sigma2 = beta_t if variance == "beta" else beta_t * (1 - alpha_bar_s) / (1 - alpha_bar_t)
            x = x + sigma2**0.5 * randn_like(x, generator)
    return x


@torch.no_grad()
def ddim_sample(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    timesteps: Sequence[int] | None = None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
    eta: float = 0.0,
) -> torch.Tensor:
    """DDIM, Song et al. 2021 Eq. 12; eta = 0 is deterministic, eta = 1 over all steps is DDPM (posterior)."""
    if eta < 0:
        raise ValueError(f"eta must be >= 0, got {eta}")
    x = x_T
    for i, t, _, alpha_bar_t, alpha_bar_s in _steps(schedule, timesteps):
        eps, x0_pred = _predict(eps_model, x, i, t, alpha_bar_t, clip_x0, callback)
        # Eq. 16: sigma(eta) = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s)
        sigma = eta * ((1 - alpha_bar_s) / (1 - alpha_bar_t) * (1 - alpha_bar_t / alpha_bar_s)) ** 0.5
        # Eq. 12: "predicted x_0" + "direction pointing to x_t" + random noise
        x = alpha_bar_s**0.5 * x0_pred + max(1 - alpha_bar_s - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            x = x + sigma * randn_like(x, generator)
    return x


SAMPLERS = {"ddpm": ddpm_sample, "ddim": ddim_sample}
