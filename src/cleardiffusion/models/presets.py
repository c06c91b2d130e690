"""A preset network configuration for given data: the one lookup the U-Net and the ViT presets share."""

from dataclasses import fields, replace


def preset_config(presets: dict, name: str, family: str, **changes):
    """presets[name] with `changes` replacing its fields; an unknown preset or field is a ValueError naming the
    valid ones (family names the presets in the message: "U-Net", "ViT")."""
    if name not in presets:
        raise ValueError(f"unknown {family} preset {name!r}; choose one of {', '.join(presets)}")
    base = presets[name]
    valid = {f.name for f in fields(base)}
    unknown = sorted(set(changes) - valid)
    if unknown:
        raise ValueError(f"unknown {type(base).__name__} fields {unknown}; valid fields: {', '.join(sorted(valid))}")
    return replace(base, **changes)
