"""Samplers against exact answers: an oracle denoiser for Gaussian data, DDIM's limits, timestep lists."""

import pytest
import torch

from cleardiffusion.samplers import check_timesteps, ddim_sample, ddpm_sample, make_timesteps
from cleardiffusion.schedule import NoiseSchedule

MU, S = 0.5, 0.3  # the data distribution N(MU, S^2), away from the prior N(0, 1)


def gaussian_oracle(schedule):
    """The exact eps for Gaussian data: E[eps | x_t] = sqrt(1 - ab)(x_t - sqrt(ab) MU) / (ab S^2 + 1 - ab)."""

    def eps_model(x_t, t):
        ab = schedule.alpha_bar64[t].to(x_t.dtype).reshape(-1, *([1] * (x_t.ndim - 1)))
        return (1 - ab).sqrt() * (x_t - ab.sqrt() * MU) / (ab * S**2 + 1 - ab)

    return eps_model


@pytest.mark.parametrize(
    "sampler, options",
    [
        (ddpm_sample, {"variance": "beta"}),
        (ddpm_sample, {"variance": "posterior"}),
        (ddim_sample, {"eta": 0.0}),
        (ddim_sample, {"eta": 1.0}),
    ],
)
def test_oracle_denoiser_reproduces_the_data_distribution(sampler, options):
    """With the exact eps, every sampler over all T steps lands on N(MU, S^2)."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(0)
    x_T = torch.randn(20_000, 1, dtype=torch.float64, generator=g)
    x0 = sampler(gaussian_oracle(schedule), schedule, x_T, generator=g, **options)
    assert x0.mean().item() == pytest.approx(MU, abs=0.015)
    assert x0.std().item() == pytest.approx(S, rel=0.03)


@pytest.mark.parametrize("sampler, options", [(ddim_sample, {"eta": 0.0}), (ddpm_sample, {"variance": "posterior"})])
def test_oracle_error_shrinks_as_steps_grow(sampler, options):
    """Fewer steps are a coarser discretisation: the std error falls monotonically towards zero."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    errors = []
    for steps in (10, 50, 250):
        g = torch.Generator().manual_seed(0)
        x_T = torch.randn(20_000, 1, dtype=torch.float64, generator=g)
        x0 = sampler(gaussian_oracle(schedule), schedule, x_T, make_timesteps(1000, steps), generator=g, **options)
        assert x0.mean().item() == pytest.approx(MU, abs=0.015)
        errors.append(abs(x0.std().item() - S))
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


def test_clip_x0_keeps_predictions_in_range():
    schedule = NoiseSchedule.from_name("linear", 100)
    x0s = []
    ddpm_sample(lambda x, t: -5 * torch.ones_like(x), schedule, torch.randn(3, 2), clip_x0=True,
                generator=torch.Generator().manual_seed(0),
                callback=lambda i, t, x_t, x0: x0s.append(x0))  # fmt: skip
    assert all(x0.abs().max() <= 1 for x0 in x0s)


def test_make_timesteps():
    for spacing in ("uniform", "quadratic"):
        for steps in (1, 5, 50, 1000):
            ts = make_timesteps(1000, steps, spacing)
            assert len(ts) == steps and all(0 <= t < 1000 for t in ts)
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
    with pytest.raises(ValueError, match="strictly decreasing"):
        check_timesteps(schedule, [3, 5])
    with pytest.raises(ValueError, match="0..9"):
        check_timesteps(schedule, [10, 2])
    with pytest.raises(ValueError, match="unknown spacing"):
        make_timesteps(10, 3, "cubic")
