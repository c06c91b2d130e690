"""The transformer denoiser (models/vit.py) and its linear-time mixer (models/scan.py): the scan is the recurrence,
causal, linear in tokens; adaLN-Zero starts at the zero predictor; long skips, t and y reach the output; presets,
refusals, checkpoints, MeanFlow, bf16 and the command line."""

import json
import re

import pytest
import torch

from cleardiffusion.checkpoint import load_checkpoint, save_checkpoint
from cleardiffusion.cli import main
from cleardiffusion.errors import UsageError
from cleardiffusion.limits import check_training_fits
from cleardiffusion.meanflow import TimePairs, meanflow_loss
from cleardiffusion.models import build_model, count_parameters, model_from_preset, model_spec
from cleardiffusion.models.scan import SelectiveScan, chunked_scan
from cleardiffusion.models.vit import PRESETS, ViT, ViTConfig, vit_from_preset
from test_train import tiny_flags, write_digits
from test_unet import inputs, randomize  # x, t for any image denoiser; every parameter perturbed

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py
MIXERS = ("attention", "scan")
TINY = dict(image_size=8, patch_size=2, hidden=16, depth=3, heads=2, state_dim=4, scan_head_dim=4, scan_chunk=3)
PERTURB = 0.2  # randomize's scale here: the zero-initialised adaLN gates and output layer hide the inputs


def tiny(mixer: str = "attention", **overrides) -> ViT:
    torch.manual_seed(0)
    return ViT(ViTConfig(**{"in_channels": 1, "mixer": mixer, **TINY, **overrides})).eval()


# ---- the scan ------------------------------------------------------------------------------------------------
def naive_scan(x, delta, A, B, C):
    """The recurrence token by token, per channel d of head k: h_t = exp(Delta_t[k] A[k]) h_{t-1} + Delta_t[k]
    B_t x_t[d], y_t[d] = C_t . h_t."""
    P = x.shape[2] // A.shape[0]
    delta, A = delta.repeat_interleave(P, dim=2), A.repeat_interleave(P)  # one step and one rate per channel
    h, ys = torch.zeros(x.shape[0], x.shape[2], B.shape[2], dtype=x.dtype), []  # (B, D, N)
    for t in range(x.shape[1]):
        h = torch.exp(delta[:, t, :, None] * A[:, None]) * h + delta[:, t, :, None] * B[:, t, None] * x[:, t, :, None]
        ys.append((h * C[:, t, None]).sum(-1))
    return torch.stack(ys, dim=1)  # (B, L, D)


