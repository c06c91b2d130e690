"""The fast path computes the paper's step: same loss, same update direction, exact EMA, no host reads."""

import copy
import platform
from dataclasses import replace

import pytest
import torch
import torch.nn.functional as F

from cleardiffusion import fastpath
from cleardiffusion.denoiser import training_parts
from cleardiffusion.fastpath import PLAIN, FastOptions
from cleardiffusion.models.unet import unet_from_preset
from cleardiffusion.objective import diffusion_loss
from cleardiffusion.recipe import SamplingRecipe
from cleardiffusion.schedule import NoiseSchedule
from cleardiffusion.train import ema_decay, ema_update_, make_optimizer, train_step

FAST_CPU = FastOptions(amp="bf16", channels_last=True, fused_adam=True, foreach_ema=True)
L_SIMPLE = training_parts("ddpm", "eps", "none", NoiseSchedule.from_name("linear", 1000))[0]


pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_unet(num_classes: int = 0, seed: int = 0) -> torch.nn.Module:
    """Ho et al.'s structure at 1/16 width, without dropout, zero-initialised layers made non-zero."""
    torch.manual_seed(seed)
    model = unet_from_preset(
        "ddpm-cifar10", in_channels=3, image_size=8, num_classes=num_classes, base_channels=8,
        channel_mults=(1, 2), attention_resolutions=(4,), norm_groups=4, dropout=0.0,
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed + 1)
    with torch.no_grad():
        for p in model.parameters():  # the zero-init output convs would make many gradients vanish
            if not p.any():
                p.copy_(torch.randn(p.shape, generator=g) * 0.02)
    return model


def prepare(model: torch.nn.Module, options: FastOptions) -> torch.nn.Module:
    """The model as the training run sets it up: the options' memory format, no per-call label check."""
    if options.channels_last:
        model.to(memory_format=torch.channels_last)
    model.validate_labels = False
    return model


