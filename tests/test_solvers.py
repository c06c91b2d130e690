"""The ODE solvers against the exact probability-flow ODE of Gaussian data, and DPM-Solver++ against the paper.

For data N(MU, S^2) the exact eps is linear in x_t, and in Karras's variables (x_hat = x_t / sqrt(alpha_bar) =
x_0 + sigma eps, sigma = sqrt((1 - alpha_bar) / alpha_bar)) the probability-flow ODE dx_hat / dsigma = eps has
the closed-form solution (x_hat - MU) / sqrt(S^2 + sigma^2) = const. DDIM, DPM-Solver++ and Heun all
integrate this ODE from the first index to index 0 and then take the same last step to sigma = 0
(x = predicted x_0 at index 0), so the reference is the exact solution to index 0 followed by that step.
"""

import math
from functools import partial

import numpy as np
import pytest
import torch

from cleardiffusion import samplers
from cleardiffusion.denoiser import predict
from cleardiffusion.flow import FlowPath
from cleardiffusion.samplers import (
    SAMPLERS,
    ddim_sample,
    dpmpp_2m_sample,
    dpmpp_2m_sde_sample,
    euler_sample,
    heun_sample,
    make_timesteps,
    sampler_nfe,
    steps_for_nfe,
)
from cleardiffusion.schedule import NoiseSchedule
from test_samplers import MU, S, affine_output, gaussian_oracle


def exact_ode_solution(schedule: NoiseSchedule, x_T: torch.Tensor, t0: int) -> torch.Tensor:
    """x_T at index t0 carried exactly to index 0 by the probability-flow ODE, then x = x0_pred there."""
    ab0, ab1 = schedule.alpha_bar64[t0].item(), schedule.alpha_bar64[0].item()
    sigma0, sigma1 = math.sqrt((1 - ab0) / ab0), math.sqrt((1 - ab1) / ab1)
    x_hat = MU + (x_T / ab0**0.5 - MU) * math.sqrt(S**2 + sigma1**2) / math.sqrt(S**2 + sigma0**2)
    x_1 = x_hat * ab1**0.5
    eps = gaussian_oracle(schedule)(x_1, torch.zeros(len(x_1), dtype=torch.long))
    return (x_1 - (1 - ab1) ** 0.5 * eps) / ab1**0.5


@pytest.mark.parametrize(
    "sampler, order",
    [(ddim_sample, 1), (dpmpp_2m_sample, 2), (partial(dpmpp_2m_sample, solver_type="exact"), 2), (heun_sample, 2)],
)
def test_error_against_the_exact_ode_solution_shrinks_at_the_solvers_order(sampler, order):
    """Doubling the steps divides the final error by ~2 (first order) or ~4 (second order)."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    x_T = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    errors = []
    for steps in (20, 40, 80):
        ts = make_timesteps(schedule, steps, "logsnr")
        x0 = sampler(gaussian_oracle(schedule), schedule, x_T, ts)
        errors.append((x0 - exact_ode_solution(schedule, x_T, ts[0])).abs().max().item())
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    low, high = (1.7, 2.4) if order == 1 else (3.3, 5.0)
    assert all(low < r < high for r in ratios), (errors, ratios)


def dpm_solver_pp_2m_numpy(x_theta, alpha_bar: np.ndarray, ts: list[int], x_T: np.ndarray) -> np.ndarray:
    """Lu et al. 2022, Algorithm 2, transcribed in float64 numpy over t_0 > ... > t_M = ts[-1]; then the
    last step to sigma = 0, where lambda = inf: x = alpha x_theta with alpha = 1, i.e. x_theta(x_{t_M}, t_M)."""
    alpha, sigma = np.sqrt(alpha_bar[ts]), np.sqrt(1 - alpha_bar[ts])
    lam = np.log(alpha / sigma)
    M = len(ts) - 1
    x = x_T
    Q = [x_theta(x, ts[0])]
    if M >= 1:
        h = lam[1] - lam[0]
        x = sigma[1] / sigma[0] * x - alpha[1] * (np.exp(-h) - 1) * Q[0]
        Q.append(x_theta(x, ts[1]))
    for i in range(2, M + 1):
        h_i, h_prev = lam[i] - lam[i - 1], lam[i - 1] - lam[i - 2]
        r_i = h_prev / h_i
        D_i = (1 + 1 / (2 * r_i)) * Q[i - 1] - 1 / (2 * r_i) * Q[i - 2]
        x = sigma[i] / sigma[i - 1] * x - alpha[i] * (np.exp(-h_i) - 1) * D_i
        Q.append(x_theta(x, ts[i]))
    return Q[-1]


@pytest.mark.parametrize("steps, spacing", [(1, "uniform"), (2, "logsnr"), (7, "karras"), (25, "uniform")])
def test_dpm_solver_pp_matches_a_numpy_transcription_of_algorithm_2(steps, spacing):
    schedule = NoiseSchedule.from_name("cosine", 500)
    alpha_bar = schedule.alpha_bar64.numpy()

    def eps_np(x, t):  # an analytic, nonlinear eps
        return np.tanh(x) * (t / 500) + 0.1 * np.sin(3 * x)

    def x_theta(x, t):
        return (x - np.sqrt(1 - alpha_bar[t]) * eps_np(x, t)) / np.sqrt(alpha_bar[t])

    def eps_model(x, t):
        return torch.from_numpy(eps_np(x.numpy(), t.numpy()[:, None]))

    ts = make_timesteps(schedule, steps, spacing)
    x_T = np.random.default_rng(0).standard_normal((6, 3))
    ours = dpmpp_2m_sample(eps_model, schedule, torch.from_numpy(x_T), ts).numpy()
    np.testing.assert_allclose(ours, dpm_solver_pp_2m_numpy(x_theta, alpha_bar, ts, x_T), rtol=0, atol=1e-10)


def test_dpm_solver_pp_first_order_is_ddim():
    """One step (first order by construction) and order=1 over many steps both equal DDIM with eta = 0."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    x_T = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eps_model = lambda x, t: torch.sin(x) * t[:, None] / 1000  # noqa: E731
    for ts in ([999], [640], make_timesteps(schedule, 12, "logsnr")):
        order = 2 if len(ts) == 1 else 1
        torch.testing.assert_close(
            dpmpp_2m_sample(eps_model, schedule, x_T, ts, order=order),
            ddim_sample(eps_model, schedule, x_T, ts),
            rtol=1e-12,
            atol=1e-12,
        )
    ts = make_timesteps(schedule, 12, "logsnr")
    second = dpmpp_2m_sample(eps_model, schedule, x_T, ts)
    assert (second - ddim_sample(eps_model, schedule, x_T, ts)).abs().max() > 1e-4  # order 2 really differs


