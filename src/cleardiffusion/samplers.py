"""Reverse-process samplers: DDPM (Ho et al. 2020), DDIM (Song et al. 2021), DPM-Solver++(2M) and its SDE
variant (Lu et al. 2022) and Heun's method on the probability-flow ODE (Karras et al. 2022).

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

Notation of the ODE solvers (a VP schedule in the papers' variables):

| code            | paper                                                                    |
|-----------------|--------------------------------------------------------------------------|
| `alpha_t`       | alpha_t = sqrt(alpha_bar_t) (Lu et al.; Kingma et al. 2021)              |
| `sigma_t`       | sigma_t = sqrt(1 - alpha_bar_t) in DPM-Solver++                           |
| `lambda_t`      | lambda_t = log(alpha_t / sigma_t), half the log-SNR                       |
| `h`, `r`        | h_i = lambda_{t_i} - lambda_{t_{i-1}}, r_i = h_{i-1} / h_i (Algorithm 2)   |
| `sigma_t` (Heun)| Karras's sigma(t) = sqrt((1 - alpha_bar_t) / alpha_bar_t), with x_hat = x_t / sqrt(alpha_bar_t) |

NFE (network evaluations) of a run over `steps` timesteps: `sampler_nfe(name, steps)`; one per step,
except Heun: 2 per step and 1 on its last (Euler) step, 2 * steps - 1 in all.
"""

import math
from collections.abc import Callable, Sequence
from typing import Literal

import torch

from .schedule import NoiseSchedule, eps_from_x0, x0_from_eps

EpsModel = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
Callback = Callable[[int, int, torch.Tensor, torch.Tensor], None]
Generator = torch.Generator | list[torch.Generator] | None
Spacing = Literal["uniform", "trailing", "quadratic", "logsnr", "karras"]
SPACINGS: tuple[str, ...] = ("uniform", "trailing", "quadratic", "logsnr", "karras")
SolverType = Literal["midpoint", "exact"]
SOLVER_TYPES: tuple[str, ...] = ("midpoint", "exact")
KARRAS_RHO = 7.0  # Karras et al. 2022, Eq. 5 and Table 1


def make_timesteps(schedule: "NoiseSchedule | int", steps: int, spacing: Spacing = "uniform") -> list[int]:
    """Descending step indices for a `steps`-step sampler over a T-step schedule.

    'uniform' takes every (T / steps)-th index from 0 and 'quadratic' spaces them as i^2, denser near t = 0 (both
    Song et al. 2021, App. D.2; neither visits index T-1). 'trailing' takes every (T / steps)-th index counting
    down from T-1, so it starts from pure noise and its last index is about T / steps, not 0 (Lin et al. 2024,
    "Common Diffusion Noise Schedules and Sample Steps are Flawed", Table 2; diffusers' timestep_spacing=
    "trailing"): the last step jumps from there to the predicted x_0 instead of spending a network evaluation
    at index 0, where almost no noise is left. 'logsnr' is uniform in lambda_t = log(alpha_t /
    sigma_t) (Lu et al. 2022a, DPM-Solver's step schedule) and 'karras' uniform in sigma^(1/rho), rho = 7, with
    sigma = sqrt((1 - alpha_bar) / alpha_bar) (Karras et al. 2022, Eq. 5); both run from index T-1 to 0 and
    take each point's nearest index in lambda, so they need the schedule, not just T. With the cosine schedule,
    whose last beta is clipped to 0.999 (alpha_bar_{T-1} ~ 2e-9, lambda ~ -10), both spend a few steps on the
    top few indices; pass an explicit list to skip them.
    """
    T = schedule if isinstance(schedule, int) else schedule.T
    if not 1 <= steps <= T:
        raise ValueError(f"steps must be between 1 and T = {T}, got {steps}")
    if spacing == "uniform":
        ts = [int(i * T / steps) for i in range(steps)]
    elif spacing == "trailing":
        ts = [round(T - i * T / steps) - 1 for i in range(steps - 1, -1, -1)]
    elif spacing == "quadratic":
        ts = [int((i * (0.8 * T) ** 0.5 / steps) ** 2) for i in range(steps)]
        # the quadratic formula can repeat small indices when steps is close to T: keep them distinct
        for i in range(1, steps):
            ts[i] = max(ts[i], ts[i - 1] + 1)
        if ts[-1] >= T:
            raise ValueError(f"quadratic spacing cannot place {steps} steps in T = {T}; use 'uniform'")
    elif spacing in ("logsnr", "karras"):
        if isinstance(schedule, int):
            raise ValueError(f"{spacing} spacing needs the noise schedule, not only T: pass the NoiseSchedule")
        ts = _continuous_spacing(schedule, steps, spacing)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return ts[::-1]


