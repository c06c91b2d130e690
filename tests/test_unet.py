"""U-Net: preset shapes and parameter counts, where t and y enter, input checks, bf16 and channels_last."""

import pytest
import torch

from cleardiffusion.models import count_parameters
from cleardiffusion.models.unet import PRESETS, UNet, UNetConfig, grow_into, unet_from_preset

NATURAL = {"small": (1, 28), "seed-minimal": (1, 28), "seed-cifar": (3, 32), "ddpm-cifar10": (3, 32)}
BLOCKS = ("plain", "resnet")


def tiny(block: str, **overrides) -> UNet:
    """A small U-Net of either family (8x8 inputs, widths 16/32, attention at 4x4), fast on a CPU."""
    cfg = dict(in_channels=2, image_size=8, base_channels=16, channel_mults=(1, 2), num_res_blocks=1,
               attention_resolutions=(4,), middle_attention=True, dropout=0.0, norm_groups=8, block=block,
               time_mlp=block == "resnet", activation="relu" if block == "plain" else "silu")  # fmt: skip
    cfg.update(overrides)
    return UNet(UNetConfig(**cfg)).eval()


def randomize(model: torch.nn.Module, seed: int = 0, scale: float = 0.1) -> torch.nn.Module:
    """Perturb every parameter, so zero-initialised layers (Ho et al.'s conv2, heads; DiT's gates) stop hiding
    inputs. Shared with test_vit.py."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(scale * torch.randn(p.shape, generator=g))
    return model


def inputs(model: torch.nn.Module, batch: int = 2, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """x (B, C, H, W) and t (B,) for any image denoiser with a config of in_channels and image_size."""
    cfg, g = model.config, torch.Generator().manual_seed(seed)
    x = torch.randn(batch, cfg.in_channels, cfg.image_size, cfg.image_size, generator=g)
    return x, torch.randint(0, 1000, (batch,), generator=g)


# ---- presets -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", list(PRESETS))
def test_preset_output_has_input_shape(name):
    c, s = NATURAL[name]
    model = unet_from_preset(name, c, s).eval()
    x, t = inputs(model)
    with torch.no_grad():
        eps = model(x, t)
    assert eps.shape == x.shape and torch.isfinite(eps).all()


def test_ddpm_cifar10_has_ho_et_al_parameter_count():
    assert count_parameters(unet_from_preset("ddpm-cifar10", 3, 32)) == 35_746_307


def test_small_is_the_documented_cpu_recipe_and_also_takes_32x32_rgb():
    model = unet_from_preset("small", 1, 28)
    assert count_parameters(model) == 619_697  # README and docs/quality.md
    assert model.config.channel_mults == (1, 2, 4) and model.config.norm_groups == 8
    rgb = unet_from_preset("small", 3, 32).eval()
    x, t = inputs(rgb)
    with torch.no_grad():
        assert rgb(x, t).shape == (len(x), 3, 32, 32)


@pytest.mark.parametrize(("name", "target"), [("seed-minimal", 3.3e6), ("seed-cifar", 13.9e6)])
def test_seed_parameter_counts(name, target):
    c, s = NATURAL[name]
    assert abs(count_parameters(unet_from_preset(name, c, s)) - target) < 0.05 * target


def test_seed_minimal_downsamples_twice_to_7x7():
    model = unet_from_preset("seed-minimal", 1, 28)
    sizes = []
    model.middle.register_forward_hook(lambda m, i, o: sizes.append(tuple(o.shape[1:])))
    model(*inputs(model))
    assert sizes == [(256, 7, 7)]


def test_overrides_change_the_network():
    base = unet_from_preset("seed-minimal", 1, 28)
    conditional = unet_from_preset("seed-minimal", 1, 28, num_classes=10, time_embedding="every-block")
    assert conditional.null_label == 10 and conditional.config.time_embedding == "every-block"
    assert count_parameters(conditional) > count_parameters(base)


@pytest.mark.parametrize("block", BLOCKS)
def test_a_grown_network_starts_as_the_trained_one_and_its_new_blocks_change_it(block):
    """grow_into loads a trained network's weights into a copy with more middle blocks: the same function, until
    the new blocks' weights (the parameters it returns) move; other weights are refused."""
    trained = randomize(tiny(block))
    grown = tiny(block, extra_middle_blocks=2)
    new = grow_into(grown, trained.state_dict(), 2)
    assert {id(p) for p in new} == {id(p) for block in list(grown.middle)[-2:] for p in block.parameters()}
    x, _ = inputs(trained)
    t = torch.tensor([3, 700])
    with torch.no_grad():
        torch.testing.assert_close(grown(x, t), trained(x, t))
        randomize(grown.middle[-1], seed=1)
        assert (grown(x, t) - trained(x, t)).abs().max() > 1e-3
    for weights, blocks in ((trained.state_dict(), 1), (tiny(block, base_channels=32).state_dict(), 2)):
        with pytest.raises((ValueError, RuntimeError)):
            grow_into(tiny(block, extra_middle_blocks=2), weights, blocks)
    with pytest.raises(ValueError, match="extra_middle_blocks"):
        tiny(block, extra_middle_blocks=-1)


