"""Consistency models from a trained diffusion model: consistency distillation (Song et al. 2023, Algorithm 2)
and consistency tuning (ECT, Geng et al. 2024), on the teacher's own DDPM path; trajectory distillation and
distribution matching (DMD) further down. `cleardiffusion distill`.

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

import copy
import math
from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .errors import UsageError
from .models.unet import CodeHead
from .objective import as_eps_model
from .schedule import NoiseSchedule, x0_from_eps

Method = Literal["cd", "ect", "trajectory", "dmd"]
METHODS: tuple[str, ...] = ("cd", "ect", "trajectory", "dmd")
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
        eps = teacher_eps(self.teacher, x_t, t, y, self.teacher_guidance, self.null_label)
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


def teacher_eps(teacher: nn.Module, x_t: Tensor, t: Tensor, y: Tensor | None, w: float,
                null_label: int | None) -> Tensor:  # fmt: skip
    """The teacher's eps at (x_t, t), in float32: guided, eps_u + w (eps_c - eps_u), for labelled samples when
    w != 1 (one batched pass of 2B: conditional, then unconditional); the null label's samples stay eps_u."""
    if y is None or w == 1.0:
        return full(teacher(x_t, t) if y is None else teacher(x_t, t, y))
    null = torch.full_like(y, null_label)
    eps_c, eps_u = teacher(torch.cat([x_t, x_t]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
    eps_c, eps_u = full(eps_c), full(eps_u)
    return torch.where((y == null_label).reshape(-1, *(1,) * (x_t.ndim - 1)), eps_u, eps_u + w * (eps_c - eps_u))


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
    trajectory; unused for an unconditional teacher), code (N,) the end's cluster (end_codes) or None.
    `generate.teacher_trajectories` makes one. `draw_t` draws indices into it, so the training loop's t
    (train.draw_batch) picks the pairs a step trains on and a resumed run draws what the uninterrupted one would
    have."""

    def __init__(self, x: Tensor, t: Tensor, x0: Tensor, y: Tensor, conditional: bool, code: Tensor | None = None):
        self.x, self.t, self.x0, self.y, self.conditional, self.code = x, t, x0, y, conditional, code

    def __len__(self) -> int:
        return len(self.t)

    def draw_t(self, n: int, generator: torch.Generator) -> Tensor:
        """(n,) indices of bank entries, uniformly."""
        return torch.randint(0, len(self), (n,), generator=generator, device=generator.device)


# A student with a code (UNet code_classes K: a head on its encoder's output picks one of K codes, whose embedding
# its middle and decoder see) can make its one-step map jump between digits where a continuous map must blend
# them. The codes come from the teacher: k-means of its middle features of each trajectory's end noised to
# CODE_FEATURE_T (end_codes). The student regresses each end given its end's code (forced: teacher forcing), and
# its head learns to predict that code from the point (cross-entropy, weight CODE_WEIGHT); at sampling, and in
# dmd, the head's argmax picks the code. docs/few_step.md, "A code inside the one-step map".
CODE_WEIGHT = 1.0
CODE_FEATURE_T = 0.1  # as a fraction of T
KMEANS_ITERS = 50


def kmeans(x: Tensor, k: int, seed: int = 0, iters: int = KMEANS_ITERS) -> Tensor:
    """Lloyd's algorithm from k distinct rows drawn with `seed`: (N, D) -> (N,) each row's nearest centre."""
    centres = x[torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))[:k]].clone()
    for _ in range(iters):
        nearest = torch.cdist(x, centres).argmin(1)
        for c in range(len(centres)):
            members = nearest == c
            if members.any():
                centres[c] = x[members].mean(0)
    return torch.cdist(x, centres).argmin(1)


def end_codes(teacher: nn.Module, schedule: NoiseSchedule, ends: Tensor, k: int, batch: int = 500) -> Tensor:
    """(N,) a code in [0, k) per end: k-means of the teacher's middle features (UNet.encode, standardised) of the
    ends noised to CODE_FEATURE_T with fixed noise. The same ends give the same codes."""
    net = getattr(teacher, "net", teacher)
    t = round(CODE_FEATURE_T * schedule.T)
    noise = torch.randn(ends.shape, generator=torch.Generator().manual_seed(0)).to(ends.device)
    features = []
    with torch.no_grad():
        for i in range(0, len(ends), batch):
            times = torch.full((len(ends[i : i + batch]),), t, device=ends.device)
            x_t = schedule.q_sample(ends[i : i + batch], times, noise[i : i + batch])
            features.append(net.encode(x_t, times)[0].float().flatten(1))
    f = torch.cat(features)
    return kmeans((f - f.mean(0)) / (f.std(0) + 1e-6), k)


def coded_network(net: nn.Module) -> nn.Module | None:
    """The network with a code (code_classes > 0) inside `net` (a wrapper, or itself), or None."""
    return next((m for m in net.modules() if getattr(getattr(m, "config", None), "code_classes", 0)), None)


class TrajectoryLoss:
    """loss_fn(net, x0, t, eps, y) for train.train_step: the distance between the student's x_0 prediction at a
    bank point and that trajectory's end. t indexes the bank (TrajectoryBank.draw_t); x0, eps and y of the
    loop's batch are not used: the bank holds the points, their labels and their targets. A bank with codes and
    a student with a code: the prediction given the end's code, plus CODE_WEIGHT x the head's cross-entropy."""

    def __init__(self, schedule: NoiseSchedule, prediction: str, bank: TrajectoryBank,
                 distance: Distance = "pseudo-huber"):  # fmt: skip
        self.schedule, self.prediction, self.bank, self.distance = schedule, prediction, bank, distance

    def __call__(self, net: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, y: Tensor | None = None) -> Tensor:
        bank = self.bank
        x_t, times, target = bank.x[t], bank.t[t], bank.x0[t]
        labels = bank.y[t] if bank.conditional else None
        coded = coded_network(net) if bank.code is not None else None
        if coded is None:
            pred = consistency_x0(as_eps_model(net, self.schedule, self.prediction), self.schedule, x_t, times, labels)
            return distance(pred, target, self.distance)
        coded.forced_code = bank.code[t]
        try:
            pred = consistency_x0(as_eps_model(net, self.schedule, self.prediction), self.schedule, x_t, times, labels)
            logits = full(coded.code_logits)
        finally:
            coded.forced_code = coded.code_logits = None
        return distance(pred, target, self.distance) + CODE_WEIGHT * F.cross_entropy(logits, bank.code[t])


# ----------------------------------------------------------------------------------------------------------
# Distribution matching (DMD: Yin et al. 2024, "One-step Diffusion with Distribution Matching Distillation";
# DMD2, Yin et al. 2024, "Improved Distribution Matching Distillation", for several steps). Trajectory
# distillation copies the teacher's probability-flow ODE, whose samples can be worse than the teacher's SDE
# sampler's (docs/few_step.md). DMD aims at the teacher's distribution instead: noise the student's sample x_0
# to a random t, and move x_0 along the difference of two x_0 predictions there, the frozen teacher's ("real")
# and that of a second network, `fake`, trained at the same time to denoise the student's own samples:
#     grad = (x0_fake(x_t, t) - x0_real(x_t, t)) / mean|x_0 - x0_real(x_t, t)|     (DMD, Eq. 7-8)
# the gradient of KL(student || teacher) summed over noise levels, normalised per sample. It is applied as
# the loss mean(0.5 (x_0 - sg(x_0 - grad))^2), whose gradient in x_0 is grad over the batch's size. The student
# is a trained consistency model (`distill --student`); it learns at every point of its own N-step chain on
# the jump grid (DMD2's backward simulation: the chain without gradients up to a random step, then one step with
# them); with N = 1 (distill's default) it learns only its one-step map from pure noise.
# At the start `fake` is the teacher itself, so the gradient is zero until the student's samples and the
# teacher's distribution are told apart.

DMD_T_MIN = 0.02  # the lowest noise level the two x_0 predictions are compared at, as a fraction of T (DMD); the
# highest is t_max (DMD's 0.98; `distill --dmd-t-max`)
FAKE_LR_RATIO = 10  # the fake network's learning rate over the student's: it must keep up with the student
# DMD2's GAN term (Yin et al. 2024b, Sec. 4.3): a discriminator D reads the fake network's bottleneck at a noised
# input (through its encoder and middle only: UNet.encode; the decoder's output is not needed) and tells data from
# the student's samples. The fake network and D learn it beside the fake's denoising loss (non-saturating loss,
# weight 1, on the first fake update of each student step); the student adds
# gan_weight * softplus(-D(its sample, noised)) to the dmd loss. Real data is the loop's x0 batch, which plain
# dmd leaves unused. D sees noise levels below GAN_T_MAX only: above them data and samples look alike to it.
GAN_T_MAX = 0.25  # as a fraction of T
GAN_HEAD_LR_RATIO = 100  # D's head starts from scratch: its learning rate over the student's


def gan_features(net: nn.Module) -> Callable[..., Tensor]:
    """features(x_t, t[, y]) -> (B, C, h, w), what the GAN term's discriminator reads: a U-Net's middle block's
    output (UNet.encode, which skips the decoder); a UsageError for other backbones (`distill` checks this before
    it writes anything)."""
    if not hasattr(net, "encode"):
        raise UsageError(f"--dmd-gan reads a U-Net's middle block; this teacher's network ({type(net).__name__}) "
                         "has none: pass --dmd-gan 0")  # fmt: skip
    return lambda *inputs: net.encode(*inputs)[0]


class BottleneckDiscriminator(CodeHead):
    """DMD2's classifier head: the U-Net's middle features (B, C, h, w) -> one logit per sample (B,), through a
    strided convolution and a linear layer over every position that remains (MNIST's 7 x 7 -> 3 x 3): a code
    head (models.unet.CodeHead) with one output."""

    def __init__(self, channels: int, size: tuple[int, int], groups: int):
        super().__init__(channels, size, groups, 1)

    def forward(self, features: Tensor) -> Tensor:
        return super().forward(features).flatten()


class DistributionMatchingLoss:
    """loss_fn(net, x0, t, eps, y) for train.train_step: DMD's loss for the student `net` (module notes above).

    The loop's t (uniform indices) and eps noise the student's sample; its x0 (data) is used only by the GAN term
    (gan_weight > 0): the student draws its own samples, with the loop's labels y for a conditional teacher. Each
    call also trains `fake` (a copy of the teacher, with its own AdamW at `fake_lr`) `fake_steps` times on those
    samples, detached, at fresh times and noise. `grid` is the student's chain (denoiser.jump_grid; one point: its
    one-step map only). The chain's noise, the step trained and the fake's draws come from the global generator
    (torch.manual_seed), so a run is reproducible but its fake network is not checkpointed: a dmd run does not
    resume. The GAN term needs a U-Net teacher (its `middle` block is what D reads).
    """

    def __init__(self, schedule: NoiseSchedule, prediction: str, teacher: nn.Module, *, grid: list[int], lr: float,
                 fake_steps: int = 1, fake_lr: float | None = None, gan_weight: float = 0.0,
                 teacher_guidance: float = 1.0, null_label: int | None = None,
                 real: nn.Module | None = None, t_max: float = 0.98):  # fmt: skip
        if not grid or grid[0] != schedule.T - 1:
            raise ValueError(f"the student's chain starts from pure noise at T - 1 (denoiser.jump_grid), got {grid}")
        self.schedule, self.prediction, self.teacher, self.grid = schedule, prediction, teacher, grid
        self.w, self.null_label, self.fake_steps, self.gan_weight = teacher_guidance, null_label, fake_steps, gan_weight
        self.real = real  # an eps-model of the real score in place of the (guided) teacher's, or None
        if not DMD_T_MIN < t_max <= 1:
            raise ValueError(f"t_max is a fraction of T above DMD_T_MIN = {DMD_T_MIN} and at most 1, got {t_max}")
        self.t_lo, self.t_hi = int(DMD_T_MIN * schedule.T), int(t_max * schedule.T)  # the levels compared at
        self.fake_net = copy.deepcopy(getattr(teacher, "net", teacher)).train().requires_grad_(True)
        self.fake = as_eps_model(self.fake_net, schedule, prediction)
        fake_lr = FAKE_LR_RATIO * lr if fake_lr is None else fake_lr
        self.fake_optimizer = torch.optim.AdamW(self.fake_net.parameters(), lr=fake_lr, weight_decay=0.0)
        self.discriminator = None
        if gan_weight > 0:
            self.features = gan_features(self.fake_net)
            config, device = self.fake_net.config, next(self.fake_net.parameters()).device
            with torch.no_grad():  # one image through the network: the middle block's shape
                x = torch.zeros(1, config.in_channels, config.image_size, config.image_size, device=device)
                _, channels, *size = self.features(x, torch.zeros(1, dtype=torch.long, device=device)).shape
            self.discriminator = BottleneckDiscriminator(channels, tuple(size), config.norm_groups).to(device)
            self.fake_optimizer.add_param_group({"params": list(self.discriminator.parameters()),
                                                 "lr": GAN_HEAD_LR_RATIO * lr})  # fmt: skip

    def sample(self, student: nn.Module, like: Tensor, y: Tensor | None) -> Tensor:
        """The student's x_0 at a random step k of its chain: steps 0..k-1 without gradients, step k with."""
        k = int(torch.randint(0, len(self.grid), ()))
        x = torch.randn_like(like)
        for j in range(k):
            with torch.no_grad():
                x0 = full(consistency_x0(student, self.schedule, x, self.schedule.network_time(self.grid[j], x), y))
                x = self.schedule.q_sample(x0, self.schedule.network_time(self.grid[j + 1], x), torch.randn_like(x))
        return full(consistency_x0(student, self.schedule, x, self.schedule.network_time(self.grid[k], x), y))

    def x0_real(self, x_t: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        if self.real is not None:  # unconditional: the autoguided teacher (train_run.distill_options)
            eps = full(self.real(x_t, t))
        else:
            eps = teacher_eps(self.teacher, x_t, t, y, self.w, self.null_label)
        return x0_from_eps(x_t, eps, *self.schedule.coefficients(t, x_t.ndim))

    def gradient(self, x0: Tensor, t: Tensor, eps: Tensor, y: Tensor | None) -> Tensor:
        """DMD's gradient at the samples x0 (detached), noised to t with eps."""
        x_t = self.schedule.q_sample(x0, t, eps)
        real = self.x0_real(x_t, t, y)
        fake = full(consistency_x0(self.fake, self.schedule, x_t, t, y))
        scale = (x0 - real).abs().flatten(1).mean(1).clamp(min=1e-4).reshape(-1, *(1,) * (x0.ndim - 1))
        return (fake - real) / scale

    def gan_t(self, like: Tensor) -> Tensor:
        """Random noise levels for D, below GAN_T_MAX * T."""
        return torch.randint(0, max(int(GAN_T_MAX * self.schedule.T), 1), (like.shape[0],), device=like.device)

    def logits(self, x0: Tensor, t: Tensor, y: Tensor | None) -> Tensor:
        """D(x0 noised to t): the fake network's middle features, the head."""
        x_t = self.schedule.q_sample(x0, t, torch.randn_like(x0))
        return full(self.discriminator(self.features(x_t, t) if y is None else self.features(x_t, t, y)))

    def train_fake(self, x0: Tensor, y: Tensor | None, real: Tensor | None = None) -> None:
        """`fake_steps` AdamW steps of the fake network's denoising loss (eps error) on the samples x0; with the
        GAN term, the first also trains D to tell `real` (data) from x0."""
        for step in range(self.fake_steps):
            t = torch.randint(0, self.schedule.T, (x0.shape[0],), device=x0.device)
            eps = torch.randn_like(x0)
            x_t = self.schedule.q_sample(x0, t, eps)
            loss = (full(self.fake(x_t, t) if y is None else self.fake(x_t, t, y)) - eps).pow(2).mean()
            if self.discriminator is not None and step == 0:  # data and samples at the same noise levels
                t = self.gan_t(x0)
                loss = loss + F.softplus(self.logits(x0, t, y)).mean() + F.softplus(-self.logits(real, t, y)).mean()
            self.fake_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(self.fake_net.parameters(), 1.0)
            self.fake_optimizer.step()

    def generator_gan(self, sample: Tensor, y: Tensor | None) -> Tensor:
        """softplus(-D(sample)): the student's half of the GAN term, its gradient reaching only the sample."""
        self.fake_net.requires_grad_(False), self.discriminator.requires_grad_(False)
        try:
            return F.softplus(-self.logits(sample, self.gan_t(sample), y)).mean()
        finally:
            self.fake_net.requires_grad_(True), self.discriminator.requires_grad_(True)

    def __call__(self, net: nn.Module, x0: Tensor, t: Tensor, eps: Tensor, y: Tensor | None = None) -> Tensor:
        student = as_eps_model(net, self.schedule, self.prediction)
        sample = self.sample(student, x0, y)
        with torch.no_grad():  # the loop's uniform t, mapped onto [t_lo, t_hi)
            grad = self.gradient(sample.detach(), self.t_lo + t * (self.t_hi - self.t_lo) // self.schedule.T, eps, y)
        self.train_fake(sample.detach(), y, real=x0)
        loss = 0.5 * (sample - (sample - grad).detach()).pow(2).mean()
        if self.discriminator is not None:  # after train_fake: its step changes the weights this graph reads
            loss = loss + self.gan_weight * self.generator_gan(sample, y)
        return loss


def distillation_loss(schedule: NoiseSchedule, prediction: str, teacher: nn.Module | None, *, method: Method,
                      delta: int, distance: Distance, teacher_guidance: float, null_label: int | None,
                      bank: TrajectoryBank | None = None, grid: list[int] | None = None, lr: float = 1e-5,
                      fake_steps: int = 1, fake_lr: float | None = None, gan_weight: float = 0.0,
                      real: nn.Module | None = None, t_max: float = 0.98):  # fmt: skip
    """The loss_fn of a distillation run: ConsistencyLoss (cd, ect), TrajectoryLoss over `bank` (trajectory) or
    DistributionMatchingLoss (dmd: the student's chain on `grid`, its fake network taking `fake_steps` steps
    per student step at `fake_lr`, by default `lr` times FAKE_LR_RATIO, DMD2's GAN term at `gan_weight`, the
    real score from `real` when given, e.g. the teacher autoguided, else from the teacher, the two scores compared
    at noise levels from DMD_T_MIN to `t_max` times T)."""
    if method == "trajectory":
        return TrajectoryLoss(schedule, prediction, bank, distance)
    if method == "dmd":
        return DistributionMatchingLoss(schedule, prediction, teacher, grid=grid, lr=lr, fake_steps=fake_steps,
                                        fake_lr=fake_lr, gan_weight=gan_weight, teacher_guidance=teacher_guidance,
                                        null_label=null_label, real=real, t_max=t_max)  # fmt: skip
    return ConsistencyLoss(schedule, prediction, method, delta=delta, distance=distance,
                           teacher=teacher if method == "cd" else None, teacher_guidance=teacher_guidance,
                           null_label=null_label)  # fmt: skip