def _continuous_spacing(schedule: NoiseSchedule, steps: int, spacing: str) -> list[int]:
    """Ascending distinct indices nearest (in lambda) to `steps` points spaced in log-SNR or Karras's sigma."""
    lambdas = 0.5 * (schedule.alpha_bar64.log() - (1 - schedule.alpha_bar64).log())  # lambda_t, decreasing in t
    lambda_min, lambda_max = lambdas[-1].item(), lambdas[0].item()
    u = torch.linspace(1, 0, steps, dtype=torch.float64).flip(0)  # 0 at index 0 (least noise), 1 at T-1
    if spacing == "logsnr":
        targets = lambda_max + u * (lambda_min - lambda_max)
    else:  # sigma_i = (sigma_min^(1/rho) + u (sigma_max^(1/rho) - sigma_min^(1/rho)))^rho, lambda = -log sigma
        lo, hi = math.exp(-lambda_max / KARRAS_RHO), math.exp(-lambda_min / KARRAS_RHO)
        targets = -KARRAS_RHO * torch.log(lo + u * (hi - lo))
    ts = (lambdas[None, :] - targets[:, None]).abs().argmin(dim=1).tolist()
    # neighbours can round to one index where the schedule is coarse: push them apart, staying in 0..T-1
    for i in range(1, steps):
        ts[i] = max(ts[i], ts[i - 1] + 1)
    ts[-1] = min(ts[-1], schedule.T - 1)
    for i in range(steps - 2, -1, -1):
        ts[i] = min(ts[i], ts[i + 1] - 1)
    return ts


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
        yield i, t, s, schedule.alpha_bar_at(t), schedule.alpha_bar_at(s)


def _predict(eps_model: EpsModel, x_t, i: int, t: int, alpha_bar_t: float, clip_x0: bool, callback):
    """eps_theta(x_t, t) and the implied x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t).

    With `clip_x0`, x_0 is clamped to [-1, 1] and eps is re-derived from the clamped x_0, so the two
    stay consistent with x_t (the step then moves towards the clamped x_0). The callback sees both.
    """
    t_batch = torch.full((x_t.shape[0],), t, device=x_t.device, dtype=torch.long)
    eps = eps_model(x_t, t_batch).to(x_t.dtype)
    a, s = alpha_bar_t**0.5, (1 - alpha_bar_t) ** 0.5
    x0_pred = x0_from_eps(x_t, eps, a, s)
    if clip_x0:
        x0_pred = x0_pred.clamp(-1, 1)
        eps = eps_from_x0(x_t, x0_pred, a, s)
    if callback is not None:
        callback(i, t, x_t, x0_pred)
    return eps, x0_pred


def _lambda(alpha_bar: float) -> float:
    """lambda_t = log(alpha_t / sigma_t) = log(sqrt(alpha_bar) / sqrt(1 - alpha_bar)); +inf where sigma = 0."""
    return math.inf if alpha_bar >= 1 else 0.5 * (math.log(alpha_bar) - math.log1p(-alpha_bar))


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
    for i, t, s, alpha_bar_t, _ in _steps(schedule, timesteps):
        _, x0_pred = _predict(eps_model, x, i, t, alpha_bar_t, clip_x0, callback)
        # the posterior mean mu_tilde(x_t, x_0) (Eq. 7); without clipping it equals Eq. 11's
        # (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        q = schedule.posterior(t, s)
        x = q.coef_x0 * x0_pred + q.coef_xt * x
        if s >= 0:  # no noise is added on the last step
            sigma2 = q.beta if variance == "beta" else q.variance
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


