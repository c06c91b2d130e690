"""Flow matching against closed forms: the Gaussian velocity field, its exact ODE solution, the loss's minimum.

For x_0 ~ N(MU, S^2) and eps ~ N(0, 1), x_t = (1 - t) x_0 + t eps is Gaussian with mean (1 - t) MU and
variance sigma_t^2 = (1 - t)^2 S^2 + t^2, and the exact velocity E[eps - x_0 | x_t] is linear in x_t. Its
ODE moves every point along x(t) = (1 - t) MU + sigma_t z, so x_1 ends at x(0) = MU + S x_1.
"""

import math

import pytest
import torch

from cleardiffusion.flow import TIME_SCALE, FlowPath, flow_interpolate, flow_matching_loss
from cleardiffusion.guidance import guided_model
from cleardiffusion.models.unet import UNet, UNetConfig
from cleardiffusion.samplers import (
    SAMPLERS,
    ddim_sample,
    ddpm_sample,
    dpmpp_2m_sample,
    dpmpp_2m_sde_sample,
    euler_sample,
    heun_sample,
    sampler_nfe,
    steps_for_nfe,
)
from test_samplers import affine_output

MU, S = 0.5, 0.3
PATH = FlowPath()


def gaussian_velocity(x, t_in):
    """E[eps - x_0 | x_t] = -MU + (t - (1 - t) S^2) / ((1 - t)^2 S^2 + t^2) (x_t - (1 - t) MU)."""
    t = (t_in / TIME_SCALE).reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    return -MU + (t - (1 - t) * S**2) / ((1 - t) ** 2 * S**2 + t**2) * (x - (1 - t) * MU)


@pytest.mark.parametrize("sampler, ratio", [(euler_sample, (1.7, 2.3)), (heun_sample, (3.3, 4.7))])
def test_error_against_the_exact_flow_shrinks_at_the_samplers_order(sampler, ratio):
    x_1 = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    exact = MU + S * x_1
    errors = []
    for steps in (10, 20, 40, 80):
        errors.append((sampler(gaussian_velocity, PATH, x_1, PATH.timesteps(steps)) - exact).abs().max().item())
    ratios = [a / b for a, b in zip(errors, errors[1:])]
    assert all(ratio[0] < r < ratio[1] for r in ratios), (errors, ratios)


@pytest.mark.parametrize("sampler, shrink", [(ddim_sample, 1.8), (dpmpp_2m_sample, 3.0)])
def test_ddim_and_dpm_solver_converge_to_the_exact_flow(sampler, shrink):
    """DDIM and DPM-Solver++(2M), written once for any path, solve the flow's ODE (x_1 -> MU + S x_1): doubling
    the steps divides the error by about 2 (first order) or by 3 and more (second order, near 4 asymptotically)."""
    x_1 = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    errors = [(sampler(gaussian_velocity, PATH, x_1, PATH.timesteps(n)) - (MU + S * x_1)).abs().max().item()
              for n in (100, 200)]  # fmt: skip
    assert errors[1] < 0.01 and errors[0] / errors[1] > shrink, errors


def test_ddim_on_the_flow_path_is_euler():
    """x_s = (1 - s) x0 + s eps = x_t + (s - t) v: DDIM's update is Euler's on the straight path (to rounding)."""
    x_1 = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]
    ts = PATH.timesteps(7, "quadratic")
    torch.testing.assert_close(ddim_sample(gaussian_velocity, PATH, x_1, ts), euler_sample(gaussian_velocity, PATH,
                               x_1, ts), atol=1e-12, rtol=0)  # fmt: skip


@pytest.mark.parametrize("sampler", [ddpm_sample, dpmpp_2m_sde_sample])
def test_stochastic_samplers_reproduce_the_data_distribution_on_the_flow_path(monkeypatch, sampler):
    """Ancestral DDPM and SDE-DPM-Solver++ on the flow path: the exact model's samples have the data's moments,
    computed exactly (the output is affine in x_1 and the noise draws: test_samplers.affine_output)."""
    a, c, b2, draws = affine_output(monkeypatch, sampler, PATH, PATH.timesteps(100), model=gaussian_velocity)
    assert draws == 99  # fresh noise on every step but the last
    assert c == pytest.approx(MU, abs=1e-9) and (a**2 + b2) ** 0.5 == pytest.approx(S, rel=0.02)


