"""Samplers against exact answers: an oracle denoiser for Gaussian data, DDIM's limits, timestep lists."""

import pytest
import torch

from cleardiffusion import samplers
from cleardiffusion.samplers import check_timesteps, ddim_sample, ddpm_sample, heun_sample, make_timesteps
from cleardiffusion.schedule import NoiseSchedule

MU, S = 0.5, 0.3  # the data distribution N(MU, S^2), away from the prior N(0, 1)


def gaussian_oracle(schedule):
    """The exact eps for Gaussian data: E[eps | x_t] = sqrt(1 - ab)(x_t - sqrt(ab) MU) / (ab S^2 + 1 - ab)."""

    def eps_model(x_t, t):
        ab = schedule.alpha_bar64[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * MU) / (ab * S**2 + 1 - ab)

    return eps_model


def affine_output(monkeypatch, sampler, schedule, timesteps, model=None, **options) -> tuple[float, float, float, int]:
    """With the Gaussian oracle's exact (affine) eps a sampler's output is affine in x_T and its noise draws z_k:
    out = a x_T + sum_k b_k z_k + c. ONE batch reads off c (row 0: x_T = 0, no noise), b_k (row k + 1: noise 1
    at draw k only) and a (last row: x_T = 1). Returns a, c, sum_k b_k^2 and the number of draws; for x_T ~
    N(m, v) the output's mean is a m + c and its variance a^2 v + sum_k b_k^2, exactly, no Monte Carlo."""
    draws = []

    def unit_noise(x, generator):  # draw k puts noise 1 on row k + 1
        z = torch.zeros_like(x)
        z[len(draws) + 1] = 1.0
        draws.append(z)
        return z

    monkeypatch.setattr(samplers, "randn_like", unit_noise)
    x_T = torch.zeros(len(timesteps) + 2, 1, dtype=torch.float64)  # rows for a draw on every step
    x_T[-1] = 1.0
    out = sampler(model or gaussian_oracle(schedule), schedule, x_T, timesteps, **options)[:, 0]
    c, b, a = out[0], out[1 : len(draws) + 1] - out[0], out[-1] - out[0]
    assert (out[len(draws) + 1 : -1] == c).all()  # rows no draw touched stay at c
    return float(a), float(c), float((b**2).sum()), len(draws)


def exact_output_moments(monkeypatch, sampler, schedule, timesteps, **options) -> tuple[float, float, int]:
    """The exact mean and variance of a sampler's output for x_T ~ N(0, 1), and its number of noise draws."""
    a, c, b2, draws = affine_output(monkeypatch, sampler, schedule, timesteps, **options)
    return c, a**2 + b2, draws


def moments_by_recursion(schedule, timesteps, kind: str, eta: float = 0.0) -> tuple[float, float]:
    """Mean and variance pushed through each step by hand, from the papers' own forms of the step:
    DDPM, Ho et al. 2020 Eq. 11, x_s = (x_t - beta / sqrt(1 - ab_t) eps) / sqrt(1 - beta) + sigma z with
    beta = 1 - ab_t / ab_s and sigma^2 = beta ('beta') or beta (1 - ab_s) / (1 - ab_t) ('posterior'), no noise
    on the last step; DDIM, Song et al. 2021 Eq. 12 with Eq. 16's sigma. The oracle's eps is
    k (x_t - sqrt(ab_t) MU) with k = sqrt(1 - ab_t) / (ab_t S^2 + 1 - ab_t), so each step is
    x_s = A x_t + B + sigma z: mean <- A mean + B, var <- A^2 var + sigma^2."""
    ab = schedule.alpha_bar64.tolist()
    mean, var = 0.0, 1.0
    for i, t in enumerate(timesteps):
        last = i + 1 == len(timesteps)
        ab_t, ab_s = ab[t], 1.0 if last else ab[timesteps[i + 1]]
        k = (1 - ab_t) ** 0.5 / (ab_t * S**2 + 1 - ab_t)
        e_x, e_c = k, -k * ab_t**0.5 * MU  # eps = e_x x_t + e_c
        if kind == "ddpm":
            beta = 1 - ab_t / ab_s
            g = beta / (1 - ab_t) ** 0.5
            A, B = (1 - g * e_x) / (1 - beta) ** 0.5, -g * e_c / (1 - beta) ** 0.5
            sigma2 = 0.0 if last else (beta if eta == 0 else beta * (1 - ab_s) / (1 - ab_t))
        else:
            sigma2 = eta**2 * (1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s)
            x0_x, x0_c = (1 - (1 - ab_t) ** 0.5 * e_x) / ab_t**0.5, -((1 - ab_t) ** 0.5) * e_c / ab_t**0.5
            direction = max(1 - ab_s - sigma2, 0.0) ** 0.5
            A, B = ab_s**0.5 * x0_x + direction * e_x, ab_s**0.5 * x0_c + direction * e_c
        mean, var = A * mean + B, A**2 * var + sigma2
    return mean, var


