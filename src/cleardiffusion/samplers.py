"""Reverse-process samplers: DDPM (Ho et al. 2020), DDIM (Song et al. 2021), DPM-Solver++(2M) and its SDE
variant (Lu et al. 2022), Euler's and Heun's methods on the probability-flow ODE (Karras et al. 2022), and the
few-step models' own: multistep consistency sampling (Song et al. 2023) and MeanFlow jumps (Geng et al. 2025).

Every sampler shares one signature, k-diffusion style, and runs on any noise path:

    sampler(model, path, x_T, timesteps=None, *, generator=None, clip_x0=False, callback=None, ...)

- `path` is DDPM's `schedule.NoiseSchedule` (t an index 0..T-1) or flow matching's `flow.FlowPath` (t in
  [0, 1]); a sampler reads it only through alpha_t, sigma_t and their functions (`coefficients`,
  `alpha_sigma2`, `posterior`, `lambda_at`, `ode_scale_tau`), so each is written once for every path.
- `model(x_t, t) -> ` the path's native quantity (eps on the DDPM path, the velocity on the flow path), any
  callable; `denoiser.predict` turns it into (x0, eps, d) (a MeanFlow model: the average velocity, read by its
  own sampler). Class labels and guidance are bound by a wrapper (`guidance.py`): every sampler gets them.
- `timesteps` is data: a descending sequence of grid points (None = all T steps of a DDPM schedule). Build
  one with `make_timesteps`, or pass your own; a sampler visits exactly those points, then the clean end
  (`path.clean`: index -1 with alpha_bar = 1, or t = 0).
- `generator` is a `torch.Generator` on x_T's device, or a list of CPU generators, one per sample, which
  makes every sample reproducible from its own seed whatever the batch size.
- `callback(i, t, x_t, x0_pred)` is called before each step with the current state and predicted x_0.

All step coefficients are computed in float64 on the CPU, as Python floats.

| code            | paper                                                                              |
|-----------------|------------------------------------------------------------------------------------|
| `alpha_t`, `sigma_t` | x_t = alpha_t x_0 + sigma_t eps; DDPM: sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)     |
| `lambda_t`      | lambda_t = log(alpha_t / sigma_t), half the log-SNR (Lu et al. 2022)                 |
| `h`, `r`        | h_i = lambda_{t_i} - lambda_{t_{i-1}}, r_i = h_{i-1} / h_i (Algorithm 2)             |
| `tau`, `x_hat`  | the ODE's coordinates: Karras's sigma = sigma_t / alpha_t and x_hat = x_t / alpha_t on the |
|                 | DDPM path; t and x_t themselves on the flow path (`path.ode_scale_tau`)             |

NFE (network evaluations) of a run over `steps` timesteps: `sampler_nfe(name, steps, path)`; one per step,
except Heun: 2 per step, and 1 on its last (Euler) step where the network cannot be evaluated at the clean
end (DDPM: 2 * steps - 1; flow: 2 * steps).
"""

import math
from collections.abc import Callable
from typing import Literal

import torch

from .denoiser import Model, Path, Prediction, predict
from .recipe import SOLVER_TYPED, SOLVER_TYPES
from .schedule import KARRAS_RHO, SPACINGS, Spacing, discrete_timesteps

Callback = Callable[[int, float, torch.Tensor, torch.Tensor], None]
Generator = torch.Generator | list[torch.Generator] | None
SolverType = Literal["midpoint", "exact"]
__all__ = ["KARRAS_RHO", "SAMPLERS", "SOLVER_TYPED", "SPACINGS", "make_timesteps", "sampler_nfe", "steps_for_nfe"]


def make_timesteps(path: "Path | int", steps: int, spacing: Spacing = "uniform") -> list[int] | list[float]:
    """A descending grid of `steps` points on `path` (`NoiseSchedule.timesteps`, `FlowPath.timesteps`); an int T
    stands for a T-step DDPM schedule where the spacing needs no schedule (uniform, trailing, quadratic)."""
    return discrete_timesteps(path, steps, spacing) if isinstance(path, int) else path.timesteps(steps, spacing)


def check_timesteps(path: Path, timesteps) -> list:
    """Validate an explicit grid for `path` (None: a DDPM schedule's T steps)."""
    return path.check_timesteps(timesteps)


def randn_like(x: torch.Tensor, generator: Generator) -> torch.Tensor:
    """Standard normal noise shaped like x; with a list of generators, sample i draws from generator i."""
    if isinstance(generator, list):
        if len(generator) != x.shape[0]:
            raise ValueError(f"got {len(generator)} generators for a batch of {x.shape[0]}")
        noise = torch.stack([torch.randn(x.shape[1:], generator=g) for g in generator])
        return noise.to(device=x.device, dtype=x.dtype)
    return torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)


