"""Sinusoidal timestep embedding (Vaswani et al. 2017, as used by Ho et al. 2020)."""

import math

import torch


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    """Embed integer (or real) timesteps `t` of shape (B,) as (B, dim): [cos(t * w_i), sin(t * w_i)].

    Frequencies w_i = max_period^(-i / (dim/2)) span from 1 to 1/max_period, so nearby timesteps get
    nearby embeddings and every timestep a distinct one.
    """
    if dim % 2 != 0:
        raise ValueError(f"embedding dim must be even, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = t.float()[:, None] * freqs[None, :]  # (B, half)
    return torch.cat([torch.cos(angles), torch.sin(angles)], dim=1)  # (B, dim)