@pytest.mark.parametrize(
    "sampler, options, steps, kind, eta",
    [
        (ddpm_sample, {"variance": "beta"}, 1000, "ddpm", 0.0),
        (ddpm_sample, {"variance": "posterior"}, 1000, "ddpm", 1.0),  # eta = 1 selects beta_tilde above
        (ddpm_sample, {"variance": "posterior"}, 40, "ddpm", 1.0),  # a subsequence: beta between visited steps
        (ddim_sample, {"eta": 0.0}, 50, "ddim", 0.0),
        (ddim_sample, {"eta": 0.5}, 50, "ddim", 0.5),
        (ddim_sample, {"eta": 1.0}, 1000, "ddim", 1.0),
    ],
)
def test_output_moments_are_exactly_the_hand_recursion(monkeypatch, sampler, options, steps, kind, eta):
    """The samplers' exact output moments (affine batch) equal the moments pushed by hand through the papers'
    step formulas to ~1e-12, every coefficient and every noise draw (none on the last step) included; over all
    1000 steps both land on the data distribution N(MU, S^2)."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    ts = make_timesteps(1000, steps)
    mean, var, draws = exact_output_moments(monkeypatch, sampler, schedule, ts, **options)
    expected = moments_by_recursion(schedule, ts, kind, eta)
    assert (mean, var) == pytest.approx(expected, rel=1e-10, abs=1e-12)
    assert draws == (0 if (kind == "ddim" and eta == 0) else steps - 1)  # no noise on the last step
    if steps == 1000:
        assert mean == pytest.approx(MU, abs=2e-3) and var**0.5 == pytest.approx(S, rel=0.02)


@pytest.mark.parametrize("sampler, options", [(ddim_sample, {"eta": 0.0}), (ddpm_sample, {"variance": "posterior"})])
def test_oracle_error_shrinks_as_steps_grow(monkeypatch, sampler, options):
    """Fewer steps are a coarser discretisation: the exact std's error falls monotonically towards zero."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    errors = []
    for steps in (10, 50, 250):
        mean, var, _ = exact_output_moments(monkeypatch, sampler, schedule, make_timesteps(1000, steps), **options)
        assert mean == pytest.approx(MU, abs=0.015)
        errors.append(abs(var**0.5 - S))
    assert errors[0] > errors[1] > errors[2] and errors[2] < 0.015