def _steps(path: Path, timesteps):
    """(i, t, s) for each step t -> s; after the last grid point s is the clean end, `path.clean`."""
    ts = check_timesteps(path, timesteps)
    for i, t in enumerate(ts):
        yield i, t, ts[i + 1] if i + 1 < len(ts) else path.clean


def _predict(model: Model, path: Path, x_t, i: int, t, clip_x0: bool, callback) -> Prediction:
    """`denoiser.predict`, then the callback with the state and its predicted x_0."""
    pred = predict(model, path, x_t, t, clip_x0)
    if callback is not None:
        callback(i, t, x_t, pred.x0)
    return pred


@torch.no_grad()
def ddpm_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
    variance: Literal["beta", "posterior"] = "beta",
) -> torch.Tensor:
    """Ancestral sampling, Ho et al. 2020 Algorithm 2, from x_T down to x_0.

    `variance` picks sigma_t^2: 'beta' (beta_t, seed 003's choice) or 'posterior' (beta_tilde_t, Eq. 7).
    Over a subsequence of steps, beta is taken between consecutive visited steps: beta = 1 - alpha_bar_t /
    alpha_bar_s (on any path: sigma_{t|s}^2 = sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2).
    """
    if variance not in ("beta", "posterior"):
        raise ValueError(f"unknown variance {variance!r}; choose 'beta' or 'posterior'")
    x = x_T
    for i, t, s in _steps(path, timesteps):
        x0_pred = _predict(model, path, x, i, t, clip_x0, callback).x0
        # the posterior mean mu_tilde(x_t, x_0) (Eq. 7); without clipping it equals Eq. 11's
        # (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t)
        q = path.posterior(t, s)
        x = q.coef_x0 * x0_pred + q.coef_xt * x
        if s != path.clean:  # no noise is added on the last step
            sigma2 = q.beta if variance == "beta" else q.variance
            x = x + sigma2**0.5 * randn_like(x, generator)
    return x


@torch.no_grad()
def ddim_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
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
    for i, t, s in _steps(path, timesteps):
        pred = _predict(model, path, x, i, t, clip_x0, callback)
        (_, sigma2_t), (_, sigma2_s) = path.alpha_sigma2(t), path.alpha_sigma2(s)
        # Eq. 16: sigma(eta) = eta sqrt((1 - alpha_bar_s) / (1 - alpha_bar_t)) sqrt(1 - alpha_bar_t / alpha_bar_s)
        sigma = eta * (sigma2_s / sigma2_t * path.posterior(t, s).beta) ** 0.5
        # Eq. 12: "predicted x_0" + "direction pointing to x_t" + random noise
        x = path.coefficients(s)[0] * pred.x0 + max(sigma2_s - sigma**2, 0.0) ** 0.5 * pred.eps
        if sigma > 0:
            x = x + sigma * randn_like(x, generator)
    return x


# ----------------------------------------------------------------------------------------------------------
# Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion Probabilistic Models",
# Algorithm 2 (DPM-Solver++(2M)): multistep, second order, in the data prediction x_theta = x0_pred.
# Its D_i = x_theta_i + w (x_theta_i - x_theta_{i-1}) / r_i with w = 1/2 ('midpoint') approximates the
# integral of the line through the last two x_theta (in lambda) against the step's weight e^{-k (1 - u)},
# u in [0, 1], k = (1 + eta) h; solver_type 'exact' takes that integral exactly: w = 1 / (1 - e^{-k}) - 1 / k,
# which tends to 1/2 as h -> 0 (diffusers' and k-diffusion's solver_type 'heun'). It needs only alpha_t and
# sigma_t, so it runs on any path; from the flow path's t = 1 (alpha = 0, lambda = -inf) the first step is
# x_s = alpha_s x_theta + sigma_s x_1, DDIM's.


@torch.no_grad()
def dpmpp_2m_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
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
    for i, t, s in _steps(path, timesteps):
        x0_pred = _predict(model, path, x, i, t, clip_x0, callback).x0  # x_theta(x_{t_{i-1}}, t_{i-1})
        (_, sigma_t), (alpha_s, sigma_s) = path.coefficients(t), path.coefficients(s)
        if sigma_s == 0:  # the clean end: x_s = alpha_s x_theta with alpha_s = 1
            return x0_pred
        h = path.lambda_at(s) - path.lambda_at(t)  # h_i = lambda_{t_i} - lambda_{t_{i-1}}
        D = x0_pred
        if order == 2 and x0_prev is not None:
            r = h_prev / h  # r_i = h_{i-1} / h_i
            w = 0.5 if solver_type == "midpoint" else -1 / math.expm1(-(1 + eta) * h) - 1 / ((1 + eta) * h)
            D = (1 + w / r) * x0_pred - w / r * x0_prev  # D_i = (1 + 1/(2r)) x_theta_i - 1/(2r) x_theta_{i-1} (w = 1/2)
        # x_{t_i} = (sigma_{t_i} / sigma_{t_{i-1}}) x_{t_{i-1}} - alpha_{t_i} (e^{-h_i} - 1) D_i  (eta = 0)
        decay = math.exp(-eta * h) if eta else 1.0  # (eta = 0: no e^{-0 * inf} from the flow path's t = 1)
        x = (sigma_s / sigma_t) * decay * x - alpha_s * math.expm1(-(1 + eta) * h) * D
        if eta > 0:
            x = x + sigma_s * (-math.expm1(-2 * eta * h)) ** 0.5 * randn_like(x, generator)
        x0_prev, h_prev = x0_pred, h
    return x