# ----------------------------------------------------------------------------------------------------------
# Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models",
# Algorithm 2 (DPM-Solver++(2M)): multistep, second order, in the data prediction x_theta = x0_pred.
# Its D_i = x_theta_i + w (x_theta_i - x_theta_{i-1}) / r_i with w = 1/2 ('midpoint') approximates the
# integral of the line through the last two x_theta (in lambda) against the step's weight e^{-k (1 - u)},
# u in [0, 1], k = (1 + eta) h; solver_type 'exact' takes that integral exactly: w = 1 / (1 - e^{-k}) - 1 / k,
# which tends to 1/2 as h -> 0 (diffusers' and k-diffusion's solver_type 'heun').


@torch.no_grad()
def dpmpp_2m_sample(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    timesteps: Sequence[int] | None = None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
    order: int = 2,
    eta: float = 0.0,
    solver_type: SolverType = "midpoint",
) -> torch.Tensor:
    """DPM-Solver++(2M), Lu et al. 2022 Algorithm 2; one NFE per step, deterministic with eta = 0.

    The first step is first order (no earlier x_theta yet); so is the last, to sigma = 0 (lambda = +inf, h = inf,
    r = 0): it returns x_theta, as DDIM's last step does. `order=1` makes every step first order: DDIM (eta = 0).
    eta = 1 is the SDE variant (Lu et al. 2022; diffusers' sde-dpmsolver++): the same D_i, a step e^{-eta h}
    closer to x_theta, fresh noise of variance sigma_s^2 (1 - e^{-2 eta h}); order 1 is then DDIM, eta = 1.
    `solver_type` 'midpoint' is Algorithm 2's D_i; 'exact' is explained above."""
    if order not in (1, 2) or eta < 0 or solver_type not in SOLVER_TYPES:
        raise ValueError(f"need order 1|2, eta >= 0, solver_type midpoint|exact; got {order}, {eta}, {solver_type!r}")
    x, x0_prev, h_prev = x_T, None, None
    for i, t, s, alpha_bar_t, alpha_bar_s in _steps(schedule, timesteps):
        _, x0_pred = _predict(eps_model, x, i, t, alpha_bar_t, clip_x0, callback)  # x_theta(x_{t_{i-1}}, t_{i-1})
        if s < 0:  # sigma_s = 0: x_s = alpha_s x_theta with alpha_s = 1
            return x0_pred
        alpha_s, sigma_t, sigma_s = alpha_bar_s**0.5, (1 - alpha_bar_t) ** 0.5, (1 - alpha_bar_s) ** 0.5
        h = _lambda(alpha_bar_s) - _lambda(alpha_bar_t)  # h_i = lambda_{t_i} - lambda_{t_{i-1}}
        D = x0_pred
        if order == 2 and x0_prev is not None:
            r = h_prev / h  # r_i = h_{i-1} / h_i
            w = 0.5 if solver_type == "midpoint" else -1 / math.expm1(-(1 + eta) * h) - 1 / ((1 + eta) * h)
            D = (1 + w / r) * x0_pred - w / r * x0_prev  # D_i = (1 + 1/(2r)) x_theta_i - 1/(2r) x_theta_{i-1} (w = 1/2)
        # x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} - alpha_{t_i} (e^{-h_i} - 1) D_i  (eta = 0)
        x = (sigma_s / sigma_t) * math.exp(-eta * h) * x - alpha_s * math.expm1(-(1 + eta) * h) * D
        if eta > 0:
            x = x + sigma_s * (-math.expm1(-2 * eta * h)) ** 0.5 * randn_like(x, generator)
        x0_prev, h_prev = x0_pred, h
    return x


