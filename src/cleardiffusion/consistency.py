"""Consistency models from a trained diffusion model: consistency distillation (Song et al. 2023, Algorithm 2)
and consistency tuning (ECT, Geng et al. 2024), on the teacher's own DDPM path. `cleardiffusion distill`.

A consistency function f(x_t, t) maps every point of a probability-flow ODE trajectory to the trajectory's
clean end, so f(x_T, T) is a sample in one network evaluation. The student is the teacher's network, started
from its weights, read as the teacher's is: f_theta(x_t, t) is its x_0 prediction (`denoiser.predict`). The
boundary condition f(x, clean) = x (Song et al. Eq. 3) holds by construction: the clean end (index -1,
alpha = 1, sigma = 0) is where the target is x itself, never a network evaluation.

| code        | paper                                                                                     |
|-------------|-------------------------------------------------------------------------------------------|
| `t`, `r`    | adjacent times t_{n+1} > t_n: r = t - delta on the teacher's index grid, clean end -1 below 0 |
| `x_r` (cd)  | x_hat_{t_n}^phi: one DDIM step of the frozen teacher from x_t to r (Song et al. Eq. 6 with  |
|             | the DDIM solver, as LCM does, Luo et al. 2023 Eq. 9)                                       |
| `x_r` (ect) | alpha_r x_0 + sigma_r eps with the SAME eps as x_t: no teacher (Song et al. Algorithm 3,   |
|             | consistency training; Geng et al. start it from the diffusion model and shrink delta)      |
| `target`    | f_{sg(theta)}(x_r, r): the student itself with its gradient stopped (theta^- = theta, Song & |
|             | Dhariwal 2023 Sec. 3.2), x_r itself at the clean end                                        |
| `distance`  | pseudo-Huber sqrt(||a - b||^2 + c^2) - c with c = 0.00054 sqrt(d) (Song & Dhariwal 2023 Eq. 9) |
|             | per sample, or the mean squared error                                                       |

Loss: E_{x_0, eps, t} d(f_theta(x_t, t), f_{sg(theta)}(x_r, r)) (Song et al. Eq. 7 with lambda = 1). At a
zero of it, f is constant along each teacher step, hence along the teacher's whole ODE trajectory.

With a conditional teacher the student keeps the teacher's label dropout, so it learns the conditional and the
unconditional trajectories, and classifier-free guidance works at sampling as for any model (guidance.py).
`teacher_guidance` w > 1 makes the teacher step follow the GUIDED ODE for labelled samples (as LCM does): the
student then samples a guided trajectory in one evaluation, without the unconditional half.
"""

import math
from typing import Literal

import torch
from torch import Tensor, nn

from .errors import UsageError
from .objective import as_eps_model
from .schedule import NoiseSchedule, x0_from_eps

Method = Literal["cd", "ect", "trajectory"]
METHODS: tuple[str, ...] = ("cd", "ect", "trajectory")
Distance = Literal["pseudo-huber", "mse"]
DISTANCES: tuple[str, ...] = ("pseudo-huber", "mse")


def pseudo_huber(a: Tensor, b: Tensor) -> Tensor:
    """sqrt(||a - b||^2 + c^2) - c per sample (B,), c = 0.00054 sqrt(d) (Song & Dhariwal 2023, Eq. 9 and Sec. 3.3)."""
    d = (a - b).flatten(1)
    c = 0.00054 * math.sqrt(d.shape[1])
    return (d.pow(2).sum(1) + c**2).sqrt() - c


def distance(pred: Tensor, target: Tensor, kind: Distance) -> Tensor:
    """The batch mean of the pseudo-Huber distance per sample, or the mean squared error."""
    return (pred - target).pow(2).mean() if kind == "mse" else pseudo_huber(pred, target).mean()


def full(x: Tensor) -> Tensor:
    """x in float32 when autocast computed it in a half type; float32 and float64 stay as they are."""
    return x.float() if x.dtype in (torch.bfloat16, torch.float16) else x


