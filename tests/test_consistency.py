"""Consistency models (consistency.py, samplers.consistency_sample, `cleardiffusion distill`).

The mathematics on data whose probability-flow ODE is solved in closed form, in float64: for data N(mu, s^2)
on a VP path x_t = a_t x_0 + sigma_t eps, the marginal is N(a_t mu, v_t) with v_t = a_t^2 s^2 + sigma_t^2, the
exact noise prediction is E[eps | x_t] = sigma_t (x_t - a_t mu) / v_t, and the ODE keeps the standardised value
(x_t - a_t mu) / sqrt(v_t) fixed, so the exact consistency function is f(x_t, t) = mu + s (x_t - a_t mu) / sqrt(v_t).
"""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from cleardiffusion.cli import main
from cleardiffusion.consistency import ConsistencyLoss, DistributionMatchingLoss, consistency_x0
from cleardiffusion.denoiser import FEW_STEP_MAX, JUMP_SIGMAS, FewStepPath, jump_grid, sampling_parts
from cleardiffusion.errors import UsageError
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.samplers import consistency_sample
from cleardiffusion.schedule import NoiseSchedule
from test_train import tiny_flags, write_digits

SCHEDULE = NoiseSchedule.from_name("linear", 1000)


class ExactGaussian(nn.Module):
    """For data N(mu, s^2): the exact eps-prediction (`what` eps) or the exact consistency function (x0)."""

    def __init__(self, mu: float, s: float, what: str):
        super().__init__()
        self.mu, self.s, self.what = mu, s, what

    def forward(self, x, t, y=None):
        a, sigma = (c.double() for c in SCHEDULE.coefficients(t, x.ndim))
        v = a**2 * self.s**2 + sigma**2
        if self.what == "eps":
            return sigma * (x - a * self.mu) / v
        return self.mu + self.s * (x - a * self.mu) / v.sqrt()


