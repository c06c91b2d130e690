"""The noise schedule and the closed-form forward process of DDPM (Ho et al. 2020).

Notation (code name -> paper symbol, Ho et al. 2020):

| code                     | paper                                   |
|--------------------------|-----------------------------------------|
| `T`                      | T, the number of diffusion steps        |
| `t` (0-based index)      | t - 1: code index 0 is the paper's t = 1, index T-1 is t = T |
| `betas[t]` (the input)   | beta_t                                  |
| `alpha_bar64[t]`         | alpha_bar_t = prod_{s<=t} (1 - beta_s)  |
| `a`, `s` (coefficients)  | sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t) |
| `posterior(t, s)`        | mu_tilde's coefficients and beta_tilde (Eqs. 6-7), between any two steps |
| `eps`                    | epsilon ~ N(0, I)                       |

alpha_bar is computed in float64 and kept so (`alpha_bar64`, on the CPU): the samplers take their per-step
coefficients from it as Python floats. Training reads float32 buffers of the same numbers on its device
(`coefficients(t)` for a batch of indices), so `schedule.to(device)` moves them with a model.

The conversions between eps, x_0 and v at one t live here once, written with a = sqrt(alpha_bar_t) and
s = sqrt(1 - alpha_bar_t), Python floats in a sampler step or (B, 1, 1, 1) tensors in a training batch.
"""

import math
from collections.abc import Sequence
from typing import Literal, NamedTuple

import torch
from torch import Tensor, nn

from .recipe import SPACINGS

ScheduleName = Literal["linear", "linear-scaled", "cosine"]
SCHEDULES: tuple[str, ...] = ("linear", "linear-scaled", "cosine")
Coef = float | Tensor  # a per-step Python float (samplers) or a (B, 1, ...) tensor (training)
Spacing = Literal["uniform", "trailing", "quadratic", "logsnr", "karras"]  # recipe.SPACINGS
KARRAS_RHO = 7.0  # Karras et al. 2022, Eq. 5 and Table 1


def linear_betas(T: int, beta_1: float = 1e-4, beta_T: float = 0.02) -> torch.Tensor:
    """beta_t = beta_1 + (t - 1) (beta_T - beta_1) / (T - 1) for t = 1..T, both endpoints included."""
    return torch.linspace(beta_1, beta_T, T, dtype=torch.float64)


def scaled_linear_betas(T: int) -> torch.Tensor:
    """Linear betas with both endpoints scaled by 1000 / T, so alpha_bar_T stays near zero for any T.

    This is what seed 000's code does; at T = 1000 it equals `linear_betas(1000)`.
    """
    scale = 1000.0 / T
    if 0.02 * scale >= 1:
        raise ValueError(
            f"the linear-scaled schedule needs T >= 21 (beta_T = 20 / T must stay below 1), got {T}; "
            "use more timesteps or the cosine schedule"
        )
    return linear_betas(T, 1e-4 * scale, 0.02 * scale)