def scan_inputs(L: int, heads: int = 3, D: int = 6, N: int = 3, seed: int = 0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    x, B, C = (torch.randn(2, L, k, generator=g, dtype=dtype) for k in (D, N, N))
    delta = 3 * torch.rand(2, L, heads, generator=g, dtype=dtype)  # steps up to 3: decays down to exp(-3 * 8)
    A = -8 * torch.rand(heads, generator=g, dtype=dtype)
    return x, delta, A, B, C


@pytest.mark.parametrize("heads", [1, 3, 6])
@pytest.mark.parametrize("chunk", [1, 3, 4, 13, 32])
def test_chunked_scan_is_the_recurrence(chunk, heads):
    """Any chunk size (a divisor of L, not, longer than L) and head size gives the token-by-token recurrence."""
    args = scan_inputs(13, heads)
    torch.testing.assert_close(chunked_scan(*args, chunk=chunk), naive_scan(*args), rtol=1e-12, atol=1e-12)


def test_chunked_scan_is_finite_where_the_products_underflow():
    """Decays of exp(-1e4) per token: a cumulative product divided by another would be 0/0; the scan is not."""
    x, delta, A, B, C = scan_inputs(40, dtype=torch.float32)
    y = chunked_scan(x, 1e3 * delta, A, B, C, chunk=16)
    ref = naive_scan(x.double(), 1e3 * delta.double(), A.double(), B.double(), C.double())
    assert torch.isfinite(y).all()
    torch.testing.assert_close(y.double(), ref, rtol=1e-4, atol=1e-4)


def test_one_direction_is_causal_and_the_mixer_sees_both_sides():
    """Token i's output never depends on tokens after i (conv and scan); the bidirectional mixer's does."""
    torch.manual_seed(0)
    scan = SelectiveScan(dim=6, state_dim=4, head_dim=2, chunk=4).double()
    x = torch.randn(2, 11, 6, dtype=torch.float64)
    changed = x.clone()
    changed[:, 7:] += 1.0
    with torch.no_grad():
        y, y_changed = scan(x), scan(changed)
    assert torch.equal(y[:, :7], y_changed[:, :7])
    assert (y[:, 7:] - y_changed[:, 7:]).abs().amin() > 0
    mixer = randomize(tiny("scan"), scale=PERTURB).blocks[0].mixer.double()  # hidden 16
    x = torch.randn(2, 11, 16, dtype=torch.float64)
    changed = x.clone()
    changed[:, 7:] += 1.0
    with torch.no_grad():
        later = mixer(changed) - mixer(x)
    assert later[:, :7].abs().amax() > 1e-6  # the reversed scan carries tokens 7.. back to 0..6


# ---- the network ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("channels", [1, 3])
def test_output_has_the_input_shape(mixer, channels):
    model = randomize(tiny(mixer, in_channels=channels, num_classes=3), scale=PERTURB)
    x, t = inputs(model)
    with torch.no_grad():
        out = model(x, t, torch.tensor([0, 2]))
    assert out.shape == x.shape and torch.isfinite(out).all()


@pytest.mark.parametrize("mixer", MIXERS)
def test_a_fresh_network_is_the_zero_predictor(mixer):
    """adaLN-Zero: the gates and the output layer start at zero, so every output is exactly 0."""
    for model in (tiny(mixer), tiny(mixer, num_classes=3, long_skips=True, time_inputs=2)):
        x, t = inputs(model)
        t = t if model.config.time_inputs == 1 else torch.stack([t, t // 2], dim=1)
        with torch.no_grad():
            assert torch.equal(model(x, t), torch.zeros_like(x))


def test_long_skips_change_the_function_unless_their_linear_ignores_the_skip():
    """With Linear(2D -> D) = [I, 0] a long-skip network is the plain one; a nonzero skip half changes it."""
    plain, skips = randomize(tiny(depth=5), scale=PERTURB), tiny(depth=5, long_skips=True)
    skips.load_state_dict(plain.state_dict(), strict=False)  # the same blocks; only the skip linears are new
    assert [b.skip is not None for b in skips.blocks] == [False, False, False, True, True]  # pairs (0,4), (1,3)
    D, x_t = 16, inputs(plain)
    with torch.no_grad():
        for block in skips.blocks[3:]:
            block.skip.weight.copy_(torch.cat([torch.eye(D), torch.zeros(D, D)], dim=1))
            block.skip.bias.zero_()
        torch.testing.assert_close(skips(*x_t), plain(*x_t), rtol=0, atol=0)
        skips.blocks[4].skip.weight[:, D:].normal_()
        assert (skips(*x_t) - plain(*x_t)).abs().amax() > 1e-3


@pytest.mark.parametrize("mixer", MIXERS)
def test_t_and_y_change_the_output_after_a_training_step(mixer):
    """A fresh network ignores t and y (it outputs 0); a few optimiser steps later both reach the output (the
    first step moves only the zero output layer, through which the next reach the modulations), and y=None is
    the null class."""
    model = tiny(mixer, num_classes=3).train()
    x, t = inputs(model, batch=4)
    y = torch.tensor([0, 1, 2, 0])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):
        opt.zero_grad()
        (model(x, t, y) - x).square().mean().backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        out = model(x, t, y)
        assert (model(x, t + 300, y) - out).abs().amax() > 1e-5
        assert (model(x, t, (y + 1) % 3) - out).abs().amax() > 1e-5
        torch.testing.assert_close(model(x, t), model(x, t, torch.full((4,), 3)), rtol=0, atol=0)


# ---- presets, refusals, specs ---------------------------------------------------------------------------------
def test_jit_b16_has_jits_parameter_count_and_vit_b_outside_the_conditioning():
    """JiT-B/16 reports 131M; without each block's adaLN Linear(D, 6D) and e(t) it is ViT-B's 86M."""
    with torch.device("meta"):
        model = vit_from_preset("jit-b16", 3, 256)
    total = count_parameters(model)
    conditioning = sum(p.numel() for n, p in model.named_parameters() if "modulation" in n or n.startswith("embed."))
    assert abs(total / 131e6 - 1) < 0.02, total
    assert abs((total - conditioning) / 86e6 - 1) < 0.02, total - conditioning
    assert model.config.tokens == 256


def test_small_presets_take_28x28_and_32x32_images():
    assert PRESETS["vit-small"].mixer == "attention" and PRESETS["ssm-small"].mixer == "scan"
    for name, (c, s) in {"vit-small": (1, 28), "ssm-small": (3, 32)}.items():
        model = model_from_preset(name, c, s, num_classes=10)
        assert isinstance(model, ViT) and model.config.image_size == s and model.num_classes == 10


@pytest.mark.parametrize(
    "fields, message",
    [
        (
            dict(image_size=28, patch_size=16),
            r"image_size=28 is not divisible by patch_size=16.*1, 2, 4, 7, 14, 28.*32x32",
        ),
        (dict(hidden=48, heads=5), r"hidden=48 is not divisible by heads=5"),
        (dict(hidden=20, heads=2), r"hidden=20 must be a multiple of 8.*16 or 24"),
        (dict(mixer="mamba"), r"mixer='mamba' is not one of attention, scan"),
        (dict(depth=2, long_skips=True), r"depth=2 has no pair"),
        (dict(patch_size=0), r"patch_size must be a positive integer"),
        (dict(time_inputs=3), r"time_inputs must be 1"),
        (dict(hidden=48, heads=4, scan_head_dim=5), r"hidden=48 is not divisible by scan_head_dim=5"),
    ],
)
def test_bad_configs_are_refused_with_the_fix(fields, message):
    with pytest.raises(ValueError, match=message):
        ViTConfig(**fields)


def test_a_run_that_cannot_fit_is_refused_with_the_vits_activations():
    """jit-b16 at batch 65,536: the weights fit, the activations (a lower bound: 9 TiB) do not."""
    with pytest.raises(UsageError, match=r"training this 130,6\d\d,\d{3}-parameter model at batch 65536.*activations"):
        check_training_fits(lambda: vit_from_preset("jit-b16", 3, 256), 65536, 65536, 1000, "cpu")
    check_training_fits(lambda: vit_from_preset("vit-small", 1, 28), 64, 64, 1000, "cpu")  # the CPU recipe fits


def test_bad_presets_and_fields_name_the_choices():
    with pytest.raises(ValueError, match="jit-b16, vit-small, ssm-small"):
        vit_from_preset("vit-tiny", 1, 28)
    with pytest.raises(ValueError, match="valid fields"):
        vit_from_preset("vit-small", 1, 28, norm_groups=8)
    with pytest.raises(ValueError, match="small, seed-minimal.*vit-small"):
        model_from_preset("vit", 1, 28)


@pytest.mark.parametrize("mixer", MIXERS)
def test_a_checkpoint_rebuilds_the_network_exactly(mixer, tmp_path):
    model = randomize(tiny(mixer, num_classes=3, long_skips=True), scale=PERTURB)
    spec = json.loads(json.dumps(model_spec(model)))  # as config.json and checkpoints hold it
    save_checkpoint(tmp_path / "net.pt", {"model_spec": spec, "ema": model.state_dict()})
    state = load_checkpoint(tmp_path / "net.pt")
    rebuilt = build_model(state["model_spec"]).eval()
    rebuilt.load_state_dict(state["ema"])  # strict: no key missing or left over
    x, t = inputs(model)
    with torch.no_grad():
        assert torch.equal(rebuilt(x, t, torch.tensor([1, 3])), model(x, t, torch.tensor([1, 3])))
    assert rebuilt.config == model.config


# ---- MeanFlow, bf16, the command line -------------------------------------------------------------------------
@pytest.mark.parametrize("mixer", MIXERS)
def test_meanflow_jvp_runs_through_both_mixers(mixer):
    """MeanFlow differentiates the network forward (a jvp) and backward: attention takes the plain formula."""
    model = randomize(tiny(mixer, time_inputs=2, num_classes=3), scale=PERTURB).train()
    x0, _ = inputs(model, batch=3)
    g = torch.Generator().manual_seed(1)
    t = TimePairs().draw_t(3, g)
    loss = meanflow_loss(model, x0, t, torch.randn(x0.shape, generator=g), torch.tensor([0, 1, 3]))
    loss.backward()
    assert torch.isfinite(loss) and all(torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("mixer", MIXERS)
def test_bf16_autocast_forward_backward(mixer):
    model = randomize(tiny(mixer, num_classes=3, dropout=0.1, long_skips=True), scale=PERTURB).train()
    x, t = inputs(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = model(x, t, torch.tensor([1, 3]))
    loss = (out.float() - x).square().mean()
    loss.backward()
    assert out.shape == x.shape and torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("mixer, objective", [("attention", "ddpm"), ("scan", "meanflow")])
def test_train_vit_small_then_sample(tmp_path, capsys, mixer, objective):
    """`train --model vit-small` then `sample`: DDPM with attention, MeanFlow (a jvp per step) with the scan."""
    data, out = write_digits(tmp_path / "digits"), tmp_path / "run"
    small = ["--model", "vit-small", "--model-option", "hidden=16", "--model-option", "depth=3",
             "--model-option", "patch_size=2", "--model-option", f"mixer={mixer}", "--model-option", "scan_head_dim=8",
             "--objective", objective]  # fmt: skip
    precision = "fp32" if objective == "ddpm" else None  # meanflow runs in float32 and refuses the flag
    flags = tiny_flags(data, out, steps=3, base_channels=None, model_option="heads=2", precision=precision)
    assert main(flags + small) == 0
    spec = load_checkpoint(out / "checkpoints" / "last.pt")["model_spec"]
    assert spec["kind"] == "vit" and spec["config"]["mixer"] == mixer
    assert spec["config"]["time_inputs"] == (2 if objective == "meanflow" else 1)
    grid = tmp_path / "grid.png"
    sample = ["sample", "--checkpoint", str(out / "checkpoints" / "last.pt"), "--n", "4", "--out", str(grid),
              "--device", "cpu", "--steps", "3" if objective == "ddpm" else "1"]  # fmt: skip
    assert main(sample) == 0 and grid.is_file()
    assert "vit-small" in capsys.readouterr().out
    if objective == "ddpm":  # dmd's GAN term (on by default) needs a U-Net: refused before anything is written
        dmd = ["distill", "--teacher", str(out / "checkpoints" / "last.pt"), "--distill-method", "dmd",
               "--student", str(tmp_path / "none.pt"), "--steps", "1", "--out", str(tmp_path / "dmd")]  # fmt: skip
        assert main(dmd) == 2 and not (tmp_path / "dmd").exists()
        assert "this teacher's network (ViT) has none: pass --dmd-gan 0" in capsys.readouterr().err


@pytest.mark.parametrize(
    "flags, message",
    [
        (["--base-channels", "8"], "--base-channels does nothing with --model vit-small"),
        (["--model-option", "norm_groups=4"], "norm_groups is not a ViT setting.*patch_size"),
        (["--model-option", "mixer=mamba"], "mixer='mamba': expected attention or scan"),
        (["--model-option", "patch_size=3"], "image_size=8 is not divisible by patch_size=3"),
    ],
)
def test_bad_vit_flags_are_one_line_errors(tmp_path, capsys, flags, message):
    data = write_digits(tmp_path / "digits")
    args = tiny_flags(data, tmp_path / "run", steps=2, base_channels=None, model_option=None)
    assert main(args + ["--model", "vit-small", *flags]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and re.search(message, err[0]), err
    assert not (tmp_path / "run" / "checkpoints").exists()
