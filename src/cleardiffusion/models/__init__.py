"""Denoisers: every model's forward is `model(x_t, t, y=None) -> eps`.

A model is described by a spec `{"kind": "mlp" | "unet", "config": {...}}` that checkpoints store, so a
checkpoint rebuilds exactly the network it was trained with.
"""

from dataclasses import asdict

from torch import nn

from .mlp import MLPConfig, MLPDenoiser


def model_spec(model: nn.Module) -> dict:
    """The JSON-serialisable description from which `build_model` rebuilds `model`."""
    if isinstance(model, MLPDenoiser):
        return {"kind": "mlp", "config": asdict(model.config)}
    from .unet import UNet

    if isinstance(model, UNet):
        return {"kind": "unet", "config": asdict(model.config)}
    raise TypeError(f"no spec for model type {type(model).__name__}")


def build_model(spec: dict) -> nn.Module:
    """Rebuild a denoiser from `model_spec`'s dictionary."""
    kind, config = spec.get("kind"), dict(spec.get("config", {}))
    if kind == "mlp":
        return MLPDenoiser(MLPConfig(**config))
    if kind == "unet":
        from .unet import UNet, UNetConfig

        for key, value in config.items():  # JSON turns tuples into lists
            if isinstance(value, list):
                config[key] = tuple(value)
        return UNet(UNetConfig(**config))
    raise ValueError(f"unknown model kind {kind!r}; expected 'mlp' or 'unet'")


def count_parameters(model: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad)
