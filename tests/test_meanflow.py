"""MeanFlow (meanflow.py, samplers.meanflow_sample) against Gaussian data, whose average velocity is known exactly.

For data x ~ N(mu, s^2) per coordinate on the flow path z_t = (1 - t) x + t eps, z_t ~ N(m_t, sigma_t^2) with
m_t = (1 - t) mu and sigma_t^2 = (1 - t)^2 s^2 + t^2. The velocity E[eps - x | z_t] is affine in z_t, so the
probability-flow ODE maps z_t to z_r = m_r + (sigma_r / sigma_t) (z_t - m_t), and the average velocity is
u(z, r, t) = (z - z_r) / (t - r) = -mu + (z - m_t) ((t + r) - s^2 (2 - t - r)) / (sigma_t (sigma_t + sigma_r)),
using sigma_t^2 - sigma_r^2 = (t - r) ((t + r) - s^2 (2 - t - r)); at r = t it is the velocity v(z, t).
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from cleardiffusion.checkpoint import load_checkpoint
from cleardiffusion.cli import main
from cleardiffusion.denoiser import FewStepPath, sampling_parts, training_parts
from cleardiffusion.errors import UsageError
from cleardiffusion.flow import TIME_SCALE, FlowPath
from cleardiffusion.guidance import guided_model
from cleardiffusion.meanflow import TimePairs, adaptive_loss, jvp, meanflow_loss, meanflow_target
from cleardiffusion.models import build_model
from cleardiffusion.models.unet import UNet, UNetConfig
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.samplers import euler_sample, meanflow_sample
from cleardiffusion.schedule import NoiseSchedule
from cleardiffusion.train import train_step
from test_train import losses, tiny_flags, write_digits

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
F64 = torch.float64
MU, S = torch.tensor([0.5, -1.0], dtype=F64), torch.tensor([0.3, 2.0], dtype=F64)  # two independent coordinates
MEANFLOW = FewStepPath(FlowPath(), "meanflow")


class ExactU(nn.Module):
    """The exact u(z, r, t) of N(mu, s^2) data (module docstring), read from a two-time network's input (t, t - r)
    (flow.network_times); `wrong(z, r, t)` is added to it (a perturbed model)."""

    def __init__(self, mu=MU, s=S, wrong=None):
        super().__init__()
        self.mu, self.s, self.wrong = mu, s, wrong

    def forward(self, z, t_in, y=None):
        t = t_in[:, 0:1]  # (B, 1)
        r = t - t_in[:, 1:2]
        sigma_t, sigma_r = (((1 - a) ** 2 * self.s**2 + a**2) ** 0.5 for a in (t, r))
        u = -self.mu + (z - (1 - t) * self.mu) * ((t + r) - self.s**2 * (2 - t - r)) / (sigma_t * (sigma_t + sigma_r))
        return u if self.wrong is None else u + self.wrong(z, r, t)


def exact_u(z, r, t, model=None):
    """u(z, r, t) for (B,) times."""
    return (model or ExactU())(z, torch.stack([t, t - r], dim=1))


def times(n=64, seed=0):
    """(t, r) with r = t for every fourth pair, t in [0.05, 1]."""
    g = torch.Generator().manual_seed(seed)
    t = 0.05 + 0.95 * torch.rand(n, generator=g, dtype=F64)
    r = torch.where(torch.arange(n) % 4 == 0, t, t * torch.rand(n, generator=g, dtype=F64))
    return t, r


def posterior_mean_pair(z, t):
    """(x, eps) on z's straight line whose velocity eps - x is the marginal v(z, t) = u(z, t, t): x = E[x | z_t]."""
    v = exact_u(z, t, t)
    return z - t[:, None] * v, z + (1 - t[:, None]) * v