def cosine_betas(T: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """Nichol & Dhariwal 2021, Eq. 17: alpha_bar(t) = f(t) / f(0), f(t) = cos^2((t/T + s) / (1 + s) * pi/2)."""
    steps = torch.arange(T + 1, dtype=torch.float64)
    f = torch.cos((steps / T + s) / (1 + s) * math.pi / 2) ** 2
    alpha_bar = f / f[0]
    betas = 1 - alpha_bar[1:] / alpha_bar[:-1]
    return betas.clamp(max=max_beta)  # clipped as in the paper, to avoid a singularity at t = T


def extract(a: torch.Tensor, t: torch.Tensor, shape: torch.Size) -> torch.Tensor:
    """Gather a[t] for each batch element and reshape to (B, 1, 1, ...) to broadcast against `shape`."""
    return a.gather(0, t).reshape(t.shape[0], *((1,) * (len(shape) - 1)))


def x0_from_eps(x_t: Tensor, eps: Tensor, a: Coef, s: Coef) -> Tensor:
    """Eq. 4 inverted: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
    return (x_t - s * eps) / a


def eps_from_x0(x_t: Tensor, x0: Tensor, a: Coef, s: Coef) -> Tensor:
    """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
    return (x_t - a * x0) / s


def v_from_eps(x0: Tensor, eps: Tensor, a: Coef, s: Coef) -> Tensor:
    """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022, Sec. 4)."""
    return a * eps - s * x0


def eps_from_v(x_t: Tensor, v: Tensor, a: Coef, s: Coef) -> Tensor:
    """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v."""
    return s * x_t + a * v


class Posterior(NamedTuple):
    """q(x_s | x_t, x_0) = N(coef_x0 x_0 + coef_xt x_t, variance I) for steps s < t (Ho et al. 2020, Eqs. 6-7)."""

    coef_x0: float
    coef_xt: float
    variance: float  # beta_tilde between the two steps
    beta: float  # 1 - alpha_bar_t / alpha_bar_s, which is beta_t when s = t - 1


class NoiseSchedule(nn.Module):
    """betas, alpha_bar, the forward process q(x_t | x_0) and the posterior q(x_s | x_t, x_0) of a T-step diffusion."""

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or len(betas) < 2:
            raise ValueError(f"need at least 2 diffusion steps, got betas of shape {tuple(betas.shape)}")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("every beta_t must lie in (0, 1)")
        alpha_bar = torch.cumprod(1.0 - betas, dim=0)  # alpha_bar_t = prod_{s<=t} (1 - beta_s)

        def buffer(name: str, value: torch.Tensor) -> None:
            self.register_buffer(name, value.to(torch.float32), persistent=False)

        self.T = len(betas)
        # the float64 master copy stays on the CPU: samplers compute their per-step coefficients from it as
        # Python floats, so no step reads a value back from the GPU
        self.alpha_bar64 = alpha_bar
        buffer("alpha_bar", alpha_bar)  # for the SNR of a batch (min-SNR weighting)
        buffer("sqrt_alpha_bar", alpha_bar.sqrt())
        buffer("sqrt_one_minus_alpha_bar", (1 - alpha_bar).sqrt())

    @classmethod
    def from_name(cls, name: ScheduleName, T: int) -> "NoiseSchedule":
        """Build a named schedule: 'linear' (1e-4..0.02), 'linear-scaled' (x 1000/T) or 'cosine'."""
        if T < 2:
            raise ValueError(f"T must be at least 2 diffusion steps, got {T}")
        if name == "linear":
            return cls(linear_betas(T))
        if name == "linear-scaled":
            return cls(scaled_linear_betas(T))
        if name == "cosine":
            return cls(cosine_betas(T))
        raise ValueError(f"unknown schedule {name!r}; choose one of {', '.join(SCHEDULES)}")

    def coefficients(self, t: torch.Tensor | int, ndim: int = 4) -> tuple[Coef, Coef]:
        """(sqrt(alpha_bar_t), sqrt(1 - alpha_bar_t)): float32 (B, 1, ...) tensors with `ndim` dimensions for a
        batch of indices t (B,), or float64 Python floats for one index (t = -1: the clean end, (1, 0))."""
        if isinstance(t, int):
            alpha_bar = self.alpha_bar_at(t)
            return alpha_bar**0.5, (1 - alpha_bar) ** 0.5
        shape = (len(t), *(1,) * (ndim - 1))
        return extract(self.sqrt_alpha_bar, t, shape), extract(self.sqrt_one_minus_alpha_bar, t, shape)

    def alpha_bar_at(self, t: int) -> float:
        """alpha_bar_t in float64 as a Python float; alpha_bar_{-1} = 1 (no noise, after the last step)."""
        return 1.0 if t < 0 else self.alpha_bar64[t].item()

    # ---- the noise path as the samplers read it (flow.FlowPath has the same methods; see samplers.py)
    objective = "ddpm"  # the models trained on this path (recipe.py's defaults are per objective)
    native = "eps"  # what a sampler's model returns on this path: eps_theta(x_t, t)
    clean = -1  # the index after the last step: alpha_bar_{-1} = 1, no noise
    spacings = SPACINGS  # the grids `timesteps` makes

    max_steps_meaning = "T, the checkpoint's diffusion steps"

    @property
    def max_steps(self) -> int:
        return self.T

    def alpha_sigma2(self, t: int) -> tuple[float, float]:
        """(alpha_t^2, sigma_t^2) = (alpha_bar_t, 1 - alpha_bar_t) as float64 Python floats."""
        alpha_bar = self.alpha_bar_at(t)
        return alpha_bar, 1 - alpha_bar

    def lambda_at(self, t: int) -> float:
        """lambda_t = log(alpha_t / sigma_t), half the log-SNR (Lu et al. 2022); +inf at the clean end."""
        alpha_bar = self.alpha_bar_at(t)
        return math.inf if alpha_bar >= 1 else 0.5 * (math.log(alpha_bar) - math.log1p(-alpha_bar))

    def ode_scale_tau(self, t: int) -> tuple[float, float]:
        """Karras et al. 2022's coordinates of the probability-flow ODE: x_hat = x_t / s(t) with
        s(t) = sqrt(alpha_bar_t) and tau = sigma(t) = sqrt((1 - alpha_bar_t) / alpha_bar_t) (Table 1, VP)."""
        alpha_bar = self.alpha_bar_at(t)
        return alpha_bar**0.5, ((1 - alpha_bar) / alpha_bar) ** 0.5

    def evaluable(self, t: int) -> bool:
        """Whether the network takes this index: 0..T-1, not the clean end -1."""
        return t >= 0

    def network_time(self, t: int, x: torch.Tensor) -> torch.Tensor:
        """The network's time input for a batch at index t: (B,) long."""
        return torch.full((x.shape[0],), t, device=x.device, dtype=torch.long)

    def timesteps(self, steps: int, spacing: Spacing = "uniform") -> list[int]:
        """A descending grid of `steps` indices (`discrete_timesteps`)."""
        return discrete_timesteps(self, steps, spacing)

    def check_timesteps(self, timesteps: Sequence[int] | None) -> list[int]:
        return check_discrete_timesteps(self, timesteps)

    def draw_t(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Training times t ~ Uniform{1..T}: (n,) code indices 0..T-1 (Ho et al. 2020, Algorithm 1)."""
        return torch.randint(0, self.T, (n,), generator=generator, device=generator.device)

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, Eq. 4)."""
        a, s = self.coefficients(t, x0.ndim)
        return a * x0 + s * eps

    def posterior(self, t: int, s: int) -> Posterior:
        """q(x_s | x_t, x_0) for any two steps s < t (s = -1: the clean end), in float64 (Ho et al. 2020, Eqs. 6-7
        with beta = 1 - alpha_bar_t / alpha_bar_s, so it holds over a subsequence of steps as well)."""
        alpha_bar_t, alpha_bar_s = self.alpha_bar_at(t), self.alpha_bar_at(s)
        beta = 1 - alpha_bar_t / alpha_bar_s  # = beta_t when s = t - 1
        coef_x0 = alpha_bar_s**0.5 * beta / (1 - alpha_bar_t)  # mu_tilde = coef_x0 x_0 + coef_xt x_t (Eq. 7)
        coef_xt = (1 - beta) ** 0.5 * (1 - alpha_bar_s) / (1 - alpha_bar_t)
        return Posterior(coef_x0, coef_xt, beta * (1 - alpha_bar_s) / (1 - alpha_bar_t), beta)


def discrete_timesteps(schedule: "NoiseSchedule | int", steps: int, spacing: str = "uniform") -> list[int]:
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
        # the quadratic formula can repeat small indices when steps is close to T: keep them distinct (each
        # index stays below T: at most max(0.8 T, steps - 1), since i^2 spacing lies under 0.8 T)
        for i in range(1, steps):
            ts[i] = max(ts[i], ts[i - 1] + 1)
    elif spacing in ("logsnr", "karras"):
        if isinstance(schedule, int):
            raise ValueError(f"{spacing} spacing needs the noise schedule, not only T: pass the NoiseSchedule")
        ts = _continuous_spacing(schedule, steps, spacing)
    else:
        raise ValueError(f"unknown spacing {spacing!r}; choose one of {', '.join(SPACINGS)}")
    return ts[::-1]


def _continuous_spacing(schedule: "NoiseSchedule", steps: int, spacing: str) -> list[int]:
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


def check_discrete_timesteps(schedule: "NoiseSchedule", timesteps: Sequence[int] | None) -> list[int]:
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
