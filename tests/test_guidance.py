"""Classifier-free guidance (Ho & Salimans 2022): the wrapper's limits, one batched pass, label dropout."""

from types import SimpleNamespace

import pytest
import torch

from cleardiffusion.errors import UsageError
from cleardiffusion.guidance import ClassifierFreeGuidance, Conditioned, guided_model
from cleardiffusion.models.mlp import MLPConfig, MLPDenoiser
from cleardiffusion.schedule import NoiseSchedule
from cleardiffusion.train import TrainConfig, draw_batch


def conditional_mlp(num_classes=10):
    torch.manual_seed(0)
    model = MLPDenoiser(MLPConfig(data_dim=12, hidden_dim=32, num_classes=num_classes)).eval()
    with torch.no_grad():  # make the class embedding matter
        model.label_emb.weight.normal_()
    return model


def inputs(B=6, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(B, 12, generator=g), torch.randint(0, 100, (B,), generator=g), torch.arange(B) % 10


def test_scale_one_is_the_conditional_model_and_zero_the_unconditional():
    model = conditional_mlp()
    x, t, y = inputs()
    with torch.no_grad():
        eps_cond, eps_uncond = model(x, t, y), model(x, t, torch.full_like(y, model.null_label))
        torch.testing.assert_close(ClassifierFreeGuidance(model, y, 1.0)(x, t), eps_cond, atol=1e-6, rtol=1e-5)
        torch.testing.assert_close(ClassifierFreeGuidance(model, y, 0.0)(x, t), eps_uncond, atol=1e-6, rtol=1e-5)
        s = 3.0
        expected = eps_uncond + s * (eps_cond - eps_uncond)
        torch.testing.assert_close(ClassifierFreeGuidance(model, y, s)(x, t), expected, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(eps_cond, eps_uncond)  # the labels really change the prediction


def test_guidance_is_one_batched_forward():
    model = conditional_mlp()
    calls = []
    model.register_forward_hook(lambda m, args, out: calls.append(args[0].shape[0]))
    x, t, y = inputs(B=5)
    with torch.no_grad():
        ClassifierFreeGuidance(model, y, 2.0)(x, t)
    assert calls == [10]


def test_guided_model_picks_the_cheapest_wrapper():
    model = conditional_mlp()
    x, t, y = inputs(B=2)
    assert guided_model(model, None) is model
    assert isinstance(guided_model(model, y, 1.0), Conditioned)
    assert isinstance(guided_model(model, y, 4.0), ClassifierFreeGuidance)
    with torch.no_grad():  # the conditional wrapper passes its labels, and only them, to the model
        assert torch.equal(guided_model(model, y, 1.0)(x, t), model(x, t, y))
        assert torch.equal(guided_model(model, None)(x, t), model(x, t))


def test_null_label_is_not_a_real_class():
    model = conditional_mlp(num_classes=7)
    assert model.null_label == 7 and model.label_emb.num_embeddings == 8


def test_bad_labels_and_guidance_on_unconditional_models_raise():
    model = conditional_mlp()
    with pytest.raises(UsageError, match="0..9"):
        ClassifierFreeGuidance(model, torch.tensor([3, 10]), 2.0)
    with pytest.raises(UsageError, match="0..9"):
        Conditioned(model, torch.tensor([-1]))
    Conditioned(model, torch.tensor([0, 9]))  # both ends of 0..9 are real classes
    Conditioned(model, torch.tensor([], dtype=torch.long))  # no labels: nothing to check
    unconditional = MLPDenoiser(MLPConfig(data_dim=12, hidden_dim=8))
    with pytest.raises(UsageError, match="unconditional"):
        guided_model(unconditional, torch.tensor([0]), 3.0)
    for bare in (torch.nn.Identity(), SimpleNamespace(config=SimpleNamespace())):  # no config / no num_classes
        with pytest.raises(UsageError, match="unconditional"):
            Conditioned(bare, torch.tensor([0]))
    with pytest.raises(UsageError, match="class labels"):
        guided_model(model, None, 3.0)


@pytest.mark.parametrize("p", [0.1, 0.3, 0.5])
def test_label_dropout_rate_matches_p(p):
    """Over many training batches the fraction of null labels is P (binomial 4-sigma band)."""
    images = torch.zeros(50, 1, 4, 4, dtype=torch.uint8)
    labels = torch.arange(50) % 10
    data = {"images": images, "labels": labels, "null_label": 10}
    config = TrainConfig(dataset="mnist", out="unused", conditional=True, label_dropout=p, batch_size=256)
    g = torch.Generator().manual_seed(0)
    dropped = total = 0
    for _ in range(40):
        _, y, _, _ = draw_batch(g, data, config, NoiseSchedule.from_name("linear", 100), False, slice(None))
        assert ((y == 10) | (y == labels[:10].unsqueeze(1)).any(0)).all()
        dropped += (y == 10).sum().item()
        total += len(y)
    sigma = (p * (1 - p) / total) ** 0.5
    assert abs(dropped / total - p) < 4 * sigma
    # the draws come from the run's generator: the same seed gives the same labels
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    path = NoiseSchedule.from_name("linear", 100)
    assert torch.equal(draw_batch(g1, data, config, path, False, slice(None))[1],
                       draw_batch(g2, data, config, path, False, slice(None))[1])  # fmt: skip


def test_autoguidance_on_an_interval_guides_the_same_noise_levels_on_either_path():
    """interval_start(path, F): the network time from which guidance.AutoGuidance guides, so that F = 0.15 means
    t >= 0.15 T on DDPM's path (the network sees the timestep) and t >= 0.15 on the flow path (it sees 1000 t)."""
    from cleardiffusion.denoiser import FewStepPath
    from cleardiffusion.flow import TIME_SCALE, FlowPath
    from cleardiffusion.guidance import AutoGuidance, interval_start

    schedule = NoiseSchedule(torch.linspace(1e-4, 0.02, 200))
    assert interval_start(schedule, 0.15) == 30 and interval_start(schedule, 0) == 0
    assert interval_start(FewStepPath(schedule, "consistency"), 0.15) == 30  # a consistency model's teacher path
    good, bad = (lambda x, t: x * (2 + t[:, None])), (lambda x, t: -x)  # noqa: E731
    x = torch.randn(4, 3, dtype=torch.float64)
    for path, times in ((schedule, torch.tensor([0, 29, 30, 199])), (FlowPath(), torch.tensor([0, 0.1, 0.5, 1.0]))):
        net_t = torch.stack([path.network_time(t.item(), x[:1])[0] for t in times]).to(torch.float64)
        out = AutoGuidance(good, bad, 3.0, from_t=interval_start(path, 0.15))(x, net_t)
        expected = torch.where((times >= 0.15 * getattr(path, "T", 1))[:, None], 3 * good(x, net_t) - 2 * bad(x, net_t),
                               good(x, net_t))  # fmt: skip
        torch.testing.assert_close(out, expected, rtol=0, atol=1e-12)
    assert interval_start(FlowPath(), 0.15) == 0.15 * TIME_SCALE


def test_autoguidance_below_its_interval_runs_the_good_model_alone():
    """A call whose every timestep lies below from_t is the good model's eps, with no forward pass of `bad`; one
    sample at from_t or above brings `bad` back for the whole batch, guided only where t >= from_t."""
    from cleardiffusion.guidance import AutoGuidance

    calls = []
    good = lambda x, t: x * (2 + t[:, None])  # noqa: E731
    bad = lambda x, t: calls.append(len(t)) or -x  # noqa: E731
    x, guided = torch.randn(3, 2, dtype=torch.float64), AutoGuidance(good, bad, 3.0, from_t=30)
    below = torch.tensor([0.0, 12.0, 29.0], dtype=torch.float64)
    torch.testing.assert_close(guided(x, below), good(x, below), rtol=0, atol=0)
    assert calls == []
    mixed = torch.tensor([0.0, 30.0, 99.0], dtype=torch.float64)
    out = guided(x, mixed)
    assert calls == [3]
    torch.testing.assert_close(out[0], good(x, mixed)[0], rtol=0, atol=1e-12)
    torch.testing.assert_close(out[1:], (3 * good(x, mixed) + 2 * x)[1:], rtol=0, atol=1e-12)
    AutoGuidance(good, bad, 3.0)(x, below)  # no interval: guided everywhere, bad runs
    assert calls == [3, 3]