# ---- (a), (b): the training target and the loss -----------------------------------------------------------
def test_the_closed_form_is_the_flow_map_it_claims():
    """u(z, r, t) (t - r) is the displacement of the ODE dz/dt = v(z, t), integrated by fine RK4 steps."""
    z = torch.tensor([[1.3, -0.4], [-2.0, 3.0]], dtype=F64)
    t0, r0, n = 0.9, 0.15, 400
    x, h = z.clone(), (t0 - r0) / n
    for i in range(n):  # from t0 down to r0
        t = t0 - i * h
        v = lambda x, t: exact_u(x, torch.full((2,), t, dtype=F64), torch.full((2,), t, dtype=F64))  # noqa: E731
        k1 = v(x, t)
        k2 = v(x - h / 2 * k1, t - h / 2)
        k3 = v(x - h / 2 * k2, t - h / 2)
        x = x - h / 6 * (k1 + 2 * k2 + 2 * k3 + v(x - h * k3, t - h))
    u = exact_u(z, torch.full((2,), r0, dtype=F64), torch.full((2,), t0, dtype=F64))
    torch.testing.assert_close((z - x) / (t0 - r0), u, atol=1e-10, rtol=0)


def test_the_target_of_the_exact_u_is_the_exact_u_and_its_loss_is_zero():
    t, r = times()
    z = torch.randn(len(t), 2, generator=torch.Generator().manual_seed(1), dtype=F64) * 2
    x0, eps = posterior_mean_pair(z, t)  # eps - x0 is the marginal velocity at z: the identity is exact
    u_pred, u_tgt = meanflow_target(ExactU(), x0, t, r, eps)
    torch.testing.assert_close(u_pred, exact_u(z, r, t), atol=1e-12, rtol=0)  # the network was called at z_t
    torch.testing.assert_close(u_tgt, u_pred, atol=1e-10, rtol=0)  # Eq. 10 with the exact u returns u
    assert meanflow_loss(ExactU(), x0, torch.stack([t, r], 1), eps).item() < 1e-12


def test_the_target_of_training_pairs_is_unbiased():
    """With eps - x the CONDITIONAL velocity, the target is noisy but E[u_tgt | z_t] = u: x0 drawn from the
    Gaussian posterior p(x0 | z_t) (fixed seed, 20,000 draws), the mean target is u within 5 standard errors."""
    n, t0, r0 = 20_000, 0.7, 0.2
    z = torch.tensor([[0.8, -2.5]], dtype=F64).expand(n, 2)
    sigma2 = (1 - t0) ** 2 * S**2 + t0**2
    mean = MU + (1 - t0) * S**2 / sigma2 * (z - (1 - t0) * MU)  # E[x0 | z_t]
    noise = torch.randn(n, 2, generator=torch.Generator().manual_seed(2), dtype=F64)
    x0 = mean + (S**2 * t0**2 / sigma2) ** 0.5 * noise  # x0 ~ p(x0 | z_t)
    eps = (z - (1 - t0) * x0) / t0  # the noise that puts x0 at z
    t, r = torch.full((n,), t0, dtype=F64), torch.full((n,), r0, dtype=F64)
    _, u_tgt = meanflow_target(ExactU(), x0, t, r, eps)
    error = u_tgt.mean(0) - exact_u(z[:1], r[:1], t[:1])[0]
    assert (error.abs() < 5 * u_tgt.std(0) / n**0.5).all(), error
    assert (u_tgt.std(0) > 0.1).all()  # the single targets really are noisy


@pytest.mark.parametrize(
    "name, wrong",
    [
        ("a constant", lambda z, r, t: 0.1 + 0 * z),
        ("zero at r = t: the flow-matching pairs are exact", lambda z, r, t: 0.3 * (t - r) * z),
        ("a scale", lambda z, r, t: -0.2 * exact_u(z, r[:, 0], t[:, 0])),
    ],
)
def test_a_perturbed_u_has_a_positive_loss(name, wrong):
    t, r = times()
    z = torch.randn(len(t), 2, generator=torch.Generator().manual_seed(3), dtype=F64)
    x0, eps = posterior_mean_pair(z, t)
    u_pred, u_tgt = meanflow_target(ExactU(wrong=wrong), x0, t, r, eps)
    assert (u_pred - u_tgt).abs().max() > 1e-2, name
    assert meanflow_loss(ExactU(wrong=wrong), x0, torch.stack([t, r], 1), eps).item() > 1e-2, name


