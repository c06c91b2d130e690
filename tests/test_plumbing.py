"""Plumbing that a wrong line could break silently: every option of `generate_images` reaches its sampler,
per-sample seeds differ per sample, and the training loop's EMA, warm-up, gradient clipping, timesteps and
resume do what they say. Each test compares against a direct computation, not against "it ran"."""

from dataclasses import replace
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cleardiffusion import fastpath
from cleardiffusion.checkpoint import load_checkpoint
from cleardiffusion.flow import FlowPath
from cleardiffusion.generate import generate_images, sample_generator
from cleardiffusion.guidance import guided_model
from cleardiffusion.objective import DiffusionLoss
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.samplers import SAMPLERS, make_timesteps
from cleardiffusion.schedule import NoiseSchedule
from cleardiffusion.train import TrainConfig, draw_batch, ema_decay, ema_update_, learning_rate, train, train_step
from test_train import tiny_config, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
SHAPE = (1, 4, 4)


class StubDenoiser(nn.Module):
    """A conditional 'network' whose conditional and unconditional outputs differ, elementwise (so batching
    cannot change a bit) and steep enough that x_0 clipping binds."""

    config = SimpleNamespace(num_classes=3)
    null_label = 3

    def forward(self, x, t, y=None):
        shift = 0.0 if y is None else 0.4 * (y.to(x.dtype) - 1.5).reshape(-1, 1, 1, 1)  # null label: +0.6
        return -0.6 * torch.tanh(x) + shift + 0.002 * t.to(x.dtype).reshape(-1, 1, 1, 1)


def direct(sampler: str, n: int, seed: int, labels, guidance: float, path, timesteps, **options):
    """What `generate_images` promises: x_T and all noise of sample i from sample_generator(seed, i), the
    guided model, the sampler called once on the whole batch."""
    generators = [sample_generator(seed, i) for i in range(n)]
    x_T = torch.stack([torch.randn(SHAPE, generator=g) for g in generators])
    model = guided_model(StubDenoiser(), labels, guidance)  # ClassifierFreeGuidance, Conditioned or the model
    return SAMPLERS[sampler](model, path, x_T, timesteps, generator=generators, **options)


def generated(path, recipe: SamplingRecipe, **kwargs) -> torch.Tensor:
    return torch.cat(list(generate_images(StubDenoiser(), path, shape=SHAPE, recipe=recipe, **kwargs)))


# option -> (the recipe's fields, the sampler's own options); each differs from the sampler's default
CASES = {
    "ddpm-posterior": (dict(sampler="ddpm", variance="posterior"), dict(variance="posterior")),
    "ddim-eta": (dict(sampler="ddim", eta=0.6), dict(eta=0.6)),
    "dpm-exact": (dict(sampler="dpm++2m", solver_type="exact"), dict(solver_type="exact")),
    "dpm-sde-exact": (dict(sampler="dpm++2m-sde", solver_type="exact"), dict(solver_type="exact")),
    "heun": (dict(sampler="heun"), {}),
    "euler": (dict(sampler="euler"), {}),
}


