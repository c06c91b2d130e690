"""The training objective of DDPM: predict the noise (Ho et al. 2020, Algorithm 1, Eq. 14)."""

import torch
import torch.nn.functional as F
from torch import nn

from .schedule import NoiseSchedule


def eps_mse_loss(
    model: nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    generator: torch.Generator | None = None,
    y: torch.Tensor | None = None,
    t: torch.Tensor | None = None,
    eps: torch.Tensor | None = None,
) -> torch.Tensor:
    """L_simple = E_{t,x_0,eps} || eps - eps_theta(sqrt(alpha_bar_t) x_0 + sqrt(1 - alpha_bar_t) eps, t) ||^2.

    Args:
        x0: clean data, (B, ...), scaled to [-1, 1].
        generator: draws t ~ Uniform{1..T} (code index 0..T-1) and eps ~ N(0, I); on x0's device.
        y: class labels (B,) for a conditional model, already with any label dropout applied.
        t, eps: pre-drawn timesteps (B,) and noise (B, ...); drawn from `generator` when None. The trainer
            draws them for the global batch and passes each process its slice.
    """
    B = x0.shape[0]
    if t is None:
        t = torch.randint(0, schedule.T, (B,), device=x0.device, generator=generator)  # (B,)
    if eps is None:
        eps = torch.randn(x0.shape, device=x0.device, dtype=x0.dtype, generator=generator)  # (B, ...)
    x_t = schedule.q_sample(x0, t, eps)
    eps_pred = model(x_t, t) if y is None else model(x_t, t, y)
    return F.mse_loss(eps_pred.float(), eps.float())


class EpsFromX0(nn.Module):
    """An eps-model made of a network f that predicts x_0: eps = (x_t - sqrt(alpha_bar_t) f) / sqrt(1 - alpha_bar_t).

    The loss (`eps_mse_loss`) and every sampler still see an eps prediction; only what the network's output
    means changes (Ho et al. 2020, Sec. 3.2, compare predicting mu, eps or x_0). For the red-square toy this
    decides everything: the ideal x_0-predictor of a one-image dataset is that image, a constant the MLP
    learns in a few hundred steps and that stays right for inputs it never saw, while the ideal
    eps-predictor is the map (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t), whose gain on the noise
    reaches 1 / sqrt(1 - alpha_bar_1) (about 32 with the scaled linear schedule at T = 100) and which the MLP
    learns slowly (benchmarks/results/toy_cpu.md).
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule):
        super().__init__()
        self.net = net
        self.schedule = schedule  # buffers only: no parameters are added

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        x0_pred = self.net(x_t, t) if y is None else self.net(x_t, t, y)
        return self.schedule.eps_from_x0(x_t, t, x0_pred)