@pytest.mark.parametrize("p", [0.0, 0.5, 0.75, 1.0])
def test_the_loss_has_the_gradient_of_the_papers_adaptive_weighting(p):
    """grad mean rho(||Delta||^2) = grad mean sg(w) ||Delta||^2 with w = 1 / (||Delta||^2 + c)^p."""
    c = 1e-3
    delta = torch.randn(6, 5, generator=torch.Generator().manual_seed(4), dtype=F64) * torch.logspace(-3, 1, 6)[:, None]
    ours = delta.clone().requires_grad_()
    adaptive_loss(ours.pow(2).sum(1), p, c).backward()
    paper = delta.clone().requires_grad_()
    sq = paper.pow(2).sum(1)
    ((1 / (sq.detach() + c) ** p) * sq).mean().backward()
    torch.testing.assert_close(ours.grad, paper.grad, atol=1e-12, rtol=1e-10)
    assert adaptive_loss(torch.zeros(3, dtype=F64), p, c) == 0 and adaptive_loss(sq.detach(), p, c) > 0


def test_time_pairs_follow_the_papers_sampler():
    tr = TimePairs().draw_t(40_000, torch.Generator().manual_seed(5))
    t, r = tr.unbind(1)
    assert tr.shape == (40_000, 2) and (r <= t).all() and (r > 0).all() and (t < 1).all()
    same = (r == t).float().mean().item()
    assert abs(same - 0.75) < 5 * (0.75 * 0.25 / 40_000) ** 0.5  # 75% of the pairs are flow matching
    a = torch.sigmoid(-0.4 + torch.randn(2, 400_000, generator=torch.Generator().manual_seed(6)))
    assert abs(t.mean() - a.max(0).values.mean()) < 0.01  # t is the larger of two logit-normal draws


# ---- (c): sampling ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("steps, spacing", [(1, "uniform"), (2, "uniform"), (4, "quadratic"), (8, "uniform")])
def test_sampling_with_the_exact_u_gives_the_datas_mean_and_variance(steps, spacing):
    """The sampler is affine in x_1 for the exact (affine) u: x_1 = 0 must land on mu and x_1 = 1 on mu + s,
    so N(0, 1) maps onto N(mu, s^2) exactly."""
    x_T = torch.tensor([[0.0, 0.0], [1.0, 1.0]], dtype=F64)
    seen = []
    ts = MEANFLOW.timesteps(steps, spacing)
    x0 = meanflow_sample(ExactU(), MEANFLOW, x_T, ts, callback=lambda i, t, x, x0: seen.append((t, x0)))
    torch.testing.assert_close(x0[0], MU, atol=1e-12, rtol=0)
    torch.testing.assert_close(x0[1] - x0[0], S, atol=1e-12, rtol=0)
    assert [t for t, _ in seen] == ts and torch.equal(seen[-1][1], x0)  # the last step's estimate is the sample