@pytest.mark.parametrize("eta", [0.0, 1.0])
def test_exact_solver_type_integrates_a_straight_line_in_lambda_exactly(monkeypatch, eta):
    """A denoiser whose x_theta is a + b lambda, whatever x: after the first (first-order) step, every step of
    solver_type 'exact' is the exact solution x_s = (sigma_s / sigma_t) e^{-eta h} x_t + alpha_s int_0^1
    k e^{-k (1 - u)} (a + b (lambda_t + u h)) du, k = (1 + eta) h (noise set to 0); 'midpoint' is not."""
    monkeypatch.setattr(samplers, "randn_like", lambda x, generator: torch.zeros_like(x))
    schedule = NoiseSchedule.from_name("linear", 1000)
    ab = schedule.alpha_bar64
    lam = 0.5 * (ab.log() - (1 - ab).log())
    a, b = 0.3, -0.2

    def eps_model(x, t):  # eps such that (x - sqrt(1 - ab) eps) / sqrt(ab) = a + b lambda_t
        x_theta = (a + b * lam[t]).reshape(-1, 1)
        return (x - ab[t].sqrt().reshape(-1, 1) * x_theta) / (1 - ab[t]).sqrt().reshape(-1, 1)

    ts = make_timesteps(schedule, 8, "trailing")
    x_T = torch.linspace(-1, 1, 5, dtype=torch.float64)[:, None]
    for solver_type in ("exact", "midpoint"):
        states = []
        dpmpp_2m_sample(eps_model, schedule, x_T, ts, eta=eta, solver_type=solver_type,
                        callback=lambda i, t, x_t, x0, states=states: states.append(x_t))  # fmt: skip
        errors = []
        for i in range(1, len(ts) - 1):  # the step ts[i] -> ts[i + 1], from the state the solver reached
            t, s = ts[i], ts[i + 1]
            h, k = (lam[s] - lam[t]).item(), (1 + eta) * (lam[s] - lam[t]).item()
            m0, m1 = -math.expm1(-k), 1 + math.expm1(-k) / k  # int k e^{-k(1-u)} u^j du, j = 0, 1
            integral = m0 * (a + b * lam[t].item()) + m1 * b * h
            exact = ((1 - ab[s]) / (1 - ab[t])).sqrt() * math.exp(-eta * h) * states[i] + ab[s].sqrt() * integral
            errors.append((states[i + 1] - exact).abs().max().item())
        if solver_type == "exact":
            assert max(errors) < 1e-12, errors
        else:
            assert max(errors) > 1e-4, errors  # the midpoint rule is only second order