# ----------------------------------------------------------------------------------------------------------
# Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models", Algorithm 1
# (deterministic Heun sampler) with their own choice sigma(t) = t, s(t) = 1 (Table 1), applied to a VP
# network through Table 1's VP preconditioning: x_hat = x_t / sqrt(alpha_bar_t) = x_0 + sigma eps with
# sigma = sqrt((1 - alpha_bar) / alpha_bar), D(x_hat; sigma) = x_hat - sigma eps_theta(x_hat / sqrt(sigma^2 + 1), t)
# and x_hat / sqrt(sigma^2 + 1) = x_t. The ODE is dx_hat / dsigma = (x_hat - D) / sigma = eps_theta.
# The grid is the given schedule indices, so both of Heun's evaluations fall on integer t: the second at
# the next index. As in Algorithm 1, the step to sigma = 0 (after the last index) is an Euler step.


@torch.no_grad()
def heun_sample(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    timesteps: Sequence[int] | None = None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Heun's 2nd-order method on the probability-flow ODE, Karras et al. 2022 Algorithm 1 (deterministic).

    NFE = 2 * len(timesteps) - 1: two per step, one on the last (Euler) step to sigma = 0. The callback
    sees each step's first evaluation. `generator` is unused.
    """
    ts = check_timesteps(schedule, timesteps)
    x_hat = x_T / schedule.alpha_bar_at(ts[0]) ** 0.5  # x_hat = x / s(t)
    for i, t, s, alpha_bar_t, alpha_bar_s in _steps(schedule, ts):
        sigma_t, sigma_s = ((1 - alpha_bar_t) / alpha_bar_t) ** 0.5, ((1 - alpha_bar_s) / alpha_bar_s) ** 0.5
        d, _ = _predict(eps_model, x_hat * alpha_bar_t**0.5, i, t, alpha_bar_t, clip_x0, callback)  # d_i
        x_next = x_hat + (sigma_s - sigma_t) * d  # Euler step
        if s >= 0:  # second-order correction unless sigma_s = 0
            d_prime, _ = _predict(eps_model, x_next * alpha_bar_s**0.5, i, s, alpha_bar_s, clip_x0, None)
            x_next = x_hat + (sigma_s - sigma_t) * (0.5 * d + 0.5 * d_prime)
        x_hat = x_next
    return x_hat  # s(0) = 1 after the last step: x_hat = x_0


def dpmpp_2m_sde_sample(
    eps_model: EpsModel,
    schedule: NoiseSchedule,
    x_T: torch.Tensor,
    timesteps: Sequence[int] | None = None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
    solver_type: SolverType = "midpoint",
) -> torch.Tensor:
    """SDE-DPM-Solver++(2M): `dpmpp_2m_sample` with eta = 1, fresh noise on every step but the last."""
    return dpmpp_2m_sample(
        eps_model, schedule, x_T, timesteps, generator=generator, clip_x0=clip_x0, callback=callback, eta=1.0,
        solver_type=solver_type,
    )  # fmt: skip


SAMPLERS = {
    "ddpm": ddpm_sample,
    "ddim": ddim_sample,
    "dpm++2m": dpmpp_2m_sample,
    "dpm++2m-sde": dpmpp_2m_sde_sample,
    "heun": heun_sample,
}
SOLVER_TYPED: tuple[str, ...] = ("dpm++2m", "dpm++2m-sde")  # the samplers that take `solver_type`


def sampler_nfe(sampler: str, steps: int) -> int:
    """Network evaluations (NFE) of `sampler` over `steps` timesteps; a guided evaluation counts once.

    Heun (Karras et al. 2022, Algorithm 1) makes 2 per step except its last, Euler, step: 2 * steps - 1.
    """
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    return 2 * steps - 1 if sampler == "heun" else steps


def steps_for_nfe(sampler: str, nfe: int) -> int:
    """The step count whose NFE is exactly `nfe`; a ValueError when no step count gives it (Heun: even nfe)."""
    if sampler == "heun":
        if nfe < 1 or nfe % 2 == 0:
            raise ValueError(
                f"heun makes 2 evaluations per step and 1 on its last (Euler) step, so its NFE is odd "
                f"(2 * steps - 1); got {nfe}: use {max(nfe - 1, 1)} or {nfe + 1}"
            )
        return (nfe + 1) // 2
    sampler_nfe(sampler, 1)  # validates the name
    if nfe < 1:
        raise ValueError(f"NFE must be at least 1, got {nfe}")
    return nfe