def test_loss_is_zero_for_the_oracle_velocity_of_a_single_point():
    """For data that is one point c, x_t determines eps, and the exact velocity (x_t - c) / t has zero loss."""
    g = torch.Generator().manual_seed(0)
    c = torch.randn(1, 2, 3, dtype=torch.float64, generator=g)
    x0 = c.expand(16, 2, 3)
    t = 0.05 + 0.95 * torch.rand(16, dtype=torch.float64, generator=g)
    eps = torch.randn(16, 2, 3, dtype=torch.float64, generator=g)

    def oracle(x, t_in):
        return (x - c) / (t_in / TIME_SCALE).reshape(-1, 1, 1).to(x.dtype)

    assert flow_matching_loss(oracle, x0, t, eps).item() < 1e-10
    wrong = lambda x, t_in: 1.1 * oracle(x, t_in)  # noqa: E731
    assert flow_matching_loss(wrong, x0, t, eps).item() > 1e-3


def test_loss_is_minimised_by_the_conditional_expectation():
    """For Gaussian data E[eps - x_0 | x_t] beats any perturbation of it; the irreducible part stays."""
    g = torch.Generator().manual_seed(1)
    n = 200_000
    x0 = MU + S * torch.randn(n, 1, dtype=torch.float64, generator=g)
    eps = torch.randn(n, 1, dtype=torch.float64, generator=g)
    t = torch.rand(n, dtype=torch.float64, generator=g).clamp(min=1e-3)
    best = flow_matching_loss(gaussian_velocity, x0, t, eps).item()
    for scale, shift in ((1.05, 0.0), (1.0, 0.05)):
        perturbed = lambda x, t_in: scale * gaussian_velocity(x, t_in) + shift  # noqa: B023, E731
        assert flow_matching_loss(perturbed, x0, t, eps).item() > best


def test_interpolation_endpoints():
    x0, eps = torch.randn(3, 4), torch.randn(3, 4)
    torch.testing.assert_close(flow_interpolate(x0, torch.zeros(3), eps), x0)
    torch.testing.assert_close(flow_interpolate(x0, torch.ones(3), eps), eps)


def test_unet_takes_float_time_and_guidance_wraps_a_velocity_model():
    """The loss runs through a real (tiny, conditional) U-Net with t * TIME_SCALE, and the guidance wrapper
    at scale 1 is the plain conditional velocity model inside a flow sampler."""
    torch.manual_seed(0)
    net = UNet(UNetConfig(in_channels=1, image_size=8, base_channels=8, channel_mults=(1,), num_res_blocks=1,
                          attention_resolutions=(), middle_attention=False, norm_groups=4, num_classes=3))  # fmt: skip
    x0, eps, y = torch.rand(4, 1, 8, 8) * 2 - 1, torch.randn(4, 1, 8, 8), torch.tensor([0, 1, 2, 0])
    t = torch.tensor([0.0, 0.3, 0.7, 1.0])
    loss = flow_matching_loss(net, x0, t, eps, y)
    loss.backward()
    # the loss by hand: x_t on the straight line, the network at time 1000 t, the target eps - x_0
    x_t = torch.stack([(1 - t[i]) * x0[i] + t[i] * eps[i] for i in range(4)])
    with torch.no_grad():
        expected = ((net(x_t, 1000 * t, y) - (eps - x0)) ** 2).mean()
    torch.testing.assert_close(loss.detach(), expected)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in net.parameters())  # every weight learns
    net.eval()
    ts = PATH.timesteps(3)
    plain = euler_sample(lambda x, t: net(x, t, y), PATH, eps, ts)
    torch.testing.assert_close(euler_sample(guided_model(net, y, 1.0), PATH, eps, ts), plain)
    guided = heun_sample(guided_model(net, y, 2.0), PATH, eps, ts)
    assert guided.shape == eps.shape and torch.isfinite(guided).all()