def batch(B: int = 8, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x0 = torch.rand((B, 3, 8, 8), generator=g) * 2 - 1
    t = torch.randint(0, 1000, (B,), generator=g)
    eps = torch.randn((B, 3, 8, 8), generator=g)
    return x0, t, eps


def run_step(model: torch.nn.Module, options: FastOptions, data) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """train.train_step after 3 fp32 warm-up steps; returns its loss and the update theta_new - theta_old.

    From a fresh state Adam's update is nearly sign(grad), which flips for near-zero gradients under any
    rounding; from a warm state (the normal case) it follows the gradient smoothly.
    """
    ema = copy.deepcopy(model).requires_grad_(False)
    net = prepare(model, options)
    if options.channels_last:
        ema.to(memory_format=torch.channels_last)
    optimizer = make_optimizer(model, options, lr=1e-3)
    params, ema_params = list(model.parameters()), list(ema.parameters())
    warm = replace(options, amp="fp32")
    for seed in (10, 11, 12):
        x0, t, eps = batch(seed=seed)
        train_step(net, L_SIMPLE, optimizer, params, ema_params, x0, t, eps, decay=0.99, options=warm)
    before = [p.detach().clone() for p in params]
    loss = train_step(net, L_SIMPLE, optimizer, params, ema_params, *data, decay=0.99, options=options)
    return loss, [p.detach() - b for p, b in zip(params, before, strict=True)]


def cosine(a: list[torch.Tensor], b: list[torch.Tensor]) -> float:
    a_flat, b_flat = torch.cat([x.flatten() for x in a]), torch.cat([x.flatten() for x in b])
    return F.cosine_similarity(a_flat.double(), b_flat.double(), dim=0).item()


def test_fast_step_gives_the_plain_loss_and_update_direction():
    data = batch()
    loss_plain, update_plain = run_step(tiny_unet(), PLAIN, data)
    loss_fast, update_fast = run_step(tiny_unet(), FAST_CPU, data)
    assert loss_fast.dtype == torch.float32
    assert abs(loss_fast.item() - loss_plain.item()) / loss_plain.item() < 1e-2
    assert cosine(update_fast, update_plain) > 0.99


def test_fast_step_with_sgd_updates_match_the_plain_gradient():
    """With plain SGD the update IS the gradient: bf16 + channels_last must keep its direction."""
    data, updates = batch(seed=3), []
    for options in (PLAIN, FAST_CPU):
        model = tiny_unet(seed=2)
        net = prepare(model, options)
        params = list(model.parameters())
        before = [p.detach().clone() for p in params]
        optimizer = torch.optim.SGD(params, lr=0.1)
        ema_params = [p.detach().clone() for p in params]
        train_step(net, L_SIMPLE, optimizer, params, ema_params, *data, decay=0.5, options=options,
                            grad_clip=0.0)  # fmt: skip
        updates.append([p.detach() - b for p, b in zip(params, before, strict=True)])
    assert cosine(*updates) > 0.99


def test_a_different_batch_gives_a_different_update():
    """The cosine check above can fail: two different batches point elsewhere."""
    _, update_a = run_step(tiny_unet(), PLAIN, batch(seed=0))
    _, update_b = run_step(tiny_unet(), PLAIN, batch(seed=1))
    assert cosine(update_a, update_b) < 0.99


@pytest.mark.parametrize("channels_last", [False, True])
def test_foreach_ema_equals_a_per_parameter_loop_exactly(channels_last):
    ema, model = tiny_unet(seed=0), tiny_unet(seed=1)
    if channels_last:
        ema.to(memory_format=torch.channels_last)
        model.to(memory_format=torch.channels_last)
    reference = [p.detach().clone() for p in ema.parameters()]
    params = list(model.parameters())
    for step in range(1, 4):
        decay = ema_decay(step, 0.9999)
        ema_update_(list(ema.parameters()), params, decay, foreach=True)
        for e, p in zip(reference, params, strict=True):  # the reference: one tensor at a time
            e.lerp_(p.detach(), 1.0 - decay)
    for e, r in zip(ema.parameters(), reference, strict=True):
        assert torch.equal(e, r)


def test_ema_update_is_the_convex_combination():
    g = torch.Generator().manual_seed(0)
    ema, theta = [torch.randn(5, 3, generator=g)], [torch.randn(5, 3, generator=g)]
    expected = 0.9 * ema[0] + 0.1 * theta[0]
    ema_update_(ema, theta, 0.9)
    torch.testing.assert_close(ema[0], expected, rtol=0, atol=1e-6)
    assert ema_decay(1, 0.9999) == pytest.approx(2 / 11)
    assert ema_decay(10**7, 0.9999) == 0.9999


def test_the_hot_path_reads_nothing_back_to_the_host(monkeypatch):
    """No bool()/item()/int() on a tensor in forward, loss, backward, clipping, EMA: no GPU host sync."""
    model = tiny_unet(num_classes=10)
    ema = copy.deepcopy(model).requires_grad_(False)
    schedule = NoiseSchedule.from_name("linear", 1000)
    x0, t, eps = batch()
    y = torch.tensor([0, 1, 2, 3, 10, 10, 9, 8])  # 10 = the null class

    def host_read(*args, **kwargs):
        raise AssertionError("a tensor was read back to the host")

    for name in ("__bool__", "item", "__int__", "__float__", "tolist"):
        monkeypatch.setattr(torch.Tensor, name, host_read)
    with pytest.raises(AssertionError, match="read back"):  # the checked forward does read the labels
        model(x0, t, y)
    with fastpath.trusted_inputs(model):
        loss = diffusion_loss(model, schedule, x0, t, eps, y)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(list(model.parameters()), 1.0, foreach=True)
        ema_update_(list(ema.parameters()), list(model.parameters()), 0.99)  # train.py
    monkeypatch.undo()
    assert model.validate_labels is True  # trusted_inputs restores the check
    assert torch.isfinite(loss)


def test_label_check_still_guards_the_public_forward():
    model = tiny_unet(num_classes=10)
    x0, t, _ = batch(B=2)
    with pytest.raises(ValueError, match="class labels must lie in 0..9"):
        model(x0, t, torch.tensor([0, 11]))


def test_option_errors():
    with pytest.raises(ValueError, match="amp='int8' is not one of fp32, bf16, fp16"):
        FastOptions(amp="int8")


# ---- sampling: the network's precision and batch, decided in one place --------------------------------------


def test_sampling_precision_auto_is_bf16_only_where_it_is_native(monkeypatch):
    model = tiny_unet()
    monkeypatch.setattr(fastpath, "cpu_has_native_bf16", lambda: True)
    assert fastpath.sampling_precision("cpu") == "bf16" and fastpath.sampling_precision("cuda") == "bf16"
    assert isinstance(fastpath.sampling_model(model, "cpu"), fastpath.Autocast)
    assert fastpath.sampling_model(model, "cpu", "fp32") is model  # the way to ask for fp32
    monkeypatch.setattr(fastpath, "cpu_has_native_bf16", lambda: False)
    assert fastpath.sampling_precision("cpu") == "fp32"  # emulated bf16 would be slower: the fp32 path
    assert fastpath.sampling_model(model, "cpu") is model
    assert fastpath.sampling_precision("cpu", "bf16") == "bf16"  # asked for, as train's --precision bf16
    with pytest.raises(ValueError, match="precision='fp16' is not one of auto, fp32, bf16"):
        fastpath.sampling_precision("cpu", "fp16")
    assert fastpath.sampling_batch("cpu") == fastpath.SAMPLING_BATCH["cpu"]
    assert fastpath.sampling_batch("cuda:1") == fastpath.SAMPLING_BATCH["cuda"]
    assert fastpath.sampling_batch("cpu", 7) == 7


def test_only_the_network_runs_in_bf16():
    """Convolutions see bf16, the wrapper returns float32, and guidance combines float32 eps."""
    from cleardiffusion.guidance import guided_model

    model = tiny_unet(num_classes=10).eval()
    seen = []
    hook = model.head[-1].register_forward_hook(lambda m, i, out: seen.append(out.dtype))
    x0, t, _ = batch(B=4)
    y = torch.tensor([0, 1, 2, 3])
    with torch.no_grad():
        out = guided_model(fastpath.Autocast(model, "cpu"), y, 3.0)(x0, t)
        hook.remove()
        reference = guided_model(model, y, 3.0)(x0, t)
    assert seen == [torch.bfloat16] and out.dtype == torch.float32
    torch.testing.assert_close(out, reference, atol=0.05 * reference.abs().max().item(), rtol=0)
    wrapped = fastpath.Autocast(model, "cpu")
    with fastpath.trusted_inputs(wrapped):  # guidance and trusted_inputs reach the network through the wrapper
        assert model.validate_labels is False and wrapped.null_label == 10 and wrapped.config.num_classes == 10
    assert model.validate_labels is True


def test_bf16_samples_match_fp32_samples_within_bf16_rounding():
    """The default sampler (dpm++2m-sde, fresh noise every step) on the same seeds: bf16 follows fp32."""
    from cleardiffusion.generate import generate_images

    model = tiny_unet(num_classes=10).eval()
    schedule = NoiseSchedule.from_name("linear", 1000)
    labels = torch.arange(8) % 10
    recipe = SamplingRecipe(steps=10, guidance=2.0)

    def draw(precision: str, seed: int = 5) -> torch.Tensor:
        batches = generate_images(model, schedule, n=8, shape=(3, 8, 8), labels=labels, seed=seed, recipe=recipe,
                                  precision=precision)  # fmt: skip
        return torch.cat(list(batches))

    fp32 = draw("fp32")
    diff = (draw("bf16") - fp32).abs()
    assert diff.mean() < 0.02 and diff.max() < 0.2, (diff.mean(), diff.max())
    assert (draw("fp32", seed=6) - fp32).abs().mean() > 10 * diff.mean()  # far below the gap to another sample


def test_every_caller_leaves_precision_and_batch_to_the_one_place(monkeypatch, tmp_path):
    """`cleardiffusion sample` and `cleardiffusion.load(...).sample` pass neither: generate_images decides.
    Only the command line, which owns its process, keeps freed memory for the next step."""
    from cleardiffusion import api, generate
    from cleardiffusion.cli import main
    from test_train import tiny_flags, write_digits

    assert main(tiny_flags(write_digits(tmp_path / "data"), tmp_path / "run", 1)) == 0
    checkpoint = tmp_path / "run/checkpoints/last.pt"
    asked = []
    real_model, real_batch = generate.sampling_model, generate.sampling_batch
    monkeypatch.setattr(
        generate, "sampling_model", lambda m, d, p: asked.append(("precision", p)) or real_model(m, d, p)
    )
    monkeypatch.setattr(generate, "sampling_batch", lambda d, b: asked.append(("batch", b)) or real_batch(d, b))
    monkeypatch.setattr(fastpath, "keep_freed_memory", lambda: asked.append(("keep freed memory",)))
    assert main(["sample", "--checkpoint", str(checkpoint), "--n", "2", "--steps", "2", "--out",
                 str(tmp_path / "s.npz"), "--device", "cpu"]) == 0  # fmt: skip
    api.load(checkpoint).sample(2, steps=2)
    assert asked == [
        ("keep freed memory",),
        ("batch", None),
        ("precision", "auto"),
        ("batch", None),
        ("precision", "auto"),
    ]


class FakeLibc:
    """glibc's mallopt as ctypes sees it: records (parameter, value), returns 1 (accepted) or 0 (refused)."""

    def __init__(self, refuse=()):
        self.calls, self.refuse = [], refuse

    def mallopt(self, parameter, value):
        self.calls.append((parameter, value))
        return int(parameter not in self.refuse)


def test_keep_freed_memory_fixes_both_glibc_thresholds_and_says_when_it_could_not():
    from cleardiffusion.fastpath import M_MMAP_THRESHOLD, M_TRIM_THRESHOLD, keep_freed_memory

    libc = FakeLibc()
    assert keep_freed_memory(libc) is True
    assert libc.calls == [(M_MMAP_THRESHOLD, 32 * 2**20), (M_TRIM_THRESHOLD, 2**30)]
    assert (M_MMAP_THRESHOLD, M_TRIM_THRESHOLD) == (-3, -1)  # malloc.h's numbers
    assert keep_freed_memory(FakeLibc(refuse=(M_MMAP_THRESHOLD,))) is False
    assert keep_freed_memory(FakeLibc(refuse=(M_TRIM_THRESHOLD,))) is False


def test_keep_freed_memory_leaves_a_c_library_other_than_glibc_alone(monkeypatch):
    from cleardiffusion.fastpath import keep_freed_memory

    monkeypatch.setattr(platform, "system", lambda: "Darwin")
    assert keep_freed_memory() is False
    monkeypatch.setattr(platform, "system", lambda: "Linux")
    monkeypatch.setattr(platform, "libc_ver", lambda *a, **k: ("musl", "1.2"))
    assert keep_freed_memory() is False


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="needs glibc's mallopt")
def test_glibc_accepts_the_thresholds():
    from cleardiffusion.fastpath import keep_freed_memory

    assert keep_freed_memory() is True  # this test process's allocator: the same arithmetic, memory kept