def batch(mu: float, s: float, n: int = 4096, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x0 = mu + s * torch.randn(n, 1, 2, 2, generator=g, dtype=torch.float64)
    eps = torch.randn(n, 1, 2, 2, generator=g, dtype=torch.float64)
    t = torch.randint(0, SCHEDULE.T, (n,), generator=g)
    return x0, t, eps


def loss_at(method, student, mu, s, delta, distance="mse", x0_t_eps=None):
    teacher = ExactGaussian(mu, s, "eps") if method == "cd" else None
    loss = ConsistencyLoss(SCHEDULE, "x0", method, delta=delta, distance=distance, teacher=teacher)
    return loss(student, *(x0_t_eps or batch(mu, s))).item()


@pytest.mark.parametrize("method", ["cd", "ect"])
@pytest.mark.parametrize("distance", ["mse", "pseudo-huber"])
def test_the_exact_map_of_one_point_data_has_zero_loss_and_a_wrong_map_does_not(method, distance):
    """Data at one point mu: every ODE trajectory ends at mu, f = mu is exact, and a DDIM step of the exact
    teacher is exact, so the loss of both methods is zero there; the map mu + 0.1 x_t is not consistent."""
    exact = ExactGaussian(0.3, 0.0, "x0")
    assert loss_at(method, exact, 0.3, 0.0, 20, distance) < 1e-12

    class Off(nn.Module):
        def forward(self, x, t, y=None):
            return 0.3 + 0.1 * x

    assert loss_at(method, Off(), 0.3, 0.0, 20, distance) > 1e-5


@pytest.mark.parametrize("method, order", [("cd", 4), ("ect", 2)])
def test_the_loss_at_the_exact_map_vanishes_at_the_methods_order(method, order):
    """Gaussian data: the exact f is a zero of the loss in the limit delta -> 0, at the rate the target's error
    dictates: cd's target is one Euler (DDIM) step of the exact ODE, a local error O(delta^2), so its squared
    error tends to fall 16x when delta halves; ect's target moves x_t along the noise, not the trajectory,
    O(delta), so 4x."""
    mu, s = 0.5, 0.3
    exact, data = ExactGaussian(mu, s, "x0"), batch(mu, s)
    losses = [loss_at(method, exact, mu, s, d, x0_t_eps=data) for d in (40, 20, 10, 5)]
    ratios = [a / b for a, b in zip(losses, losses[1:], strict=False)]
    assert all(0.7 * 2**order < r < 1.1 * 2**order for r in ratios) and ratios[-1] > 0.85 * 2**order, ratios


def test_the_exact_map_is_where_the_distillation_loss_is_least():
    """cd at delta = 5: moving the exact f by +-0.05 x_t (a map not constant along the trajectories) raises
    the loss by orders of magnitude, and its loss then falls only 4x per halving of delta, not 16x."""
    mu, s = 0.5, 0.3
    data = batch(mu, s)

    class Moved(ExactGaussian):
        def __init__(self, c):
            super().__init__(mu, s, "x0")
            self.c = c

        def forward(self, x, t, y=None):
            return super().forward(x, t) + self.c * x

    exact = loss_at("cd", Moved(0.0), mu, s, 5, x0_t_eps=data)
    for c in (-0.05, 0.05):
        moved = [loss_at("cd", Moved(c), mu, s, d, x0_t_eps=data) for d in (10, 5)]
        assert moved[1] > 100 * exact and moved[0] / moved[1] < 6


def test_one_step_sampling_with_the_exact_map_gives_the_datas_mean_and_variance():
    """x_T ~ N(0, I) through the exact f(., T) is affine: its offset and slope are the samples' mean and
    standard deviation exactly (no Monte Carlo). They equal the data's, up to the prior's mismatch
    N(0, 1) vs N(a_T mu, v_T) at T, which the closed form gives."""
    mu, s = 0.5, 0.3
    model, path = sampling_parts(ExactGaussian(mu, s, "x0"), "consistency", "x0", SCHEDULE)
    x_T = torch.tensor([0.0, 1.0, 5.0], dtype=torch.float64).reshape(3, 1, 1, 1)
    out = consistency_sample(model, path, x_T, [SCHEDULE.T - 1]).flatten()
    mean, std = out[0].item(), (out[1] - out[0]).item()
    assert out[2] > 1 and out[2] == pytest.approx(mean + 5 * std, abs=1e-9)  # unclipped unless clip_x0 is asked
    a_T, sigma_T = (c.double().item() for c in SCHEDULE.coefficients(torch.tensor([SCHEDULE.T - 1])))
    v_T = a_T**2 * s**2 + sigma_T**2  # in the float32 table's numbers, which the network reads
    # 1e-4: the network reads the float32 table of alpha_t, the sampler the float64 one; x_0 = (x - sigma eps) / a_T
    # magnifies their difference 1 / a_T = 160 times at T
    assert mean == pytest.approx(mu - s * a_T * mu / v_T**0.5, abs=1e-4)
    assert std == pytest.approx(s / v_T**0.5, abs=1e-4)
    assert abs(mean - mu) < 2e-3 and abs(std**2 - s**2) < 2e-3  # the data's moments, to the prior's mismatch


def test_multistep_sampling_renoises_with_fresh_noise_and_maps_back():
    """Two steps by hand (Song et al. 2023, Algorithm 1): x = f(x_T, T); x_s = a_s x + sigma_s z; f(x_s, s)."""
    mu, s = 0.5, 0.3
    exact = ExactGaussian(mu, s, "x0")
    model, path = sampling_parts(exact, "consistency", "x0", SCHEDULE)
    x_T = torch.randn(8, 1, 2, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    out = consistency_sample(model, path, x_T, [999, 499], generator=torch.Generator().manual_seed(2))
    x = exact(x_T, torch.full((8,), 999))
    z = torch.randn(x.shape, dtype=x.dtype, generator=torch.Generator().manual_seed(2))
    a, sigma = SCHEDULE.coefficients(499)
    want = exact(a * x + sigma * z, torch.full((8,), 499))
    # 1e-5: the network's x_0 -> eps conversion reads the schedule's float32 table (EpsFromPrediction), the
    # sampler's eps -> x_0 the float64 one
    torch.testing.assert_close(out, want, rtol=1e-5, atol=1e-5)


def test_the_teacher_step_follows_the_guided_ode_for_labelled_samples_only():
    """teacher_guidance w: eps = eps_u + w (eps_c - eps_u) for labelled samples, eps_u for null-labelled ones."""

    class Labelled(nn.Module):
        def forward(self, x, t, y):
            return x * 0 + y.double().reshape(-1, 1, 1, 1)  # eps = the label, so eps_c - eps_u = y - 10

    teacher, null = Labelled(), 10
    loss = ConsistencyLoss(SCHEDULE, "eps", "cd", teacher=teacher, teacher_guidance=3.0, null_label=null)
    x_t, t = torch.zeros(2, 1, 2, 2, dtype=torch.float64), torch.tensor([500, 500])
    x_r = loss.teacher_step(x_t, t, t - 20, torch.tensor([4, null]))
    a_t, s_t = SCHEDULE.coefficients(500)
    a_r, s_r = SCHEDULE.coefficients(480)
    for i, eps in enumerate([10 + 3.0 * (4 - 10), 10]):
        want = a_r * (0 - s_t * eps) / a_t + s_r * eps
        assert x_r[i].flatten()[0].item() == pytest.approx(want, rel=1e-6)


def test_the_recipe_keeps_few_step_and_diffusion_samplers_apart():
    path = FewStepPath(SCHEDULE, "consistency")
    assert SamplingRecipe().resolve(path).sampler == "consistency"
    for wrong in ("ddim", "dpm++2m-sde", "meanflow"):
        with pytest.raises(UsageError, match="does not fit"):
            SamplingRecipe(sampler=wrong).resolve(path)
    with pytest.raises(UsageError, match="does not fit"):
        SamplingRecipe(sampler="consistency").resolve(SCHEDULE)
    for steps in (0, path.max_steps + 1):
        with pytest.raises(UsageError, match="steps must be between 1 and"):
            SamplingRecipe(steps=steps).resolve(path)
    with pytest.raises(ValueError, match="1 to"):
        path.check_timesteps(list(range(999, 0, -100)))


@pytest.mark.parametrize("schedule", [SCHEDULE, NoiseSchedule.from_name("cosine", 1000)])
def test_the_jump_grid_starts_at_pure_noise_and_spaces_the_rest_geometrically_in_sigma(schedule):
    sigma = ((1 - schedule.alpha_bar64) / schedule.alpha_bar64).sqrt()
    hi, lo = JUMP_SIGMAS
    for steps in range(1, FEW_STEP_MAX + 1):
        grid = jump_grid(schedule, steps)
        assert len(grid) == steps and grid[0] == schedule.T - 1
        assert all(a > b for a, b in zip(grid, grid[1:], strict=False))
        for t, target in zip(grid[1:], [hi * (lo / hi) ** (i / max(steps - 2, 1)) for i in range(steps - 1)],
                             strict=True):  # fmt: skip
            assert abs(sigma[t] - target) <= min(abs(sigma[t + 1] - target), abs(sigma[t - 1] - target))
    path = FewStepPath(schedule, "consistency")
    recipe = SamplingRecipe(steps=4).resolve(path)
    assert recipe.spacing == "jump" and path.timesteps(4, recipe.spacing) == jump_grid(schedule, 4)
    assert path.timesteps(2, "trailing") == schedule.timesteps(2, "trailing")  # the other grids stay
    with pytest.raises(UsageError, match="spacing 'jump' does not fit a ddpm model"):
        SamplingRecipe(spacing="jump").resolve(schedule)


@pytest.mark.parametrize("name, T", [("linear", 8), ("linear", 12), ("linear", 30), ("cosine", 8), ("cosine", 12)])
def test_the_jump_grid_stays_distinct_and_in_range_on_a_coarse_schedule(name, T):
    """Where neighbouring sigmas round to one index, a point moves to one below its predecessor (linear: the
    points crowd at T - 1), and never below the floor that leaves room for the points after it (cosine: they
    crowd at 0). T = steps: every index."""
    schedule = NoiseSchedule.from_name(name, T)
    sigma = ((1 - schedule.alpha_bar64) / schedule.alpha_bar64).sqrt()
    hi, lo = JUMP_SIGMAS
    pushed = 0
    for steps in range(1, min(FEW_STEP_MAX, T) + 1):
        grid = jump_grid(schedule, steps)
        assert len(grid) == steps and grid[0] == T - 1 and grid[-1] >= 0
        assert all(a > b for a, b in zip(grid, grid[1:], strict=False))
        targets = [hi * (lo / hi) ** (i / max(steps - 2, 1)) for i in range(steps - 1)]
        for i, (t, target) in enumerate(zip(grid[1:], targets, strict=True), start=1):
            nearest = int((sigma - target).abs().argmin())
            assert t in (nearest, grid[i - 1] - 1, steps - 1 - i), (steps, grid)
            pushed += t != nearest
    assert pushed > 0  # the coarse schedule made the push happen
    if T == FEW_STEP_MAX:
        assert jump_grid(schedule, T) == list(range(T - 1, -1, -1))


# ---- distribution matching (DMD): the gradient between two Gaussians, and its start at zero


def test_the_dmd_gradient_moves_samples_from_the_fake_distribution_towards_the_real_one():
    """Real data N(mu_r, s^2), the student's samples N(mu_g, s^2): both x_0 predictions are exact, and their
    difference is (mu_g - mu_r) sigma^2 / (alpha^2 s^2 + sigma^2) at every x_t, so x_0 - grad moves towards mu_r."""
    from test_fastpath import tiny_unet

    dmd = DistributionMatchingLoss(SCHEDULE, "eps", tiny_unet().eval(), grid=jump_grid(SCHEDULE, 4), lr=1e-5)
    mu_r, mu_g, s = 0.3, -0.2, 0.5
    x0, t, eps = batch(mu_g, s, n=512)
    dmd.teacher, dmd.fake = ExactGaussian(mu_r, s, "eps"), ExactGaussian(mu_g, s, "eps")
    grad = dmd.gradient(x0, t, eps, None)
    a, sigma = (c.double() for c in SCHEDULE.coefficients(t, x0.ndim))
    real = mu_r + s**2 * a * (SCHEDULE.q_sample(x0, t, eps) - a * mu_r) / (a**2 * s**2 + sigma**2)
    scale = (x0 - real).abs().flatten(1).mean(1).clamp(min=1e-4).reshape(-1, 1, 1, 1)
    expected = (mu_g - mu_r) * sigma**2 / (a**2 * s**2 + sigma**2) / scale  # the same for every pixel of a sample
    torch.testing.assert_close(grad, expected.expand_as(grad))
    assert (grad < 0).all()  # mu_g < mu_r here: x_0 - grad raises every sample towards the data
    dmd.fake = ExactGaussian(mu_r, s, "eps")  # the student's samples already follow the data: nothing to move
    assert dmd.gradient(x0, t, eps, None).abs().max() == 0


def test_dmd_starts_with_a_zero_loss_and_trains_only_its_fake_network():
    """At the start the fake network is the teacher: the loss and the student's gradient are exactly zero; the call
    then trains the fake network (not the teacher) on the student's samples."""
    from cleardiffusion.objective import as_eps_model
    from test_fastpath import tiny_unet

    teacher, student = tiny_unet(seed=0).eval().requires_grad_(False), tiny_unet(seed=1)
    dmd = DistributionMatchingLoss(SCHEDULE, "v", as_eps_model(teacher, SCHEDULE, "v"), grid=jump_grid(SCHEDULE, 4),
                                   lr=1e-3, fake_steps=2)  # fmt: skip
    teacher_before = {k: v.clone() for k, v in teacher.state_dict().items()}
    g = torch.Generator().manual_seed(0)
    x0, eps, t = (
        torch.randn(4, 3, 8, 8, generator=g),
        torch.randn(4, 3, 8, 8, generator=g),
        torch.tensor([0, 9, 500, 999]),
    )
    loss = dmd(student, x0, t, eps)
    loss.backward()
    assert loss.item() == 0 and all(p.grad is None or not p.grad.any() for p in student.parameters())
    assert all(torch.equal(v, teacher.state_dict()[k]) for k, v in teacher_before.items())
    moved = [k for k, v in dmd.fake_net.state_dict().items() if not torch.equal(v, teacher_before[k])]
    assert moved  # the fake network learnt from the samples; the next call's gradient is no longer zero
    student.zero_grad()
    dmd(student, x0, t, eps).backward()
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in student.parameters())


def test_dmd_trains_the_points_of_its_chain_and_a_one_point_chain_only_the_one_step_map():
    """sample() runs the student's chain without gradients up to a random point and that point with them: on a
    one-point grid every student call is the one-step map from pure noise (t = T - 1); on the 4-point grid the
    calls reach every point of the grid and no other time, the last call of each sample with gradients."""
    from test_fastpath import tiny_unet

    class Recorder(nn.Module):
        def __init__(self):
            super().__init__()
            self.calls = []

        def forward(self, x, t, y=None):
            self.calls.append((int(t[0]), torch.is_grad_enabled()))
            return torch.zeros_like(x)

    like = torch.zeros(2, 3, 8, 8)
    for points, expected in ((1, {SCHEDULE.T - 1}), (4, set(jump_grid(SCHEDULE, 4)))):
        dmd = DistributionMatchingLoss(SCHEDULE, "eps", tiny_unet().eval(), grid=jump_grid(SCHEDULE, points), lr=1e-5)
        student, trained = Recorder(), set()
        torch.manual_seed(0)
        for _ in range(40):
            student.calls.clear()
            dmd.sample(student, like, None)
            assert [grad for _, grad in student.calls] == [False] * (len(student.calls) - 1) + [True]
            trained.add(student.calls[-1][0])
        assert trained == expected
    with pytest.raises(ValueError, match="pure noise"):
        DistributionMatchingLoss(SCHEDULE, "eps", tiny_unet().eval(), grid=[500, 100], lr=1e-5)


def test_a_dmd_run_passes_its_chain_fake_steps_and_gan_weight_to_the_loss():
    """--dmd-chain, --dmd-fake-steps, --dmd-fake-lr, --dmd-gan and --dmd-t-max reach DistributionMatchingLoss
    (train_run.distill_options, then consistency.distillation_loss) as its jump grid, its fake updates per step,
    the fake network's learning rate (by default FAKE_LR_RATIO times the student's), its GAN term and the highest
    noise level it compares the scores at."""
    from cleardiffusion.consistency import FAKE_LR_RATIO, distillation_loss
    from cleardiffusion.train_config import TrainConfig
    from cleardiffusion.train_run import distill_options
    from test_fastpath import tiny_unet

    for chain, fake, fake_lr, gan, t_max in ((1, 1, None, 0.0, 0.98), (4, 3, 3e-4, 0.3, 0.5)):
        config = TrainConfig(objective="consistency", teacher="t.pt", distill_method="dmd", student="s.pt",
                             dmd_chain=chain, dmd_fake_steps=fake, dmd_fake_lr=fake_lr, dmd_gan=gan,
                             dmd_t_max=t_max, lr=2e-5)  # fmt: skip
        options = distill_options(config, nn.Identity(), None, None, SCHEDULE, "cpu")
        loss = distillation_loss(SCHEDULE, "eps", tiny_unet().eval(), **options)
        assert (loss.grid, loss.fake_steps, loss.gan_weight) == (jump_grid(SCHEDULE, chain), fake, gan)
        assert loss.t_hi == int(t_max * SCHEDULE.T)
        assert loss.fake_optimizer.param_groups[0]["lr"] == (fake_lr or FAKE_LR_RATIO * 2e-5)
        assert (loss.discriminator is None) == (gan == 0)


def test_dmd_compares_the_scores_only_at_noise_levels_from_t_min_to_t_max():
    """The loop's uniform t in [0, T) maps onto [DMD_T_MIN T, t_max T): the gradient is taken at no level outside,
    the two ends of the loop's range reach the two ends of it, and a t_max outside (DMD_T_MIN, 1] is refused."""
    from cleardiffusion.consistency import DMD_T_MIN
    from test_fastpath import tiny_unet

    T = SCHEDULE.T
    for t_max in (0.98, 0.5, 0.1):
        dmd = DistributionMatchingLoss(SCHEDULE, "eps", tiny_unet().eval(), grid=jump_grid(SCHEDULE, 1), lr=1e-5,
                                       t_max=t_max)  # fmt: skip
        levels = []

        def recorded(x0, t, eps, y, levels=levels):  # the levels the gradient is taken at; no gradient
            levels.append(t.clone())
            return torch.zeros_like(x0)

        dmd.gradient = recorded
        t = torch.tensor([0, 1, 2, T // 3, T // 2, T - 3, T - 2, T - 1])
        dmd(tiny_unet(seed=1), torch.zeros(len(t), 3, 8, 8), t, torch.randn(len(t), 3, 8, 8))
        (used,) = levels
        assert used.min() == int(DMD_T_MIN * T) and used.max() == int(t_max * T) - 1
        assert torch.equal(used, used.sort().values)  # monotone in the loop's t: the same draw, squeezed
    for t_max in (DMD_T_MIN, 0.0, 1.01):
        with pytest.raises(ValueError, match="t_max"):
            DistributionMatchingLoss(SCHEDULE, "eps", tiny_unet().eval(), grid=jump_grid(SCHEDULE, 1), lr=1e-5,
                                     t_max=t_max)  # fmt: skip


def test_the_gan_term_learns_to_tell_data_from_samples_and_moves_only_the_samples():
    """DMD2's GAN term: trained on data (the loop's x0) against the student's samples, D's logits separate the two;
    the student's half, softplus(-D(sample)), sends its gradient to the sample and to no weight of the fake
    network or of D, which stay trainable afterwards."""
    from test_fastpath import tiny_unet

    torch.manual_seed(0)
    dmd = DistributionMatchingLoss(SCHEDULE, "eps", tiny_unet().eval(), grid=jump_grid(SCHEDULE, 1), lr=1e-4,
                                   fake_steps=1, gan_weight=0.3)  # fmt: skip
    data, samples = torch.full((16, 3, 8, 8), 0.8), torch.full((16, 3, 8, 8), -0.8)

    def gap():  # mean logit on data minus on samples, at the GAN's noise levels
        with torch.no_grad():
            t = dmd.gan_t(data)
            return (dmd.logits(data, t, None).mean() - dmd.logits(samples, t, None).mean()).item()

    before = gap()
    for _ in range(30):
        dmd.train_fake(samples, None, real=data)
    assert gap() > before + 1.0
    sample = samples.clone().requires_grad_(True)
    dmd.fake_optimizer.zero_grad(set_to_none=True)
    dmd.generator_gan(sample, None).backward()
    assert sample.grad.abs().sum() > 0
    trainable = [*dmd.fake_net.parameters(), *dmd.discriminator.parameters()]
    assert all(p.grad is None and p.requires_grad for p in trainable)


def test_the_gan_term_needs_a_u_net_teacher():
    from test_vit import tiny

    with pytest.raises(UsageError, match=r"--dmd-gan reads a U-Net's middle block; this teacher's network \(ViT\)"):
        DistributionMatchingLoss(SCHEDULE, "eps", tiny(), grid=jump_grid(SCHEDULE, 1), lr=1e-5, gan_weight=0.1)


# ---- the command line, on a tiny teacher


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny conditional DDPM checkpoint (8x8 digits, 100 steps) and a flow one."""
    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("distill")
    data = write_digits(root / "data")
    assert main(tiny_flags(data, root / "ddpm", 5, conditional=True)) == 0
    assert main(tiny_flags(data, root / "flow", 2, objective="flow", prediction=None)) == 0
    return root / "ddpm/checkpoints/last.pt", root / "flow/checkpoints/last.pt", data


def distill(teacher_path, out, *extra):
    return main(["distill", "--teacher", str(teacher_path), "--out", str(out), "--batch-size", "8",
                 "--log-every", "1", "--device", "cpu", "--precision", "fp32",
                 "--sample-every", "0", "--no-progress", *map(str, extra)])  # fmt: skip


@pytest.fixture(scope="module")
def students(teacher, tmp_path_factory):
    """A 4-step distillation run of each method from the tiny teacher: {method: its run folder}."""
    root = tmp_path_factory.mktemp("students")
    extra = {"cd": ["--consistency-delta", "10", "--teacher-guidance", "2"], "ect": ["--consistency-delta", "10"],
             "trajectory": ["--trajectories", "8", "--teacher-steps", "4", "--teacher-guidance", "2"]}  # fmt: skip
    for method, flags in extra.items():
        assert distill(teacher[0], root / method, "--steps", "4", "--distill-method", method, *flags) == 0
    return {method: root / method for method in extra}


@pytest.mark.parametrize("method", ["cd", "ect", "trajectory"])
def test_distill_writes_a_consistency_checkpoint_that_samples_in_few_steps(teacher, students, tmp_path, method):
    import json

    out = students[method]
    config = json.loads((out / "config.json").read_text())
    assert config["objective"] == "consistency" and config["distill_method"] == method
    assert config["teacher"] == str(teacher[0]) and config["model"] == "small" and config["conditional"]
    assert config["lr"] == 1e-4 and config["warmup"] == 0  # distill's own defaults
    losses = [json.loads(line)["loss"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert len(losses) == 4 and all(x == x for x in losses)
    ckpt = out / "checkpoints/last.pt"
    for steps in (1, 2, 4):
        npz = tmp_path / f"s{steps}.npz"
        assert main(["sample", "--checkpoint", str(ckpt), "--steps", str(steps), "--n", "6", "--out", str(npz),
                     "--class-label", "all", "--guidance", "2"]) == 0  # fmt: skip
    assert main(["sample", "--checkpoint", str(ckpt), "--n", "4", "--out", str(tmp_path / "g.png"),
                 "--trajectory", str(tmp_path / "traj.png")]) == 0  # fmt: skip
    assert (tmp_path / "traj.png").stat().st_size > 0


def test_the_trajectory_bank_is_made_at_the_runs_precision(teacher, tmp_path, monkeypatch):
    """distill hands its --precision to teacher_trajectories; in bf16 the teacher runs under autocast, so the bank's
    ends move by bf16's rounding, and stay fp32 tensors, close to the fp32 bank's."""
    import cleardiffusion.train_run as train_run
    from cleardiffusion.generate import teacher_trajectories
    from test_fastpath import tiny_unet

    asked = []

    def spy(*args, **kwargs):
        asked.append(kwargs["precision"])
        return teacher_trajectories(*args, **kwargs)

    monkeypatch.setattr(train_run, "teacher_trajectories", spy)
    for precision in ("bf16", "fp32"):
        assert distill(teacher[0], tmp_path / precision, "--steps", "1", "--trajectories", "4", "--teacher-steps",
                       "2", "--precision", precision) == 0  # fmt: skip
    assert asked == ["bf16", "fp32"]
    schedule, net = NoiseSchedule.from_name("linear", 100), tiny_unet().eval()
    common = dict(n=4, steps=3, guidance=1.0, shape=(3, 8, 8), num_classes=0, null_label=None, label_dropout=0.0,
                  seed=0)  # fmt: skip
    fp32, bf16 = (teacher_trajectories(net, schedule, **common, precision=p).x0 for p in ("fp32", "bf16"))
    assert bf16.dtype == fp32.dtype == torch.float32
    assert not torch.equal(bf16, fp32) and torch.allclose(bf16, fp32, atol=0.1)


def test_dmd_defaults_apply_to_dmd_only_follow_the_teacher_and_give_way_to_flags():
    """dmd's step and EMA replace distill's own; from an unconditional teacher its batch, EMA and highest noise
    level too, from a conditional one the teacher run's batch and DMD's levels stay; a flag given replaces them all."""
    import dataclasses

    from cleardiffusion.cli.distill import config_from_teacher
    from cleardiffusion.train_config import TrainConfig

    unconditional = dataclasses.asdict(TrainConfig(batch_size=64, out="teacher"))
    conditional = {**unconditional, "conditional": True}
    given = {"teacher": "t.pt", "out": "o", "steps": 3}
    dmd = config_from_teacher(unconditional, {**given, "distill_method": "dmd"})
    assert (dmd.batch_size, dmd.lr, dmd.ema_decay, dmd.ema_warmup, dmd.dmd_t_max) == (16, 2e-5, 0.998, 0, 0.5)
    guided = config_from_teacher(conditional, {**given, "distill_method": "dmd"})
    assert (guided.batch_size, guided.lr, guided.ema_decay, guided.ema_warmup, guided.dmd_t_max) == (
        64, 2e-5, 0.995, 0, TrainConfig.dmd_t_max)  # fmt: skip
    flags = {"distill_method": "dmd", "batch_size": 32, "ema_decay": 0.99, "dmd_t_max": 0.98}
    flagged = config_from_teacher(unconditional, {**given, **flags})
    assert (flagged.batch_size, flagged.ema_decay, flagged.lr, flagged.dmd_t_max) == (32, 0.99, 2e-5, 0.98)
    trajectory = config_from_teacher(unconditional, given)  # the default method: the teacher's batch, distill's lr
    assert (trajectory.batch_size, trajectory.lr, trajectory.ema_decay) == (64, 1e-4, TrainConfig.ema_decay)


def test_the_trajectory_method_grows_a_student_from_an_unconditional_u_net_teacher_only():
    import dataclasses

    from cleardiffusion.cli.distill import config_from_teacher
    from cleardiffusion.train_config import TrainConfig

    unconditional = dataclasses.asdict(TrainConfig(out="teacher"))
    given = {"teacher": "t.pt", "out": "o", "steps": 3}
    assert config_from_teacher(unconditional, given).grow_student == 4
    assert config_from_teacher(unconditional, {**given, "grow_student": 0}).grow_student == 0
    assert config_from_teacher(unconditional, {**given, "student": "s.pt"}).grow_student == 0  # grown before, or not
    assert config_from_teacher({**unconditional, "conditional": True}, given).grow_student == 0
    assert config_from_teacher({**unconditional, "model": "vit-small"}, given).grow_student == 0
    for method in ("cd", "ect", "dmd"):
        assert config_from_teacher(unconditional, {**given, "distill_method": method}).grow_student == 0
    grown = config_from_teacher(unconditional, {**given, "distill_method": "dmd", "student": "s.pt"}, 4)
    assert (grown.grow_student, grown.model_options["extra_middle_blocks"]) == (0, 4)  # the student's network
    # ... and gives it a code of 20 classes where it grows it by default; dmd keeps a coded student's code
    assert config_from_teacher(unconditional, given).student_codes == 20
    assert config_from_teacher(unconditional, {**given, "student_codes": 0}).student_codes == 0
    assert config_from_teacher({**unconditional, "conditional": True}, given).student_codes == 0
    for method in ("cd", "ect", "dmd"):
        assert config_from_teacher(unconditional, {**given, "distill_method": method}).student_codes == 0
    coded = config_from_teacher(unconditional, {**given, "distill_method": "dmd", "student": "s.pt"}, 4, 20)
    assert (coded.student_codes, coded.model_options["code_classes"]) == (0, 20)


def test_student_codes_are_refused_where_nothing_would_teach_them(tmp_path):
    from cleardiffusion.errors import UsageError
    from cleardiffusion.train_config import TrainConfig, validate

    base = dict(objective="consistency", teacher="t.pt", out=str(tmp_path))
    refused = (({"model": "vit-small", "student_codes": 4}, "--student-codes gives a U-Net"),
               ({"student_codes": 1}, "chooses nothing"),
               ({"student_codes": 4, "student": "s.pt"}, "drop --student or --student-codes"))  # fmt: skip
    for change, message in refused:
        with pytest.raises(UsageError, match=message):
            validate(TrainConfig(**base, **change))
    for method in ("cd", "ect", "dmd"):
        extra = {"student": "s.pt"} if method == "dmd" else {}
        with pytest.raises(UsageError, match="student-codes"):
            validate(TrainConfig(**base, distill_method=method, student_codes=4, **extra), given={"student_codes"})


def test_end_codes_cluster_the_teachers_features_of_the_ends_one_code_per_trajectory():
    """k-means finds well-separated groups; end_codes gives equal ends equal codes and separates two kinds of end;
    teacher_trajectories(codes=K) gives every point of a trajectory its end's code."""
    from cleardiffusion.consistency import end_codes, kmeans
    from cleardiffusion.generate import teacher_trajectories
    from test_fastpath import tiny_unet

    g = torch.Generator().manual_seed(0)
    blobs = torch.cat([torch.randn(20, 4, generator=g) + 10 * c for c in range(3)])
    found = kmeans(blobs, 3)
    assert [len(set(found[20 * c : 20 * (c + 1)].tolist())) for c in range(3)] == [1, 1, 1]
    assert len(set(found.tolist())) == 3
    schedule, teacher = NoiseSchedule.from_name("linear", 100), tiny_unet().eval()
    ends = torch.cat([torch.full((3, 3, 8, 8), -1.0) + 0.01 * torch.randn(3, 3, 8, 8, generator=g),
                      torch.full((3, 3, 8, 8), 1.0) + 0.01 * torch.randn(3, 3, 8, 8, generator=g)])  # fmt: skip
    codes = end_codes(teacher, schedule, ends, 2)
    assert len(set(codes[:3].tolist())) == 1 and len(set(codes[3:].tolist())) == 1 and codes[0] != codes[3]
    bank = teacher_trajectories(teacher, schedule, n=6, steps=3, guidance=1.0, shape=(3, 8, 8), num_classes=0,
                                null_label=None, label_dropout=0.0, seed=0, codes=3)  # fmt: skip
    assert bank.code.shape == bank.t.shape and set(bank.code.tolist()) <= {0, 1, 2}
    for end in bank.x0.unique(dim=0):
        same = (bank.x0 == end).flatten(1).all(1)
        assert same.sum() == 3 and len(set(bank.code[same].tolist())) == 1  # its 3 solver points, one code
    plain = teacher_trajectories(teacher, schedule, n=6, steps=3, guidance=1.0, shape=(3, 8, 8), num_classes=0,
                                 null_label=None, label_dropout=0.0, seed=0)  # fmt: skip
    assert plain.code is None and torch.equal(plain.x0, bank.x0)


def test_the_trajectory_loss_of_a_coded_student_forces_the_ends_codes_and_trains_its_head():
    """With codes in the bank, TrajectoryLoss is the distance of the prediction given each end's code plus
    CODE_WEIGHT x the head's cross-entropy of those codes; the forced code and the logits are cleared after; a bank
    without codes gives the plain loss."""
    import dataclasses

    from cleardiffusion.consistency import CODE_WEIGHT, TrajectoryBank, TrajectoryLoss, distance
    from cleardiffusion.models.unet import UNet, UNetConfig
    from cleardiffusion.objective import as_eps_model

    torch.manual_seed(0)
    cfg = UNetConfig(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                     attention_resolutions=(), middle_attention=False, dropout=0.0, norm_groups=4)  # fmt: skip
    coded = UNet(dataclasses.replace(cfg, code_classes=3))
    with torch.no_grad():
        for p in coded.parameters():
            p.add_(0.1 * torch.randn_like(p))
    schedule = NoiseSchedule.from_name("linear", 100)
    x, x0 = torch.randn(5, 1, 8, 8), torch.rand(5, 1, 8, 8) * 2 - 1
    bank = TrajectoryBank(x, torch.tensor([99, 60, 30, 10, 0]), x0, torch.zeros(5, dtype=torch.long), False,
                          torch.tensor([0, 1, 2, 0, 1]))  # fmt: skip
    index = torch.tensor([0, 1, 4, 4])
    loss = TrajectoryLoss(schedule, "eps", bank)(coded, None, index, None)
    assert coded.forced_code is None and coded.code_logits is None  # cleared: no graph kept past the loss
    coded.forced_code = bank.code[index]
    pred = consistency_x0(as_eps_model(coded, schedule, "eps"), schedule, x[index], bank.t[index], None)
    logits, coded.forced_code = coded.code_logits, None
    expected = distance(pred, x0[index], "pseudo-huber") + CODE_WEIGHT * F.cross_entropy(logits, bank.code[index])
    torch.testing.assert_close(loss, expected)
    loss.backward()
    assert coded.code_head.out.weight.grad.abs().sum() > 0 and coded.code_embed.weight.grad.abs().sum() > 0
    plain = TrajectoryBank(x, bank.t, x0, bank.y, False)
    torch.testing.assert_close(TrajectoryLoss(schedule, "eps", plain)(coded, None, index, None), distance(
        consistency_x0(as_eps_model(coded, schedule, "eps"), schedule, x[index], bank.t[index], None), x0[index],
        "pseudo-huber"))  # fmt: skip


def test_dmd_starts_from_the_student_with_its_own_defaults_and_samples(teacher, students, tmp_path):
    import json

    from cleardiffusion.checkpoint import load_checkpoint

    student = students["trajectory"] / "checkpoints/last.pt"
    assert distill(teacher[0], tmp_path / "dmd", "--steps", "2", "--distill-method", "dmd", "--student", student,
                   "--teacher-guidance", "2", "--dmd-chain", "2", "--dmd-fake-steps", "2",
                   "--dmd-fake-lr", "3e-4", "--dmd-gan", "0.3", "--dmd-t-max", "0.7") == 0  # fmt: skip
    config = json.loads((tmp_path / "dmd/config.json").read_text())  # a conditional teacher: EMA 0.995
    assert (config["distill_method"], config["student"], config["lr"], config["ema_decay"], config["ema_warmup"]) == (
        "dmd", str(student), 2e-5, 0.995, 0)  # fmt: skip
    dmd_fields = ("dmd_chain", "dmd_fake_steps", "dmd_fake_lr", "dmd_gan", "dmd_t_max")
    assert [config[k] for k in dmd_fields] == [2, 2, 3e-4, 0.3, 0.7]
    before, start = load_checkpoint(teacher[0])["ema"], load_checkpoint(student)["ema"]
    after = load_checkpoint(tmp_path / "dmd/checkpoints/last.pt")["model"]
    from_student = max((after[k] - start[k]).abs().max().item() for k in start)
    assert from_student < 0.2 * max((start[k] - before[k]).abs().max().item() for k in start)
    assert main(["sample", "--checkpoint", str(tmp_path / "dmd/checkpoints/last.pt"), "--steps", "4", "--n", "4",
                 "--out", str(tmp_path / "s.npz")]) == 0  # fmt: skip


def test_a_chain_checkpoint_samples_one_step_with_its_own_network_and_more_with_the_chains(
    teacher, students, tmp_path, capsys
):
    import numpy as np

    from cleardiffusion.checkpoint import load_checkpoint
    from cleardiffusion.train_run import load_student

    chain = students["cd"] / "checkpoints/last.pt"
    student = students["trajectory"] / "checkpoints/last.pt"  # dmd draws from the global RNG: --chain must not
    run = ("--steps", "2", "--distill-method", "dmd", "--student", student, "--teacher-guidance", "2")
    assert distill(teacher[0], tmp_path / "alone", *run) == 0
    assert distill(teacher[0], tmp_path / "pair", *run, "--chain", chain) == 0
    pair, alone = tmp_path / "pair/checkpoints/last.pt", tmp_path / "alone/checkpoints/last.pt"
    saved, source = load_checkpoint(pair)["chain"], load_checkpoint(chain)
    assert all(torch.equal(saved[w][k], source[w][k]) for w in ("model", "ema") for k in source[w])

    def images(ckpt, steps):
        out = tmp_path / f"{ckpt.parent.parent.name}-{ckpt.parent.name}-{steps}.npz"
        assert main(["sample", "--checkpoint", str(ckpt), "--steps", str(steps), "--n", "4", "--out", str(out),
                     "--class-label", "all", "--precision", "fp32"]) == 0  # fmt: skip
        return np.load(out)["images"]

    # one step: the run's own network, as trained without --chain; 2 and 4: every step the chain's
    assert np.array_equal(images(pair, 1), images(alone, 1))
    assert not np.array_equal(images(pair, 2), images(alone, 2))
    for steps in (2, 4):
        assert np.array_equal(images(pair, steps), images(chain, steps))
    # a dmd --student of two networks goes on from the file's own, the one-step map
    own = load_student(str(pair), teacher_net(teacher))
    assert all(torch.equal(v, load_checkpoint(pair)["ema"][k]) for k, v in own.state_dict().items())
    # a --chain of two networks is refused: the chain must be one run's network
    assert distill(teacher[0], tmp_path / "again", *run, "--chain", pair) == 2
    err = capsys.readouterr().err.strip()
    assert "holds two networks itself" in err and len(err.splitlines()) == 1 and not (tmp_path / "again").exists()


def teacher_net(teacher):
    from cleardiffusion.checkpoint import load_for_sampling

    model, _, _ = load_for_sampling(teacher[0])
    return getattr(model, "net", model)


def test_a_grown_student_starts_from_the_teacher_its_new_blocks_step_faster_and_dmd_keeps_them(teacher, tmp_path):
    """--grow-student 2: the student is the teacher's U-Net with two more middle blocks; after one step from the
    teacher's weights its new blocks' last convs (zero at the start) moved GROWN_LR_RATIO times as far as the
    teacher's own; dmd from it builds the same network, and it samples in one step."""
    import json

    from cleardiffusion.checkpoint import load_checkpoint
    from cleardiffusion.train import GROWN_LR_RATIO

    assert distill(teacher[0], tmp_path / "grown", "--steps", "1", "--trajectories", "8", "--teacher-steps", "4",
                   "--grow-student", "2") == 0  # fmt: skip
    saved, before = load_checkpoint(tmp_path / "grown/checkpoints/last.pt"), load_checkpoint(teacher[0])["ema"]
    assert saved["model_spec"]["config"]["extra_middle_blocks"] == 2
    after = saved["model"]
    new = [k for k in after if k not in before]
    assert new and all(k.startswith("middle.") for k in new)
    old_conv2 = [k for k in before if k.endswith("conv2.weight")]
    moved_old = max((after[k] - before[k]).abs().max().item() for k in old_conv2)
    moved_new = max(after[k].abs().max().item() for k in new if k.endswith("conv2.weight"))
    assert moved_new == pytest.approx(GROWN_LR_RATIO * moved_old, rel=0.05)  # Adam's first step: lr * sign
    student = tmp_path / "grown/checkpoints/last.pt"
    assert distill(teacher[0], tmp_path / "dmd", "--steps", "1", "--distill-method", "dmd", "--student", student,
                   "--teacher-guidance", "2") == 0  # fmt: skip
    dmd = load_checkpoint(tmp_path / "dmd/checkpoints/last.pt")
    assert dmd["model_spec"] == saved["model_spec"]
    assert json.loads((tmp_path / "dmd/config.json").read_text())["grow_student"] == 0
    assert main(["sample", "--checkpoint", str(tmp_path / "dmd/checkpoints/last.pt"), "--steps", "1", "--n", "4",
                 "--out", str(tmp_path / "s.npz")]) == 0  # fmt: skip


def test_a_coded_student_learns_its_code_from_the_trajectories_and_dmd_keeps_it(teacher, tmp_path):
    """--student-codes 3: the student's network has a code of 3 classes, which its trajectory stage moves from
    zero; dmd from it builds the same network; it samples in one step and in two."""
    from cleardiffusion.checkpoint import load_checkpoint

    assert distill(teacher[0], tmp_path / "coded", "--steps", "2", "--trajectories", "8", "--teacher-steps", "4",
                   "--grow-student", "1", "--student-codes", "3") == 0  # fmt: skip
    saved = load_checkpoint(tmp_path / "coded/checkpoints/last.pt")
    assert saved["model_spec"]["config"]["code_classes"] == 3
    assert saved["model"]["code_embed.weight"].abs().sum() > 0
    student = tmp_path / "coded/checkpoints/last.pt"
    assert distill(teacher[0], tmp_path / "dmd", "--steps", "1", "--distill-method", "dmd", "--student", student,
                   "--teacher-guidance", "2") == 0  # fmt: skip
    assert load_checkpoint(tmp_path / "dmd/checkpoints/last.pt")["model_spec"] == saved["model_spec"]
    for steps in ("1", "2"):
        assert main(["sample", "--checkpoint", str(tmp_path / "dmd/checkpoints/last.pt"), "--steps", steps,
                     "--n", "4", "--out", str(tmp_path / f"s{steps}.npz")]) == 0  # fmt: skip


def test_grow_student_is_refused_without_a_u_net(tmp_path):
    from cleardiffusion.errors import UsageError
    from cleardiffusion.train_config import TrainConfig, validate

    config = TrainConfig(objective="consistency", teacher="t.pt", model="vit-small", grow_student=2, out=str(tmp_path))
    with pytest.raises(UsageError, match="--grow-student adds U-Net blocks"):
        validate(config)


def test_distilled_weights_start_from_the_teacher_and_move(teacher, students):
    from cleardiffusion.checkpoint import load_checkpoint

    before = load_checkpoint(teacher[0])["ema"]
    after = load_checkpoint(students["cd"] / "checkpoints/last.pt")["model"]
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed and all(torch.isfinite(v).all() for v in after.values())
    # 4 steps at lr 1e-4 from the teacher's EMA weights: the student is still close to them
    assert max((after[k] - before[k]).abs().max().item() for k in changed) < 0.01


@pytest.mark.parametrize(
    "which, extra, message",
    [
        ("flow", [], "is a flow model; distill needs a DDPM teacher"),
        ("missing", [], "no checkpoint at"),
        ("ddpm", [], "say how long to distill"),
        ("ddpm", ["--steps", "2", "--distill-method", "ect", "--teacher-guidance", "2"], "does nothing with"),
        (
            "ddpm",
            ["--steps", "2", "--distill-method", "cd", "--consistency-delta", "100"],
            "must be below the teacher's",
        ),
        ("ddpm", ["--steps", "2", "--consistency-delta", "5"], "does nothing with --distill-method trajectory"),
        ("ddpm", ["--steps", "2", "--distill-method", "dmd"], "pass --student CKPT"),
        (
            "ddpm",
            ["--steps", "2", "--distill-method", "dmd", "--student", "TEACHER"],
            "is not a `cleardiffusion distill`",
        ),
        ("ddpm", ["--steps", "2", "--distill-method", "dmd", "--student", "x", "--resume"], "cannot resume"),
        ("ddpm", ["--steps", "2", "--distill-method", "dmd", "--student", "x", "--trajectories", "4"], "does nothing"),
        ("ddpm", ["--steps", "2", "--dmd-chain", "4"], "does nothing with --distill-method trajectory"),
        ("ddpm", ["--steps", "2", "--distill-method", "cd", "--dmd-gan", "0.3"], "does nothing with --distill-method"),
        ("ddpm", ["--steps", "2", "--distill-method", "cd", "--autoguide", "TEACHER"], "does nothing with"),
        ("ddpm", ["--steps", "2", "--autoguide-from", "0.15"], "--autoguide-from does nothing without --autoguide"),
        ("ddpm", ["--steps", "2", "--autoguide", "TEACHER", "--autoguide-from", "1"], "--autoguide-from"),
        (
            "ddpm",
            ["--steps", "2", "--distill-method", "dmd", "--student", "x", "--autoguide", "TEACHER"],
            "--autoguide guides an unconditional teacher; this one is conditional",
        ),
        ("ddpm", ["--steps", "2", "--chain", "TEACHER"], "is not a `cleardiffusion distill` checkpoint"),
        ("ddpm", ["--steps", "2", "--chain", "none.pt"], "no checkpoint at none.pt"),
    ],
)
def test_distill_refuses_bad_input_in_one_line_writing_nothing(teacher, tmp_path, capsys, which, extra, message):
    path = {"ddpm": teacher[0], "flow": teacher[1], "missing": tmp_path / "none.pt"}[which]
    out = tmp_path / "out"
    args = [
        "distill",
        "--teacher",
        str(path),
        "--out",
        str(out),
        *[str(teacher[0]) if a == "TEACHER" else a for a in extra],
    ]
    if "--steps" not in extra and which != "ddpm":
        args += ["--steps", "2"]
    assert main(args) == 2
    err = capsys.readouterr().err.strip()
    assert message.lower() in err.lower() and len(err.splitlines()) == 1
    assert not out.exists()


def test_a_corrupt_teacher_is_one_line(teacher, tmp_path, capsys):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(teacher[0].read_bytes()[:300])
    assert main(["distill", "--teacher", str(bad), "--steps", "2", "--out", str(tmp_path / "o")]) == 2
    assert len(capsys.readouterr().err.strip().splitlines()) == 1 and not (tmp_path / "o").exists()


def test_train_refuses_consistency_without_a_teacher_and_distill_options_without_consistency(teacher, capsys):
    data = teacher[2]
    assert main(tiny_flags(data, data.parent / "x", 2, objective="consistency")) == 2
    assert "--teacher" in capsys.readouterr().err
    assert main(tiny_flags(data, data.parent / "y", 2, consistency_delta=5)) == 2
    assert "--consistency-delta does nothing without --objective consistency" in capsys.readouterr().err


def test_samplers_refuse_the_other_kind_of_checkpoint(teacher, students, tmp_path, capsys):
    cm = students["cd"] / "checkpoints/last.pt"
    cases = [(cm, ["--sampler", "ddim"]), (cm, ["--steps", "0"]), (cm, ["--steps", "9"]),
             (teacher[0], ["--sampler", "consistency"])]  # fmt: skip
    for ckpt, extra in cases:
        out = tmp_path / "x.png"
        try:
            code = main(["sample", "--checkpoint", str(ckpt), "--n", "2", "--out", str(out), *extra])
        except SystemExit as e:
            code = e.code
        assert code == 2 and not out.exists(), extra
        assert len(capsys.readouterr().err.strip().splitlines()) == 1


def test_the_trajectory_bank_pairs_each_ode_point_with_its_end():
    """Gaussian data, the exact eps as the teacher: the banked points of one trajectory all lie on one
    probability-flow ODE trajectory (the exact consistency function is the same at each, to the solver's
    error), each is paired with the end the teacher's solver reached from that trajectory's start, and the
    trajectory loss tells the exact map from a shifted one."""
    from cleardiffusion.consistency import TrajectoryLoss
    from cleardiffusion.generate import teacher_trajectories
    from cleardiffusion.samplers import dpmpp_2m_sample

    mu, s, n, steps = 0.2, 0.5, 8, 16
    teacher, exact = ExactGaussian(mu, s, "eps"), ExactGaussian(mu, s, "x0")
    bank = teacher_trajectories(teacher, SCHEDULE, n=n, steps=steps, guidance=1.0, shape=(1, 2, 2), num_classes=0,
                                null_label=None, label_dropout=0.0, seed=0, device="cpu")  # fmt: skip
    grid = SCHEDULE.timesteps(steps, "trailing")
    assert len(bank) == n * steps and bank.t.reshape(steps, n)[:, 0].tolist() == grid  # point k of each, in order
    assert not bank.conditional  # an unconditional teacher's bank: the loss passes no labels
    on_trajectory = exact(bank.x.double(), bank.t).reshape(steps, n, -1)[:-2]  # all but the last two points
    assert (on_trajectory - on_trajectory[0]).abs().max() < 0.02 * s  # the solver follows the trajectory
    starts = bank.x.reshape(steps, n, 1, 2, 2)[0]
    ends = dpmpp_2m_sample(teacher, SCHEDULE, starts, grid, clip_x0=True, solver_type="exact")
    torch.testing.assert_close(bank.x0.reshape(steps, n, 1, 2, 2), ends.expand(steps, *ends.shape).float())
    loss = TrajectoryLoss(SCHEDULE, "x0", bank, "mse")
    index = torch.arange(len(bank))
    assert loss(ExactGaussian(mu + 0.1, s, "x0"), None, index, None) > 2 * loss(exact, None, index, None)


def test_a_conditional_bank_draws_its_labels_from_the_seed_and_follows_the_guided_ode_for_them():
    """Labels: classes uniformly from the seed's generator, the null class with probability label_dropout. A
    labelled trajectory starts from sample k's noise of seed (seed, k) and follows the guided ODE; a null one
    starts from (seed + 1, k) and follows the unconditional ODE (DPM-Solver++(2M), trailing, exact, clipped);
    every point of a trajectory carries its label, over batches smaller than the groups."""
    from cleardiffusion.generate import sample_generator, teacher_trajectories
    from cleardiffusion.guidance import guided_model
    from cleardiffusion.samplers import dpmpp_2m_sample
    from test_plumbing import StubDenoiser  # 3 classes, null label 3; its output depends on the label

    class Conditional(StubDenoiser):
        def forward(self, x, t, y=None):
            assert not torch.is_autocast_enabled("cpu")  # the bank is made in fp32, as few_step.md measured it
            return super().forward(x, t, y)

    n, steps, seed, shape = 13, 3, 4, (1, 2, 2)

    def bank_of(dropout):
        return teacher_trajectories(Conditional(), SCHEDULE, n=n, steps=steps, guidance=2.0, shape=shape, num_classes=3,
                                    null_label=3, label_dropout=dropout, seed=seed, batch_size=4)  # fmt: skip

    bank = bank_of(0.3)
    g = torch.Generator().manual_seed(seed)
    y = torch.randint(0, 3, (n,), generator=g)
    y = torch.where(torch.rand(n, generator=g) < 0.3, 3, y)
    labelled, null = y[y != 3], y[y == 3]
    assert len(labelled) > 4 and len(null) > 1 and bank.conditional  # both groups, each over several batches
    grid = SCHEDULE.timesteps(steps, "trailing")
    first = bank.t == grid[0]  # one entry per trajectory, group by group, sample by sample
    assert len(bank) == n * steps and torch.equal(bank.y[first], torch.cat([labelled, null]))
    assert torch.equal(torch.bincount(bank.y, minlength=4), steps * torch.bincount(y, minlength=4))
    starts = torch.stack([torch.randn(shape, generator=sample_generator(seed + group, k))
                          for group, size in ((0, len(labelled)), (1, len(null))) for k in range(size)])  # fmt: skip
    torch.testing.assert_close(bank.x[first], starts)
    groups = ((starts[: len(labelled)], labelled, 2.0), (starts[len(labelled) :], None, 1.0))  # None: unconditional
    ends = [dpmpp_2m_sample(guided_model(Conditional(), labels, scale), SCHEDULE, x, grid, clip_x0=True,
                            solver_type="exact") for x, labels, scale in groups]  # fmt: skip
    torch.testing.assert_close(bank.x0[first], torch.cat(ends).float(), atol=1e-6, rtol=0)
    for t in grid:  # each later point of a trajectory has that trajectory's end and label
        at = bank.t == t
        assert torch.equal(bank.x0[at], bank.x0[first]) and torch.equal(bank.y[at], bank.y[first])
    everyone_null = bank_of(1.0)  # no labelled trajectory: the null group is made all the same
    assert len(everyone_null) == n * steps and (everyone_null.y == 3).all()
    one_class = teacher_trajectories(Conditional(), SCHEDULE, n=4, steps=2, guidance=2.0, shape=shape, num_classes=1,
                                     null_label=1, label_dropout=0.5, seed=seed)  # fmt: skip
    assert one_class.conditional  # a folder dataset of one class still trains a conditional student


def test_dmd_takes_its_real_score_from_the_autoguided_teacher_when_given():
    """--autoguide: DMD's real x0 comes from eps_bad + w (eps_teacher - eps_bad) (guidance.AutoGuidance), not
    from the teacher alone; the fake network still starts as a copy of the teacher."""
    from cleardiffusion.guidance import AutoGuidance
    from cleardiffusion.schedule import x0_from_eps
    from test_fastpath import tiny_unet

    torch.manual_seed(0)
    good, bad = tiny_unet().eval(), tiny_unet().eval()
    with torch.no_grad():  # away from the zero-initialised output layer, so that the two models differ
        for p in [*good.parameters(), *bad.parameters()]:
            p.add_(0.05 * torch.randn_like(p))
    x_t, t = torch.randn(4, 3, 8, 8), torch.tensor([10, 40, 70, 99])
    plain = DistributionMatchingLoss(SCHEDULE, "eps", good, grid=jump_grid(SCHEDULE, 1), lr=1e-5)
    guided = DistributionMatchingLoss(SCHEDULE, "eps", good, grid=jump_grid(SCHEDULE, 1), lr=1e-5,
                                      real=AutoGuidance(good, bad, 2.0))  # fmt: skip
    with torch.no_grad():
        eps = bad(x_t, t) + 2.0 * (good(x_t, t) - bad(x_t, t))
        expected = x0_from_eps(x_t, eps, *SCHEDULE.coefficients(t, 4))
        torch.testing.assert_close(guided.x0_real(x_t, t, None), expected)
        assert not torch.allclose(plain.x0_real(x_t, t, None), expected)
    assert all(torch.equal(a, b) for a, b in zip(guided.fake_net.state_dict().values(), good.state_dict().values()))


def test_autoguided_trajectories_of_two_gaussians_are_those_of_the_extrapolated_gaussian():
    """For data N(mu, s^2) the exact eps is affine in mu, so autoguiding N(mu_good, s^2) by N(mu_bad, s^2) at w,
    eps_bad + w (eps_good - eps_bad), is exactly the eps of N(mu_bad + w (mu_good - mu_bad), s^2): the bank made
    with --autoguide (trajectory distillation's targets) must be that Gaussian's bank, point for point."""
    from cleardiffusion.generate import teacher_trajectories

    good, bad, w, s = 0.3, -0.1, 1.5, 0.5
    common = dict(n=6, steps=8, shape=(1, 2, 2), num_classes=0, null_label=None, label_dropout=0.0, seed=0,
                  device="cpu")  # fmt: skip
    guided = teacher_trajectories(ExactGaussian(good, s, "eps"), SCHEDULE, guidance=w,
                                  autoguide=ExactGaussian(bad, s, "eps"), **common)  # fmt: skip
    extrapolated = teacher_trajectories(ExactGaussian(bad + w * (good - bad), s, "eps"), SCHEDULE, guidance=1.0,
                                        **common)  # fmt: skip
    plain = teacher_trajectories(ExactGaussian(good, s, "eps"), SCHEDULE, guidance=1.0, **common)
    torch.testing.assert_close(guided.x, extrapolated.x, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(guided.x0, extrapolated.x0, rtol=1e-5, atol=1e-5)
    assert (guided.x0 - plain.x0).abs().max() > 0.05
    # --autoguide-from: guided from that timestep up only; above every timestep visited, the plain teacher's bank
    never = teacher_trajectories(ExactGaussian(good, s, "eps"), SCHEDULE, guidance=w, autoguide_from=SCHEDULE.T,
                                 autoguide=ExactGaussian(bad, s, "eps"), **common)  # fmt: skip
    torch.testing.assert_close(never.x0, plain.x0, rtol=1e-5, atol=1e-5)
    half = teacher_trajectories(ExactGaussian(good, s, "eps"), SCHEDULE, guidance=w, autoguide_from=SCHEDULE.T // 2,
                                autoguide=ExactGaussian(bad, s, "eps"), **common)  # fmt: skip
    assert min((half.x0 - plain.x0).abs().max(), (half.x0 - guided.x0).abs().max()) > 1e-3


def test_the_discriminator_reads_the_fake_networks_middle_block_without_its_decoder():
    """The GAN term's features are the fake U-Net's middle block's output, the one its full forward computes (a
    hook on the middle during a forward checks it), and taking them does not run the decoder."""
    from test_fastpath import tiny_unet

    torch.manual_seed(0)
    dmd = DistributionMatchingLoss(SCHEDULE, "eps", tiny_unet().eval(), grid=jump_grid(SCHEDULE, 1), lr=1e-4,
                                   gan_weight=0.3)  # fmt: skip
    net, seen = dmd.fake_net, []
    x, t = torch.randn(3, 3, 8, 8), torch.tensor([0, 5, 9])
    with torch.no_grad():
        for p in net.parameters():  # trained weights: no zero convolution hides a block
            p.normal_(0, 0.1)
    net.middle.register_forward_hook(lambda module, inputs, out: seen.append(out))
    net.decoder[0].register_forward_hook(lambda module, inputs, out: seen.append("decoder"))
    with torch.no_grad():
        net(x, t)
        torch.testing.assert_close(dmd.features(x, t), seen[0], rtol=0, atol=0)
    assert seen.count("decoder") == 1  # the full forward's, not the features'
