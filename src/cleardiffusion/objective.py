"""The training objective of DDPM (Ho et al. 2020, Algorithm 1, Eq. 14), with its prediction targets and weights.

What the network predicts (`prediction`), and the one place its output is turned back into eps:

| prediction | the network's output                                        | eps from it (schedule.py)        |
|------------|-------------------------------------------------------------|----------------------------------|
| "eps"      | eps (Ho et al. 2020)                                        | itself                           |
| "x0"       | x_0                                                         | (x_t - sqrt(ab) x_0) / sqrt(1-ab) |
| "v"        | v = sqrt(ab) eps - sqrt(1 - ab) x_0 (Salimans & Ho 2022)    | sqrt(1 - ab) x_t + sqrt(ab) v    |

with ab = alpha_bar_t. Every sampler calls an eps-model; `EpsFromPrediction` wraps a v- or x_0-network into
one, so every sampler works with every prediction type.

How the timesteps are weighted (`loss_weighting`), written as the weight on || x_0 - x0_pred ||^2, with
SNR(t) = alpha_bar_t / (1 - alpha_bar_t):

| loss_weighting | weight on the x_0 error   | what it is                                             |
|----------------|---------------------------|--------------------------------------------------------|
| "none"         | SNR (eps), SNR + 1 (v), 1 (x0) | the plain MSE on the prediction target            |
| "min-snr"      | min(SNR, gamma)           | Hang et al. 2023, Eq. 8 (min-SNR-gamma, gamma = 5)    |

Since eps - eps_pred = sqrt(SNR) (x0_pred - x_0) and v - v_pred = sqrt(SNR + 1) (x0_pred - x_0) at one t, the
min-SNR loss on target P is MSE_P scaled by min(SNR, gamma) / (SNR for eps, SNR + 1 for v, 1 for x0).
"""

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from .schedule import NoiseSchedule, eps_from_v, eps_from_x0, extract, v_from_eps

Prediction = Literal["eps", "v", "x0"]
PREDICTIONS: tuple[str, ...] = ("eps", "v", "x0")
Objective = Literal["ddpm", "flow", "consistency", "meanflow"]
# flow.py; consistency.py (`cleardiffusion distill`); meanflow.py
OBJECTIVES: tuple[str, ...] = ("ddpm", "flow", "consistency", "meanflow")
LossWeighting = Literal["none", "min-snr"]
LOSS_WEIGHTINGS: tuple[str, ...] = ("none", "min-snr")


def diffusion_loss(
    net: nn.Module,
    schedule: NoiseSchedule,
    x0: torch.Tensor,
    t: torch.Tensor,
    eps: torch.Tensor,
    y: torch.Tensor | None = None,
    *,
    prediction: Prediction = "eps",
    weighting: LossWeighting = "none",
    min_snr_gamma: float = 5.0,
) -> torch.Tensor:
    """The weighted MSE between the network's output and its `prediction` target at x_t (see the tables above).

    With prediction "eps" and weighting "none" this is L_simple (Ho et al. 2020, Eq. 14), the library's one
    L_simple (the toy's too). t (B,) and eps (B, C, H, W) are drawn by the caller.
    """
    x_t = schedule.q_sample(x0, t, eps)  # Eq. 4
    out = (net(x_t, t) if y is None else net(x_t, t, y)).float()
    if prediction == "eps":
        target = eps
    elif prediction == "x0":
        target = x0
    elif prediction == "v":
        target = v_from_eps(x0, eps, *schedule.coefficients(t, x0.ndim))  # Salimans & Ho 2022, Sec. 4
    else:
        raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
    if weighting == "none":
        return F.mse_loss(out, target.float())
    if weighting != "min-snr":
        raise ValueError(f"unknown loss weighting {weighting!r}; choose one of {', '.join(LOSS_WEIGHTINGS)}")
    snr = extract(schedule.alpha_bar / (1 - schedule.alpha_bar), t, x0.shape)  # (B, 1, 1, 1)
    x0_weight = snr.clamp(max=min_snr_gamma)  # Hang et al. 2023, Eq. 8: min(SNR, gamma) on the x_0 error
    target_scale = {"eps": snr, "v": snr + 1, "x0": torch.ones_like(snr)}[prediction]
    return ((x0_weight / target_scale) * (out - target.float()) ** 2).mean()


