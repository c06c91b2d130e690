"""Flow matching on the straight path from data to noise: rectified flow (Liu et al. 2023) and conditional flow
matching with the optimal-transport path (Lipman et al. 2023), on the same U-Nets as DDPM.

| code        | paper                                                                              |
|-------------|------------------------------------------------------------------------------------|
| `t`         | t in [0, 1]: t = 0 is the data, t = 1 the noise (Liu et al.'s X_0 / X_1 swapped)      |
| `x_t`       | x_t = (1 - t) x_0 + t eps (Lipman et al. Eq. 20 with sigma_min = 0; Liu et al. Eq. 1) |
| `v`         | the velocity dx_t / dt = eps - x_0, what the network predicts                         |
| `v_model`   | v_theta(x_t, TIME_SCALE * t): the network, called with the scaled time               |

Loss (Lipman et al. Eq. 23; Liu et al. Eq. 1): E_{t, x_0, eps} || v_theta(x_t, t) - (eps - x_0) ||^2.
Sampling solves the ODE dx / dt = v_theta(x, t) from x_1 ~ N(0, I) at t = 1 down to t = 0: `FlowPath` gives
the samplers of samplers.py this path (alpha_t = 1 - t, sigma_t = t), so Euler, Heun, DDIM, DPM-Solver++ and
ancestral sampling all run on a flow model; Euler on this path is DDIM's update (x_s = (1 - s) x_0 + s eps).

The network sees `TIME_SCALE * t`, a float in [0, 1000], so its sinusoidal time embedding covers the same
range as DDPM's integer indices. A wrapper such as `guidance.guided_model` works unchanged: it only binds
class labels to `model(x_t, t, y)`.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .recipe import FLOW_SPACINGS
from .schedule import Posterior

TIME_SCALE = 1000.0  # the network's time input is TIME_SCALE * t


def flow_interpolate(x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x_0 + t eps for t of shape (B,)."""
    t = t.reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)  # (B, 1, ...)
    return (1 - t) * x0 + t * eps


def network_times(t: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    """What a network of two times (MeanFlow, meanflow.py) sees for t, r of shape (B,): (B, 2) holding (t, t - r)
    themselves, the paper's conditioning (Geng et al. 2025, Sec. 4.3). Not scaled by TIME_SCALE: MeanFlow's
    target differentiates the network in t, through the sinusoid, and at 1000 t that derivative swamped the
    target (meanflow.py, "Network time")."""
    return torch.stack([t, t - r], dim=1)


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


class FlowPath:
    """The straight path x_t = (1 - t) x_0 + t eps, t in [0, 1], with the methods every sampler reads of a path
    (`schedule.NoiseSchedule` has the same ones for DDPM's variance-preserving path): alpha_t = 1 - t,
    sigma_t = t, the clean end t = 0. Its model returns the velocity v = eps - x_0 (`native`), its ODE is
    integrated in (x_t, t) itself (`ode_scale_tau`), and the network sees TIME_SCALE * t."""

    objective = "flow"
    native = "velocity"
    clean = 0.0
    max_steps = 10_000  # a bound, so that no request runs for ever; far finer than any grid that helps
    max_steps_meaning = "the flow path's bound"
    spacings = FLOW_SPACINGS

    def to(self, device) -> "FlowPath":
        """Nothing to move (NoiseSchedule.to moves its buffers)."""
        return self

    def coefficients(self, t: float) -> tuple[float, float]:
        """(alpha_t, sigma_t) = (1 - t, t)."""
        return 1 - t, t

    def alpha_sigma2(self, t: float) -> tuple[float, float]:
        return (1 - t) ** 2, t**2

    def lambda_at(self, t: float) -> float:
        """lambda_t = log(alpha_t / sigma_t) = log((1 - t) / t): +inf at t = 0, -inf at t = 1."""
        if t <= 0:
            return math.inf
        return -math.inf if t >= 1 else math.log1p(-t) - math.log(t)

    def posterior(self, t: float, s: float) -> Posterior:
        """q(x_s | x_t, x_0) for s < t on any Gaussian path (Kingma et al. 2021, Eqs. 32-34): with
        alpha_{t|s} = alpha_t / alpha_s and sigma_{t|s}^2 = sigma_t^2 - alpha_{t|s}^2 sigma_s^2, the mean is
        alpha_{t|s} sigma_s^2 / sigma_t^2 x_t + alpha_s sigma_{t|s}^2 / sigma_t^2 x_0."""
        (alpha_t, sigma_t), (alpha_s, sigma_s) = self.coefficients(t), self.coefficients(s)
        alpha_ts = alpha_t / alpha_s
        beta = sigma_t**2 - alpha_ts**2 * sigma_s**2  # sigma_{t|s}^2
        return Posterior(alpha_s * beta / sigma_t**2, alpha_ts * sigma_s**2 / sigma_t**2,
                         beta * sigma_s**2 / sigma_t**2, beta)  # fmt: skip

    def ode_scale_tau(self, t: float) -> tuple[float, float]:
        """The ODE dx_t / dt = v is integrated in x_t and t themselves: scale 1, tau = t."""
        return 1.0, t

    def evaluable(self, t: float) -> bool:
        """The velocity is defined at every t in [0, 1], the clean end included."""
        return True

    def network_time(self, t: float, x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0],), TIME_SCALE * t, device=x.device, dtype=x.dtype)

    def network_times(self, t: float, s: float, x: torch.Tensor) -> torch.Tensor:
        """A two-time network's input for a jump from t to s (`network_times`): (B, 2)."""
        t_, s_ = (torch.full((x.shape[0],), v, device=x.device, dtype=x.dtype) for v in (t, s))
        return network_times(t_, s_)

    def draw_t(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """Training times t ~ U[0, 1): (n,)."""
        return torch.rand(n, generator=generator, device=generator.device)

    def timesteps(self, steps: int, spacing: str = "uniform") -> list[float]:
        """`steps` descending times from 1, the clean end 0 implied: uniform, or quadratic (t = (i / steps)^2,
        denser near the data)."""
        if not 1 <= steps <= self.max_steps:
            raise ValueError(f"steps must be between 1 and {self.max_steps} on the flow path, got {steps}")
        if spacing == "uniform":
            return [i / steps for i in range(steps, 0, -1)]
        if spacing == "quadratic":
            return [(i / steps) ** 2 for i in range(steps, 0, -1)]
        raise ValueError(f"spacing {spacing!r} is not for the flow path; choose one of {', '.join(self.spacings)}")

    def check_timesteps(self, timesteps) -> list[float]:
        """A time grid: strictly decreasing floats in (0, 1], at most MAX_STEPS (the clean end 0 is implied)."""
        if timesteps is None:
            raise ValueError("the flow path has no default grid: pass timesteps (FlowPath.timesteps)")
        ts = [float(t) for t in timesteps]
        if (
            not 1 <= len(ts) <= self.max_steps
            or any(not 0 < t <= 1 for t in ts)
            or any(a <= b for a, b in zip(ts, ts[1:], strict=False))
        ):
            raise ValueError(f"flow timesteps must be 1..{self.max_steps} strictly decreasing times in (0, 1], "
                             f"got {ts[:10]}")  # fmt: skip
        return ts