def dpmpp_2m_sde_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
    solver_type: SolverType = "midpoint",
) -> torch.Tensor:
    """SDE-DPM-Solver++(2M): `dpmpp_2m_sample` with eta = 1, fresh noise on every step but the last."""
    return dpmpp_2m_sample(
        model, path, x_T, timesteps, generator=generator, clip_x0=clip_x0, callback=callback, eta=1.0,
        solver_type=solver_type,
    )  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models", Algorithm 1
# (deterministic Heun sampler), in the path's ODE coordinates x_hat = x_t / scale(t), tau(t): on the DDPM path
# Table 1's VP preconditioning, x_hat = x_t / sqrt(alpha_bar_t) = x_0 + tau eps with tau = sigma(t) =
# sqrt((1 - alpha_bar) / alpha_bar), so dx_hat / dtau = eps_theta; on the flow path x_t and t themselves,
# dx_t / dt = v_theta. Both are `Prediction.d`. The grid is the given points, so the second evaluation falls on
# the next point; where the network cannot be evaluated at the clean end (DDPM's index -1), the last step is an
# Euler step, as in Algorithm 1.


@torch.no_grad()
def euler_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Euler's method on the probability-flow ODE in the path's coordinates; NFE = steps (DDIM's update, eta = 0,
    in exact arithmetic). `generator` is unused."""
    ts = check_timesteps(path, timesteps)
    x_hat = x_T / path.ode_scale_tau(ts[0])[0]  # x_hat = x / s(t)
    for i, t, s in _steps(path, ts):
        (scale_t, tau_t), (_, tau_s) = path.ode_scale_tau(t), path.ode_scale_tau(s)
        d = _predict(model, path, x_hat * scale_t, i, t, clip_x0, callback).d
        x_hat = x_hat + (tau_s - tau_t) * d
    return x_hat * path.ode_scale_tau(path.clean)[0]


@torch.no_grad()
def heun_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Heun's 2nd-order method on the probability-flow ODE, Karras et al. 2022 Algorithm 1 (deterministic).

    NFE = 2 per step, 1 on a last (Euler) step to a clean end the network cannot take (`sampler_nfe`). The
    callback sees each step's first evaluation. `generator` is unused.
    """
    ts = check_timesteps(path, timesteps)
    x_hat = x_T / path.ode_scale_tau(ts[0])[0]  # x_hat = x / s(t)
    for i, t, s in _steps(path, ts):
        (scale_t, tau_t), (scale_s, tau_s) = path.ode_scale_tau(t), path.ode_scale_tau(s)
        d = _predict(model, path, x_hat * scale_t, i, t, clip_x0, callback).d  # d_i
        x_next = x_hat + (tau_s - tau_t) * d  # Euler step
        if path.evaluable(s):  # second-order correction
            d_prime = _predict(model, path, x_next * scale_s, i, s, clip_x0, None).d
            x_next = x_hat + (tau_s - tau_t) * (0.5 * d + 0.5 * d_prime)
        x_hat = x_next
    return x_hat * path.ode_scale_tau(path.clean)[0]  # s = 1 at the clean end: x_hat = x_0


# ----------------------------------------------------------------------------------------------------------
# Song et al. 2023, "Consistency Models", Algorithm 1 (multistep consistency sampling). A consistency model's
# x0 prediction f(x_t, t) maps any point of a probability-flow ODE trajectory to its clean end, so one
# evaluation at t = T is a sample; each further grid point re-noises that sample to the point's noise level
# with FRESH noise and maps it back, trading a network evaluation for a correction of the last estimate.