@pytest.mark.parametrize("case", list(CASES))
@pytest.mark.parametrize("clip_x0", [True, False])
@pytest.mark.parametrize("flow", [False, True])
def test_generate_passes_every_option_to_the_sampler(case, clip_x0, flow):
    """Bitwise equal to a direct sampler call with the same guidance, seeds, steps and options; and each
    option matters: leaving it (or the guidance, or the clipping) out changes the samples."""
    path = FlowPath() if flow else NoiseSchedule.from_name("linear", 100)
    fields, options = CASES[case]
    sampler, labels = fields["sampler"], torch.tensor([0, 2, 1, 2, 0])
    spacing = "quadratic" if flow else "trailing"
    ts = make_timesteps(path, 6, spacing)
    recipe = SamplingRecipe(steps=6, spacing=spacing, guidance=2.5, clip_x0=clip_x0, **fields)
    ours = generated(path, recipe, n=5, labels=labels, seed=7, batch_size=2)
    expected = direct(sampler, 5, 7, labels, 2.5, path, ts, clip_x0=clip_x0, **options)
    assert torch.equal(ours, expected)
    changed = [
        direct(sampler, 5, 7, labels, 1.0, path, ts, clip_x0=clip_x0, **options),  # no guidance
        direct(sampler, 5, 7, labels, 2.5, path, ts, clip_x0=not clip_x0, **options),  # the other clip
        direct(sampler, 5, 7, labels, 2.5, path, make_timesteps(path, 6), clip_x0=clip_x0, **options),
    ]  # fmt: skip  (the last: the default spacing)
    if options:
        changed.append(direct(sampler, 5, 7, labels, 2.5, path, ts, clip_x0=clip_x0))  # the sampler's defaults
    assert all((ours - other).abs().max() > 1e-4 for other in changed)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_generate_runs_the_network_in_the_precision_it_is_given(precision):
    """precision="bf16": every network call under bf16 autocast; "fp32": none, on any CPU."""
    seen = []

    class Recording(StubDenoiser):
        def forward(self, x, t, y=None):
            seen.append(torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16)
            return super().forward(x, t, y)

    recipe = SamplingRecipe(sampler="ddim", steps=3)
    torch.cat(list(generate_images(Recording(), NoiseSchedule.from_name("linear", 100), shape=SHAPE, recipe=recipe,
                                   n=2, precision=precision)))  # fmt: skip
    assert seen == [precision == "bf16"] * 3


def test_per_sample_seeds_give_distinct_samples_whatever_the_batch():
    schedule = NoiseSchedule.from_name("linear", 100)
    recipe = SamplingRecipe(sampler="ddpm", steps=5)
    whole = generated(schedule, recipe, n=6, batch_size=6, seed=3)
    assert torch.equal(generated(schedule, recipe, n=6, batch_size=4, seed=3), whole)  # batching changes nothing
    assert torch.equal(generated(schedule, recipe, n=3, batch_size=1, seed=3), whole[:3])  # nor the sample count
    flat = whole.flatten(1)
    assert (torch.cdist(flat, flat) + torch.eye(6)).min() > 0.1  # every sample differs from every other
    other_seed = generated(schedule, recipe, n=6, batch_size=6, seed=4)
    assert (other_seed - whole).flatten(1).abs().max(1).values.min() > 0.1
    states = {tuple(sample_generator(s, i).get_state().tolist()) for s in (0, 1) for i in range(50)}
    assert len(states) == 100


def test_generate_defaults_explicit_grid_callback_and_label_checks():
    schedule = NoiseSchedule.from_name("linear", 100)
    recipe = SamplingRecipe(sampler="ddim", steps=4)
    assert torch.equal(generated(schedule, recipe, n=2), generated(schedule, recipe, n=2, seed=0))  # seed 0
    assert generated(schedule, recipe, n=1).shape == (1, *SHAPE)
    ts = [90, 41, 7]  # an explicit grid overrides the recipe's steps and spacing
    assert torch.equal(generated(schedule, recipe, n=2, timesteps=ts), direct("ddim", 2, 0, None, 1.0, schedule, ts,
                                                                               clip_x0=True, eta=0.0))  # fmt: skip
    seen, checks = [], []
    model = StubDenoiser()
    model.validate_labels = True
    forward = model.forward
    model.forward = lambda *a: checks.append(model.validate_labels) or forward(*a)
    list(generate_images(model, schedule, n=3, shape=SHAPE, recipe=recipe, batch_size=2,
                         callback=lambda i, t, x, x0: seen.append((i, t, len(x)))))  # fmt: skip
    assert seen == [(i, t, b) for b in (2, 1) for i, t in enumerate(make_timesteps(schedule, 4))]
    assert checks == [False] * 8 and model.validate_labels is True  # labels trusted while sampling, then restored
    state = np.random.SeedSequence([3, 5]).generate_state(2, dtype=np.uint32)  # the documented derivation
    assert sample_generator(3, 5).initial_seed() == int(state[0]) << 32 | int(state[1])


