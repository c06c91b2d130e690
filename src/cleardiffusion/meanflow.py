"""MeanFlow (Geng et al. 2025, "Mean Flows for One-step Generative Modeling"): a network of the AVERAGE velocity
on the flow path (flow.py), trained from scratch with one Jacobian-vector product per step, that samples in 1 step.

| code         | paper                                                                                   |
|--------------|-----------------------------------------------------------------------------------------|
| `t`, `r`     | t >= r in [0, 1]: the jump goes from z_t back to z_r (t = 1 noise, 0 data, as flow.py)    |
| `z`          | z_t = (1 - t) x + t eps (flow.flow_interpolate; the paper's a_t = 1 - t, b_t = t)         |
| `v`          | v_t = eps - x, the conditional velocity dz_t / dt (Eq. 2)                               |
| `u`          | u(z_t, r, t) = 1 / (t - r) int_r^t v(z_tau, tau) dtau, the average velocity (Eq. 3)       |
| `u_pred`     | u_theta(z_t, r, t): the network, called with flow.network_times = (t, t - r), (B, 2)     |
| `dudt`       | d/dt u_theta(z_t, r, t) = v d_z u_theta + d_t u_theta (Eq. 8), one `jvp`                 |
| `u_tgt`      | sg(v_t - (t - r) dudt), the MeanFlow identity (Eq. 6) as a regression target (Eq. 10)   |
| `delta_sq`   | ||u_pred - u_tgt||^2 per sample, summed over its pixels                                   |

Training (Algorithm 1): draw (t, r), eps; z = (1 - t) x + t eps, v = eps - x; ONE jvp of u_theta at (z, r, t) along
the tangents (dz/dt, dr/dt, dt/dt) = (v, 0, 1) returns u_pred and dudt together; regress u_pred on the
stop-gradded target. Where r = t the target is v itself: flow matching (flow.flow_matching_loss). Sampling
(samplers.meanflow_sample): z_r = z_t - (t - r) u(z_t, r, t); one step is x = z_1 - u(z_1, 0, 1).

Times (`TimePairs`, Sec. 4.3, Tab. 1a and 1d): t and r are two logit-normal draws, sigmoid(N(-0.4, 1)), the
larger being t; then r = t for 75% of the pairs (those are plain flow matching). These are the paper's ImageNet
defaults; public PyTorch ports of its CIFAR-10 U-Net setting use 75% r != t, p = 0.75 and logit-normal(-2, 2).
Nothing here is tuned for MNIST.

Loss (`adaptive_loss`): the paper's adaptive weighting (Sec. 4.3, Tab. 1e), L = sg(w) ||Delta||^2 with
w = 1 / (||Delta||^2 + c)^p, p = 1, c = 1e-3, not plain MSE (p = 0): the weight normalises each sample's error,
so the large errors of the high-variance conditional target (v is eps - x, not the marginal velocity) do
not dominate the batch; the paper's ablation prefers p = 1 to the plain squared error (p = 0). It is written as the
per-sample loss rho(||Delta||^2) whose derivative IS that weight, rho' = w (p = 1: rho = log(1 + ||Delta||^2 / c)):
the gradient is the paper's exactly (tests/test_meanflow.py checks it), and the number in metrics.jsonl falls as
the model improves, where sg(w) ||Delta||^2 would read 1 - c / ||Delta||^2 ~ 1.0 at every step. rho is 0 only
where u_pred = u_tgt. Not measured here against plain MSE (no free CPU for a run); the defaults are the paper's.

Precision: the jvp runs in float32 whatever --precision says (forward-mode AD does not run through
convolutions under CPU autocast in PyTorch 2.x), so train_config refuses --precision with this objective.

Network time: the network takes t of shape (B, 2), `models.unet.UNetConfig(time_inputs=2)`, which embeds t and
t - r with the same sinusoid and adds the two embeddings (the paper's (t, t - r) conditioning, Tab. 1c). They
are fed unscaled, not as the flow network's TIME_SCALE * t = 1000 t: dudt holds d u_theta / dt, which runs
through the sinusoid, whose fastest feature then turns 1000 radians per unit of t. Measured on a tiny U-Net
fitting one batch of 8x8 images (half the pairs r != t, 40 AdamW steps): at 1000 t the loss rose from 11.4 to
14.0 and |u_tgt - v| grew from 0.004 to 10.8; at t (or 10 t) the loss fell to 7.1 and |u_tgt - v| stayed 0.17.
"""

import torch
import torch.autograd.forward_ad as fwAD
from torch import nn

from .flow import flow_interpolate, network_times

R_NEQ_T = 0.25  # the fraction of pairs with r != t (Tab. 1a: 25%); the rest are flow matching
LOGIT_NORMAL = (-0.4, 1.0)  # (mean, std) of the logit of t and r (Tab. 1d)
ADAPTIVE_P, ADAPTIVE_C = 1.0, 1e-3  # w = 1 / (||Delta||^2 + c)^p (Sec. 4.3)


