"""Denoisers: every model's forward is `model(x_t, t, y=None) -> output of x_t's shape` (eps, v or x0).

A model is described by a spec `{"kind": "mlp" | "unet" | "vit", "config": {...}}` that checkpoints store, so
a checkpoint rebuilds exactly the network it was trained with. `PRESETS` names every image network, U-Nets
(unet.py) and transformers (vit.py) alike; `model_from_preset` builds one for a dataset's shape.
"""

from dataclasses import asdict

from torch import nn

from . import unet, vit
from .mlp import MLPConfig, MLPDenoiser
from .unet import UNet, UNetConfig
from .vit import ViT, ViTConfig

PRESETS: dict[str, UNetConfig | ViTConfig] = {**unet.PRESETS, **vit.PRESETS}  # one list: --model's choices
CONFIG_TYPES = {"unet": UNetConfig, "vit": ViTConfig}


def preset_kind(name: str) -> str:
    """'unet' or 'vit': the family of preset `name`."""
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose one of {', '.join(PRESETS)}")
    return "vit" if name in vit.PRESETS else "unet"


def model_from_preset(name: str, in_channels: int, image_size: int, num_classes: int = 0, **overrides) -> nn.Module:
    """Build preset `name` (a U-Net or a ViT) for the data's channels and size; overrides replace config fields."""
    build = vit.vit_from_preset if preset_kind(name) == "vit" else unet.unet_from_preset
    return build(name, in_channels, image_size, num_classes, **overrides)


def model_spec(model: nn.Module) -> dict:
    """The JSON-serialisable description from which `build_model` rebuilds `model`."""
    if isinstance(model, MLPDenoiser):
        return {"kind": "mlp", "config": asdict(model.config)}
    if isinstance(model, UNet):
        return {"kind": "unet", "config": asdict(model.config)}
    if isinstance(model, ViT):
        return {"kind": "vit", "config": asdict(model.config)}
    raise TypeError(f"no spec for model type {type(model).__name__}")


def ungrown_spec(spec: dict) -> dict:
    """`spec` without a U-Net's extra middle blocks and code: equal for a network and its grown copies
    (unet.grow_into)."""
    if spec.get("kind") != "unet":
        return spec
    return {**spec, "config": {**spec["config"], "extra_middle_blocks": 0, "code_classes": 0}}


def grown_spec(spec: dict, blocks: int, codes: int = 0) -> dict:
    """`spec` with `blocks` more extra middle blocks and, if `codes`, a code of that many classes: a U-Net grown
    by unet.grow_into (0 and 0: `spec`)."""
    if not blocks and not codes:
        return spec
    config = {**spec["config"], "extra_middle_blocks": spec["config"].get("extra_middle_blocks", 0) + blocks}
    return {**spec, "config": {**config, "code_classes": codes} if codes else config}


def build_model(spec: dict) -> nn.Module:
    """Rebuild a denoiser from `model_spec`'s dictionary."""
    kind, config = spec.get("kind"), dict(spec.get("config", {}))
    if kind == "mlp":
        return MLPDenoiser(MLPConfig(**config))
    if kind == "unet":
        for key, value in config.items():  # JSON turns tuples into lists
            if isinstance(value, list):
                config[key] = tuple(value)
        return UNet(UNetConfig(**config))
    if kind == "vit":
        return ViT(ViTConfig(**config))
    raise ValueError(f"unknown model kind {kind!r}; expected 'mlp', 'unet' or 'vit'")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
