"""Class conditioning and classifier-free guidance (Ho & Salimans 2022) as model wrappers.

A wrapper turns `model(x_t, t, y)` into the `eps_model(x_t, t)` every sampler takes, so guidance works
with DDPM, DDIM and any later sampler without a flag.

Convention for the guidance scale s (Ho & Salimans write w = s - 1):

    eps = eps_uncond + s * (eps_cond - eps_uncond)

s = 1 is the plain conditional model, s = 0 the unconditional model, s > 1 pushes samples towards their class.

Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself", Eq. 1) guides any
model, an unconditional one included, by a worse model of the same kind (less trained or smaller) in place of
the unconditional branch, with the same convention:

    eps = eps_bad + s * (eps_good - eps_bad)
"""

import torch
from torch import nn

from .errors import UsageError
from .flow import TIME_SCALE


def check_labels(model: nn.Module, labels: torch.Tensor) -> None:
    """Raise a UsageError unless `model` is conditional and every label is a real class."""
    num_classes = getattr(getattr(model, "config", None), "num_classes", 0)
    if num_classes == 0:
        raise UsageError(
            "this model is unconditional: it was trained without class labels, so it cannot be sampled "
            "for a class or guided; drop --class-label/--guidance, or train with --conditional"
        )
    if labels.numel() and (labels.min() < 0 or labels.max() >= num_classes):
        raise UsageError(f"class labels must lie in 0..{num_classes - 1}, got {labels.tolist()[:10]}")


class Conditioned:
    """eps_theta(x_t, t, y) with the labels y bound: the plain conditional model (s = 1)."""

    def __init__(self, model: nn.Module, labels: torch.Tensor):
        check_labels(model, labels)
        self.model, self.labels = model, labels

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        return self.model(x_t, t, self.labels)


class ClassifierFreeGuidance:
    """eps = eps_uncond + s (eps_cond - eps_uncond), both from ONE batched forward pass of 2B inputs."""

    def __init__(self, model: nn.Module, labels: torch.Tensor, scale: float):
        check_labels(model, labels)
        self.model, self.labels, self.scale = model, labels, float(scale)
        self.null = torch.full_like(labels, model.null_label)

    def __call__(self, x_t: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x_in = torch.cat([x_t, x_t])  # (2B, ...): first half conditional, second half unconditional
        t_in = torch.cat([t, t])
        y_in = torch.cat([self.labels, self.null])
        eps_cond, eps_uncond = self.model(x_in, t_in, y_in).chunk(2)
        return eps_uncond + self.scale * (eps_cond - eps_uncond)


class AutoGuidance(nn.Module):
    """eps = eps_bad + s (eps_good - eps_bad): `model` guided by `bad`, a worse model on the same noise path
    (two forward passes; any extra arguments, labels say, go to both). With `from_t` > 0, guidance on a limited
    interval (Kynkaanniemi et al. 2024): s applies where the timestep t >= from_t and 1 below it, per sample; a
    call whose every t is below from_t is the good model's eps alone (one forward pass: `bad` is not run)."""

    def __init__(self, model: nn.Module, bad: nn.Module, scale: float, from_t: float = 0):
        super().__init__()
        self.model, self.bad, self.scale, self.from_t = model, bad, float(scale), from_t

    def forward(self, x_t: torch.Tensor, t: torch.Tensor, *args) -> torch.Tensor:
        if self.from_t and bool((torch.as_tensor(t) < self.from_t).all()):  # below the band: s = 1 everywhere
            return self.model(x_t, t, *args)
        eps_bad = self.bad(x_t, t, *args)
        eps = self.model(x_t, t, *args)
        scale = self.scale
        if self.from_t:  # (B, 1, ..., 1): s at t >= from_t, else 1 (the good model's own eps)
            at = torch.as_tensor(t, device=x_t.device).expand(x_t.shape[0])
            scale = torch.where(at >= self.from_t, self.scale, 1.0).to(eps.dtype).reshape(-1, *(1,) * (eps.ndim - 1))
        return eps_bad + scale * (eps - eps_bad)


def interval_start(path, fraction: float) -> float:
    """The network time from which guidance on a limited interval (AutoGuidance's `from_t`) applies when it covers
    the noise levels t >= fraction of the path's noisiest: the nearest timestep to fraction * T on DDPM's path
    (the network sees the timestep), fraction * 1000 on the flow path (it sees flow.TIME_SCALE t)."""
    T = getattr(path, "T", None)
    return fraction * TIME_SCALE if T is None else round(fraction * T)


def check_guidance(labels: torch.Tensor | None, scale: float) -> None:
    """A guidance scale other than 1 needs class labels (and so a conditional model)."""
    if labels is None and scale != 1.0:
        raise UsageError(
            "guidance needs class labels from a conditional model: pass --class-label K or all "
            "with a checkpoint trained with --conditional, or drop --guidance"
        )


def guided_model(model: nn.Module, labels: torch.Tensor | None, scale: float = 1.0):
    """The eps_model a sampler should call: unconditional, conditional (s = 1), or guided."""
    check_guidance(labels, scale)
    if labels is None:
        return model
    if scale == 1.0:  # eps_uncond + 1 * (eps_cond - eps_uncond) = eps_cond: skip the unconditional half
        return Conditioned(model, labels)
    return ClassifierFreeGuidance(model, labels, scale)
