"""The schedule's mathematics (Ho et al. 2020 Eqs. 4, 6-7, Nichol & Dhariwal 2021 Eq. 17), eps from x_0-networks."""

import math

import pytest
import torch

from cleardiffusion.objective import EpsFromX0, diffusion_loss
from cleardiffusion.schedule import (
    NoiseSchedule,
    cosine_betas,
    eps_from_v,
    eps_from_x0,
    linear_betas,
    scaled_linear_betas,
    v_from_eps,
    x0_from_eps,
)


@pytest.mark.parametrize("name", ["linear", "linear-scaled", "cosine"])
@pytest.mark.parametrize("T", [2, 100, 1000])
def test_alpha_bar_strictly_decreasing_in_open_unit_interval(name, T):
    if name == "linear-scaled" and T < 21:
        with pytest.raises(ValueError, match="T >= 21"):
            NoiseSchedule.from_name(name, T)
        return
    a = NoiseSchedule.from_name(name, T).alpha_bar64
    assert ((a > 0) & (a < 1)).all()
    assert (a[1:] < a[:-1]).all()


def test_linear_endpoints_from_the_formula():
    T = 100
    betas = linear_betas(T)
    assert betas[0].item() == pytest.approx(1e-4) and betas[-1].item() == pytest.approx(0.02)
    expected = math.prod(1 - (1e-4 + (t - 1) * (0.02 - 1e-4) / (T - 1)) for t in range(1, T + 1))
    alpha_bar_T = NoiseSchedule(betas).alpha_bar64[-1].item()
    assert alpha_bar_T == pytest.approx(expected, rel=1e-12)
    # seed 003 says ~0.0001; its own schedule gives ~0.364 (the seed's error, which the toy reports)
    assert 0.36 < alpha_bar_T < 0.37


def test_scaled_linear_keeps_alpha_bar_T_near_zero_and_equals_linear_at_1000():
    assert torch.equal(scaled_linear_betas(1000), linear_betas(1000))
    for T in (50, 100, 300):
        assert NoiseSchedule(scaled_linear_betas(T)).alpha_bar64[-1] < 1e-3


def test_cosine_alpha_bar_matches_closed_form():
    T, s = 1000, 0.008
    a = NoiseSchedule(cosine_betas(T)).alpha_bar64
    f = lambda t: math.cos((t / T + s) / (1 + s) * math.pi / 2) ** 2  # noqa: E731
    for t in (1, 10, 500, 900):  # code index t-1 is paper step t; beta clipping only bites near T
        assert a[t - 1].item() == pytest.approx(f(t) / f(0), rel=1e-9)


def test_scaled_linear_scales_both_endpoints_and_stops_where_beta_T_reaches_one():
    betas = scaled_linear_betas(100)  # x 10
    assert (betas[0].item(), betas[-1].item()) == pytest.approx((1e-3, 0.2), rel=1e-12)
    assert scaled_linear_betas(21)[-1].item() == pytest.approx(20 / 21, rel=1e-12)
    with pytest.raises(ValueError, match="T >= 21"):
        scaled_linear_betas(20)  # beta_T = 1 exactly: alpha_bar_T = 0


def test_bad_schedules_raise():
    with pytest.raises(ValueError, match="at least 2"):
        NoiseSchedule.from_name("linear", 1)
    with pytest.raises(ValueError, match="linear, linear-scaled, cosine"):
        NoiseSchedule.from_name("quadratic", 10)
    with pytest.raises(ValueError, match="at least 2 diffusion steps"):
        NoiseSchedule(torch.full((1,), 0.1))
    with pytest.raises(ValueError, match="at least 2 diffusion steps"):
        NoiseSchedule(torch.full((3, 3), 0.1))  # not 1-D, though long enough
    for bad in (0.0, 1.0, -0.1, 1.5):  # beta_t must lie in the OPEN interval (0, 1)
        with pytest.raises(ValueError, match=r"\(0, 1\)"):
            NoiseSchedule(torch.tensor([0.1, bad, 0.2]))


def test_float32_betas_give_the_float64_schedule_and_float32_buffers():
    betas = linear_betas(50)
    sched = NoiseSchedule(betas.float())
    expected = torch.cumprod(1 - betas.float().double(), 0)
    assert sched.alpha_bar64.dtype == torch.float64 and torch.equal(sched.alpha_bar64, expected)
    assert sched.T == 50
    for name, value in (("alpha_bar", expected), ("sqrt_alpha_bar", expected.sqrt()),
                        ("sqrt_one_minus_alpha_bar", (1 - expected).sqrt())):  # fmt: skip
        buffer = getattr(sched, name)
        assert buffer.dtype == torch.float32 and torch.equal(buffer, value.float()), name
    assert "alpha_bar" not in sched.state_dict()  # not persistent: rebuilt from the config, never loaded


def test_q_sample_has_closed_form_mean_and_variance():
    sched = NoiseSchedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x0 = torch.full((200_000,), 0.7)
    for t_index in (0, 250, 999):
        t = torch.full((x0.shape[0],), t_index)
        x_t = sched.q_sample(x0, t, torch.randn(x0.shape, generator=g))
        a = sched.alpha_bar64[t_index].item()
        assert x_t.mean().item() == pytest.approx(math.sqrt(a) * 0.7, abs=4e-3)
        assert x_t.var().item() == pytest.approx(1 - a, rel=2e-2, abs=2e-5)