def test_time_grids_and_nfe():
    assert PATH.timesteps(4) == [1.0, 0.75, 0.5, 0.25]  # the clean end t = 0 is implied
    q = PATH.timesteps(4, "quadratic")
    assert q[0] == 1 and q[-1] == 1 / 16 and q[-2] - q[-1] < q[0] - q[1]
    with pytest.raises(ValueError, match="not for the flow path"):
        PATH.timesteps(4, "karras")
    with pytest.raises(ValueError, match="strictly decreasing"):
        PATH.check_timesteps([0.5, 1.0])
    with pytest.raises(ValueError, match="between 1 and 10000"):
        PATH.timesteps(5_000_000)
    calls = []
    for name, sampler in SAMPLERS.items():
        calls.clear()
        sampler(lambda x, t: calls.append(t) or x, PATH, torch.zeros(2, 1), PATH.timesteps(5))
        assert len(calls) == sampler_nfe(name, 5, PATH) == (10 if name == "heun" else 5)
    assert steps_for_nfe("heun", 10, PATH) == 5 and steps_for_nfe("euler", 7, PATH) == 7
    with pytest.raises(ValueError, match="even"):
        steps_for_nfe("heun", 9, PATH)


def test_clip_x0_clamps_the_straight_line_endpoint():
    """x0_pred = x_t - t v is clamped to [-1, 1]; a velocity whose x0_pred is already inside is unchanged."""
    x_1 = torch.randn(4, 3, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    seen = []
    far = lambda x, t_in: x - 5.0  # noqa: E731  (x0_pred = x - t (x - 5) leaves [-1, 1])
    out = euler_sample(far, PATH, x_1, PATH.timesteps(6), clip_x0=True, callback=lambda i, t, x, x0: seen.append(x0))
    assert all(x0.abs().max() <= 1 for x0 in seen) and out.abs().max() <= 1 + 1e-12
    inside = lambda x, t_in: x - 0.5 * x.tanh()  # noqa: E731  (|x| <= 1 stays so, and x0_pred with it)
    x_1 = x_1.clamp(-1, 1)
    for sampler in (euler_sample, heun_sample):
        torch.testing.assert_close(
            sampler(inside, PATH, x_1, PATH.timesteps(6), clip_x0=True), sampler(inside, PATH, x_1, PATH.timesteps(6))
        )


def test_interpolation_and_the_loss_keep_the_data_dtype_and_scale_time_for_the_network():
    x0, eps = torch.randn(3, 2), torch.randn(3, 2)
    t = torch.tensor([0.25, 0.5, 0.9], dtype=torch.float64)  # float64 times, float32 data
    x_t = flow_interpolate(x0, t, eps)
    assert x_t.dtype == torch.float32
    torch.testing.assert_close(x_t, torch.stack([(1 - t[i].item()) * x0[i] + t[i].item() * eps[i] for i in range(3)]))
    seen = []
    y = torch.tensor([2, 0, 1])
    for labels in (None, y):
        flow_matching_loss(lambda *args: seen.append(args) or torch.zeros(3, 2), x0, t, eps, labels)
    (x_a, t_a), (x_b, t_b, y_b) = seen  # the labels reach the network only when given
    assert t_a.dtype == torch.float32 and torch.equal(t_a, TIME_SCALE * t.float()) and torch.equal(t_b, t_a)
    assert torch.equal(x_a, x_t) and torch.equal(x_b, x_t) and torch.equal(y_b, y)


@pytest.mark.parametrize("sampler", ["euler", "heun"])
def test_clipped_flow_samplers_by_hand(sampler):
    """With clip_x0, x0_pred = x - t v is clamped to [-1, 1] on both sides and v re-derived as (x - x0) / t at
    every evaluation (Heun's second included), except at t = 0; the callback sees (i, t, x_t, clamped x0_pred)."""
    v_model = lambda x, t_in: 3 * torch.sin(2 * x) + x  # noqa: E731  (x0_pred leaves [-1, 1] on both sides)
    ts = [1.0, 0.6, 0.3]  # then the clean end 0
    x_1 = torch.linspace(-2, 2, 9, dtype=torch.float64)[:, None]

    def velocity(x, t):
        v = v_model(x, None)
        x0 = x - t * v
        return ((x - x0.clamp(-1, 1)) / t if t > 0 else v), x0.clamp(-1, 1) if t > 0 else x0

    x, expected_calls, low, high = x_1, [], False, False
    for i, (t, s) in enumerate(zip(ts, ts[1:] + [0.0])):
        v, x0 = velocity(x, t)
        raw = x - t * v_model(x, None)
        low, high = low or bool((raw < -1).any()), high or bool((raw > 1).any())
        expected_calls.append((i, t, x, x0))
        x_next = x + (s - t) * v
        x = x_next if sampler == "euler" else x + (s - t) * (v + velocity(x_next, s)[0]) / 2
    assert low and high  # the clamp bound on both sides
    calls = []
    out = SAMPLERS[sampler](v_model, PATH, x_1, ts, clip_x0=True, callback=lambda *args: calls.append(args))
    torch.testing.assert_close(out, x, rtol=1e-12, atol=1e-12)
    assert [(i, t) for i, t, _, _ in calls] == [(i, t) for i, t, _, _ in expected_calls]
    for (_, _, x_seen, x0_seen), (_, _, x_hand, x0_hand) in zip(calls, expected_calls):
        torch.testing.assert_close(x_seen, x_hand, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(x0_seen, x0_hand, rtol=1e-12, atol=1e-12)
    assert (out - SAMPLERS[sampler](v_model, PATH, x_1, ts)).abs().max() > 1e-2  # clipping changed the result


def test_time_grid_limits_and_step_counts():
    assert PATH.timesteps(1) == [1.0] and PATH.check_timesteps([1]) == [1.0]
    assert PATH.timesteps(4, "quadratic") == [1.0, 0.5625, 0.25, 0.0625]
    for steps in (0, 10_001):
        with pytest.raises(ValueError, match="between 1 and 10000"):
            PATH.timesteps(steps)
    for bad in ([], [1.5], [1.0, 0.0], [0.5, 0.5], [1.0, 0.2, 0.5], [1.0] * 2 + [0.5] * 9_999):
        with pytest.raises(ValueError, match="strictly decreasing times in"):
            PATH.check_timesteps(bad)
    with pytest.raises(ValueError, match="no default grid"):
        PATH.check_timesteps(None)
    assert steps_for_nfe("euler", 1, PATH) == 1 and isinstance(steps_for_nfe("heun", 10, PATH), int)
    with pytest.raises(ValueError, match="NFE must be at least 1"):
        steps_for_nfe("euler", 0, PATH)
    with pytest.raises(ValueError, match="unknown sampler"):
        steps_for_nfe("rk4", 4, PATH)


def test_the_flow_path_by_its_definitions():
    """alpha_t = 1 - t, sigma_t = t; lambda = log(alpha / sigma); the posterior of Kingma et al. 2021 (Eqs.
    32-34) with sigma_{t|s}^2 = sigma_t^2 - (alpha_t / alpha_s)^2 sigma_s^2; the ODE in (x_t, t) itself."""
    t, s = 0.7, 0.2
    assert PATH.coefficients(t) == (pytest.approx(0.3), 0.7) and PATH.alpha_sigma2(t) == pytest.approx((0.09, 0.49))
    assert PATH.lambda_at(0.25) == pytest.approx(math.log(3)) and PATH.lambda_at(0.0) == math.inf
    assert PATH.lambda_at(1.0) == -math.inf
    q = PATH.posterior(t, s)
    var_ts = t**2 - ((1 - t) / (1 - s)) ** 2 * s**2
    assert q.beta == pytest.approx(var_ts, rel=1e-12)
    assert q.variance == pytest.approx(var_ts * s**2 / t**2, rel=1e-12)  # Var(x_s | x_t, x_0)
    assert q.coef_xt == pytest.approx((1 - t) / (1 - s) * s**2 / t**2, rel=1e-12)
    assert q.coef_x0 == pytest.approx((1 - s) * var_ts / t**2, rel=1e-12)
    assert PATH.ode_scale_tau(t) == (1.0, t) and PATH.evaluable(0.0) and PATH.to("cpu") is PATH
    x = torch.zeros(3, 2, dtype=torch.float64)
    time = PATH.network_time(0.25, x)
    assert time.dtype == torch.float64 and torch.equal(time, torch.full((3,), 250.0, dtype=torch.float64))
    draws = PATH.draw_t(20_000, torch.Generator().manual_seed(0))
    assert torch.equal(draws, torch.rand(20_000, generator=torch.Generator().manual_seed(0)))
    assert 0 <= draws.min() and draws.max() < 1 and abs(draws.mean().item() - 0.5) < 0.01
    assert len(PATH.timesteps(10_000)) == 10_000 and len(PATH.check_timesteps(PATH.timesteps(10_000))) == 10_000