def test_generate_rejects_bad_requests():
    schedule = NoiseSchedule.from_name("linear", 100)
    with pytest.raises(ValueError, match="at least 1"):
        generated(schedule, SamplingRecipe(), n=0)
    with pytest.raises(ValueError, match="at least 1"):
        generated(schedule, SamplingRecipe(), n=2, batch_size=0)
    with pytest.raises(ValueError, match="3 labels for 2 samples"):
        generated(schedule, SamplingRecipe(guidance=2.0), n=2, labels=torch.tensor([0, 1, 2]))


# ---------------------------------------------------------------------------------------------- training


def test_timesteps_cover_0_to_T_minus_1_uniformly():
    data = {"images": torch.zeros(8, 1, 2, 2, dtype=torch.uint8), "labels": torch.zeros(8), "null_label": 1}
    _, _, t, _ = draw_batch(torch.Generator().manual_seed(0), data, TrainConfig(batch_size=5000),
                            NoiseSchedule.from_name("linear", 10), False, slice(None))  # fmt: skip
    counts = torch.bincount(t, minlength=10)
    assert len(counts) == 10 and t.min() == 0 and t.max() == 9  # the paper's t = 1..T, every one of them
    assert ((counts - 500).abs() < 4 * (5000 * 0.1 * 0.9) ** 0.5).all()  # uniform: binomial 4-sigma band


def test_draw_batch_takes_every_draw_from_the_run_generator_and_scales_the_data():
    """x_0 = images[index] / 127.5 - 1, the index over the whole dataset (0 included), then t and eps, all from
    the run's one generator in that order (so a resumed run draws what the uninterrupted one would)."""
    images = torch.arange(6 * 4, dtype=torch.uint8).reshape(6, 1, 2, 2) * 10  # image i holds 40 i .. 40 i + 30
    data = {"images": images, "labels": torch.arange(6), "null_label": 6}
    schedule = NoiseSchedule.from_name("linear", 10)
    torch.manual_seed(123)  # the global RNG must not be what draws
    x0, y, t, eps = draw_batch(torch.Generator().manual_seed(9), data, TrainConfig(batch_size=300), schedule, False,
                               slice(None))  # fmt: skip
    g = torch.Generator().manual_seed(9)
    index = torch.randint(0, 6, (300,), generator=g)
    assert torch.equal(t, torch.randint(0, 10, (300,), generator=g))
    assert torch.equal(eps, torch.randn((300, 1, 2, 2), generator=g))
    assert torch.equal(x0, images[index].float() / 127.5 - 1) and y is None
    assert set(index.tolist()) == set(range(6))  # every image, the first included
    assert x0.min() == -1 and x0.max() == pytest.approx(230 / 127.5 - 1)


def test_train_step_clips_the_gradient_norm():
    """After the step the gradients are still there: their global norm is the clip value when the raw norm is
    larger, and the raw norm (unclipped) with grad_clip = 0."""
    torch.manual_seed(0)
    schedule = NoiseSchedule.from_name("linear", 100)
    x0, t = torch.rand(8, 1, 4, 4) * 2 - 1, torch.randint(0, 100, (8,))
    eps = 50 * torch.randn(8, 1, 4, 4)  # a large target: a large gradient

    def norm_after(grad_clip):
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(1, 4, 3, padding=1), nn.SiLU(), nn.Conv2d(4, 1, 3, padding=1))
        model = lambda x, t, y=None: net(x)  # noqa: E731
        params = list(net.parameters())
        ema = [p.detach().clone() for p in params]
        optimizer = torch.optim.SGD(params, lr=0.0)  # lr 0: the weights stay, the gradients are what we read
        clip = {} if grad_clip is None else {"grad_clip": grad_clip}
        seen = []
        loss_fn = lambda *args: seen.append(args[-1]) or DiffusionLoss(schedule)(*args)  # noqa: E731
        train_step(model, loss_fn, optimizer, params, ema, x0, t, eps, torch.arange(8), decay=0.9, **clip)
        assert torch.equal(seen[0], torch.arange(8))  # the labels reach the loss
        return torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in params])).item()

    raw = norm_after(0.0)
    assert raw > 5
    assert norm_after(2.0) == pytest.approx(2.0, rel=1e-5) and norm_after(0.5) == pytest.approx(0.5, rel=1e-5)
    assert norm_after(None) == pytest.approx(1.0, rel=1e-5)  # the default clips at 1
    assert norm_after(10 * raw) == pytest.approx(raw, rel=1e-6)  # below the limit: untouched