def test_clipped_meanflow_by_hand():
    """clip_x0: the estimate z_t - t u is clamped to [-1, 1] and u re-derived from it, u = (z_t - x0) / t,
    before the jump; the callback gets each step's index, time, z_t and clamped estimate."""
    u_of = lambda z, t_in: 0.2 - z  # noqa: E731  (z_t - t u = (1 + t) z - 0.2 t leaves [-1, 1] here)
    x_T = torch.tensor([[-2.0, 0.3], [2.0, -0.9]], dtype=F64)
    ts = MEANFLOW.timesteps(3)
    seen = []
    ours = meanflow_sample(u_of, MEANFLOW, x_T, ts, clip_x0=True, callback=lambda *a: seen.append(a))
    x, expected = x_T, []
    for i, t in enumerate(ts):
        s = ts[i + 1] if i + 1 < len(ts) else 0.0
        x0 = (x - t * u_of(x, None)).clamp(-1, 1)
        expected.append((i, t, x, x0))
        x = x - (t - s) * (x - x0) / t
    torch.testing.assert_close(ours, x, atol=1e-12, rtol=0)
    assert [(i, t) for i, t, _, _ in seen] == [(i, t) for i, t, _, _ in expected]
    for (_, _, z, x0), (_, _, z_hand, x0_hand) in zip(seen, expected, strict=True):
        torch.testing.assert_close((z, x0), (z_hand, x0_hand), atol=1e-12, rtol=0)
    assert (ours - meanflow_sample(u_of, MEANFLOW, x_T, ts)).abs().max() > 1e-2  # the clamp binds


def test_a_u_that_ignores_r_samples_as_euler_on_the_velocity():
    """With u(z, r, t) := v(z, t) each jump is an Euler step: the sampler is flow matching's Euler sampler."""
    velocity_as_u = lambda z, t_in: exact_u(z, t_in[:, 0], t_in[:, 0])  # noqa: E731
    velocity = lambda z, t_in: exact_u(z, t_in / TIME_SCALE, t_in / TIME_SCALE)  # noqa: E731
    x_T = torch.randn(5, 2, generator=torch.Generator().manual_seed(7), dtype=F64)
    ts = FlowPath().timesteps(3)
    torch.testing.assert_close(meanflow_sample(velocity_as_u, MEANFLOW, x_T, ts),
                               euler_sample(velocity, FlowPath(), x_T, ts), atol=1e-12, rtol=0)  # fmt: skip


def test_guidance_passes_both_times_and_mixes_u_linearly():
    """guidance.guided_model on u: u_uncond + s (u_cond - u_uncond), the two halves in one call with (2B, 2) times."""

    class TwoClasses(nn.Module):  # class k has data mean MU + k; the null class 2 has MU - 1
        config, null_label = SimpleNamespace(num_classes=2), 2

        def forward(self, z, t_in, y):
            assert t_in.shape == (len(z), 2)
            return torch.stack([ExactU(mu=MU + k - 3 * (k == 2))(z[i : i + 1], t_in[i : i + 1])[0]
                                for i, k in enumerate(y.tolist())])  # fmt: skip

    x_T, y = torch.zeros(2, 2, dtype=F64), torch.tensor([0, 1])
    x0 = meanflow_sample(guided_model(TwoClasses(), y, 3.0), MEANFLOW, x_T, [1.0])
    torch.testing.assert_close(x0, torch.stack([MU - 1 + 3 * 1.0, MU - 1 + 3 * 2.0]), atol=1e-12, rtol=0)


# ---- (d): the U-Net's second time input ------------------------------------------------------------------
def tiny_unet(time_inputs=1, **kw):
    config = dict(in_channels=1, image_size=8, base_channels=8, channel_mults=(1, 2), num_res_blocks=1,
                  attention_resolutions=(4,), norm_groups=4, dropout=0.0)  # fmt: skip
    return UNet(UNetConfig(**{**config, **kw}, time_inputs=time_inputs))


