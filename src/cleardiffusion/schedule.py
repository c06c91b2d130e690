"""The noise schedule and the closed-form forward process of DDPM (Ho et al. 2020).

Notation (code name -> paper symbol, Ho et al. 2020):

| code                     | paper                                   |
|--------------------------|-----------------------------------------|
| `T`                      | T, the number of diffusion steps        |
| `t` (0-based index)      | t - 1: code index 0 is the paper's t = 1, index T-1 is t = T |
| `betas[t]`               | beta_t                                  |
| `alphas[t]`              | alpha_t = 1 - beta_t                    |
| `alpha_bar[t]`           | alpha_bar_t = prod_{s<=t} alpha_s       |
| `alpha_bar_prev[t]`      | alpha_bar_{t-1}, with alpha_bar_0 = 1   |
| `posterior_variance[t]`  | beta_tilde_t (Eq. 7)                    |
| `eps`                    | epsilon ~ N(0, I)                       |

Every quantity is computed in float64 and stored as a float32 buffer, so `schedule.to(device)` moves it
with a model and nothing in the schedule loses precision to products of a thousand numbers near one.
"""

import math
from typing import Literal

import torch
from torch import nn

ScheduleName = Literal["linear", "linear-scaled", "cosine"]
SCHEDULES: tuple[str, ...] = ("linear", "linear-scaled", "cosine")


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


class NoiseSchedule(nn.Module):
    """betas, alphas, alpha_bar and the posterior q(x_{t-1} | x_t, x_0) of a T-step diffusion."""

    def __init__(self, betas: torch.Tensor):
        super().__init__()
        betas = betas.to(torch.float64)
        if betas.ndim != 1 or len(betas) < 2:
            raise ValueError(f"need at least 2 diffusion steps, got betas of shape {tuple(betas.shape)}")
        if not ((betas > 0) & (betas < 1)).all():
            raise ValueError("every beta_t must lie in (0, 1)")
        alphas = 1.0 - betas
        alpha_bar = torch.cumprod(alphas, dim=0)
        alpha_bar_prev = torch.cat([torch.ones(1, dtype=torch.float64), alpha_bar[:-1]])
        # Ho et al. 2020, Eq. 7: q(x_{t-1} | x_t, x_0) = N(mu_tilde, beta_tilde I)
        posterior_variance = betas * (1 - alpha_bar_prev) / (1 - alpha_bar)
        # beta_tilde_1 = 0, so its log is clipped to beta_tilde_2 (as in Ho et al.'s code)
        posterior_log_variance_clipped = torch.log(torch.cat([posterior_variance[1:2], posterior_variance[1:]]))
        posterior_mean_coef1 = alpha_bar_prev.sqrt() * betas / (1 - alpha_bar)  # multiplies x_0
        posterior_mean_coef2 = alphas.sqrt() * (1 - alpha_bar_prev) / (1 - alpha_bar)  # multiplies x_t

        def buffer(name: str, value: torch.Tensor) -> None:
            self.register_buffer(name, value.to(torch.float32), persistent=False)

        self.T = len(betas)
        # float64 master copies that stay on the CPU: samplers compute their per-step coefficients from
        # these as Python floats, so no step reads a value back from the GPU
        self.betas64 = betas
        self.alpha_bar64 = alpha_bar
        buffer("betas", betas)
        buffer("alphas", alphas)
        buffer("alpha_bar", alpha_bar)
        buffer("alpha_bar_prev", alpha_bar_prev)
        buffer("sqrt_alpha_bar", alpha_bar.sqrt())
        buffer("sqrt_one_minus_alpha_bar", (1 - alpha_bar).sqrt())
        buffer("posterior_variance", posterior_variance)
        buffer("posterior_log_variance_clipped", posterior_log_variance_clipped)
        buffer("posterior_mean_coef1", posterior_mean_coef1)
        buffer("posterior_mean_coef2", posterior_mean_coef2)

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

    def q_sample(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """x_t = sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps (Ho et al. 2020, Eq. 4)."""
        return (
            extract(self.sqrt_alpha_bar, t, x0.shape) * x0 + extract(self.sqrt_one_minus_alpha_bar, t, x0.shape) * eps
        )

    def x0_from_eps(self, x_t: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """Invert Eq. 4: x_0 = (x_t - sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_bar_t)."""
        return (x_t - extract(self.sqrt_one_minus_alpha_bar, t, x_t.shape) * eps) / extract(
            self.sqrt_alpha_bar, t, x_t.shape
        )

    def eps_from_x0(self, x_t: torch.Tensor, t: torch.Tensor, x0: torch.Tensor) -> torch.Tensor:
        """eps = (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t)."""
        return (x_t - extract(self.sqrt_alpha_bar, t, x_t.shape) * x0) / extract(
            self.sqrt_one_minus_alpha_bar, t, x_t.shape
        )

    def v_from_eps(self, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
        """v = sqrt(alpha_bar_t) eps - sqrt(1 - alpha_bar_t) x_0 (Salimans & Ho 2022)."""
        return (
            extract(self.sqrt_alpha_bar, t, x0.shape) * eps - extract(self.sqrt_one_minus_alpha_bar, t, x0.shape) * x0
        )

    def x0_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """x_0 = sqrt(alpha_bar_t) x_t - sqrt(1 - alpha_bar_t) v."""
        return (
            extract(self.sqrt_alpha_bar, t, x_t.shape) * x_t - extract(self.sqrt_one_minus_alpha_bar, t, x_t.shape) * v
        )

    def eps_from_v(self, x_t: torch.Tensor, t: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
        """eps = sqrt(1 - alpha_bar_t) x_t + sqrt(alpha_bar_t) v."""
        return (
            extract(self.sqrt_one_minus_alpha_bar, t, x_t.shape) * x_t + extract(self.sqrt_alpha_bar, t, x_t.shape) * v
        )

    def q_posterior(
        self, x0: torch.Tensor, x_t: torch.Tensor, t: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Mean, variance and clipped log-variance of q(x_{t-1} | x_t, x_0) (Ho et al. 2020, Eqs. 6-7)."""
        mean = (
            extract(self.posterior_mean_coef1, t, x_t.shape) * x0
            + extract(self.posterior_mean_coef2, t, x_t.shape) * x_t
        )
        return (
            mean,
            extract(self.posterior_variance, t, x_t.shape),
            extract(self.posterior_log_variance_clipped, t, x_t.shape),
        )