def consistency_x0(eps_model: nn.Module, schedule: NoiseSchedule, x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
    """f(x_t, t) for a batch of indices t >= 0: the model's x_0 prediction, x_0 = (x_t - sigma_t eps) / alpha_t."""
    eps = full(eps_model(x_t, t) if y is None else eps_model(x_t, t, y))
    return x0_from_eps(x_t, eps, *schedule.coefficients(t, x_t.ndim))


def alpha_sigma(schedule: NoiseSchedule, t: Tensor, ndim: int) -> tuple[Tensor, Tensor]:
    """(alpha_t, sigma_t) as (B, 1, ...) for indices t >= -1; the clean end -1 gives (1, 0)."""
    a, s = schedule.coefficients(t.clamp(min=0), ndim)
    clean = (t < 0).reshape(a.shape)
    return torch.where(clean, torch.ones_like(a), a), torch.where(clean, torch.zeros_like(s), s)


class ConsistencyLoss:
    """loss_fn(net, x0, t, eps, y) for train.train_step: the consistency loss (module docstring) of a student
    `net` that predicts `prediction` on `schedule`, one teacher step of `delta` indices, `method` cd (a frozen
    `teacher`, an eps-model) or ect (no teacher)."""

    def __init__(self, schedule: NoiseSchedule, prediction: str, method: Method = "cd", *, delta: int = 20,
                 distance: Distance = "pseudo-huber", teacher: nn.Module | None = None,
                 teacher_guidance: float = 1.0, null_label: int | None = None):  # fmt: skip
        if method not in ("cd", "ect") or distance not in DISTANCES:
            raise ValueError(f"need method cd|ect and distance pseudo-huber|mse, got {method!r}, {distance!r}")
        if (method == "cd") != (teacher is not None):
            raise ValueError("consistency distillation (cd) needs a teacher; tuning (ect) takes none")
        if delta < 1:
            raise ValueError(f"delta must be at least 1 index, got {delta}")
        self.schedule, self.prediction, self.method, self.delta = schedule, prediction, method, delta
        self.distance, self.teacher = distance, teacher
        self.teacher_guidance, self.null_label = teacher_guidance, null_label

    def teacher_step(self, x_t: Tensor, t: Tensor, r: Tensor, y: Tensor | None) -> Tensor:
        """x_r = alpha_r x0_phi + sigma_r eps_phi: the teacher's DDIM step (Song et al. 2021, Eq. 12, eta = 0),
        on the guided ODE eps_u + w (eps_c - eps_u) for labelled samples when teacher_guidance w != 1."""
        teacher, w = self.teacher, self.teacher_guidance
        if y is None or w == 1.0:
            eps = full(teacher(x_t, t) if y is None else teacher(x_t, t, y))
        else:  # one batched pass of 2B: conditional, then unconditional
            null = torch.full_like(y, self.null_label)
            eps_c, eps_u = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
            eps_c, eps_u = full(eps_c), full(eps_u)
            eps = torch.where((y == self.null_label).reshape(-1, *(1,) * (x_t.ndim - 1)), eps_u,
                              eps_u + w * (eps_c - eps_u))  # fmt: skip
        x0 = x0_from_eps(x_t, eps, *self.schedule.coefficients(t, x_t.ndim))
        alpha_r, sigma_r = alpha_sigma(self.schedule, r, x_t.ndim)
        return alpha_r * x0 + sigma_r * eps

    def __call__(self, net: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, y: Tensor | None = None) -> Tensor:
        student = as_eps_model(net, self.schedule, self.prediction)
        r = (t - self.delta).clamp(min=-1)  # t_n: delta indices before t, the clean end -1 below 0
        x_t = self.schedule.q_sample(x0, t, eps)
        with torch.no_grad():
            if self.method == "cd":
                x_r = self.teacher_step(x_t, t, r, y)
            else:
                alpha_r, sigma_r = alpha_sigma(self.schedule, r, x0.ndim)
                x_r = alpha_r * x0 + sigma_r * eps
            at_clean = (r < 0).reshape(-1, *(1,) * (x0.ndim - 1))
            target = torch.where(at_clean, x_r, consistency_x0(student, self.schedule, x_r, r.clamp(min=0), y))
        pred = consistency_x0(student, self.schedule, x_t, t, y)
        return distance(pred, target, self.distance)


def check_teacher(meta: dict, path: str) -> None:
    """A UsageError unless the checkpoint is a DDPM model, the kind a consistency model is distilled from."""
    if meta["objective"] != "ddpm":
        raise UsageError(f"{path} is a {meta['objective']} model; distill needs a DDPM teacher "
                         "(a `cleardiffusion train` checkpoint with --objective ddpm, the default)")  # fmt: skip


# ----------------------------------------------------------------------------------------------------------
# Trajectory distillation: Luhman & Luhman 2021's knowledge distillation (a student regresses the end x_0 of
# the teacher's deterministic ODE trajectory from its start x_T), at every point of the trajectory instead of
# its start only, so that the one network serves multistep consistency sampling as well as one step. No
# bootstrapping: each target is the teacher's own end point, computed once, before training, by the teacher's
# ODE solver (DPM-Solver++(2M), Lu et al. 2022) on a grid of `steps` trailing points.


class TrajectoryBank:
    """Points of the teacher's probability-flow ODE trajectories, each with the trajectory's end: x (N, ...) the
    points, t (N,) their times, x0 (N, ...) the ends, y (N,) the labels (the null class for an unconditional
    trajectory; unused for an unconditional teacher). `generate.teacher_trajectories` makes one. `draw_t` draws
    indices into it, so the training loop's t (train.draw_batch) picks the pairs a step trains on and a resumed
    run draws what the uninterrupted one would have."""

    def __init__(self, x: Tensor, t: Tensor, x0: Tensor, y: Tensor, conditional: bool):
        self.x, self.t, self.x0, self.y, self.conditional = x, t, x0, y, conditional

    def __len__(self) -> int:
        return len(self.t)

    def draw_t(self, n: int, generator: torch.Generator) -> Tensor:
        """(n,) indices of bank entries, uniformly."""
        return torch.randint(0, len(self), (n,), generator=generator, device=generator.device)


class TrajectoryLoss:
    """loss_fn(net, x0, t, eps, y) for train.train_step: the distance between the student's x_0 prediction at a
    bank point and that trajectory's end. t indexes the bank (TrajectoryBank.draw_t); x0, eps and y of the
    loop's batch are not used: the bank holds the points, their labels and their targets."""

    def __init__(self, schedule: NoiseSchedule, prediction: str, bank: TrajectoryBank,
                 distance: Distance = "pseudo-huber"):  # fmt: skip
        self.schedule, self.prediction, self.bank, self.distance = schedule, prediction, bank, distance

    def __call__(self, net: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, y: Tensor | None = None) -> Tensor:
        bank = self.bank
        x_t, times, target = bank.x[t], bank.t[t], bank.x0[t]
        labels = bank.y[t] if bank.conditional else None
        pred = consistency_x0(as_eps_model(net, self.schedule, self.prediction), self.schedule, x_t, times, labels)
        return distance(pred, target, self.distance)


def distillation_loss(schedule: NoiseSchedule, prediction: str, teacher: nn.Module | None, *, method: Method,
                      delta: int, distance: Distance, teacher_guidance: float, null_label: int | None,
                      bank: TrajectoryBank | None = None):  # fmt: skip
    """The loss_fn of a distillation run: ConsistencyLoss (cd, ect) or TrajectoryLoss over `bank` (trajectory)."""
    if method == "trajectory":
        return TrajectoryLoss(schedule, prediction, bank, distance)
    return ConsistencyLoss(schedule, prediction, method, delta=delta, distance=distance,
                           teacher=teacher if method == "cd" else None, teacher_guidance=teacher_guidance,
                           null_label=null_label)  # fmt: skip