@pytest.mark.parametrize("kw", [{}, {"time_mlp": False, "block": "plain", "time_embedding": "middle"}])
def test_a_two_time_unet_starts_as_the_one_time_unet_and_learns_r(kw):
    torch.manual_seed(0)
    one = tiny_unet(**kw)
    for p in one.parameters():  # no zero-initialised layer may hide the time input
        p.data.add_(0.1 * torch.randn_like(p))
    two = tiny_unet(2, **kw)
    extra = set(two.state_dict()) - set(one.state_dict())
    assert extra and all(k.startswith("embed.gap_mlp.") for k in extra)  # one-time weights: the same names
    loaded = two.load_state_dict(one.state_dict(), strict=False)
    assert set(loaded.missing_keys) == extra and not loaded.unexpected_keys
    x, t = torch.randn(3, 1, 8, 8), torch.tensor([10.0, 500.0, 990.0])
    with torch.no_grad():
        before = one(x, t)
        assert torch.equal(two(x, torch.stack([t, 0.3 * t], 1)), before)  # gap_mlp starts at zero
        for p in two.embed.gap_mlp.parameters():
            p.add_(0.1 * torch.randn_like(p))
        assert not torch.allclose(two(x, torch.stack([t, 0.3 * t], 1)), two(x, torch.stack([t, 0.6 * t], 1)))
    with pytest.raises(ValueError, match=r"t must have shape \(3, 2\)"):
        two(x, t)
    with pytest.raises(ValueError, match=r"t must have shape \(3,\)"):
        one(x, torch.stack([t, t], 1))


def test_one_time_checkpoints_rebuild_and_time_inputs_is_checked():
    config = dict(in_channels=1, image_size=8, base_channels=8, norm_groups=4, channel_mults=[1, 2],
                  attention_resolutions=[])  # fmt: skip
    spec = {"kind": "unet", "config": config}
    assert build_model(spec).config.time_inputs == 1  # a checkpoint from before the field existed
    with pytest.raises(ValueError, match="time_inputs must be 1"):
        UNetConfig(time_inputs=3)


def test_the_jvp_is_torch_func_jvp():
    """meanflow.jvp (forward-mode dual tensors) returns torch.func.jvp's value and derivative, and the value's
    gradient with respect to the weights."""
    torch.manual_seed(0)
    net = tiny_unet(2)
    for p in net.parameters():
        p.data.add_(0.1 * torch.randn_like(p))
    g = torch.Generator().manual_seed(9)
    z, v, t = torch.randn(4, 1, 8, 8, generator=g), torch.randn(4, 1, 8, 8, generator=g), torch.rand(4, generator=g)
    primals, tangents = (z, 0.5 * t, t), (v, torch.zeros(4), torch.ones(4))
    u_theta = lambda z, r, t: net(z, torch.stack([t, t - r], 1))  # noqa: E731
    ours, theirs = jvp(u_theta, primals, tangents), torch.func.jvp(u_theta, primals, tangents)
    torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    grads = [torch.autograd.grad(u.pow(2).sum(), list(net.parameters())) for u in (ours[0], theirs[0])]
    torch.testing.assert_close(grads[0], grads[1], atol=1e-5, rtol=1e-5)


def test_the_loss_runs_through_a_unet_with_attention_and_its_gradient_descends_it():
    """One jvp through the U-Net (convolutions, GroupNorm, attention); 30 steps on one batch lower the loss."""
    torch.manual_seed(0)
    net = tiny_unet(2)
    g = torch.Generator().manual_seed(8)
    x0, eps, tr = torch.rand(8, 1, 8, 8, generator=g) * 2 - 1, torch.randn(8, 1, 8, 8, generator=g), TimePairs(0.5)
    t = tr.draw_t(8, g)
    params = list(net.parameters())
    opt = torch.optim.AdamW(params, lr=3e-3)
    curve = [train_step(net, meanflow_loss, opt, params, None, x0, t, eps, decay=0.0).item() for _ in range(30)]
    assert np.isfinite(curve).all() and np.mean(curve[-5:]) < np.mean(curve[:5]) - 1, curve