class TimePairs:
    """Where `train.draw_batch` draws a MeanFlow batch's times: `draw_t` returns (n, 2), the columns t and r."""

    def __init__(self, r_neq_t: float = R_NEQ_T, logit_normal: tuple[float, float] = LOGIT_NORMAL):
        self.r_neq_t, (self.mean, self.std) = r_neq_t, logit_normal

    def draw_t(self, n: int, generator: torch.Generator) -> torch.Tensor:
        """(n, 2) pairs (t, r), 0 < r <= t < 1, all drawn from `generator`."""
        dev = generator.device
        a, b = torch.sigmoid(self.mean + self.std * torch.randn(2, n, generator=generator, device=dev))  # (n,) each
        t, r = torch.maximum(a, b), torch.minimum(a, b)
        same = torch.rand(n, generator=generator, device=dev) >= self.r_neq_t  # (n,) r = t: flow matching
        return torch.stack([t, torch.where(same, t, r)], dim=1)  # (n, 2)


def jvp(fn, primals: tuple[torch.Tensor, ...], tangents: tuple[torch.Tensor, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """(fn(*primals), its derivative along `tangents`) from ONE forward pass of dual tensors: what
    `torch.func.jvp(fn, primals, tangents)` returns, through `torch.autograd.forward_ad`, which also runs
    through a DistributedDataParallel network (in PyTorch 2.13 torch.func.jvp stopped a two-process torchrun
    run: "Cannot access data pointer of Tensor that doesn't have storage"). The first output stays in the
    ordinary autograd graph: the loss's backward reaches the weights through it."""
    with fwAD.dual_level():
        out = fn(*(fwAD.make_dual(p, d) for p, d in zip(primals, tangents, strict=True)))
        return tuple(fwAD.unpack_dual(out))


def meanflow_target(net: nn.Module, x0: torch.Tensor, t: torch.Tensor, r: torch.Tensor, eps: torch.Tensor,
                    y: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:  # fmt: skip
    """(u_pred, u_tgt): the network's average velocity at (z_t, r, t) and its MeanFlow target (Algorithm 1).

    Args:
        x0: clean data (B, ...); eps: noise N(0, I) shaped like x0; t, r: (B,) times with r <= t.
        y: class labels (B,) for a conditional model, with any label dropout already applied.
    """

    def u_theta(z: torch.Tensor, r: torch.Tensor, t: torch.Tensor) -> torch.Tensor:  # u_theta(z_t, r, t)
        t_in = network_times(t, r)  # (B, 2): (t, t - r)
        return net(z, t_in) if y is None else net(z, t_in, y)

    with torch.autocast(x0.device.type, enabled=False):  # forward-mode AD in the data's dtype (see the docstring)
        z, v = flow_interpolate(x0, t, eps), eps - x0  # z_t and dz_t / dt (Eqs. 1-2)
        # Eq. 8 in one call: u_theta and its total derivative along (dz/dt, dr/dt, dt/dt) = (v, 0, 1)
        u_pred, dudt = jvp(u_theta, (z, r, t), (v, torch.zeros_like(r), torch.ones_like(t)))
    gap = (t - r).reshape(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)  # (B, 1, ...): t - r
    u_tgt = v - gap * dudt  # Eq. 10: the MeanFlow identity (Eq. 6) with the network's own d/dt u
    return u_pred, u_tgt.detach()  # sg(u_tgt)


def adaptive_loss(delta_sq: torch.Tensor, p: float = ADAPTIVE_P, c: float = ADAPTIVE_C) -> torch.Tensor:
    """The batch mean of rho(||Delta||^2), rho' = 1 / (||Delta||^2 + c)^p: the paper's sg(w) ||Delta||^2 in
    gradient (module docstring); p = 0 is the plain squared error. `delta_sq`: (B,) per-sample squared errors."""
    if p == 1:
        rho = torch.log1p(delta_sq / c)  # log(||Delta||^2 + c) - log(c)
    else:
        rho = ((delta_sq + c) ** (1 - p) - c ** (1 - p)) / (1 - p)
    return rho.mean()


def meanflow_loss(net: nn.Module, x0: torch.Tensor, t: torch.Tensor, eps: torch.Tensor,
                  y: torch.Tensor | None = None) -> torch.Tensor:  # fmt: skip
    """The MeanFlow loss (Eq. 9, adaptively weighted) for t of shape (B, 2) holding (t, r) from `TimePairs`:
    loss_fn(net, x0, t, eps, y), the form train.train_step calls."""
    u_pred, u_tgt = meanflow_target(net, x0, t[:, 0], t[:, 1], eps, y)
    delta_sq = (u_pred - u_tgt).flatten(1).pow(2).sum(1)  # (B,) ||Delta||^2
    return adaptive_loss(delta_sq)