@pytest.mark.parametrize("block", BLOCKS)
def test_a_coded_network_grows_from_the_trained_one_and_jumps_by_its_code(block):
    """code_classes K: grown from a network without a code (grow_into), the same function (the code's embedding is
    zero) and the code's parameters returned; once the embedding is not zero, the forced code changes the output,
    and without one the head's argmax is the code."""
    trained = randomize(tiny(block))
    coded = tiny(block, extra_middle_blocks=1, code_classes=3)
    new = grow_into(coded, trained.state_dict(), 1)
    code = {id(p) for m in (coded.code_head, coded.code_embed) for p in m.parameters()}
    assert code <= {id(p) for p in new} and len(new) == len(code) + len(list(coded.middle[-1].parameters()))
    x, _ = inputs(trained, batch=4)
    t = torch.tensor([3, 300, 700, 999])
    torch.testing.assert_close(coded(x, t), trained(x, t))
    assert coded.code_logits.shape == (4, 3) and not coded.code_logits.requires_grad  # not forced: detached
    with torch.no_grad():
        randomize(coded.code_embed, seed=1, scale=1.0)
        own = coded(x, t)
        picked = coded.code_logits.argmax(1)
        coded.forced_code = picked
        torch.testing.assert_close(coded(x, t), own, rtol=0, atol=0)
        coded.forced_code = (picked + 1) % 3
        assert (coded(x, t) - own).abs().amax(dim=(1, 2, 3)).min() > 1e-3  # every sample: another code, another image
    same = tiny(block, extra_middle_blocks=1, code_classes=3)
    assert grow_into(same, coded.state_dict(), 0) == []  # weights with a code load as they are
    with pytest.raises(ValueError, match="code_classes"):
        tiny(block, code_classes=1)
    with pytest.raises(ValueError, match="2x2"):
        tiny(block, code_classes=3, channel_mults=(1, 2, 2, 2))


# ---- where t and y enter -----------------------------------------------------------------------------------
@pytest.mark.parametrize("block", BLOCKS)
@pytest.mark.parametrize("placement", ["middle", "every-block"])
def test_output_depends_on_t(block, placement):
    model = randomize(tiny(block, time_embedding=placement))
    x, _ = inputs(model)
    with torch.no_grad():
        a, b = model(x, torch.tensor([3, 3])), model(x, torch.tensor([700, 700]))
    assert (a - b).abs().max() > 1e-3


@pytest.mark.parametrize("block", BLOCKS)
def test_fresh_model_learns_to_use_t(block):
    """Zero-initialised layers hide t at first (resnet), but a few optimiser steps open the path."""
    torch.manual_seed(0)  # parameter initialisation only
    model = tiny(block).train()
    x, _ = inputs(model)
    eps_a, eps_b = torch.randn((2, *x.shape), generator=torch.Generator().manual_seed(1))
    t_a, t_b = torch.tensor([3, 3]), torch.tensor([700, 700])
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(3):  # regress onto a t-dependent target
        loss = (model(x, t_a) - eps_a).square().mean() + (model(x, t_b) - eps_b).square().mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        assert (model(x, t_a) - model(x, t_b)).abs().max() > 1e-4


@pytest.mark.parametrize("block", BLOCKS)
def test_output_depends_on_y_and_none_means_null_class(block):
    model = randomize(tiny(block, num_classes=3))
    x, t = inputs(model)
    with torch.no_grad():
        a, b = model(x, t, torch.tensor([0, 0])), model(x, t, torch.tensor([2, 2]))
        uncond, null = model(x, t), model(x, t, torch.full((2,), model.null_label))
    assert (a - b).abs().max() > 1e-3
    assert (uncond - a).abs().max() > 1e-3
    torch.testing.assert_close(uncond, null, rtol=0, atol=0)