@torch.no_grad()
def consistency_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """Multistep consistency sampling, Song et al. 2023 Algorithm 1; NFE = steps (1 is a one-step sample).

    x <- f(x_T, T); then for each next grid point s: x_s = alpha_s x + sigma_s z with z ~ N(0, I) (the paper's
    x_hat_tau = x + sqrt(tau^2 - eps^2) z in its VE coordinates), x <- f(x_s, s).
    """
    x = x_T
    for i, t, s in _steps(path, timesteps):
        x0_pred = _predict(model, path, x, i, t, clip_x0, callback).x0  # f_theta(x_t, t)
        if s == path.clean:
            return x0_pred
        alpha_s, sigma_s = path.coefficients(s)
        x = alpha_s * x0_pred + sigma_s * randn_like(x0_pred, generator)
    return x


# ----------------------------------------------------------------------------------------------------------
# Geng et al. 2025, "Mean Flows for One-step Generative Modeling", Sec. 4.1 and Algorithm 2. A MeanFlow network
# (two times in: `path.network_times`) predicts the AVERAGE velocity u(z_t, r, t) of the flow ODE over [r, t]
# (meanflow.py): with the exact u the jump z_r = z_t - (t - r) u(z_t, r, t) is exact, and one jump from 1 to 0 is
# a sample. Guidance (guidance.guided_model) mixes the conditional and unconditional u linearly: CFG on the
# velocity at r = t, not the guided ODE's average velocity for r < t (the paper trains that into u, Sec. 4.2).


@torch.no_grad()
def meanflow_sample(
    model: Model,
    path: Path,
    x_T: torch.Tensor,
    timesteps=None,
    *,
    generator: Generator = None,
    clip_x0: bool = False,
    callback: Callback | None = None,
) -> torch.Tensor:
    """MeanFlow sampling, Geng et al. 2025 Algorithm 2 (1 step: x_0 = z_1 - u(z_1, 0, 1)); NFE = steps.

    Each step jumps from grid point t to the next, s (0 after the last): z_s = z_t - (t - s) u(z_t, s, t). The
    callback gets x0_pred = z_t - t u(z_t, s, t), where the jump would land if u held over [0, t]: exact on the
    last step (s = 0), an extrapolation before it, at no extra evaluation. `clip_x0` clamps that estimate to
    [-1, 1] and re-derives u from it (as `denoiser.predict` does for a velocity). `generator` is unused."""
    x = x_T
    for i, t, s in _steps(path, timesteps):
        u = model(x, path.network_times(t, s, x)).to(x.dtype)  # u_theta(z_t, r = s, t)
        x0_pred = x - t * u
        if clip_x0:
            x0_pred = x0_pred.clamp(-1, 1)
            u = (x - x0_pred) / t
        if callback is not None:
            callback(i, t, x, x0_pred)
        x = x - (t - s) * u  # z_s = z_t - (t - s) u(z_t, s, t)
    return x


SAMPLERS = {
    "ddpm": ddpm_sample,
    "ddim": ddim_sample,
    "dpm++2m": dpmpp_2m_sample,
    "dpm++2m-sde": dpmpp_2m_sde_sample,
    "heun": heun_sample,
    "euler": euler_sample,
    "consistency": consistency_sample,
    "meanflow": meanflow_sample,
}


def _heun_last_is_euler(path: Path | None) -> bool:
    return path is None or not path.evaluable(path.clean)


def sampler_nfe(sampler: str, steps: int, path: Path | None = None) -> int:
    """Network evaluations (NFE) of `sampler` over `steps` grid points on `path` (None: a DDPM schedule); a guided
    evaluation counts once. Heun makes 2 per step, except an Euler last step to a clean end the network cannot
    take (DDPM: 2 * steps - 1; flow: 2 * steps)."""
    if sampler not in SAMPLERS:
        raise ValueError(f"unknown sampler {sampler!r}; choose one of {', '.join(SAMPLERS)}")
    if sampler != "heun":
        return steps
    return 2 * steps - 1 if _heun_last_is_euler(path) else 2 * steps


def steps_for_nfe(sampler: str, nfe: int, path: Path | None = None) -> int:
    """The step count whose NFE is exactly `nfe`; a ValueError when no step count gives it (Heun's parity)."""
    sampler_nfe(sampler, 1)  # validates the name
    if nfe < 1:
        raise ValueError(f"NFE must be at least 1, got {nfe}")
    if sampler != "heun":
        return nfe
    if _heun_last_is_euler(path):
        if nfe % 2 == 0:
            raise ValueError(
                f"heun makes 2 evaluations per step and 1 on its last (Euler) step, so its NFE is odd "
                f"(2 * steps - 1); got {nfe}: use {max(nfe - 1, 1)} or {nfe + 1}"
            )
        return (nfe + 1) // 2
    if nfe % 2:
        raise ValueError(f"heun on this path makes 2 evaluations per step, so its NFE is even; got {nfe}: "
                         f"use {nfe + 1}")  # fmt: skip
    return nfe // 2