@pytest.mark.filterwarnings("error")  # e.g. torch's "CPU autocast ... not supported, disabling" for fp32
@pytest.mark.parametrize("amp", ["fp32", "bf16"])
def test_train_step_computes_the_loss_under_the_autocast_its_options_ask_for(amp):
    """options.amp = bf16: the loss (forward included) runs under bf16 autocast; fp32: under none."""
    schedule = NoiseSchedule.from_name("linear", 100)
    net = nn.Conv2d(1, 1, 3, padding=1)
    seen = []

    def loss_fn(*args):
        seen.append((torch.is_autocast_enabled("cpu"), torch.get_autocast_dtype("cpu")))
        return DiffusionLoss(schedule)(*args)

    options = replace(fastpath.PLAIN, amp=amp)
    x0, t, eps = torch.rand(2, 1, 4, 4), torch.tensor([3, 50]), torch.randn(2, 1, 4, 4)
    train_step(lambda x, t, y=None: net(x), loss_fn, torch.optim.SGD(net.parameters(), lr=0.1),
               list(net.parameters()), None, x0, t, eps, decay=0.9, options=options)  # fmt: skip
    assert seen == ([(True, torch.bfloat16)] if amp == "bf16" else [(False, seen[0][1])])


def test_train_step_returns_the_loss_then_steps_and_updates_the_ema():
    """The returned loss is the objective's at the weights before the step (detached); the weights then take
    one AdamW step and the EMA one lerp towards them; channels_last and the per-tensor EMA loop are the same
    numbers; ema_params None skips the EMA."""
    schedule = NoiseSchedule.from_name("linear", 100)
    g = torch.Generator().manual_seed(1)
    x0, t, eps = torch.rand(4, 1, 4, 4, generator=g) * 2 - 1, torch.randint(0, 100, (4,), generator=g), torch.randn(
        4, 1, 4, 4, generator=g)  # fmt: skip
    results = []
    for options in (fastpath.PLAIN, replace(fastpath.PLAIN, channels_last=True, foreach_ema=True), None):
        torch.manual_seed(0)
        net = nn.Conv2d(1, 1, 3, padding=1)
        model = lambda x, t, y=None, net=net: net(x)  # noqa: E731
        params = list(net.parameters())
        before = [p.detach().clone() for p in params]
        ema = None if options is None else [p.detach().clone() for p in params]
        expected = DiffusionLoss(schedule)(model, x0, t, eps).detach()
        optimizer = torch.optim.AdamW(params, lr=0.1)
        loss = train_step(model, DiffusionLoss(schedule), optimizer, params, ema, x0, t, eps, decay=0.75,
                          options=options or fastpath.PLAIN)  # fmt: skip
        assert not loss.requires_grad and torch.equal(loss, expected)
        assert all((p - b).abs().max() > 1e-3 for p, b in zip(params, before))  # every weight moved
        if ema is not None:
            for e, b, p in zip(ema, before, params):
                torch.testing.assert_close(e, 0.75 * b + 0.25 * p.detach())
            results.append([p.detach() for p in params])
    for a, b in zip(*results):
        torch.testing.assert_close(a, b)


@pytest.fixture(scope="module")
def straight_run(tmp_path_factory):
    """A 6-step tiny run with a checkpoint at every step, and a 3-step run resumed to 6 steps."""
    root = tmp_path_factory.mktemp("plumbing")
    digits = write_digits(root / "digits")
    extra = dict(steps=6, checkpoint_every=1, keep_checkpoints=True, ema_decay=0.5, warmup=4, lr=1e-2)
    train(tiny_config(digits, root / "full", **extra))
    train(tiny_config(digits, root / "split", **{**extra, "steps": 3, "checkpoint_every": 3}))
    train(tiny_config(digits, root / "split", **{**extra, "checkpoint_every": 3}, resume=True))
    train(tiny_config(digits, root / "flat", **{**extra, "steps": 3, "ema_warmup": 0}))
    return root