def test_eps_x0_v_round_trips():
    sched = NoiseSchedule.from_name("cosine", 500)
    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(8, 3, 4, 4, generator=g), torch.randn(8, 3, 4, 4, generator=g)
    t = torch.randint(0, 500, (8,), generator=g)
    x_t = sched.q_sample(x0, t, eps)
    a, s = sched.coefficients(t)
    torch.testing.assert_close(x0_from_eps(x_t, eps, a, s), x0, atol=2e-3, rtol=1e-3)
    torch.testing.assert_close(eps_from_x0(x_t, x0, a, s), eps, atol=2e-3, rtol=1e-3)
    v = v_from_eps(x0, eps, a, s)
    torch.testing.assert_close(eps_from_v(x_t, v, a, s), eps, atol=1e-5, rtol=1e-5)
    # one index as Python floats (the samplers' form) gives the batch form's numbers
    a5, s5 = sched.coefficients(int(t[5]))
    assert (a5, s5) == pytest.approx((a[5].item(), s[5].item()), rel=1e-6)
    assert a5**2 + s5**2 == pytest.approx(1.0, abs=1e-12)
    assert sched.coefficients(-1) == (1.0, 0.0)  # the clean end, after the last step


def test_posterior_mean_equals_eq11_and_variance_eq7():
    """mu_tilde(x_t, x_0(eps)) = (x_t - beta_t / sqrt(1 - alpha_bar_t) eps) / sqrt(alpha_t) (Ho Eq. 11)."""
    betas = torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64)
    sched = NoiseSchedule(betas)
    alpha_bar = torch.cumprod(1 - betas, 0)
    g = torch.Generator().manual_seed(2)
    x_t, eps = torch.randn(5, dtype=torch.float64, generator=g), torch.randn(5, dtype=torch.float64, generator=g)
    for t in (1, 10, 500, 999):
        q = sched.posterior(t, t - 1)
        b, ab, ab_prev = betas[t].item(), alpha_bar[t].item(), alpha_bar[t - 1].item()
        assert q.beta == pytest.approx(b, rel=1e-9)
        mean = q.coef_x0 * x0_from_eps(x_t, eps, *sched.coefficients(t)) + q.coef_xt * x_t
        torch.testing.assert_close(mean, (x_t - b / (1 - ab) ** 0.5 * eps) / (1 - b) ** 0.5, atol=1e-10, rtol=1e-9)
        assert q.variance == pytest.approx((1 - ab_prev) / (1 - ab) * b, rel=1e-9)  # beta_tilde_t, Eq. 7
    q = sched.posterior(0, -1)  # the last step: to x_0 itself, with no variance
    assert (q.coef_x0, q.coef_xt, q.variance) == pytest.approx((1.0, 0.0, 0.0), abs=1e-12)
    # between two steps further apart, the posterior is Eqs. 6-7 of the subsequence (DDIM's eta = 1 case)
    q = sched.posterior(600, 400)
    ab_t, ab_s = alpha_bar[600].item(), alpha_bar[400].item()
    assert q.variance == pytest.approx((1 - ab_s) / (1 - ab_t) * (1 - ab_t / ab_s), rel=1e-9)


def test_eps_from_x0_network_gives_the_true_eps_and_zero_loss():
    # a "network" that knows x_0 exactly: EpsFromX0 must turn it into the exact eps, so L_simple is 0
    sched = NoiseSchedule.from_name("linear-scaled", 100)
    x0 = torch.rand(6, 3, 4, 4, dtype=torch.float64) * 2 - 1
    t = torch.tensor([0, 1, 20, 50, 98, 99])
    eps = torch.randn_like(x0)
    x_t = sched.q_sample(x0, t, eps)
    oracle = EpsFromX0(lambda x, t, y=None: x0 if y is None else x0 + y.reshape(-1, 1, 1, 1), sched)
    torch.testing.assert_close(oracle(x_t, t), eps, atol=1e-4, rtol=1e-4)
    assert diffusion_loss(oracle, sched, x0, t, eps).item() < 1e-8  # L_simple
    # labels reach the wrapped network: shifting its x_0 by y shifts eps by -sqrt(alpha_bar / (1 - alpha_bar)) y
    y = torch.ones(6)
    a, s = sched.coefficients(t)
    shift = (a / s).double()
    torch.testing.assert_close(oracle(x_t, t, y), eps - shift, atol=1e-3, rtol=1e-3)


def test_training_times_and_the_clean_end():
    """draw_t: t ~ Uniform{0..T-1} from the run's generator; lambda is +inf at the clean end (index -1)."""
    sched = NoiseSchedule.from_name("linear", 10)
    t = sched.draw_t(5000, torch.Generator().manual_seed(2))
    assert torch.equal(t, torch.randint(0, 10, (5000,), generator=torch.Generator().manual_seed(2)))
    assert t.min() == 0 and t.max() == 9
    assert sched.lambda_at(-1) == math.inf and sched.lambda_at(0) < math.inf