def test_ddim_eta0_is_deterministic():
    schedule = NoiseSchedule.from_name("cosine", 200)
    x_T = torch.randn(4, 3, generator=torch.Generator().manual_seed(1))
    eps_model = lambda x, t: torch.tanh(x) * (t[:, None] / 200)  # noqa: E731
    a = ddim_sample(eps_model, schedule, x_T, make_timesteps(200, 10), generator=torch.Generator().manual_seed(2))
    b = ddim_sample(eps_model, schedule, x_T, make_timesteps(200, 10), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_ddim_eta1_over_all_steps_is_ddpm_with_posterior_variance():
    schedule = NoiseSchedule.from_name("linear", 100)
    x_T = torch.randn(6, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    eps_model = lambda x, t: torch.sin(x) + t[:, None] / 100  # noqa: E731
    a = ddim_sample(eps_model, schedule, x_T, eta=1.0, generator=torch.Generator().manual_seed(5))
    b = ddpm_sample(eps_model, schedule, x_T, variance="posterior", generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(a, b, atol=1e-9, rtol=1e-9)
    c = ddpm_sample(eps_model, schedule, x_T, variance="beta", generator=torch.Generator().manual_seed(5))
    assert (a - c).abs().max() > 1e-3  # the two DDPM variances really differ


def test_per_sample_generators_make_samples_independent_of_batch():
    schedule = NoiseSchedule.from_name("linear", 50)
    eps_model = lambda x, t: 0.1 * x  # noqa: E731
    gens = lambda: [torch.Generator().manual_seed(i) for i in range(4)]  # noqa: E731
    x_T = torch.stack([torch.randn(3, generator=torch.Generator().manual_seed(10 + i)) for i in range(4)])
    full = ddpm_sample(eps_model, schedule, x_T, generator=gens())
    g = gens()
    half = ddpm_sample(eps_model, schedule, x_T[2:], generator=g[2:])
    torch.testing.assert_close(full[2:], half)


def test_callback_sees_every_step_with_x0_prediction():
    schedule = NoiseSchedule.from_name("linear", 30)
    seen = []
    ddim_sample(lambda x, t: torch.zeros_like(x), schedule, torch.ones(2, 3), make_timesteps(30, 5),
                callback=lambda i, t, x_t, x0: seen.append((i, t, x_t.shape, x0.shape)))  # fmt: skip
    assert [s[:2] for s in seen] == list(enumerate(make_timesteps(30, 5)))
    assert all(s[2] == s[3] == (2, 3) for s in seen)


def steep_eps(x, t):
    """A nonlinear eps whose x_0 prediction leaves [-1, 1] for |x| of a few units, so clipping binds."""
    return -0.5 * torch.tanh(x) + 0.3 * torch.sin(3 * x) * t[:, None] / 100


def test_clip_x0_keeps_predictions_in_range():
    schedule = NoiseSchedule.from_name("linear", 100)
    x0s = []
    ddpm_sample(lambda x, t: -5 * torch.ones_like(x), schedule, torch.randn(3, 2), clip_x0=True,
                generator=torch.Generator().manual_seed(0),
                callback=lambda i, t, x_t, x0: x0s.append(x0))  # fmt: skip
    assert all(x0.abs().max() <= 1 for x0 in x0s) and max(x0.abs().max() for x0 in x0s) == 1  # it bound


@pytest.mark.parametrize("eta", [0.0, 0.7])
def test_clipped_ddim_by_hand(monkeypatch, eta):
    """Song et al. 2021 Eq. 12 with x_0 clamped AND eps re-derived from the clamped x_0 (the direction term
    must point from the clamped x_0 to x_t), computed step by step here."""
    z = torch.linspace(-1, 1, 7, dtype=torch.float64)[:, None]
    monkeypatch.setattr(samplers, "randn_like", lambda x, generator: z.clone())
    schedule = NoiseSchedule.from_name("linear", 100)
    ab = schedule.alpha_bar64.tolist() + [1.0]  # ab[-1] = 1: after the last step
    ts = [90, 60, 30, 5]
    x_T = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    x, clipped = x_T, False
    for t, s in zip(ts, ts[1:] + [-1]):
        eps = steep_eps(x, torch.full((7,), t))
        x0 = (x - (1 - ab[t]) ** 0.5 * eps) / ab[t] ** 0.5
        clipped |= bool((x0.abs() > 1).any())
        x0 = x0.clamp(-1, 1)
        eps = (x - ab[t] ** 0.5 * x0) / (1 - ab[t]) ** 0.5
        sigma = eta * ((1 - ab[s]) / (1 - ab[t]) * (1 - ab[t] / ab[s])) ** 0.5
        x = ab[s] ** 0.5 * x0 + (1 - ab[s] - sigma**2) ** 0.5 * eps + sigma * z
    assert clipped
    ours = ddim_sample(steep_eps, schedule, x_T, ts, eta=eta, clip_x0=True)
    torch.testing.assert_close(ours, x, rtol=1e-12, atol=1e-12)
    assert (ours - ddim_sample(steep_eps, schedule, x_T, ts, eta=eta)).abs().max() > 1e-2


def test_clipped_heun_by_hand():
    """Karras et al. 2022 Algorithm 1 in its own variables, the denoiser D(x_hat; sigma) clamped to [-1, 1]:
    d = (x_hat - D) / sigma at both evaluations of a step, an Euler step to sigma = 0 at the end."""
    schedule = NoiseSchedule.from_name("linear", 100)
    ab = schedule.alpha_bar64.tolist() + [1.0]
    ts = [90, 60, 30, 5]
    sigma = {t: ((1 - ab[t]) / ab[t]) ** 0.5 for t in ts + [-1]}

    def slope(x_hat, t):  # (x_hat - D) / sigma with D = clamp(x_hat - sigma eps(x_t, t)), x_t = x_hat sqrt(ab)
        D = x_hat - sigma[t] * steep_eps(x_hat * ab[t] ** 0.5, torch.full((7,), t))
        return (x_hat - D.clamp(-1, 1)) / sigma[t]

    x_T = torch.linspace(-3, 3, 7, dtype=torch.float64)[:, None]
    x_hat = x_T / ab[ts[0]] ** 0.5
    for t, s in zip(ts, ts[1:] + [-1]):
        d = slope(x_hat, t)
        x_next = x_hat + (sigma[s] - sigma[t]) * d
        if s >= 0:
            x_next = x_hat + (sigma[s] - sigma[t]) * (d + slope(x_next, s)) / 2
        x_hat = x_next
    ours = heun_sample(steep_eps, schedule, x_T, ts, clip_x0=True)
    torch.testing.assert_close(ours, x_hat, rtol=1e-12, atol=1e-12)
    assert (ours - heun_sample(steep_eps, schedule, x_T, ts)).abs().max() > 1e-2


def test_make_timesteps():
    for spacing in ("uniform", "quadratic"):
        for T, counts in ((1000, (1, 5, 50, 1000)), (7, range(1, 8)), (100, range(1, 101))):
            for steps in counts:  # every count up to T: quadratic's pushed-apart indices stay below T
                ts = make_timesteps(T, steps, spacing)
                assert len(ts) == steps and all(0 <= t < T for t in ts)
                assert all(a > b for a, b in zip(ts, ts[1:]))
    assert make_timesteps(100, 100) == list(range(99, -1, -1))
    assert make_timesteps(1000, 10) == [900, 800, 700, 600, 500, 400, 300, 200, 100, 0]
    q = make_timesteps(1000, 10, "quadratic")
    assert q[-2] - q[-1] < q[0] - q[1]  # denser near t = 0


def test_trailing_spacing_starts_at_pure_noise_and_ends_a_stride_above_zero():
    """Lin et al. 2024, Table 2: round(T - i T / steps) - 1 for i = 0..steps-1, diffusers' 'trailing'."""
    assert make_timesteps(1000, 10, "trailing") == [999, 899, 799, 699, 599, 499, 399, 299, 199, 99]
    assert make_timesteps(1000, 3, "trailing") == [999, 666, 332]
    for T in (7, 100, 1000):
        for steps in range(1, T + 1, max(T // 37, 1)):
            ts = make_timesteps(T, steps, "trailing")
            assert len(ts) == steps and ts[0] == T - 1 and all(a > b for a, b in zip(ts, ts[1:])) and ts[-1] >= 0
            assert ts[-1] == round(T / steps) - 1  # one stride above the clean end
        assert make_timesteps(T, T, "trailing") == list(range(T - 1, -1, -1))


@pytest.mark.parametrize("steps", [0, -3, 1001])
def test_impossible_step_counts_raise(steps):
    with pytest.raises(ValueError, match="between 1 and T = 1000"):
        make_timesteps(1000, steps)


def test_explicit_timesteps_are_validated():
    schedule = NoiseSchedule.from_name("linear", 10)
    assert check_timesteps(schedule, [9, 4, 0]) == [9, 4, 0]
    assert check_timesteps(schedule, None) == [9, 8, 7, 6, 5, 4, 3, 2, 1, 0]  # None: every index, T-1 down to 0
    for bad in ([3, 5], [5, 5, 2]):  # rising, or an index repeated
        with pytest.raises(ValueError, match="strictly decreasing"):
            check_timesteps(schedule, bad)
    with pytest.raises(ValueError, match="0..9"):
        check_timesteps(schedule, [10, 2])
    with pytest.raises(ValueError, match="unknown spacing"):
        make_timesteps(10, 3, "cubic")
