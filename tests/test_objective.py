"""Prediction targets and loss weightings: each is the same x_0 error under its own weight, and every
prediction type turns into the exact eps for the samplers."""

import pytest
import torch

from cleardiffusion.objective import EpsFromPrediction, as_eps_model, diffusion_loss
from cleardiffusion.schedule import NoiseSchedule, eps_from_v, eps_from_x0, v_from_eps


def v_by_angle(schedule: NoiseSchedule, x0: torch.Tensor, eps: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """v by its definition (Salimans & Ho 2022, Sec. 4), not by schedule.v_from_eps: with x_t = cos(phi) x_0 +
    sin(phi) eps and phi = atan(sqrt(1 - alpha_bar_t) / sqrt(alpha_bar_t)), v = dx_t / dphi."""
    ab = schedule.alpha_bar64[t].reshape(-1, *([1] * (x0.ndim - 1)))
    phi = torch.atan2((1 - ab).sqrt(), ab.sqrt())
    return (phi.cos() * eps.double() - phi.sin() * x0.double()).to(x0.dtype)


def oracle(target: str, schedule: NoiseSchedule, x0: torch.Tensor, eps: torch.Tensor):
    """A 'network' that returns the exact `target` (eps, x0 or v) of the x_t it is given."""

    def net(x_t, t, y=None):
        return {"eps": eps, "x0": x0, "v": v_by_angle(schedule, x0, eps, t)}[target]

    return net


@pytest.fixture
def batch():
    g = torch.Generator().manual_seed(0)
    schedule = NoiseSchedule.from_name("linear", 1000)
    x0 = torch.rand((6, 1, 4, 4), generator=g) * 2 - 1
    eps = torch.randn((6, 1, 4, 4), generator=g)
    t = torch.tensor([0, 10, 200, 500, 800, 999])
    return schedule, x0, eps, t


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_every_prediction_becomes_the_exact_eps(batch, prediction):
    schedule, x0, eps, t = batch
    x_t = schedule.q_sample(x0, t, eps)
    eps_model = as_eps_model(oracle(prediction, schedule, x0, eps), schedule, prediction)
    # float32 buffers: x_0 -> eps divides by sqrt(1 - alpha_bar_1) = 0.01 at t = 0, hence the looser atol
    torch.testing.assert_close(eps_model(x_t, t), eps, atol=2e-4, rtol=1e-4)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("weighting", ["none", "min-snr"])
def test_the_oracle_has_zero_loss(batch, prediction, weighting):
    schedule, x0, eps, t = batch
    net = oracle(prediction, schedule, x0, eps)
    loss = diffusion_loss(net, schedule, x0, t, eps, prediction=prediction, weighting=weighting)
    assert loss.item() < 1e-10


def test_eps_without_weighting_is_l_simple(batch):
    schedule, x0, eps, t = batch
    torch.manual_seed(0)
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    wrapped = lambda x, t, y=None: net(x)  # noqa: E731
    a, s = schedule.coefficients(t, x0.ndim)
    expected = ((net(a * x0 + s * eps) - eps) ** 2).mean()  # Ho et al. 2020, Eq. 14 by hand
    torch.testing.assert_close(diffusion_loss(wrapped, schedule, x0, t, eps), expected, rtol=1e-6, atol=0)


def test_min_snr_puts_weight_min_snr_gamma_on_the_x0_error_for_every_target(batch):
    # a network whose x_0 estimate is off by a known delta: every target must see the loss
    # mean(min(SNR, 5) * delta^2), whatever it predicts (Hang et al. 2023, Eq. 8)
    schedule, x0, eps, t = batch
    delta = 0.1 * torch.ones_like(x0)
    x_t = schedule.q_sample(x0, t, eps)
    ab = schedule.alpha_bar[t].reshape(-1, 1, 1, 1)
    snr = ab / (1 - ab)
    expected = (snr.clamp(max=5.0) * delta**2).mean()
    x0_hat = x0 + delta
    eps_hat = eps_from_x0(x_t, x0_hat, *schedule.coefficients(t, x_t.ndim))
    outputs = {"x0": x0_hat, "eps": eps_hat, "v": v_from_eps(x0_hat, eps_hat, *schedule.coefficients(t, x_t.ndim))}
    for prediction, out in outputs.items():
        loss = diffusion_loss(lambda x, t, y=None, o=out: o, schedule, x0, t, eps, prediction=prediction,
                              weighting="min-snr")  # fmt: skip
        torch.testing.assert_close(loss, expected, rtol=1e-3, atol=1e-6)


def test_unweighted_losses_are_snr_snr_plus_one_and_one_times_the_x0_error(batch):
    schedule, x0, eps, t = batch
    delta = 0.1 * torch.ones_like(x0)
    x_t = schedule.q_sample(x0, t, eps)
    ab = schedule.alpha_bar[t].reshape(-1, 1, 1, 1)
    snr = ab / (1 - ab)
    x0_hat = x0 + delta
    eps_hat = eps_from_x0(x_t, x0_hat, *schedule.coefficients(t, x_t.ndim))
    cases = {
        "x0": (x0_hat, 1.0),
        "eps": (eps_hat, snr),
        "v": (v_from_eps(x0_hat, eps_hat, *schedule.coefficients(t, x_t.ndim)), snr + 1),
    }
    for prediction, (out, weight) in cases.items():
        loss = diffusion_loss(lambda x, t, y=None, o=out: o, schedule, x0, t, eps, prediction=prediction)
        torch.testing.assert_close(loss, (weight * delta**2).mean(), rtol=1e-3, atol=1e-6)


def test_unknown_prediction_and_weighting_are_refused(batch):
    schedule, x0, eps, t = batch
    net = oracle("eps", schedule, x0, eps)
    with pytest.raises(ValueError, match="prediction"):
        diffusion_loss(net, schedule, x0, t, eps, prediction="score")
    with pytest.raises(ValueError, match="weighting"):
        diffusion_loss(net, schedule, x0, t, eps, weighting="p2")
    with pytest.raises(ValueError, match="prediction"):
        EpsFromPrediction(net, schedule, "mu")


def test_the_wrapper_forwards_what_guidance_reads():
    from cleardiffusion.guidance import ClassifierFreeGuidance
    from cleardiffusion.models.unet import unet_from_preset

    schedule = NoiseSchedule.from_name("linear", 100)
    torch.manual_seed(0)
    net = unet_from_preset("small", 1, 8, num_classes=3, base_channels=8, norm_groups=4).eval()
    wrapped = EpsFromPrediction(net, schedule, "v")
    assert wrapped.null_label == 3 and wrapped.config.num_classes == 3
    wrapped.validate_labels = False
    assert net.validate_labels is False
    # guidance on the converted eps equals converting the guided v: the conversion is affine in the output
    x, t, y = torch.randn(2, 1, 8, 8), torch.tensor([5, 50]), torch.tensor([0, 2])
    guided = ClassifierFreeGuidance(wrapped, y, 3.0)(x, t)
    v_guided = ClassifierFreeGuidance(net, y, 3.0)(x, t)
    torch.testing.assert_close(guided, eps_from_v(x, v_guided, *schedule.coefficients(t, x.ndim)), atol=1e-5, rtol=1e-5)


class Recorder:
    """Wraps a 'network' and records the arguments of every call, to check what reaches it."""

    def __init__(self, net):
        self.net, self.calls = net, []

    def __call__(self, *args):
        self.calls.append(args)
        return self.net(*args)


def x_t_by_hand(schedule, x0, t, eps):
    ab = schedule.alpha_bar64[t].reshape(-1, *([1] * (x0.ndim - 1)))
    return (ab.sqrt() * x0.double() + (1 - ab).sqrt() * eps.double()).to(x0.dtype)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
@pytest.mark.parametrize("with_labels", [False, True])
def test_the_network_sees_x_t_t_and_the_labels(batch, prediction, with_labels):
    """Both losses and the eps wrapper call the network with x_t (Eq. 4), t and y when given, else (x_t, t)."""
    schedule, x0, eps, t = batch
    y = torch.tensor([0, 1, 2, 0, 1, 2]) if with_labels else None
    expected_args = 3 if with_labels else 2
    x_t = x_t_by_hand(schedule, x0, t, eps)
    runs = [lambda net: diffusion_loss(net, schedule, x0, t, eps, y, prediction=prediction),
            lambda net: EpsFromPrediction(net, schedule, prediction)(x_t, t, y)]  # fmt: skip
    if prediction == "eps":
        runs.append(lambda net: eps_mse_loss(net, schedule, x0, y=y, t=t, eps=eps))
    for run in runs:
        net = Recorder(oracle(prediction, schedule, x0, eps))
        run(net)
        ((x_seen, t_seen, *rest),) = net.calls
        assert len(net.calls[0]) == expected_args and (not rest or torch.equal(rest[0], y))
        torch.testing.assert_close(x_seen, x_t)
        assert torch.equal(t_seen, t)


def test_eps_mse_loss_draws_t_over_0_to_T_minus_1_and_eps_from_the_generator():
    """Without t and eps it draws t ~ U{0..T-1} (B,) then eps ~ N(0, I) like x_0, both from `generator`."""
    schedule = NoiseSchedule.from_name("linear", 10)
    x0 = torch.rand(4000, 2, dtype=torch.float64) * 2 - 1  # float64 data: eps must follow its dtype
    net = Recorder(lambda x, t: torch.zeros_like(x))
    loss = eps_mse_loss(net, schedule, x0, generator=torch.Generator().manual_seed(3))
    g = torch.Generator().manual_seed(3)
    t = torch.randint(0, 10, (4000,), generator=g)
    eps = torch.randn(x0.shape, dtype=torch.float64, generator=g)
    ((x_t, t_seen),) = net.calls
    assert torch.equal(t_seen, t) and t.min() == 0 and t.max() == 9 and x_t.dtype == torch.float64
    torch.testing.assert_close(x_t, x_t_by_hand(schedule, x0, t, eps))
    torch.testing.assert_close(loss, (eps**2).mean().float())  # the zero network's loss is E[eps^2]


@pytest.mark.parametrize("prediction", ["x0", "v"])
def test_flat_data_converts_per_sample(prediction):
    """(B, D) data (an MLP's): the coefficients broadcast per sample, not as (B, 1, 1, 1)."""
    schedule = NoiseSchedule.from_name("linear", 1000)
    g = torch.Generator().manual_seed(4)
    x0, eps, t = (
        torch.rand(5, 7, generator=g) * 2 - 1,
        torch.randn(5, 7, generator=g),
        torch.tensor([0, 9, 99, 500, 999]),
    )
    net = oracle(prediction, schedule, x0, eps)
    eps_pred = EpsFromPrediction(net, schedule, prediction)(x_t_by_hand(schedule, x0, t, eps), t)
    assert eps_pred.shape == (5, 7)
    torch.testing.assert_close(eps_pred, eps, atol=2e-4, rtol=1e-4)
    assert diffusion_loss(net, schedule, x0, t, eps, prediction=prediction).item() < 1e-10


def test_which_model_the_samplers_call():
    schedule = NoiseSchedule.from_name("linear", 100)
    net = torch.nn.Identity()
    assert sampling_model(net, schedule, "flow", "eps") is net  # the velocity network itself
    assert as_eps_model(net, schedule, "eps") is net and sampling_model(net, schedule, "ddpm", "eps") is net
    for prediction in ("x0", "v"):
        wrapped = sampling_model(net, schedule, "ddpm", prediction)
        assert isinstance(wrapped, EpsFromPrediction) and wrapped.net is net and wrapped.schedule is schedule
        assert wrapped.prediction == prediction