@pytest.mark.parametrize("sampler", [dpmpp_2m_sample, heun_sample])
def test_oracle_denoiser_reproduces_the_data_distribution(monkeypatch, sampler):
    """From x_T ~ N(0, 1), 40 log-SNR steps land on N(MU, S^2): exact moments (affine in x_T), no noise drawn."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    a, c, b2, draws = affine_output(monkeypatch, sampler, schedule, make_timesteps(schedule, 40, "logsnr"))
    assert draws == 0 and b2 == 0
    assert c == pytest.approx(MU, abs=0.01) and a == pytest.approx(S, rel=0.02)  # mean c, std |a|


ONE_TIME = [name for name in SAMPLERS if name != "meanflow"]  # meanflow needs its two-time path: test_meanflow.py


@pytest.mark.parametrize("name", ONE_TIME)
def test_nfe_counts_the_network_calls(name):
    schedule = NoiseSchedule.from_name("linear", 100)
    calls = []

    def eps_model(x, t):
        calls.append(t[0].item())
        return 0.1 * x

    for steps in (1, 2, 7):
        calls.clear()
        SAMPLERS[name](eps_model, schedule, torch.zeros(2, 3), make_timesteps(100, steps),
                       generator=torch.Generator().manual_seed(0))  # fmt: skip
        assert len(calls) == sampler_nfe(name, steps)
        assert set(calls) <= set(make_timesteps(100, steps))  # every evaluation at an integer schedule index
        assert steps_for_nfe(name, sampler_nfe(name, steps)) == steps
    assert sampler_nfe("heun", 10) == 19 and sampler_nfe("dpm++2m", 10) == 10


def test_heun_nfe_must_be_odd():
    assert steps_for_nfe("heun", 9) == 5
    with pytest.raises(ValueError, match="odd"):
        steps_for_nfe("heun", 10)
    with pytest.raises(ValueError, match="unknown sampler"):
        sampler_nfe("rk4", 3)


@pytest.mark.parametrize("spacing", ["logsnr", "karras"])
def test_continuous_spacings(spacing):
    schedule = NoiseSchedule.from_name("linear", 1000)
    for steps in (1, 2, 10, 100, 999, 1000):
        ts = make_timesteps(schedule, steps, spacing)
        assert len(ts) == steps and all(a > b for a, b in zip(ts, ts[1:])) and 0 <= ts[-1] and ts[0] == 999
        if steps > 1:
            assert ts[-1] == 0
    with pytest.raises(ValueError, match="needs the noise schedule"):
        make_timesteps(1000, 10, spacing)


def test_logsnr_spacing_is_uniform_in_lambda_and_karras_is_denser_near_the_data():
    schedule = NoiseSchedule.from_name("linear-scaled", 100_000)  # fine enough that rounding is negligible
    ab = schedule.alpha_bar64
    lam = (0.5 * (ab.log() - (1 - ab).log())).numpy()
    steps = np.diff(lam[make_timesteps(schedule, 10, "logsnr")])
    np.testing.assert_allclose(steps, steps.mean(), rtol=1e-2)
    sigma = np.exp(-lam[make_timesteps(schedule, 10, "karras")])  # sqrt((1 - ab) / ab), descending
    root = sigma ** (1 / 7)
    np.testing.assert_allclose(np.diff(root), np.diff(root).mean(), rtol=1e-2)  # uniform in sigma^(1/rho)
    assert sigma[-2] - sigma[-1] < sigma[0] - sigma[1]


def test_sde_dpm_solver_pp_first_order_is_ddim_with_eta_one():
    """With order 1, SDE-DPM-Solver++ and DDIM (eta = 1) take the same step and draw the same noise."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    x_T = torch.randn(5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    eps_model = lambda x, t: torch.sin(x) * t[:, None] / 1000  # noqa: E731
    ts = make_timesteps(schedule, 12, "logsnr")
    sde = dpmpp_2m_sample(eps_model, schedule, x_T, ts, order=1, eta=1.0, generator=torch.Generator().manual_seed(1))
    ddim = ddim_sample(eps_model, schedule, x_T, ts, eta=1.0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(sde, ddim, rtol=1e-12, atol=1e-12)
    ode = dpmpp_2m_sample(eps_model, schedule, x_T, ts, order=1)
    assert (sde - ode).abs().max() > 1e-2  # eta = 1 really adds noise


def sde_output_moments(monkeypatch, order: int, steps: int) -> tuple[float, float]:
    """The exact mean and variance of SDE-DPM-Solver++'s output for Gaussian data N(MU, S^2), x_T drawn from
    its exact marginal (test_samplers.affine_output: no Monte Carlo)."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    ab_T = schedule.alpha_bar64[-1].item()
    ts = make_timesteps(schedule, steps, "logsnr")
    a, c, b2, draws = affine_output(monkeypatch, dpmpp_2m_sample, schedule, ts, order=order, eta=1.0)
    assert draws == steps - 1  # fresh noise on every step but the last
    mean_T, var_T = ab_T**0.5 * MU, ab_T * S**2 + 1 - ab_T
    return a * mean_T + c, a**2 * var_T + b2


def test_sde_dpm_solver_pp_samples_the_data_distribution_at_its_weak_order(monkeypatch):
    """Its output's variance misses S^2 by an error that halves with doubled steps at order 1 and quarters
    at order 2 (measured: 0.213, 0.112, 0.053 and 0.0190, 0.0041, 0.0009 at 40, 80, 160 logsnr steps);
    the mean is exact, the oracle's x_0 prediction being affine."""
    for order, low, high in ((1, 1.6, 2.4), (2, 3.3, 5.0)):
        errors = []
        for steps in (40, 80, 160):
            mean, var = sde_output_moments(monkeypatch, order, steps)
            assert mean == pytest.approx(MU, abs=1e-12)
            errors.append(abs(var / S**2 - 1))
        assert all(low < e / e_next < high for e, e_next in zip(errors, errors[1:], strict=False)), (order, errors)


def steep(x, t):
    """A nonlinear eps whose x_0 prediction leaves [-1, 1], so clipping binds."""
    return -0.5 * torch.tanh(x) + 0.3 * torch.sin(3 * x) * t[:, None] / 1000


@pytest.mark.parametrize("name", ONE_TIME)
def test_every_sampler_numbers_its_callbacks_and_honours_clip_x0_and_its_generator(name):
    schedule = NoiseSchedule.from_name("linear", 1000)
    ts = make_timesteps(schedule, 6, "trailing")
    x_T = torch.linspace(-3, 3, 8, dtype=torch.float64)[:, None]
    run = lambda clip, seed=0, seen=None: SAMPLERS[name](  # noqa: E731
        steep, schedule, x_T, ts, clip_x0=clip, generator=torch.Generator().manual_seed(seed),
        callback=None if seen is None else lambda i, t, x, x0: seen.append((i, t, x0)))  # fmt: skip
    seen = []
    clipped = run(True, seen=seen)
    assert [(i, t) for i, t, _ in seen] == list(enumerate(ts))  # step i at grid point t, once each
    assert all(x0.abs().max() <= 1 for _, _, x0 in seen)
    assert (clipped - run(False)).abs().max() > 1e-3
    assert torch.equal(run(True, seed=0), clipped)  # the generator decides the noise, nothing else does
    if name in ("ddpm", "dpm++2m-sde"):
        assert (run(True, seed=1) - clipped).abs().max() > 1e-3


def test_sde_solver_is_dpm_solver_pp_with_eta_one_and_its_solver_type():
    schedule = NoiseSchedule.from_name("linear", 1000)
    ts, x_T = make_timesteps(schedule, 8, "trailing"), torch.linspace(-2, 2, 5, dtype=torch.float64)[:, None]
    for solver_type in ("midpoint", "exact"):
        sde = dpmpp_2m_sde_sample(steep, schedule, x_T, ts, generator=torch.Generator().manual_seed(2),
                                  solver_type=solver_type)  # fmt: skip
        ref = dpmpp_2m_sample(steep, schedule, x_T, ts, generator=torch.Generator().manual_seed(2), eta=1.0,
                              solver_type=solver_type)  # fmt: skip
        assert torch.equal(sde, ref)
    assert (
        sde - dpmpp_2m_sde_sample(steep, schedule, x_T, ts, generator=torch.Generator().manual_seed(2))
    ).abs().max() > 0


def test_euler_on_the_ddpm_path_is_ddim():
    """Euler in Karras's coordinates (x_hat = x / sqrt(ab), tau = sigma) is DDIM's eta = 0 update, exactly."""
    schedule = NoiseSchedule.from_name("cosine", 500)
    ts, x_T = make_timesteps(schedule, 9, "logsnr"), torch.linspace(-2, 2, 7, dtype=torch.float64)[:, None]
    for clip in (False, True):
        euler = euler_sample(steep, schedule, x_T, ts, clip_x0=clip)
        torch.testing.assert_close(euler, ddim_sample(steep, schedule, x_T, ts, clip_x0=clip), rtol=1e-10, atol=1e-10)


def test_dpm_solver_pp_refuses_each_bad_option_alone():
    schedule = NoiseSchedule.from_name("linear", 100)
    for bad in ({"order": 3}, {"eta": -0.1}, {"solver_type": "heun"}):
        with pytest.raises(ValueError, match=r"need order 1\|2, eta >= 0, solver_type midpoint\|exact"):
            dpmpp_2m_sample(steep, schedule, torch.zeros(2, 1), [50, 10], **bad)


def test_nfe_of_heun_on_each_path_and_the_advice_for_a_wrong_budget():
    schedule = NoiseSchedule.from_name("linear", 100)
    assert sampler_nfe("heun", 5, schedule) == 9 and sampler_nfe("heun", 5, FlowPath()) == 10
    assert steps_for_nfe("heun", 9, schedule) == 5 and isinstance(steps_for_nfe("heun", 9, schedule), int)
    with pytest.raises(ValueError, match="got 2: use 1 or 3"):
        steps_for_nfe("heun", 2, schedule)
    with pytest.raises(ValueError, match="got 10: use 9 or 11"):
        steps_for_nfe("heun", 10)
    with pytest.raises(ValueError, match="even; got 9: use 10"):
        steps_for_nfe("heun", 9, FlowPath())


@pytest.mark.parametrize("eta", [0.3, 1.0, 2.0])
def test_one_sde_step_by_hand(monkeypatch, eta):
    """One step t -> s of DPM-Solver++ with noise eta, for a model whose eps is 0 (so x_theta = x_t / alpha_t), then
    the last step to the clean end returns x_theta = x_s / alpha_s. From Lu et al.'s update, x_s = (sigma_s /
    sigma_t) e^{-eta h} x_t + alpha_s (1 - e^{-(1 + eta) h}) x_t / alpha_t + sigma_s sqrt(1 - e^{-2 eta h}) z."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    t, s = 600, 300
    (a_t, s_t), (a_s, s_s) = schedule.coefficients(t), schedule.coefficients(s)
    h = math.log(a_s / s_s) - math.log(a_t / s_t)
    zero = lambda x, t: torch.zeros_like(x)  # noqa: E731
    a, c, b2, draws = affine_output(monkeypatch, dpmpp_2m_sample, schedule, [t, s], model=zero, eta=eta)
    assert draws == 1 and c == 0
    assert a == pytest.approx(
        (s_s / s_t * math.exp(-eta * h) + a_s * -math.expm1(-(1 + eta) * h) / a_t) / a_s, rel=1e-12
    )
    assert b2 == pytest.approx((s_s / a_s) ** 2 * -math.expm1(-2 * eta * h), rel=1e-12)


def test_make_timesteps_reads_the_path():
    assert make_timesteps(FlowPath(), 4) == [1.0, 0.75, 0.5, 0.25]
    schedule = NoiseSchedule.from_name("linear", 1000)
    assert make_timesteps(schedule, 10, "logsnr") == schedule.timesteps(10, "logsnr")
    assert make_timesteps(1000, 10) == make_timesteps(schedule, 10)  # an int T where the spacing needs no schedule


def test_noise_is_drawn_in_the_samples_dtype_from_the_generator():
    x = torch.zeros(3, 2, dtype=torch.float64)
    z = samplers.randn_like(x, torch.Generator().manual_seed(4))
    assert torch.equal(z, torch.randn(3, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(4)))
    per_sample = samplers.randn_like(x, [torch.Generator().manual_seed(i) for i in range(3)])
    assert per_sample.dtype == torch.float64
    assert torch.equal(per_sample[1], torch.randn(2, generator=torch.Generator().manual_seed(1)).double())
    with pytest.raises(ValueError, match="got 2 generators for a batch of 3"):
        samplers.randn_like(x, [torch.Generator()] * 2)


def test_predict_leaves_x0_unclipped_by_default_and_returns_the_samples_dtype():
    schedule = NoiseSchedule.from_name("linear", 1000)
    x = torch.full((2, 3), 2.5, dtype=torch.float64)
    pred = predict(lambda x, t: torch.zeros(x.shape), schedule, x, 10)  # a float32 model on float64 samples
    assert pred.eps.dtype == pred.x0.dtype == torch.float64 and (pred.x0 > 2.5).all()  # x0 = x / alpha: not clamped
    assert (predict(lambda x, t: torch.zeros(x.shape), schedule, x, 10, clip_x0=True).x0 == 1).all()
