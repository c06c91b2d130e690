"""Prediction targets and loss weightings: each is the same x_0 error under its own weight, and every
prediction type turns into the exact eps for the samplers."""

import pytest
import torch

from cleardiffusion.denoiser import sampling_parts, training_parts
from cleardiffusion.flow import FlowPath, flow_matching_loss
from cleardiffusion.objective import DiffusionLoss, EpsFromPrediction, as_eps_model, diffusion_loss
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


def test_v_target_is_the_angular_velocity(batch):
    """The loss's v target is dx_t / dphi: a network off by delta in v has loss mean(delta^2) exactly."""
    schedule, x0, eps, t = batch
    torch.testing.assert_close(
        v_from_eps(x0, eps, *schedule.coefficients(t, x0.ndim)), v_by_angle(schedule, x0, eps, t)
    )
    delta = 0.1 * torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    out = v_by_angle(schedule, x0, eps, t) + delta
    loss = diffusion_loss(lambda x, t, y=None: out, schedule, x0, t, eps, prediction="v")
    torch.testing.assert_close(loss, (delta**2).mean(), rtol=1e-4, atol=1e-7)


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
    runs.append(lambda net: DiffusionLoss(schedule, prediction)(net, x0, t, eps, y))  # what train_step calls
    for run in runs:
        net = Recorder(oracle(prediction, schedule, x0, eps))
        run(net)
        ((x_seen, t_seen, *rest),) = net.calls
        assert len(net.calls[0]) == expected_args and (not rest or torch.equal(rest[0], y))
        torch.testing.assert_close(x_seen, x_t)
        assert torch.equal(t_seen, t)


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


def test_which_model_the_samplers_call_and_which_loss_trains_it(batch):
    schedule, x0, eps, t = batch
    net = torch.nn.Identity()
    model, path = sampling_parts(net, "flow", "eps", schedule)
    assert model is net and isinstance(path, FlowPath)  # the velocity network itself
    assert as_eps_model(net, schedule, "eps") is net and sampling_parts(net, "ddpm", "eps", schedule) == (net, schedule)
    for prediction in ("x0", "v"):
        wrapped, path = sampling_parts(net, "ddpm", prediction, schedule)
        assert isinstance(wrapped, EpsFromPrediction) and wrapped.net is net and wrapped.schedule is schedule
        assert wrapped.prediction == prediction and path is schedule
    loss_fn, path = training_parts("flow", "eps", "none", schedule)
    assert loss_fn is flow_matching_loss and isinstance(path, FlowPath)
    loss_fn, path = training_parts("ddpm", "v", "min-snr", schedule)
    assert path is schedule and (loss_fn.schedule, loss_fn.prediction, loss_fn.weighting) == (schedule, "v", "min-snr")
    for parts in (sampling_parts, training_parts):
        with pytest.raises(ValueError, match="unknown objective 'gan'"):
            parts(net, "gan", "eps", schedule) if parts is sampling_parts else parts("gan", "eps", "none", schedule)


def test_the_bound_loss_passes_its_prediction_and_weighting_through():
    """DiffusionLoss(schedule, prediction, weighting) is diffusion_loss with those two bound, not its defaults."""
    schedule = NoiseSchedule.from_name("linear", 50)
    g = torch.Generator().manual_seed(3)
    x0, eps = torch.randn(6, 1, 4, 4, generator=g), torch.randn(6, 1, 4, 4, generator=g)
    t = torch.tensor([0, 5, 10, 20, 35, 49])
    net = torch.nn.Conv2d(1, 1, 3, padding=1)
    model = lambda x, t, y=None: net(x)  # noqa: E731
    for prediction, weighting in (("x0", "min-snr"), ("v", "none"), ("eps", "min-snr")):
        bound = DiffusionLoss(schedule, prediction, weighting)(model, x0, t, eps)
        direct = diffusion_loss(model, schedule, x0, t, eps, prediction=prediction, weighting=weighting)
        default = diffusion_loss(model, schedule, x0, t, eps)
        assert torch.equal(bound, direct) and not torch.allclose(bound, default), (prediction, weighting)