def _trace(model: UNet, x, t, y) -> dict[str, torch.Tensor]:
    """Outputs of every encoder step and of the middle block."""
    out, hooks = {}, []
    for i, step in enumerate(model.encoder):
        hooks.append(step.register_forward_hook(lambda m, a, o, i=i: out.__setitem__(f"enc{i}", o)))
    hooks.append(model.middle.register_forward_hook(lambda m, a, o: out.__setitem__("middle", o)))
    with torch.no_grad():
        model(x, t, y)
    for h in hooks:
        h.remove()
    return out


@pytest.mark.parametrize("block", BLOCKS)
def test_middle_placement_keeps_t_and_y_out_of_the_encoder(block):
    model = randomize(tiny(block, num_classes=3, time_embedding="middle"))
    x, _ = inputs(model)
    a = _trace(model, x, torch.tensor([5, 5]), torch.tensor([0, 0]))
    b = _trace(model, x, torch.tensor([900, 900]), torch.tensor([1, 1]))
    for k in a:
        if k.startswith("enc"):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=0)
    assert (a["middle"] - b["middle"]).abs().max() > 1e-3
    projections = [n for n, _ in model.named_modules() if n.endswith("emb_proj")]
    assert projections and all(n.startswith("middle") for n in projections)


@pytest.mark.parametrize("block", BLOCKS)
def test_every_block_placement_conditions_the_first_block(block):
    model = randomize(tiny(block, num_classes=3, time_embedding="every-block"))
    x, _ = inputs(model)
    a = _trace(model, x, torch.tensor([5, 5]), torch.tensor([0, 0]))
    b = _trace(model, x, torch.tensor([900, 900]), torch.tensor([1, 1]))
    first = "enc0" if block == "plain" else "enc1"  # resnet's enc0 is conv_in, which never sees e
    assert (a[first] - b[first]).abs().max() > 1e-3
    projections = [n for n, _ in model.named_modules() if n.endswith("emb_proj")]
    assert any(n.startswith("encoder") for n in projections) and any(n.startswith("decoder") for n in projections)


# ---- validation --------------------------------------------------------------------------------------------
def test_image_size_not_divisible_names_valid_sizes():
    with pytest.raises(ValueError, match=r"image_size=28.*24 or 32.*pad"):
        unet_from_preset("ddpm-cifar10", 3, 28)
    with pytest.raises(ValueError, match=r"image_size=30.*28 or 32"):
        unet_from_preset("seed-minimal", 1, 30)


def test_bad_config_values_name_the_choices():
    with pytest.raises(ValueError, match="middle, every-block"):
        UNetConfig(time_embedding="everywhere")
    with pytest.raises(ValueError, match="seed-minimal"):
        unet_from_preset("ddpm", 3, 32)
    with pytest.raises(ValueError, match="valid fields"):
        unet_from_preset("seed-minimal", 1, 28, widht=3)
    with pytest.raises(ValueError, match=r"feature-map sizes.*\[32, 16, 8, 4\]"):
        UNetConfig(attention_resolutions=(7,))
    with pytest.raises(ValueError, match="norm_groups"):
        UNetConfig(base_channels=48)


def test_bad_inputs_raise_helpful_errors():
    model = tiny("plain", num_classes=3)
    x, t = inputs(model)
    with pytest.raises(ValueError, match=r"lie in 0\.\.2"):
        model(x, t, torch.tensor([0, 4]))
    with pytest.raises(ValueError, match=r"lie in 0\.\.2"):
        model(x, t, torch.tensor([-1, 0]))
    with pytest.raises(ValueError, match="in_channels=3"):
        model(torch.randn(2, 3, 8, 8), t)
    with pytest.raises(ValueError, match="t must have shape"):
        model(x, t[:1])
    with pytest.raises(ValueError, match="unconditional"):
        tiny("resnet")(x, t, torch.tensor([0, 1]))


# ---- speed-related modes -----------------------------------------------------------------------------------
@pytest.mark.parametrize("block", BLOCKS)
def test_bf16_autocast_forward_backward(block):
    model = tiny(block, num_classes=3, dropout=0.1).train()
    x, t = inputs(model)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        eps = model(x, t, torch.tensor([1, 3]))
    loss = (eps.float() - x).square().mean()
    loss.backward()
    assert eps.shape == x.shape and torch.isfinite(loss)
    assert all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())


@pytest.mark.parametrize("block", BLOCKS)
def test_channels_last_matches_contiguous(block):
    model = randomize(tiny(block))
    x, t = inputs(model)
    with torch.no_grad():
        ref = model(x, t)
        out = model.to(memory_format=torch.channels_last)(x.to(memory_format=torch.channels_last), t)
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)