def checkpoint(root, run, step):
    return load_checkpoint(root / run / "checkpoints" / f"step_{step:07d}.pt")


@pytest.mark.parametrize("run, last", [("full", 6), ("flat", 3)])
def test_ema_follows_its_warm_started_recurrence(straight_run, run, last):
    """ema_s = d_s ema_{s-1} + (1 - d_s) theta_s with d_s = min(decay, (1 + s) / (ema_warmup + s)), checkpoint by
    checkpoint; with decay 0.5 the warm-up value (1 + s) / (10 + s) < 0.5 rules at steps 1..7 of the default
    ema_warmup 10, and --ema-warmup 0 ("flat") holds 0.5 from the first step."""
    warmup = 10 if run == "full" else 0
    for s in range(2, last + 1):
        before, now = checkpoint(straight_run, run, s - 1), checkpoint(straight_run, run, s)
        d = min(0.5, (1 + s) / (warmup + s))
        for name, ema in now["ema"].items():
            if ema.is_floating_point():
                expected = d * before["ema"][name] + (1 - d) * now["model"][name]
                torch.testing.assert_close(ema, expected, rtol=1e-5, atol=1e-6, msg=f"{name} at step {s}")
        assert any(not torch.equal(now["ema"][k], before["ema"][k]) for k in now["ema"])  # it moved


def test_learning_rate_warms_up_linearly_then_stays(straight_run):
    """The learning rate the optimiser held at step s: lr * min(1, s / warmup), warmup = 4, lr = 1e-2."""
    for s in range(1, 7):
        lr = checkpoint(straight_run, "full", s)["optimizer"]["param_groups"][0]["lr"]
        assert lr == pytest.approx(1e-2 * min(1.0, s / 4), rel=1e-12), s


def test_resume_is_bitwise_on_model_ema_and_optimizer(straight_run):
    full, split = (load_checkpoint(straight_run / run / "checkpoints" / "last.pt") for run in ("full", "split"))
    assert full["step"] == split["step"] == 6
    for key in ("model", "ema"):
        assert full[key].keys() == split[key].keys()
        assert all(torch.equal(full[key][k], split[key][k]) for k in full[key]), key
    a, b = full["optimizer"], split["optimizer"]
    assert a["param_groups"] == b["param_groups"]
    for i, state in a["state"].items():
        assert all(torch.equal(state[k], b["state"][i][k]) for k in state), i
    # and the resumed half really started from step 3's checkpoint, not from scratch
    assert not torch.equal(checkpoint(straight_run, "split", 3)["ema"][next(iter(full["ema"]))],
                           full["ema"][next(iter(full["ema"]))])  # fmt: skip


def test_schedules_of_the_step_by_hand():
    """learning_rate: lr min(1, s / warmup), or lr without warm-up; ema_decay: min(max, (1 + s) / (w + s)), w 10
    by default;
    ema_update_: ema <- d ema + (1 - d) theta, with or without the fused kernel."""
    assert [learning_rate(s, 0.3, 4) for s in (1, 2, 4, 9)] == pytest.approx([0.075, 0.15, 0.3, 0.3], rel=1e-15)
    assert learning_rate(1, 0.3, 0) == 0.3
    assert [ema_decay(s, 0.9) for s in (1, 5, 80, 81, 10**6)] == pytest.approx([2 / 11, 6 / 15, 81 / 90, 0.9, 0.9])
    assert [ema_decay(s, 0.9, 3) for s in (1, 17, 18)] == pytest.approx([2 / 4, 18 / 20, 0.9])
    assert ema_decay(1, 0.9, 0) == ema_decay(1, 0.9, 1) == 0.9  # no warm start
    params = [torch.tensor([1.0, -2.0]), torch.tensor([[0.5]])]
    for foreach in (True, False):
        ema = [torch.tensor([3.0, 4.0]), torch.tensor([[-1.0]])]
        ema_update_(ema, params, 0.75, foreach=foreach)
        assert torch.equal(ema[0], torch.tensor([2.5, 2.5])) and torch.equal(ema[1], torch.tensor([[-0.625]]))