class DiffusionLoss:
    """`diffusion_loss` with its schedule, prediction and weighting bound: loss_fn(net, x0, t, eps, y), the form
    train.train_step calls (flow.flow_matching_loss has the same)."""

    def __init__(self, schedule: NoiseSchedule, prediction: Prediction = "eps", weighting: LossWeighting = "none"):
        self.schedule, self.prediction, self.weighting = schedule, prediction, weighting

    def __call__(self, net: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                 y: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
        return diffusion_loss(net, self.schedule, x0, t, eps, y, prediction=self.prediction, weighting=self.weighting)


class DenoiserWrapper(nn.Module):
    """A module around a denoiser `self.net` that forwards what guidance and fastpath.trusted_inputs read from a
    denoiser: its `config`, `null_label` and `validate_labels` switch."""

    config = property(lambda self: getattr(self.net, "config", None))
    null_label = property(lambda self: self.net.null_label)

    @property
    def validate_labels(self):
        return getattr(self.net, "validate_labels", None)

    @validate_labels.setter
    def validate_labels(self, value) -> None:
        if hasattr(self.net, "validate_labels"):
            self.net.validate_labels = value


class EpsFromPrediction(DenoiserWrapper):
    """An eps-model made of a network that predicts `prediction` (eps, x_0 or v) at (x_t, t[, y]).

    The one place a network's output becomes eps for the samplers (schedule.eps_from_x0 / eps_from_v). Guidance
    may wrap it as it wraps any eps-model (it forwards `config`, `null_label` and `validate_labels`); since the
    conversion is affine in the output, guiding the converted eps equals converting the guided output.
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule, prediction: Prediction):
        super().__init__()
        if prediction not in PREDICTIONS:
            raise ValueError(f"unknown prediction {prediction!r}; choose one of {', '.join(PREDICTIONS)}")
        self.net, self.schedule, self.prediction = net, schedule, prediction

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, y: torch.Tensor | None = None) -> torch.Tensor:
        out = self.net(x_t, t) if y is None else self.net(x_t, t, y)
        if self.prediction == "x0":
            return eps_from_x0(x_t, out, *self.schedule.coefficients(t, x_t.ndim))
        if self.prediction == "v":
            return eps_from_v(x_t, out, *self.schedule.coefficients(t, x_t.ndim))
        return out


def as_eps_model(net: nn.Module, schedule: NoiseSchedule, prediction: Prediction = "eps") -> nn.Module:
    """The network itself when it predicts eps, else `EpsFromPrediction` around it."""
    return net if prediction == "eps" else EpsFromPrediction(net, schedule, prediction)


class EpsFromX0(EpsFromPrediction):
    """An eps-model made of a network f that predicts x_0: eps = (x_t - sqrt(alpha_bar_t) f) / sqrt(1 - alpha_bar_t).

    The loss (`diffusion_loss` with prediction eps) and every sampler still see an eps prediction; only what
    the network's output means changes (Ho et al. 2020, Sec. 3.2, compare predicting mu, eps or x_0). For the
    red-square toy this decides everything: the ideal x_0-predictor of a one-image dataset is that image, a
    constant the MLP learns in a few hundred steps and that stays right for inputs it never saw, while the
    ideal eps-predictor is the map (x_t - sqrt(alpha_bar_t) x_0) / sqrt(1 - alpha_bar_t), whose gain on the
    noise reaches 1 / sqrt(1 - alpha_bar_1) (about 32 with the scaled linear schedule at T = 100) and which
    the MLP
    learns slowly (benchmarks/results/toy_cpu.md).
    """

    def __init__(self, net: nn.Module, schedule: NoiseSchedule):
        super().__init__(net, schedule, "x0")