# ---- (e), (f): the recipe's refusals and `cleardiffusion train --objective meanflow` ---------------------
def test_the_recipe_gives_a_meanflow_model_its_own_sampler_in_1_to_8_steps():
    r = SamplingRecipe().resolve(MEANFLOW)
    assert (r.sampler, r.steps, r.spacing) == ("meanflow", 1, "uniform")
    assert SamplingRecipe(steps=8).resolve(MEANFLOW).steps == 8
    refusals = [(SamplingRecipe(sampler="ddpm"), MEANFLOW, "does not fit this meanflow model"),
                (SamplingRecipe(sampler="euler"), MEANFLOW, "does not fit this meanflow model"),
                (SamplingRecipe(sampler="meanflow"), NoiseSchedule.from_name("linear", 100), "does not fit this ddpm"),
                (SamplingRecipe(sampler="meanflow"), FlowPath(), "does not fit this flow model"),
                (SamplingRecipe(steps=0), MEANFLOW, "between 1 and 8"),
                (SamplingRecipe(steps=9), MEANFLOW, "between 1 and 8")]  # fmt: skip
    for recipe, path, message in refusals:
        with pytest.raises(UsageError, match=message) as e:
            recipe.resolve(path)
        assert len(str(e.value).splitlines()) == 1


def test_the_parts_of_a_meanflow_model():
    net = nn.Identity()
    model, path = sampling_parts(net, "meanflow", "v", NoiseSchedule.from_name("linear", 100))
    assert model is net and path.objective == "meanflow" and isinstance(path.base, FlowPath)
    loss_fn, draws = training_parts("meanflow", "v", "min-snr", NoiseSchedule.from_name("linear", 100))
    assert loss_fn is meanflow_loss and draws.draw_t(3, torch.Generator()).shape == (3, 2)


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--prediction", "eps"], "--prediction does nothing with --objective meanflow"),
        (["--precision", "bf16"], "--precision does nothing with --objective meanflow"),
        (["--model-option", "time_inputs=2"], "it comes from --objective"),
    ],
)
def test_train_refuses_what_meanflow_does_not_use(tmp_path, capsys, extra, message):
    flags = tiny_flags(write_digits(tmp_path / "d"), tmp_path / "run", 2, objective="meanflow", precision=None)
    try:
        code = main(flags + extra)
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err.strip()
    assert code == 2 and message in err and len(err.splitlines()) == 1 and not (tmp_path / "run").exists()


def test_train_meanflow_writes_a_checkpoint_that_samples_in_1_and_2_steps(tmp_path, capsys):
    out = tmp_path / "run"
    flags = tiny_flags(write_digits(tmp_path / "d"), out, 6, objective="meanflow", precision=None, conditional=True,
                       sample_every=6)  # fmt: skip
    assert main(flags) == 0
    assert "(fp32)" in capsys.readouterr().out and len(losses(out)) == 6
    assert (out / "samples" / "step_0000006.png").is_file()  # the grid: 1 step, not the 50 it cannot take
    state = load_checkpoint(out / "checkpoints/last.pt")
    assert state["config"]["objective"] == "meanflow" and state["model_spec"]["config"]["time_inputs"] == 2
    sample = ["sample", "--checkpoint", str(out / "checkpoints/last.pt"), "--device", "cpu", "--n", "4"]
    for steps, extra in ((1, []), (2, ["--class-label", "3", "--guidance", "2"])):
        assert main(sample + ["--steps", str(steps), "--out", str(tmp_path / f"{steps}.npz"), *extra]) == 0
        z = np.load(tmp_path / f"{steps}.npz")
        assert (str(z["objective"]), str(z["sampler"]), int(z["nfe"])) == ("meanflow", "meanflow", steps)
    trajectory = ["--trajectory", str(tmp_path / "t.png")]
    assert main(sample + ["--steps", "2", "--out", str(tmp_path / "g.png"), *trajectory]) == 0
    assert (tmp_path / "t.png").is_file()
    capsys.readouterr()
    for extra, message in ((["--steps", "9"], "between 1 and 8"), (["--sampler", "euler"], "does not fit")):
        assert main(sample + ["--out", str(tmp_path / "x.png"), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1 and not (tmp_path / "x.png").exists()
